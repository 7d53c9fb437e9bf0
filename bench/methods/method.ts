import type { Logger } from "pino";
import type { KubeClient } from "../../src/kube/client.ts";
import type { PodTracker, TrackedPod } from "../pod-tracker.ts";
import type { ApfIdentity } from "../sampler.ts";
import type { WriterRecord } from "../samples.ts";

// What every method is given and what it hands back. The runner owns the namespace, the pod watch,
// the sampler and the clock; a method only sets up its writer, says when it starts, and stops it.

export interface MethodContext {
  n: number;
  namespace: string;
  runId: string;
  admin: KubeClient;
  /** The non-exempt writer identity every method writes with (the operator's ServiceAccount token). */
  writerKubeconfig: string;
  binDir: string;
  /** Directory for this method's logs and generated files. */
  workDir: string;
  logger: Logger;
  tracker: PodTracker;
  /** Call right before the first write is sent: the method's clock starts here. */
  markStart(): void;
  /** Responses of our own writer clients, for per-second 429s and Retry-After. */
  writerResponse(r: WriterRecord): void;
  /** A process whose CPU and RSS are sampled (the operator, a writer child). */
  addProcess(name: string, pid: number): void;
  watchOperatorMetrics(url: string): void;
  watchRollout(path: string): void;
  /** Starts another namespace with its own pod watch (the stressor's second writer). */
  openNamespace(suffix: string): Promise<PodTracker>;
}

export interface WriterOutcome {
  created?: number;
  existed?: number;
  failed?: number;
  firstError?: string;
  exitCode?: number | null;
}

export interface StressorTimeline {
  /** When the second writer began, and when its last create was answered. */
  startedAt: number;
  doneAt?: number;
  /** Its own pods, watched in its own namespace. */
  tracker: PodTracker;
  pods: number;
  outcome?: WriterOutcome;
}

export interface Running {
  /** Settles when the method's own writer has finished (absent for controller-driven methods). */
  writesDone?: Promise<WriterOutcome>;
  /** Stops what the method started; called once all pods run or the deadline passed. */
  stop(): Promise<void>;
  /** Facts worth printing beside the figures (identities, versions, settings). */
  notes: string[];
  stressor?: StressorTimeline;
}

export interface Method {
  id: string;
  label: string;
  /** The APF identity of the method's pod writes, for the rejections counted as the writer's. */
  writerIdentity: "writer" | "replicaset-controller";
  /** Pods the method creates (the stressor's rollout may be larger than N). */
  pods(n: number): number;
  /** Only pods matching this label selector are watched and counted (the update pair: the new template's). */
  trackSelector?: string;
  /** The key that must be unique per pod: the name, unless the method names pods itself. */
  identityOf?: (pod: TrackedPod) => string;
  run(ctx: MethodContext): Promise<Running>;
}

export type WriterIdentities = Record<Method["writerIdentity"], ApfIdentity>;
