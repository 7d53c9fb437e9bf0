import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CATEGORIES } from "../../src/api/crd.ts";
import type { KubeClient } from "../../src/kube/client.ts";
import { isNotFound } from "../../src/kube/errors.ts";
import { createRollout, kubectl } from "./support/batchrollout.ts";
import { adminClient, createTestNamespace, deleteNamespace, eventually } from "./support/cluster.ts";
import { CRD_ESTABLISHED_TIMEOUT_MS, ensureCrd } from "./support/crd.ts";

// Issue 26: kubectl expands a category before it matches a resource name, so while BatchRollout sat
// in category `rollouts`, `kubectl get rollouts` on a cluster with Argo Rollouts listed BatchRollouts.
// A stand-in CRD with Argo Rollouts' names (kind Rollout, plural rollouts) shows what kubectl does.

const STAND_IN = "rollouts.argoproj.io";
const STAND_IN_PATH = `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${STAND_IN}`;
const STAND_IN_CRD = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: STAND_IN },
  spec: {
    group: "argoproj.io",
    scope: "Namespaced",
    names: { kind: "Rollout", plural: "rollouts", singular: "rollout", listKind: "RolloutList" },
    versions: [{ name: "v1alpha1", served: true, storage: true, schema: { openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true } } }],
  },
};

describe("kubectl names", () => {
  let admin: KubeClient;
  let ns: string;
  // A fresh discovery cache, so kubectl reads the stand-in's names instead of a cached list.
  const cacheDir = mkdtempSync(join(tmpdir(), "kubectl-cache-"));
  const get = (...args: string[]) => kubectl(["--cache-dir", cacheDir, "get", ...args]);

  beforeAll(async () => {
    admin = await adminClient();
    await ensureCrd(admin);
    await admin.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", STAND_IN_CRD).catch(() => undefined);
    await eventually(`${STAND_IN} served`, () => admin.get(`/apis/argoproj.io/v1alpha1/rollouts`, { limit: 1 }).then(() => true), CRD_ESTABLISHED_TIMEOUT_MS);
    ns = await createTestNamespace(admin, "kubectl-categories");
    await admin.create(`/apis/argoproj.io/v1alpha1/namespaces/${ns}/rollouts`, { apiVersion: "argoproj.io/v1alpha1", kind: "Rollout", metadata: { name: "argo-app" } });
    await createRollout(admin, ns, "batch-app", { replicas: 1, paused: true });
  });

  afterAll(async () => {
    rmSync(cacheDir, { recursive: true, force: true });
    if (ns !== undefined) await deleteNamespace(admin, ns);
    await admin.delete(STAND_IN_PATH).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
    await admin.close();
  });

  it("`kubectl get rollouts` lists the Rollout CRD's objects, not BatchRollouts", async () => {
    expect(CATEGORIES).not.toContain("rollouts");
    const names = (await get("rollouts", "-n", ns, "-o", "name")).trim().split("\n");
    expect(names).toEqual(["rollout.argoproj.io/argo-app"]);
  });

  it("BatchRollouts answer to br, their plural and their own category, never to `all`", async () => {
    expect((await get("br", "-n", ns, "-o", "name")).trim()).toBe("batchrollout.batchrollout.dev/batch-app");
    expect((await get(CATEGORIES[0]!, "-n", ns, "-o", "name")).trim()).toBe("batchrollout.batchrollout.dev/batch-app");
    expect(await get("all", "-n", ns, "-o", "name")).not.toContain("batchrollout");
  });
});
