import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubeClient } from "../../src/kube/client.ts";
import { CERT_FILE, KEY_FILE, selfSignedCert } from "../../src/telemetry/serving-cert.ts";
import { OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, paths } from "../cluster/layout.ts";
import { renderChart } from "../chart/render.ts";
import { freePort } from "./support/chart-operator.ts";
import { adminClient, cluster, createTestNamespace, deleteNamespace, eventually } from "./support/cluster.ts";
import { ensureCrd } from "./support/crd.ts";
import { startOperator, type OperatorProcess } from "./support/operator.ts";

// The operator with its default, secure /metrics on the local control plane, as the test bed's
// chart release grants it (TokenReview and SubjectAccessReview create): over https, no token is
// 401, a ServiceAccount without the chart's metrics-reader role is 403, one bound to it reads the
// metrics; the probes stay open on their own port. With --metrics-cert-dir the operator presents
// that certificate, which a client verifies.

const execFileAsync = promisify(execFile);
const UP_TIMEOUT_MS = 30_000;
/** The operator's self-signed certificate is not verified here: its presence is checked instead. */
const unverified = new Agent({ connect: { rejectUnauthorized: false } });

async function get(url: string, opts: { token?: string; dispatcher?: Agent } = {}): Promise<{ status: number; text: string }> {
  const res = await request(url, { dispatcher: opts.dispatcher ?? unverified, ...(opts.token ? { headers: { authorization: `Bearer ${opts.token}` } } : {}) });
  return { status: res.statusCode, text: await res.body.text() };
}

async function token(ns: string, serviceAccount: string): Promise<string> {
  const { stdout } = await execFileAsync(join(cluster().binDir, "kubectl"), ["--kubeconfig", paths.adminKubeconfig, "create", "token", serviceAccount, "-n", ns, "--duration=10m"]);
  return stdout.trim();
}

/** The Subject Alternative Names of the certificate presented on `port`. */
function presentedNames(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerX509Certificate()?.subjectAltName ?? "");
      socket.end();
    });
    socket.once("error", reject);
  });
}

/** The operator with metrics on https and probes on http, on free loopback ports; resolves once ready. */
async function startSecure(ns: string, extraArgs: string[] = []): Promise<{ op: OperatorProcess; metrics: string; health: string }> {
  const [metricsPort, healthPort] = [await freePort(), await freePort()];
  const op = startOperator(ns, [`--metrics-port=${metricsPort}`, `--health-port=${healthPort}`, "--bind-address=127.0.0.1", ...extraArgs]);
  const health = `http://127.0.0.1:${healthPort}`;
  await eventually("the operator's /readyz", () => get(`${health}/readyz`).then((r) => r.status === 200, () => false), UP_TIMEOUT_MS);
  return { op, metrics: `https://127.0.0.1:${metricsPort}/metrics`, health };
}

describe("secure /metrics of the running operator", () => {
  let admin: KubeClient;
  let ns: string;
  let readerRole: string;
  const bindings: string[] = [];
  const operators: OperatorProcess[] = [];
  const dirs: string[] = [];

  beforeAll(async () => {
    admin = await adminClient();
    // Readiness (the caches synced) needs the BatchRollout CRD.
    await ensureCrd(admin);
    ns = await createTestNamespace(admin, "metrics-secure");
    // The test bed's release (test/cluster applies the chart's RBAC): its metrics-reader ClusterRole.
    const rendered = await renderChart({ release: OPERATOR_SERVICE_ACCOUNT, namespace: OPERATOR_NAMESPACE, set: ["operator.enabled=false"] });
    readerRole = rendered.find((m) => m.kind === "ClusterRole" && m.metadata.name.endsWith("-metrics-reader"))?.metadata.name ?? "";
    expect(readerRole).not.toBe("");
    await admin.get(`/apis/rbac.authorization.k8s.io/v1/clusterroles/${readerRole}`);
    for (const name of ["scraper", "stranger"]) await admin.create(`/api/v1/namespaces/${ns}/serviceaccounts`, { apiVersion: "v1", kind: "ServiceAccount", metadata: { name } });
    const binding = `${ns}-scraper`;
    await admin.create("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: binding },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: readerRole },
      subjects: [{ kind: "ServiceAccount", name: "scraper", namespace: ns }],
    });
    bindings.push(binding);
  });

  afterAll(async () => {
    for (const op of operators) await op.stop();
    for (const b of bindings) await admin.delete(`/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${b}`).catch(() => undefined);
    if (ns) await deleteNamespace(admin, ns);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    await unverified.close();
    await admin?.close();
  });

  it("answers 401 without a token, 403 without the metrics-reader role, the metrics with it; probes open", async () => {
    const { op, metrics, health } = await startSecure(ns);
    operators.push(op);
    expect(await get(metrics)).toMatchObject({ status: 401 });
    expect(await get(metrics, { token: "not-a-token" })).toMatchObject({ status: 401 });
    const refused = await get(metrics, { token: await token(ns, "stranger") });
    expect(refused.status).toBe(403);
    expect(refused.text).toContain(`system:serviceaccount:${ns}:stranger may not get /metrics`);
    const served = await get(metrics, { token: await token(ns, "scraper") });
    expect(served.status).toBe(200);
    expect(served.text).toMatch(/^rest_client_requests_total\{/m);
    expect(served.text).toMatch(/^# TYPE workqueue_depth gauge$/m);

    // TLS, with the self-signed certificate made at start; plain http on that port serves nothing.
    expect(await presentedNames(Number(new URL(metrics).port))).toContain("IP Address:127.0.0.1");
    expect(await get(metrics.replace("https:", "http:")).then((r) => r.status, () => 0)).not.toBe(200);
    for (const probe of ["/healthz", "/readyz"]) expect(await get(`${health}${probe}`), probe).toEqual({ status: 200, text: "ok" });
  }, UP_TIMEOUT_MS * 2);

  it("presents the certificate of --metrics-cert-dir, which a client verifies", async () => {
    const dir = mkdtempSync(join(tmpdir(), "metrics-cert-"));
    dirs.push(dir);
    const pair = selfSignedCert({ now: Date.now(), hosts: ["localhost"] });
    writeFileSync(join(dir, CERT_FILE), pair.cert);
    writeFileSync(join(dir, KEY_FILE), pair.key);
    const { op, metrics } = await startSecure(ns, [`--metrics-cert-dir=${dir}`]);
    operators.push(op);
    // Verified as the name the certificate carries, trusting only that certificate.
    const verifying = new Agent({ connect: { ca: pair.cert, servername: "localhost" } });
    try {
      const served = await get(metrics, { token: await token(ns, "scraper"), dispatcher: verifying });
      expect(served.status).toBe(200);
    } finally {
      await verifying.close();
    }
  }, UP_TIMEOUT_MS * 2);
});
