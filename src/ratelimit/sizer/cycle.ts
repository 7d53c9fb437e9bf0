// A wave's cycle is longer than its writes take to send: the slowest answers, the status patch, the
// next reconcile. This unit measures that overhead from the spacing of decisions, sends the writes
// faster to make room for it, and credits a wave decided late with what the rate allowed meanwhile,
// so the rate the law chose is the rate sent.

import { clamp } from "./contract.ts";
import { TUNABLES as T } from "./tunables.ts";

export class Cycle {
  #periodMs = 0;
  #intervalMs = 0;
  #overheadMs = 0;
  /** The last wave: when it was decided, its size, how long its writes take at the pace given. */
  #last = { at: 0, size: 0, sendMs: 0 };

  get overheadMs(): number { return this.#overheadMs; }

  /** The spec's period; an overhead learned under a longer one must not fill a shorter one. */
  setPeriod(periodMs: number, intervalMs: number): void {
    [this.#periodMs, this.#intervalMs] = [periodMs, intervalMs];
    this.#overheadMs = Math.min(this.#overheadMs, T.cycleShare * periodMs);
  }

  /**
   * Closes the last wave's cycle: the overhead moves half way to a late cycle's, or shrinks by
   * smoothing when the wave waited for minInterval. Returns the late time a creditable wave gets:
   * none for a Retry-After pause that began since (time the rate did not allow).
   */
  close(now: number, creditable: boolean, pauseUntil: number): number {
    const last = this.#last;
    this.#last = { at: now, size: 0, sendMs: 0 };
    if (last.size === 0) return 0;
    const cycle = now - last.at;
    // Within one write's spacing of the interval, the wave waited: no overhead shows. Past the
    // longest period, the interval beyond it is waiting by design, not overhead.
    if (cycle <= this.#intervalMs + last.sendMs / last.size) this.#overheadMs *= 1 - T.smoothing;
    else this.#overheadMs += T.decrease * (clamp(cycle - last.sendMs - (this.#intervalMs - this.#periodMs), 0, T.cycleShare * this.#periodMs) - this.#overheadMs);
    // A minSize wave paced over longer than the interval (yielding) is meant to take that long.
    return creditable && pauseUntil <= last.at ? clamp(cycle - Math.max(this.#intervalMs, last.sendMs), 0, T.cycleShare * this.#periodMs) : 0;
  }

  sent(now: number, size: number, sendPerSecond: number): void {
    this.#last = { at: now, size, sendMs: sendPerSecond > 0 ? (size / sendPerSecond) * 1_000 : 0 };
  }

  /** The pace within a wave that averages `perSecond` over the whole cycle. */
  sendRate(perSecond: number): number {
    return perSecond * (this.#periodMs / (this.#periodMs - this.#overheadMs));
  }
}
