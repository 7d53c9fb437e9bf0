// The unloaded write latency (p90) the gradient compares with: warmed up from the first ticks, then
// re-measured now and then by one wave at reduced rate (BBR's PROBE_RTT). Loaded ticks never feed it.

import { TUNABLES as T } from "./tunables.ts";

export class Baseline {
  #ms: number | undefined;
  #samples = 0;
  #lastProbeAt: number | undefined;

  get ms(): number | undefined { return this.#ms; }
  get warm(): boolean { return this.#samples >= T.warmupTicks; }

  /** A warm-up tick: the mean of the first ticks, each capped where slow start's gradient hits its floor (startTolerance / decrease × the mean so far). */
  warmUp(p90: number): void {
    if (this.warm) return;
    const m = this.#ms;
    this.#samples += 1;
    this.#ms = m === undefined ? p90 : m + (Math.min(p90, (T.startTolerance / T.decrease) * m) - m) / this.#samples;
  }

  /** Whether the next wave should probe: every probeIntervalMs, or after half of it once warmupTicks in a row read queueing. */
  probeDue(now: number, congestedTicks: number): boolean {
    const since = now - (this.#lastProbeAt ??= now);
    return this.warm && (since >= T.probeIntervalMs || (congestedTicks >= T.warmupTicks && since >= T.decrease * T.probeIntervalMs));
  }

  /** A probe's p90 moves it half way: up trusted (latency that stays at reduced rate is not ours), down by at most 1/startTolerance. */
  probed(now: number, p90: number | undefined): void {
    this.#lastProbeAt = now;
    const m = this.#ms;
    if (p90 !== undefined && m !== undefined) this.#ms = m + T.decrease * (Math.max(p90, m / T.startTolerance) - m);
  }

  /** The p90 read as no queueing: startTolerance × baseline while starting, else baseline + the allowance; never past the ceiling. */
  tolerated(starting: boolean, targetMs: number): number | undefined {
    const m = this.#ms;
    return m === undefined ? undefined : Math.min(starting ? T.startTolerance * m : m + T.queueAllowance * targetMs, T.queueCeiling * targetMs);
  }
}
