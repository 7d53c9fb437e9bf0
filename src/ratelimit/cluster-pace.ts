import type { Logger } from "pino";
import { WriteBudget } from "./budget.ts";
import type { RetryAfterGate } from "./retry-after.ts";
import { type Limits, MIN_WAVE_PERIOD_MS, RateController, type SharedRate, type WaveSignals } from "./sizer/index.ts";
import { WriteLatencyWindow, type WriteOutcome } from "./write-latency.ts";

// The API server's one pace. Every pod write of every rollout feeds one window; one controller
// learns the rate from it, ticked by whichever rollout decides a wave first once a period has passed;
// while several rollouts write, a budget splits that rate between them by spec.priority.

export class ClusterPace implements SharedRate {
  readonly controller = new RateController();
  readonly #window = new WriteLatencyWindow();
  readonly #budget: WriteBudget;
  #lastTick = -Infinity;
  /** The bounds of the rollouts that decided since the last tick: the strictest target, the widest range. */
  #limits: Limits | undefined;
  /** Rollouts with writes left, and when they last said so. */
  readonly #writing = new Map<string, number>();

  constructor(opts: { gate?: RetryAfterGate; logger: Logger; now: number }) {
    this.#budget = new WriteBudget({ perSecond: 0, now: opts.now, logger: opts.logger.child({ pace: "cluster" }) });
  }

  /** Every pod write's outcome, from every rollout's pacer. */
  record(outcome: WriteOutcome): void {
    this.#window.record(outcome);
  }

  learn(signals: WaveSignals, limits: Limits): RateController {
    const l = this.#limits ?? limits;
    this.#limits = { ...l, targetMs: Math.min(l.targetMs, limits.targetMs), minRate: Math.min(l.minRate, limits.minRate), maxRate: Math.max(l.maxRate, limits.maxRate), yieldFloor: Math.min(l.yieldFloor, limits.yieldFloor) };
    const { now } = signals;
    if (now - this.#lastTick < MIN_WAVE_PERIOD_MS) return this.controller;
    this.#lastTick = now;
    this.controller.tick({ ...signals, writes: this.#window.tick(now) }, this.#limits);
    this.#limits = undefined;
    this.#budget.setRate(this.controller.sendRate(), now);
    return this.controller;
  }

  /**
   * The rollout's share of the rate for its next wave, or undefined when it is the only rollout
   * writing (the rate is then all its own, and a budget would only slow it).
   */
  grant(key: string, weight: number, remaining: number, now: number): number | undefined {
    if (remaining > 0) this.#writing.set(key, now);
    else this.forget(key);
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
}
