import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { parse, parseAllDocuments, stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubeClient } from "../../src/kube/client.ts";
import { isNotFound } from "../../src/kube/errors.ts";
import { REPO_ROOT, VERSIONS, paths } from "../cluster/layout.ts";
import { CHART_DIR } from "../chart/render.ts";
import { adminClient, cluster, createTestNamespace, deleteNamespace, eventually } from "./support/cluster.ts";

// The chart as a platform team installs it, on the local control plane: every object of the
// defaults and of every option is accepted by the API server (server-side dry-run, then a real
// install), in a namespace that enforces Pod Security `restricted`; the RBAC it grants does what
// the operator needs and no more. kwok plays the kubelet, so the pods are admitted and scheduled,
// not run (test/integration/image.test.ts runs the image). And the documented CRD upgrade step.

const execFileAsync = promisify(execFile);
const ALL_OPTIONS = join(CHART_DIR, "ci/all-options-values.yaml");
const MONITORING_CRDS = ["servicemonitors", "prometheusrules"].map((p) => join(REPO_ROOT, `test/fixtures/prometheus-operator/${p}.yaml`));
const CRD_FILE = join(CHART_DIR, "crds/batchrollout.dev_batchrollouts.yaml");
const PODS_TIMEOUT_MS = 60_000;

const run = async (bin: string, args: string[], input?: string): Promise<string> => {
  const child = execFileAsync(join(cluster().binDir, bin), ["--kubeconfig", paths.adminKubeconfig, ...args], { maxBuffer: 32 * 1024 * 1024 });
  if (input !== undefined) child.child.stdin?.end(input);
  return (await child).stdout;
};

interface Review { status: { allowed: boolean } }
async function can(admin: KubeClient, user: string, attrs: Record<string, string>): Promise<boolean> {
  const review = await admin.create<Review>("/apis/authorization.k8s.io/v1/subjectaccessreviews", {
    apiVersion: "authorization.k8s.io/v1", kind: "SubjectAccessReview", spec: { user, groups: ["system:serviceaccounts", "system:authenticated"], resourceAttributes: attrs },
  });
  return review.status.allowed;
}

describe("helm install of the chart", () => {
  let admin: KubeClient;
  const createdCrds: string[] = [];

  beforeAll(async () => {
    admin = await adminClient();
    for (const file of MONITORING_CRDS) {
      const name = (parse(readFileSync(file, "utf8")) as { metadata: { name: string } }).metadata.name;
      const exists = await admin.get(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`).then(() => true, () => false);
      if (exists) continue;
      await run("kubectl", ["apply", "-f", file]);
      createdCrds.push(name);
    }
    for (const name of createdCrds) await run("kubectl", ["wait", "--for=condition=Established", `crd/${name}`, "--timeout=30s"]);
  });

  afterAll(async () => {
    for (const name of createdCrds) await run("kubectl", ["delete", "crd", name, "--ignore-not-found"]);
    await admin?.close();
  });

  it.each([
    ["default values", []],
    ["every option", ["--values", ALL_OPTIONS]],
  ])(
    "with %s: dry-run and install in a restricted namespace, pods admitted, RBAC enough and no Secrets",
    async (label, valueArgs) => {
      const ns = await createTestNamespace(admin, `chart-${label.split(" ")[0]}`);
      const release = `br-${ns.slice(-6)}`;
      try {
        await run("kubectl", ["label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/enforce-version=latest"]);
        // The namespace does enforce: a pod without the restricted securityContext is refused.
        const refused = await run("kubectl", ["run", "loose", "-n", ns, "--image=registry.k8s.io/pause:3.10", "--dry-run=server"]).then(() => "", (err: unknown) => String(err));
        expect(refused).toMatch(/violates PodSecurity "restricted/);

        const rendered = await run("helm", ["template", release, CHART_DIR, "-n", ns, "--kube-version", VERSIONS.KUBERNETES_VERSION ?? "", ...valueArgs]);
        // The test hook's bare Pod names the release's ServiceAccount, which admission looks up: it
        // is dry-run once the release exists, every other object before.
        const docs = parseAllDocuments(rendered).map((d) => d.toJS() as { kind: string; metadata: { annotations?: Record<string, string> } } | null).filter((d) => d !== null);
        const isHook = (d: (typeof docs)[number]) => d.metadata.annotations?.["helm.sh/hook"] !== undefined;
        const asList = (items: typeof docs) => stringify({ apiVersion: "v1", kind: "List", items });
        const dryRun = await run("kubectl", ["apply", "--dry-run=server", "-n", ns, "-f", "-"], asList(docs.filter((d) => !isHook(d))));
        expect(dryRun).toMatch(/deployment.apps\/\S+ created \(server dry run\)/);

        await run("helm", ["install", release, CHART_DIR, "-n", ns, "--skip-crds", ...valueArgs]);
        expect(await run("kubectl", ["apply", "--dry-run=server", "-n", ns, "-f", "-"], asList(docs.filter(isHook)))).toMatch(/pod\/\S+ created \(server dry run\)/);
        const deployment = (parse(await run("kubectl", ["get", "deployment", "-n", ns, "-o", "yaml"])) as { items: { spec: { replicas: number; template: { spec: { serviceAccountName: string } } } }[] }).items[0];
        const replicas = deployment?.spec.replicas ?? 0;
        await eventually(`${replicas} operator pods admitted`, async () => {
          const pods = parse(await run("kubectl", ["get", "pods", "-n", ns, "-l", `app.kubernetes.io/instance=${release}`, "-o", "yaml"])) as { items: unknown[] };
          return pods.items.length === replicas;
        }, PODS_TIMEOUT_MS, 500);

        const user = `system:serviceaccount:${ns}:${deployment?.spec.template.spec.serviceAccountName}`;
        const needs: Record<string, string>[] = [
          { verb: "create", resource: "pods", namespace: "any" },
          { verb: "delete", resource: "pods", namespace: "any" },
          { verb: "watch", resource: "pods" },
          { verb: "list", resource: "nodes" },
          { verb: "patch", group: "batchrollout.dev", resource: "batchrollouts", subresource: "status", namespace: "any" },
          { verb: "update", group: "batchrollout.dev", resource: "batchrollouts", subresource: "finalizers", namespace: "any" },
          { verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: ns },
          { verb: "create", group: "events.k8s.io", resource: "events", namespace: "any" },
          // Secure /metrics (the default): who a scraper's token is, and whether it may get /metrics.
          { verb: "create", group: "authentication.k8s.io", resource: "tokenreviews" },
          { verb: "create", group: "authorization.k8s.io", resource: "subjectaccessreviews" },
        ];
        for (const attrs of needs) expect(await can(admin, user, attrs), JSON.stringify(attrs)).toBe(true);
        for (const verb of ["get", "list", "watch"]) expect(await can(admin, user, { verb, resource: "secrets", namespace: ns }), `${verb} secrets`).toBe(false);
        expect(await can(admin, user, { verb: "update", group: "coordination.k8s.io", resource: "leases", namespace: "kube-system" })).toBe(false);
      } finally {
        await run("helm", ["uninstall", release, "-n", ns, "--wait"]).catch((err: unknown) => console.log(`helm uninstall ${release}: ${String(err)}`));
        await deleteNamespace(admin, ns);
      }
    },
    PODS_TIMEOUT_MS * 2,
  );

  it("upgrades a CRD that helm created with the README's kubectl apply --server-side step", async () => {
    // A copy of the chart's CRD under a group of its own, so the shared CRD is left alone; its
    // "old" version lacks a printer column, as a CRD from an earlier chart would.
    const group = `upgrade-${Date.now().toString(36)}.batchrollout.dev`;
    const crd = parse(readFileSync(CRD_FILE, "utf8")) as { metadata: { name: string }; spec: { group: string; versions: { additionalPrinterColumns?: { name: string }[] }[] } };
    crd.metadata.name = crd.metadata.name.replace("batchrollout.dev", group);
    crd.spec.group = group;
    const latest = stringify(crd);
    const columns = crd.spec.versions[0]?.additionalPrinterColumns ?? [];
    const dropped = columns.pop()?.name;
    const name = crd.metadata.name;
    try {
      // helm install creates CRDs from crds/ with a plain create, under its own field manager.
      await run("kubectl", ["create", "--field-manager=helm", "-f", "-"], stringify(crd));
      const out = await run("kubectl", ["apply", "--server-side", "--force-conflicts", "-f", "-"], latest);
      expect(out).toMatch(/serverside-applied/);
      const now = parse(await run("kubectl", ["get", "crd", name, "-o", "yaml"])) as typeof crd;
      expect(now.spec.versions[0]?.additionalPrinterColumns?.map((c) => c.name)).toContain(dropped);
    } finally {
      await admin.delete(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    }
  });
});
