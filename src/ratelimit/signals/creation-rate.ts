// A rate of events over a sliding window; OthersCreatingSignal (others-creating.ts) counts pod
// arrivals with it.

/**
 * Window the rate is averaged over: long enough that a watch delivering a second's pods in one burst
 * reads as a steady rate, short enough that a writer starting or stopping shows within seconds.
 */
export const CREATION_RATE_WINDOW_MS = 5_000;

/** Events per second over a sliding window, on the caller's clock. */
export class CreationRate {
  readonly #windowMs: number;
  /** Event times in order; those before #head have left the window. */
  #times: number[] = [];
  #head = 0;

  constructor(windowMs: number = CREATION_RATE_WINDOW_MS) {
    this.#windowMs = windowMs;
  }

  record(at: number): void {
    this.#times.push(at);
  }

  perSecond(now: number): number {
    const from = now - this.#windowMs;
    while (this.#head < this.#times.length && this.#times[this.#head]! <= from) this.#head++;
    // Drop the expired prefix once it is most of the array, so memory follows the window, not the run.
    if (this.#head > 1_024 && this.#head * 2 > this.#times.length) {
      this.#times = this.#times.slice(this.#head);
      this.#head = 0;
    }
    return ((this.#times.length - this.#head) * 1_000) / this.#windowMs;
  }
}
