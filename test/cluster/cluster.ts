import { execFile, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { Agent, request } from "undici";
import { stringify } from "yaml";
import {
  CLUSTER_CIDR, NODE_CIDR_MASK_SIZE, OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, PODS_PER_NODE, PORTS,
  REPO_ROOT, SERVICE_CIDR, VERSIONS, apiServerUrl, paths,
} from "./layout.ts";
import { IDENTITIES, ensureClientCert, ensureClusterPki } from "./pki.ts";
import { writeKubeconfig } from "./kubeconfig.ts";
import { withLock } from "./lock.ts";
import { logFile, recordedProcesses, runningProcess, startProcess, stopProcess, waitFor } from "./processes.ts";

// The local control plane: real etcd, kube-apiserver (RBAC, APF with default limits),
// kube-controller-manager (node IPAM, garbage collector, service accounts), kube-scheduler and kwok
// playing the kubelets of N fake nodes, all on loopback.

const execFileAsync = promisify(execFile);

/** Readiness budgets per component; generous because a loaded 2-core CI machine is slow. */
export const READY_TIMEOUT_MS = { etcd: 30_000, apiServer: 120_000, component: 90_000 } as const;
/** Nodes-ready budget: a fixed part plus a per-node part. */
export const NODES_READY_BASE_MS = 60_000;
export const NODES_READY_PER_NODE_MS = 150;
/** kube-scheduler's client rate: raised so the scheduler is never the test bed's bottleneck. */
export const SCHEDULER_CLIENT_QPS = 1000;
/**
 * kwok's nice value. On a real cluster every kubelet has its node's CPU; here one kwok plays 1,000
 * of them on the control plane's two cores. A kwok starved in a burst overflows its pod watch's
 * buffer, the API server cuts the watch, and the resumed watch hands kwok pods it already queued: it
 * plays them twice, and whichever method runs then pays (bench/HISTORY.md). Priority keeps it from
 * being starved; it does not make kwok's one event goroutine faster (kwok.yaml's CEL selectors do
 * that). Without CAP_SYS_NICE, nice(1) says so and runs kwok at the normal priority.
 */
export const KWOK_NICE = -10;
/** Lifetime of the operator's ServiceAccount token in the operator kubeconfig. */
export const OPERATOR_TOKEN_DURATION = "8760h";
export const NODE_NAME_PREFIX = "kwok-node-";

export interface ClusterInfo {
  server: string;
  adminKubeconfig: string;
  operatorKubeconfig: string;
  binDir: string;
}

const log = (msg: string) => process.stderr.write(`[cluster] ${msg}\n`);

/** Builds (or finds in the cache) the control-plane binaries; returns their directory. */
export function buildBinaries(): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [join(REPO_ROOT, "test/cluster/build-binaries.sh")], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve(out.trim().split("\n").pop() ?? "") : reject(new Error(`build-binaries.sh exited ${code}`)),
    );
  });
}

const tlsAgent = () =>
  new Agent({
    connect: {
      ca: readFileSync(join(paths.pki, "ca.crt")),
      cert: readFileSync(join(paths.pki, "admin.crt")),
      key: readFileSync(join(paths.pki, "admin.key")),
    },
  });

async function httpOk(url: string, dispatcher?: Agent): Promise<boolean> {
  const res = await request(url, { dispatcher, headersTimeout: 5_000, bodyTimeout: 5_000 });
  await res.body.text();
  return res.statusCode === 200;
}

/** A self-signed loopback endpoint (kube-controller-manager, kube-scheduler serve one). */
const insecureLoopback = () => new Agent({ connect: { rejectUnauthorized: false } });

export function kubectl(binDir: string, args: string[], input?: string): string {
  return execFileSync(join(binDir, "kubectl"), ["--kubeconfig", paths.adminKubeconfig, ...args], {
    input,
    encoding: "utf8",
    maxBuffer: 512 * 1024 * 1024,
    stdio: ["pipe", "pipe", "pipe"],
  });
}

async function kubectlAsync(binDir: string, args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(join(binDir, "kubectl"), ["--kubeconfig", paths.adminKubeconfig, ...args], {
    maxBuffer: 512 * 1024 * 1024,
  });
  return stdout;
}

function writeComponentConfigs(): void {
  mkdirSync(paths.config, { recursive: true });
  const caFile = join(paths.pki, "ca.crt");
  for (const [name, identity] of Object.entries(IDENTITIES)) {
    const { cert, key } = ensureClientCert(paths.pki, identity);
    const file = name === "admin" ? paths.adminKubeconfig : join(paths.config, `${identity.file}.kubeconfig`);
    writeKubeconfig(file, {
      server: apiServerUrl,
      caFile,
      user: identity.commonName,
      credentials: { clientCertificate: cert, clientKey: key },
    });
  }
  writeFileSync(
    join(paths.config, "kube-scheduler.yaml"),
    stringify({
      apiVersion: "kubescheduler.config.k8s.io/v1",
      kind: "KubeSchedulerConfiguration",
      clientConnection: {
        kubeconfig: join(paths.config, "kube-scheduler.kubeconfig"),
        qps: SCHEDULER_CLIENT_QPS,
        burst: SCHEDULER_CLIENT_QPS * 2,
      },
      leaderElection: { leaderElect: false },
    }),
  );
}

function startEtcd(binDir: string): void {
  mkdirSync(paths.etcdData, { recursive: true });
  startProcess("etcd", join(binDir, "etcd"), [
    "--name=testbed",
    `--data-dir=${paths.etcdData}`,
    `--listen-client-urls=http://127.0.0.1:${PORTS.etcdClient}`,
    `--advertise-client-urls=http://127.0.0.1:${PORTS.etcdClient}`,
    `--listen-peer-urls=http://127.0.0.1:${PORTS.etcdPeer}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${PORTS.etcdPeer}`,
    `--initial-cluster=testbed=http://127.0.0.1:${PORTS.etcdPeer}`,
    "--quota-backend-bytes=8589934592",
    "--log-level=warn",
  ]);
}

/**
 * kube-apiserver's log verbosity, for diagnosis only: at 1 it logs every watch it cuts for not
 * keeping up ("Forcing ... watcher close due to unresponsiveness"), with the watch's selector.
 */
const APISERVER_VERBOSITY = process.env.BATCHROLLOUT_APISERVER_VERBOSITY;

function startApiServer(binDir: string): void {
  const pki = (f: string) => join(paths.pki, f);
  startProcess("kube-apiserver", join(binDir, "kube-apiserver"), [
    "--bind-address=127.0.0.1",
    "--advertise-address=127.0.0.1",
    `--secure-port=${PORTS.apiServer}`,
    `--etcd-servers=http://127.0.0.1:${PORTS.etcdClient}`,
    `--client-ca-file=${pki("ca.crt")}`,
    `--tls-cert-file=${pki("apiserver.crt")}`,
    `--tls-private-key-file=${pki("apiserver.key")}`,
    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
    `--service-account-key-file=${pki("sa.pub")}`,
    `--service-account-signing-key-file=${pki("sa.key")}`,
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    "--authorization-mode=Node,RBAC",
    "--enable-priority-and-fairness=true",
    "--allow-privileged=true",
    // The advertise address is loopback, which Endpoints may not hold; nothing in-cluster needs it.
    "--endpoint-reconciler-type=none",
    ...(APISERVER_VERBOSITY ? [`--v=${APISERVER_VERBOSITY}`] : []),
  ]);
}

function startControllerManager(binDir: string): void {
  const kubeconfig = join(paths.config, "kube-controller-manager.kubeconfig");
  startProcess("kube-controller-manager", join(binDir, "kube-controller-manager"), [
    `--kubeconfig=${kubeconfig}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
    "--bind-address=127.0.0.1",
    `--secure-port=${PORTS.controllerManager}`,
    "--allocate-node-cidrs=true",
    `--cluster-cidr=${CLUSTER_CIDR}`,
    `--node-cidr-mask-size=${NODE_CIDR_MASK_SIZE}`,
    `--service-cluster-ip-range=${SERVICE_CIDR}`,
    `--service-account-private-key-file=${join(paths.pki, "sa.key")}`,
    `--root-ca-file=${join(paths.pki, "ca.crt")}`,
    // Each controller (replicaset, garbage collector, ...) writes as its own ServiceAccount, as kubeadm sets it up.
    "--use-service-account-credentials=true",
    "--leader-elect=false",
  ]);
}

function startScheduler(binDir: string): void {
  const kubeconfig = join(paths.config, "kube-scheduler.kubeconfig");
  startProcess("kube-scheduler", join(binDir, "kube-scheduler"), [
    `--config=${join(paths.config, "kube-scheduler.yaml")}`,
    `--authentication-kubeconfig=${kubeconfig}`,
    `--authorization-kubeconfig=${kubeconfig}`,
    "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
    "--bind-address=127.0.0.1",
    `--secure-port=${PORTS.scheduler}`,
  ]);
}

function startKwok(binDir: string): void {
  startProcess("kwok", "nice", [
    "-n",
    String(KWOK_NICE),
    join(binDir, "kwok"),
    `--kubeconfig=${join(paths.config, "kwok.kubeconfig")}`,
    `--config=${join(REPO_ROOT, "test/cluster/kwok/kwok.yaml")}`,
    `--server-address=127.0.0.1:${PORTS.kwok}`,
  ]);
}

/** The operator's ServiceAccount and RBAC, rendered from the Helm chart so there is one source. */
function installOperatorIdentity(binDir: string): void {
  const rendered = execFileSync(
    join(binDir, "helm"),
    ["template", OPERATOR_SERVICE_ACCOUNT, join(REPO_ROOT, "charts/batchrollout"), "--namespace", OPERATOR_NAMESPACE,
      "--kube-version", VERSIONS.KUBERNETES_VERSION ?? "", "--set", "operator.enabled=false", "--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml"],
    { encoding: "utf8" },
  );
  kubectl(binDir, ["apply", "-f", "-"], `apiVersion: v1\nkind: Namespace\nmetadata: {name: ${OPERATOR_NAMESPACE}}\n`);
  kubectl(binDir, ["apply", "-f", "-"], rendered);
  kubectl(binDir, ["apply", "-f", "-"], stringify({
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "ClusterRoleBinding",
    metadata: { name: "batchrollout-testbed:kwok" },
    roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "cluster-admin" },
    subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "User", name: IDENTITIES.kwok.commonName }],
  }));
  const token = kubectl(binDir, ["create", "token", OPERATOR_SERVICE_ACCOUNT, "-n", OPERATOR_NAMESPACE,
    `--duration=${OPERATOR_TOKEN_DURATION}`]).trim();
  writeKubeconfig(paths.operatorKubeconfig, {
    server: apiServerUrl,
    caFile: join(paths.pki, "ca.crt"),
    user: `system:serviceaccount:${OPERATOR_NAMESPACE}:${OPERATOR_SERVICE_ACCOUNT}`,
    credentials: { token },
  });
}

export function nodeName(index: number): string {
  return `${NODE_NAME_PREFIX}${String(index).padStart(4, "0")}`;
}

/** A kwok-managed Node: 110 pods, ample CPU and memory, podCIDR left to kube-controller-manager. */
export function kwokNode(name: string, extra: { labels?: Record<string, string>; podCIDR?: string } = {}): object {
  const resources = { cpu: "64", memory: "256Gi", pods: String(PODS_PER_NODE) };
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name,
      annotations: { "kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0" },
      labels: {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        type: "kwok",
        ...extra.labels,
      },
    },
    spec: extra.podCIDR ? { podCIDR: extra.podCIDR, podCIDRs: [extra.podCIDR] } : {},
    status: { allocatable: resources, capacity: resources },
  };
}

interface NodeSummary {
  total: number;
  ready: number;
  withPodCIDR: number;
  distinctPodCIDRs: number;
}

export async function summarizeNodes(binDir: string): Promise<NodeSummary> {
  const raw = await kubectlAsync(binDir, ["get", "nodes", "-o",
    'jsonpath={range .items[*]}{.spec.podCIDR}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}']);
  const rows = raw.split("\n").filter(Boolean).map((line) => line.split(" "));
  const cidrs = rows.map(([cidr]) => cidr).filter((c): c is string => Boolean(c));
  return {
    total: rows.length,
    ready: rows.filter(([, ready]) => ready === "True").length,
    withPodCIDR: cidrs.length,
    distinctPodCIDRs: new Set(cidrs).size,
  };
}

/** Creates kwok nodes 0..count-1 that do not exist yet and waits until all are Ready with a podCIDR. */
export async function ensureNodes(binDir: string, count: number): Promise<void> {
  const existing = new Set(
    kubectl(binDir, ["get", "nodes", "-o", "jsonpath={.items[*].metadata.name}"]).split(" ").filter(Boolean),
  );
  const missing = Array.from({ length: count }, (_, i) => nodeName(i)).filter((n) => !existing.has(n));
  if (missing.length > 0) {
    log(`creating ${missing.length} kwok nodes`);
    kubectl(binDir, ["create", "-f", "-"], stringify({ apiVersion: "v1", kind: "List", items: missing.map((n) => kwokNode(n)) }));
  }
  await waitFor("kwok", `managing ${count} Ready nodes with podCIDRs`, async () => {
    const s = await summarizeNodes(binDir);
    return s.ready >= count && s.withPodCIDR >= count;
  }, NODES_READY_BASE_MS + count * NODES_READY_PER_NODE_MS, 1_000);
}

async function apiServerReady(): Promise<boolean> {
  return httpOk(`${apiServerUrl}/readyz`, tlsAgent());
}

/**
 * Runs `fn` holding the state directory's lock. A demo, a test run and a benchmark in one clone all
 * call up(): unserialized, two of them write the PKI at once ("Could not read private key from ca.key").
 */
function withStateLock<T>(what: string, fn: () => Promise<T>): Promise<T> {
  return withLock(paths.lock, `${what} (pid ${process.pid})`, fn, (heldBy) =>
    log(`${what}: waiting for ${heldBy || "another cluster:up or cluster:down"} to finish with ${paths.state}`));
}

/**
 * Brings the control plane up with at least `nodes` nodes, reusing whatever is already running
 * from this state directory. Idempotent: running it twice changes nothing the second time, and a
 * second run started while the first is under way waits for it, then finds its cluster running.
 */
export function up(opts: { nodes: number }): Promise<ClusterInfo> {
  return withStateLock("cluster:up", () => bringUp(opts));
}

async function bringUp(opts: { nodes: number }): Promise<ClusterInfo> {
  const started = Date.now();
  const binDir = await buildBinaries();
  mkdirSync(paths.state, { recursive: true });
  writeFileSync(paths.marker, "made by cluster:up; cluster:down deletes this directory\n");
  ensureClusterPki(paths.pki);
  writeComponentConfigs();

  if (!runningProcess("etcd")) {
    log("starting etcd");
    startEtcd(binDir);
  }
  await waitFor("etcd", "healthy", () => httpOk(`http://127.0.0.1:${PORTS.etcdClient}/health`), READY_TIMEOUT_MS.etcd);

  if (!runningProcess("kube-apiserver")) {
    log("starting kube-apiserver");
    startApiServer(binDir);
  }
  await waitFor("kube-apiserver", "ready", apiServerReady, READY_TIMEOUT_MS.apiServer);

  const loopback = insecureLoopback();
  for (const [name, port, start] of [
    ["kube-controller-manager", PORTS.controllerManager, startControllerManager],
    ["kube-scheduler", PORTS.scheduler, startScheduler],
  ] as const) {
    if (!runningProcess(name)) {
      log(`starting ${name}`);
      start(binDir);
    }
    await waitFor(name, "healthy", () => httpOk(`https://127.0.0.1:${port}/healthz`, loopback), READY_TIMEOUT_MS.component);
  }

  installOperatorIdentity(binDir);

  if (!runningProcess("kwok")) {
    log("starting kwok");
    startKwok(binDir);
  }
  await waitFor("kwok", "healthy", () => httpOk(`http://127.0.0.1:${PORTS.kwok}/healthz`), READY_TIMEOUT_MS.component);
  await ensureNodes(binDir, opts.nodes);
  // Pods need the namespace's default ServiceAccount, which kube-controller-manager creates.
  await waitFor("kube-controller-manager", "creating ServiceAccounts", async () => {
    await kubectlAsync(binDir, ["get", "serviceaccount", "default", "-n", "default"]);
    return true;
  }, READY_TIMEOUT_MS.component);

  log(`up in ${((Date.now() - started) / 1000).toFixed(1)} s: ${opts.nodes} nodes, server ${apiServerUrl}`);
  log(`admin kubeconfig (system:masters, exempt from APF): ${paths.adminKubeconfig}`);
  log(`operator kubeconfig (ServiceAccount, non-exempt):   ${paths.operatorKubeconfig}`);
  return { server: apiServerUrl, adminKubeconfig: paths.adminKubeconfig, operatorKubeconfig: paths.operatorKubeconfig, binDir };
}

/**
 * Stops exactly the processes `up` recorded (reverse start order) and removes the cluster's state.
 * Under the lock, so it never pulls the state from under an up() still starting components.
 */
export function down(): Promise<void> {
  return withStateLock("cluster:down", tearDown);
}

async function tearDown(): Promise<void> {
  const order = ["kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"];
  const recorded = recordedProcesses();
  const names = [...order.filter((n) => recorded.has(n)), ...[...recorded.keys()].filter((n) => !order.includes(n))];
  for (const name of names) {
    log(`stopping ${name}`);
    await stopProcess(name, recorded.get(name)!);
  }
  rmSync(paths.etcdData, { recursive: true, force: true });
  if (existsSync(paths.marker) || paths.state === join(REPO_ROOT, ".cluster")) rmSync(paths.state, { recursive: true, force: true });
  else if (existsSync(paths.state)) {
    rmSync(paths.lock, { force: true });
    log(`kept ${paths.state}: cluster:up did not make it (no ${basename(paths.marker)}); delete it yourself if it is only the cluster's`);
  }
  log("down");
}

export interface ComponentStatus {
  name: string;
  pid?: number;
  running: boolean;
  log: string;
}

export async function status(): Promise<{ components: ComponentStatus[]; nodes?: NodeSummary; apiServerReady: boolean }> {
  const recorded = recordedProcesses();
  const components = [...recorded.keys()].sort().map((name) => {
    const pid = runningProcess(name);
    return { name, pid, running: pid !== undefined, log: logFile(name) };
  });
  const ready = await apiServerReady().catch(() => false);
  let nodes: NodeSummary | undefined;
  if (ready) nodes = await summarizeNodes(await buildBinaries()).catch(() => undefined);
  return { components, nodes, apiServerReady: ready };
}
