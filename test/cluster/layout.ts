import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, relative, resolve } from "node:path";

// Where the local control plane keeps its state, and the loopback ports it listens on.
// Ports sit in one block well away from the defaults so a developer's own cluster is untouched.

export const REPO_ROOT = resolve(import.meta.dirname, "../..");

/**
 * The state directory, which cluster:down deletes: `value` (BATCHROLLOUT_CLUSTER_DIR), with an empty
 * one taken as unset, and never the repository, a folder holding it, or the home directory. An empty
 * value once resolved to the working directory, and cluster:down deleted a whole clone.
 */
export function resolveStateDir(value: string | undefined, repoRoot: string, home: string): string {
  const dir = resolve(value || join(repoRoot, ".cluster"));
  const fromDir = relative(dir, repoRoot);
  if (fromDir === "" || !fromDir.startsWith("..") || dir === resolve(home)) {
    throw new Error(`BATCHROLLOUT_CLUSTER_DIR=${value}: ${dir} cannot hold the cluster's state, which cluster:down deletes; name a directory of its own`);
  }
  return dir;
}

export const STATE_DIR = resolveStateDir(process.env.BATCHROLLOUT_CLUSTER_DIR, REPO_ROOT, homedir());

/** Shifts every port, so two clusters (two clones, say) can run side by side. */
const PORT_OFFSET = Number(process.env.BATCHROLLOUT_PORT_OFFSET ?? 0);

export const PORTS = {
  etcdClient: 16379 + PORT_OFFSET,
  etcdPeer: 16380 + PORT_OFFSET,
  apiServer: 16443 + PORT_OFFSET,
  controllerManager: 16257 + PORT_OFFSET,
  scheduler: 16259 + PORT_OFFSET,
  kwok: 16247 + PORT_OFFSET,
} as const;

/** Pod addresses for all nodes: a /12 holds 4,096 node /24s, so 1,000 nodes fit with room. */
export const CLUSTER_CIDR = "10.128.0.0/12";
export const NODE_CIDR_MASK_SIZE = 24;
export const SERVICE_CIDR = "10.96.0.0/16";

/** Allocatable pods per kwok node, as on a default kubelet. */
export const PODS_PER_NODE = 110;

/** The operator's non-exempt identity: a ServiceAccount, which APF puts in workload-low. */
export const OPERATOR_NAMESPACE = "batchrollout-system";
export const OPERATOR_SERVICE_ACCOUNT = "batchrollout";

export const paths = {
  state: STATE_DIR,
  /** Written by cluster:up: cluster:down deletes only a state directory that carries it (or the default one). */
  marker: join(STATE_DIR, ".batchrollout-cluster"),
  pki: join(STATE_DIR, "pki"),
  logs: join(STATE_DIR, "logs"),
  pids: join(STATE_DIR, "pids"),
  config: join(STATE_DIR, "config"),
  /** Held by cluster:up and cluster:down for their whole run (lock.ts), so concurrent runs take turns. */
  lock: join(STATE_DIR, "lock"),
  /** Admin (system:masters): exempt from APF. For setup only, never for measuring. */
  adminKubeconfig: join(STATE_DIR, "kubeconfig"),
  /** The operator's ServiceAccount token: what the operator, tests and benchmarks use. */
  operatorKubeconfig: join(STATE_DIR, "operator.kubeconfig"),
  /** etcd's data lives on tmpfs when the machine has one: the test bed measures the API server, not a disk. */
  etcdData: existsSync("/dev/shm")
    ? join("/dev/shm", `batchrollout-etcd-${createHash("sha256").update(STATE_DIR).digest("hex").slice(0, 12)}`)
    : join(STATE_DIR, "etcd"),
};

/** The pinned component versions (test/cluster/versions.env, shared with build-binaries.sh). */
export const VERSIONS: Record<string, string> = Object.fromEntries(
  readFileSync(join(REPO_ROOT, "test/cluster/versions.env"), "utf8")
    .split("\n")
    .filter((line) => /^[A-Z_]+=/.test(line))
    .map((line) => line.split("=", 2) as [string, string]),
);

export const apiServerUrl = `https://127.0.0.1:${PORTS.apiServer}`;
