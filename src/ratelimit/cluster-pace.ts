import type { Logger } from "pino";
import { Waves, Guards } from "../api/batchrollout.ts";
import { WriteBudget } from "./budget.ts";
import type { RetryAfterGate } from "./retry-after.ts";
import { AdaptiveWaveSizer, type SizerSpec } from "./wave-sizer.ts";
import { WriteLatencyWindow, type WriteOutcome } from "./write-latency.ts";

// The cluster's side of pace. Every rollout's sizer reacts to its own writes; when several
// rollouts write at once, each would find the API server's capacity on its own and together they
// would overshoot it. So one more sizer watches all pod writes and sets the cluster-wide rate,
// and a budget splits that rate between the rollouts writing, by spec.priority.

/** How often the cluster-wide rate is decided again. */
export const CLUSTER_TICK_MS = 1_000;
/** Largest cluster-wide wave (pods per tick): well above what one control plane absorbs. */
export const CLUSTER_MAX_WAVE = 20_000;

/** The cluster sizer uses the defaults a rollout gets, with the sum of all rollouts as its ceiling. */
const CLUSTER_SPEC: SizerSpec = {
  waves: Waves.parse({ strategy: "Adaptive", maxSize: CLUSTER_MAX_WAVE }),
  guards: Guards.parse({}),
};

export class ClusterPace {
  readonly #window = new WriteLatencyWindow();
  readonly #sizer = new AdaptiveWaveSizer(CLUSTER_SPEC);
  readonly #budget: WriteBudget;
  readonly #gate: RetryAfterGate;
  readonly #log: Logger;
  #lastTick = -Infinity;
  /** Rollouts with writes left, and when they last said so. */
  readonly #writing = new Map<string, number>();

  constructor(opts: { gate: RetryAfterGate; logger: Logger; now: number }) {
    this.#gate = opts.gate;
    this.#log = opts.logger.child({ pace: "cluster" });
    const first = this.#sizer.next({ now: opts.now, remaining: CLUSTER_MAX_WAVE });
    this.#budget = new WriteBudget({ perSecond: first.rateLimit.perSecond, now: opts.now, logger: this.#log });
  }

  /** Every pod write's outcome, from every rollout's pacer. */
  record(outcome: WriteOutcome): void {
    this.#window.record(outcome);
  }

  /**
   * The rollout's share of the cluster-wide rate for its next wave, or undefined when it is the only
   * rollout writing (its own sizer is then the cluster's pace, and a budget would only slow it).
   */
  grant(key: string, weight: number, remaining: number, now: number): number | undefined {
    if (remaining > 0) this.#writing.set(key, now);
    else this.forget(key);
    this.#tick(now);
    if (remaining === 0 || this.#writing.size < 2) return undefined;
    return Math.floor(this.#budget.share(key, weight, now));
  }

  /** Hands back what a wave did not use of its grant. */
  release(key: string, unused: number, now: number): void {
    if (unused > 0) this.#budget.release(key, unused, now);
  }

  forget(key: string): void {
    this.#writing.delete(key);
    this.#budget.forget(key);
  }

  #tick(now: number): void {
    if (now - this.#lastTick < CLUSTER_TICK_MS) return;
    this.#lastTick = now;
    const decision = this.#sizer.next({ now, remaining: CLUSTER_MAX_WAVE, writes: this.#window.tick(now), retryAfterUntil: this.#gate.notBefore });
    this.#budget.setRate(decision.rateLimit.perSecond, now);
  }
}
