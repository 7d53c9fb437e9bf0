import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { writeKubeconfig } from "../cluster/kubeconfig.ts";
import { paths } from "../cluster/layout.ts";
import { KubeClient } from "../../src/kube/client.ts";
import { isNotFound } from "../../src/kube/errors.ts";
import { PODS, resourcePath } from "../../src/kube/resources.ts";
import { ApiServerSignal } from "../../src/ratelimit/signals/apiserver.ts";
import { adminClient, cluster, createTestNamespace, deleteNamespace, eventually, operatorClient } from "./support/cluster.ts";

// The API server signal against the real kube-apiserver: the APF identity of the operator's
// ServiceAccount (a non-exempt one, so it lands where a real install does), the APF metrics scrape,
// and an identity RBAC denies /metrics.

const logger = pino({ level: process.env.BATCHROLLOUT_TEST_LOG ?? "silent" });

function pod(name: string) {
  return { apiVersion: "v1", kind: "Pod", metadata: { name }, spec: { containers: [{ name: "main", image: "registry.k8s.io/pause:3.10" }] } };
}

describe("ApiServerSignal", () => {
  let admin: KubeClient;
  let operator: KubeClient;
  let ns: string;
  const cleanup: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    admin = await adminClient();
    operator = await operatorClient();
  });

  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step().catch((err: unknown) => (isNotFound(err) ? undefined : Promise.reject(err)));
    await deleteNamespace(admin, ns);
  });

  afterAll(async () => {
    await Promise.all([admin.close(), operator.close()]);
  });

  it("names the FlowSchema and priority level our pod writes land in, and scrapes that level's APF metrics", async () => {
    ns = await createTestNamespace(admin, "signals-apiserver");
    // The signal is never run here; its interval only bounds how old a baseline may be and still count.
    // Long, so that two scrapes a slow machine takes seconds to make still compare.
    const signal = new ApiServerSignal({ client: operator, logger, metricsIntervalMs: 60_000 });
    const detach = signal.attach(operator);
    cleanup.push(async () => detach());

    await operator.create(resourcePath(PODS, { namespace: ns }), pod("first"));
    const named = await eventually("APF names resolved", async () => (signal.snapshot().priorityLevel ? signal.snapshot() : undefined));
    // A ServiceAccount outside kube-system matches the suggested FlowSchema service-accounts → workload-low.
    expect(named).toMatchObject({ flowSchema: "service-accounts", priorityLevel: "workload-low", metricsForbidden: false });
    const schema = await admin.get<{ metadata: { uid: string } }>("/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas/service-accounts");
    const level = await admin.get<{ metadata: { uid: string } }>("/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations/workload-low");
    expect(named.flowSchemaUid).toBe(schema.metadata.uid);
    expect(named.priorityLevelUid).toBe(level.metadata.uid);

    const baseline = await signal.scrape();
    expect(baseline).toMatchObject({ state: "Idle", priorityLevel: "workload-low" });
    expect(baseline.inQueue).toBeGreaterThanOrEqual(0);
    // Requests of our level between the scrapes give the wait histogram something to say.
    await Promise.all(Array.from({ length: 20 }, (_, i) => operator.create(resourcePath(PODS, { namespace: ns }), pod(`p-${i}`))));
    const figures = await signal.scrape();
    expect(figures).toMatchObject({ state: "Ok", priorityLevel: "workload-low" });
    expect(figures.waitP99Ms).toBeGreaterThanOrEqual(0);
    expect(figures.rejected).toBeGreaterThanOrEqual(0);
  });

  it("stops scraping when RBAC denies /metrics and says the signals are client-side only", async () => {
    ns = await createTestNamespace(admin, "signals-apiserver-403");
    // A ServiceAccount that may create pods here and read APF objects, but not GET /metrics.
    const sa = "no-metrics";
    const role = `batchrollout-test-${ns}`;
    await admin.create(`/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: sa } });
    await admin.create(`/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings`, {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: "edit" },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "edit" },
      subjects: [{ kind: "ServiceAccount", name: sa, namespace: ns }],
    });
    await admin.create("/apis/rbac.authorization.k8s.io/v1/clusterroles", {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: role, labels: { "batchrollout.dev/test": "true" } },
      rules: [{ apiGroups: ["flowcontrol.apiserver.k8s.io"], resources: ["flowschemas", "prioritylevelconfigurations"], verbs: ["get", "list"] }],
    });
    cleanup.push(() => admin.delete(`/apis/rbac.authorization.k8s.io/v1/clusterroles/${role}`));
    await admin.create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: role, labels: { "batchrollout.dev/test": "true" } },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: role },
      subjects: [{ kind: "ServiceAccount", name: sa, namespace: ns }],
    });
    cleanup.push(() => admin.delete(`/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${role}`));
    const token = await admin.create<{ status: { token: string } }>(`/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenRequest",
      spec: { expirationSeconds: 600 },
    });
    const file = join(mkdtempSync(join(tmpdir(), "signals-apiserver-")), "kubeconfig");
    writeKubeconfig(file, { server: cluster().server, caFile: join(paths.pki, "ca.crt"), user: `system:serviceaccount:${ns}:${sa}`, credentials: { token: token.status.token } });
    const restricted = await KubeClient.fromKubeconfig(file);
    cleanup.push(() => restricted.close());

    const signal = new ApiServerSignal({ client: restricted, logger });
    const detach = signal.attach(restricted);
    cleanup.push(async () => detach());
    // RBAC reaches the authorizer's cache a moment after the binding is written.
    await eventually("pod create allowed", () => restricted.create(resourcePath(PODS, { namespace: ns }), pod("first")).then(() => true));
    await eventually("APF names resolved", async () => {
      await signal.refreshNames();
      return signal.snapshot().priorityLevel;
    });

    const first = await signal.scrape();
    expect(first.state).toBe("Forbidden");
    expect(first.message).toContain("client-side signals only");
    expect(await signal.scrape()).toBe(first);
    const snapshot = signal.snapshot();
    expect(snapshot.metricsForbidden).toBe(true);
    expect(snapshot.priorityLevel).toBe("workload-low");
    // run() ends at once: there is nothing left for it to do.
    await signal.run(new AbortController().signal);
  });
});
