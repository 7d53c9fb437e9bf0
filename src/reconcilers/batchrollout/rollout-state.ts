import type { BatchRolloutSpec, BatchRolloutStatus } from "../../api/batchrollout.ts";
import type { ClusterPace } from "../../ratelimit/cluster-pace.ts";
import { WritePacer } from "../../ratelimit/pacer.ts";
import type { RetryAfterGate } from "../../ratelimit/retry-after.ts";
import { createWaveSizer, type WaveSizer } from "../../ratelimit/sizer/index.ts";
import { WriteLatencyWindow, type WriteOutcome, type WriteTick } from "../../ratelimit/write-latency.ts";
import { classifyWrite } from "./act.ts";
import { RefusalBackoff } from "./refusal.ts";

// What the reconciler keeps of one rollout between reconciles: what it learned of the cluster's
// pace, the refusals it met, and the status it last wrote. Everything else is observed afresh.

export interface RolloutState {
  uid: string | undefined;
  sizer: WaveSizer;
  window: WriteLatencyWindow;
  pacer: WritePacer;
  /** Creates the API server refused: creation holds, probing with one create now and then. */
  refusals: RefusalBackoff;
  /** Whether a refusal recorded in status (by an earlier leader) was carried over. */
  restored: boolean;
  /**
   * The status this replica last wrote. The operator is the only writer of status, and the cache
   * lags its own patches, so planning from the cached status could start a wave twice.
   */
  written?: BatchRolloutStatus;
  /** When this replica last patched status. */
  patchedAt?: number;
  /** 429s this rollout's writes have met, for status. */
  throttled: number;
  /** The writes weighed at the last wave decision, for status between decisions. */
  lastTick?: WriteTick;
}

export interface RolloutStateDeps {
  gate: RetryAfterGate;
  pace?: Pick<ClusterPace, "record" | "learn" | "controller">;
  now: () => number;
}

export function newRolloutState(uid: string | undefined, spec: BatchRolloutSpec, deps: RolloutStateDeps): RolloutState {
  const window = new WriteLatencyWindow();
  const { pace } = deps;
  // Adaptive rollouts share the API server's one rate controller when the operator runs one.
  const sizer = createWaveSizer(spec, pace);
  const decision = sizer.next({ now: deps.now(), remaining: 0 });
  // The cluster's pace sees every rollout's writes too.
  const record = pace ? { record: (o: WriteOutcome) => (window.record(o), pace.record(o)) } : window;
  return {
    uid,
    sizer,
    window,
    throttled: 0,
    refusals: new RefusalBackoff(),
    restored: false,
    pacer: new WritePacer({ rateLimit: decision.rateLimit, gate: deps.gate, window: record, classify: classifyWrite, clock: deps.now }),
  };
}
