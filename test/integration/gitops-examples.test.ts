import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseAllDocuments } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubeClient } from "../../src/kube/client.ts";
import { isNotFound } from "../../src/kube/errors.ts";
import { paths, REPO_ROOT } from "../cluster/layout.ts";
import { kubectl } from "./support/batchrollout.ts";
import { adminClient, cluster, eventually } from "./support/cluster.ts";
import { CRD_ESTABLISHED_TIMEOUT_MS } from "./support/crd.ts";

// Issue 26: the Argo CD Application and the Flux Kustomization that deploy examples/sim-fleet.yaml
// are checked by the API server itself against stand-in CRDs of those projects
// (test/fixtures/gitops-crds: the few fields used), with strict field validation, as a dry run.

const STAND_INS = join(REPO_ROOT, "test/fixtures/gitops-crds");
const EXAMPLES = [join(REPO_ROOT, "examples/argocd"), join(REPO_ROOT, "examples/flux")];
const TOOL_NAMESPACES = ["argocd", "flux-system"];
const CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

interface Crd {
  metadata: { name: string };
  spec: { group: string; names: { plural: string }; versions: { name: string }[] };
}

const standIns = (): Crd[] =>
  readdirSync(STAND_INS)
    .filter((f) => f.endsWith(".yaml"))
    .map((f) => parseAllDocuments(readFileSync(join(STAND_INS, f), "utf8"))[0]?.toJSON() as Crd);

/** kubectl with its stdin, for a manifest made in the test. */
async function kubectlStdin(args: string[], input: string): Promise<string> {
  const run = promisify(execFile);
  const child = run(join(cluster().binDir, "kubectl"), ["--kubeconfig", paths.adminKubeconfig, ...args]);
  child.child.stdin?.end(input);
  return (await child).stdout;
}

describe("GitOps examples", () => {
  let admin: KubeClient;
  const created: string[] = [];

  beforeAll(async () => {
    admin = await adminClient();
    for (const crd of standIns()) {
      await admin.create(CRD_PATH, crd).catch(() => undefined);
      const { group, names, versions } = crd.spec;
      await eventually(`${crd.metadata.name} served`, () => admin.get(`/apis/${group}/${versions[0]?.name}/${names.plural}`, { limit: 1 }).then(() => true), CRD_ESTABLISHED_TIMEOUT_MS);
    }
    for (const ns of TOOL_NAMESPACES) {
      const exists = await admin.get(`/api/v1/namespaces/${ns}`).then(() => true, () => false);
      if (exists) continue;
      await admin.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } });
      created.push(ns);
    }
  });

  afterAll(async () => {
    const ignoreGone = (err: unknown) => {
      if (!isNotFound(err)) throw err;
    };
    for (const ns of created) await admin.delete(`/api/v1/namespaces/${ns}`).catch(ignoreGone);
    for (const crd of standIns()) await admin.delete(`${CRD_PATH}/${crd.metadata.name}`).catch(ignoreGone);
    await admin.close();
  });

  it("the API server accepts the Application, argocd-cm, the GitRepository and the Kustomization as written", async () => {
    const out = await kubectl(["apply", "--dry-run=server", "--validate=strict", ...EXAMPLES.flatMap((d) => ["-f", d])]);
    expect(out).toContain("application.argoproj.io/sim-fleet created (server dry run)");
    expect(out).toContain("configmap/argocd-cm");
    expect(out).toContain("gitrepository.source.toolkit.fluxcd.io/batchrollout created (server dry run)");
    expect(out).toContain("kustomization.kustomize.toolkit.fluxcd.io/sim-fleet created (server dry run)");
  });

  it("strict validation refuses a misspelt field, so the check above means something", async () => {
    const manifest = readFileSync(join(REPO_ROOT, "examples/flux/kustomization.yaml"), "utf8").replace("healthCheckExprs:", "healthCheckExpr:");
    await expect(kubectlStdin(["apply", "--dry-run=server", "--validate=strict", "-f", "-"], manifest)).rejects.toThrow(/unknown field "spec.healthCheckExpr"/);
  });

  it("both deploy examples/ through its kustomization: the example rollout and its namespace, nothing else", async () => {
    const rendered = parseAllDocuments(await kubectl(["kustomize", join(REPO_ROOT, "examples")])).map((d) => d.toJSON() as { kind: string; metadata: { name: string } });
    expect(rendered.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(["BatchRollout/sim-fleet", "Namespace/sims"]);
  });
});
