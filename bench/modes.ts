import { PODS_PER_NODE } from "../test/cluster/layout.ts";
import { batchRollout } from "./methods/batchrollout.ts";
import { deployment } from "./methods/deployment.ts";
import { KUBE_BURNER_QPS, kubeBurner } from "./methods/kube-burner.ts";
import type { Method } from "./methods/method.ts";
import { seedBatches } from "./methods/seed-batches.ts";
import { storm } from "./methods/storm.ts";
import { DEPLOYMENT_SURGE_SHARE, updateBatchRollout, updateDeployment } from "./methods/update.ts";
import { STRESSOR_WRITER_SHARE, stressor } from "./methods/stressor.ts";

// Quick mode is for development (minutes); full mode is the figure of record (BENCHMARK.md).

export const MODES = {
  quick: { n: 1_000, nodes: 100 },
  full: { n: 10_000, nodes: 1_000 },
  /**
   * The control-plane speed axis (issue 28). 3,000 rather than the suggested 5,000: at 0.25 CPU every
   * create and every cleanup delete runs at ~16/s, and 5,000 pods made that level alone ~50 min
   * (bench/README.md has the estimate).
   */
  matrix: { n: 3_000, nodes: 300 },
} as const;
export type Mode = keyof typeof MODES;

export const ALL_METHODS: readonly Method[] = [storm, seedBatches, ...KUBE_BURNER_QPS.map(kubeBurner), deployment, batchRollout, stressor];

/** The matrix's methods at each level ("oracle" is the search and its run at N; the storm runs only at unlimited). */
export const MATRIX_METHODS = "storm,oracle,seed-batches,batchrollout,stressor";
/** The matrix's levels when --control-plane-cpu is not given: 0.1 was degenerate (bench/README.md says why these). */
export const MATRIX_LEVELS = "0.25,1,unlimited";

/** Run only when asked for (--methods update, or their ids): each brings its fleet up before the clock. */
export const UPDATE_METHODS: readonly Method[] = [updateDeployment, updateBatchRollout];

/** Names accepted by --methods: a method id, "kube-burner" for all four rates, "update" for the update pair. */
export function selectMethods(list: string | undefined): Method[] {
  if (!list) return [...ALL_METHODS];
  const out: Method[] = [];
  for (const name of list.split(",").map((s) => s.trim()).filter(Boolean)) {
    const known = [...ALL_METHODS, ...UPDATE_METHODS];
    const found = name === "kube-burner" ? ALL_METHODS.filter((m) => m.id.startsWith("kube-burner-")) : name === "update" ? [...UPDATE_METHODS] : known.filter((m) => m.id === name);
    if (found.length === 0) throw new Error(`unknown method "${name}"; known: ${["kube-burner", "update", ...known.map((m) => m.id)].join(", ")}`);
    for (const m of found) if (!out.includes(m)) out.push(m);
  }
  return out;
}

/** Fails early when the nodes cannot hold what a method creates (kwok nodes take PODS_PER_NODE each). */
export function checkCapacity(methods: readonly Method[], n: number, nodes: number): void {
  const slots = nodes * PODS_PER_NODE;
  for (const m of methods) {
    // The stressor's second writer, and the Deployment's surge during its update, need slots of their own.
    const extra = m.id === "stressor" ? Math.ceil(m.pods(n) * STRESSOR_WRITER_SHARE) : m.id === updateDeployment.id ? Math.ceil(n * DEPLOYMENT_SURGE_SHARE) : 0;
    if (m.pods(n) + extra > slots) throw new Error(`${m.id} needs ${m.pods(n) + extra} pod slots but ${nodes} nodes hold ${slots}; raise --nodes`);
  }
}

/** Per-method deadline: generous enough for the slowest method (20 pods/s) plus start-up. */
export const METHOD_DEADLINE_BASE_MS = 180_000;
export const METHOD_DEADLINE_PER_POD_MS = 100;
export function methodDeadlineMs(pods: number): number {
  return METHOD_DEADLINE_BASE_MS + pods * METHOD_DEADLINE_PER_POD_MS;
}
