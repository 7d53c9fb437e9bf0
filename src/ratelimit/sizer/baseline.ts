// The unloaded write latency (p90) the gradient compares with: warmed up from the first ticks, then
// re-measured now and then by one wave at reduced rate (BBR's PROBE_RTT). Loaded ticks never feed it.

import { TUNABLES as T } from "./tunables.ts";

export class Baseline {
  #ms: number | undefined;
  #samples = 0;
  #lastProbeAt: number | undefined;

  get ms(): number | undefined {
    return this.#ms;
  }

  get warm(): boolean {
    return this.#samples >= T.warmupTicks;
  }

  /**
   * A warm-up tick: the mean of the first ticks, each capped where slow start's gradient hits its floor
   * (startTolerance / decrease × the mean so far), so slow start's own queue is not taken for the baseline.
   */
  warmUp(p90: number): void {
    if (this.warm) return;
    this.#samples += 1;
    const m = this.#ms;
    this.#ms = m === undefined ? p90 : m + (Math.min(p90, (T.startTolerance / T.decrease) * m) - m) / this.#samples;
  }

  /** Whether the next wave should probe: every probeIntervalMs, or after half of it once warmupTicks in a row read queueing. */
  probeDue(now: number, congestedTicks: number): boolean {
    this.#lastProbeAt ??= now;
    if (!this.warm) return false;
    const since = now - this.#lastProbeAt;
    return since >= T.probeIntervalMs || (congestedTicks >= T.warmupTicks && since >= T.decrease * T.probeIntervalMs);
  }

  /**
   * A probe's p90 moves the baseline half way: upwards trusted (latency that stays at reduced rate is
   * not ours), downwards by at most 1/startTolerance (one lucky probe must not read all load as queueing).
   */
  probed(now: number, p90: number | undefined): void {
    this.#lastProbeAt = now;
    const m = this.#ms;
    if (p90 === undefined || m === undefined) return;
    this.#ms = m + T.decrease * (Math.max(p90, m / T.startTolerance) - m);
  }

  /** The p90 read as no queueing: startTolerance × baseline while starting, else baseline + the allowance; never past the ceiling. */
  tolerated(starting: boolean, targetMs: number): number | undefined {
    const m = this.#ms;
    if (m === undefined) return undefined;
    return Math.min(starting ? T.startTolerance * m : m + T.queueAllowance * targetMs, T.queueCeiling * targetMs);
  }
}
