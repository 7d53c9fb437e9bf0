// Rate limiters for work-queue retries, with client-go's semantics: `when(item)` answers how long
// an item must wait before it is added again and records that it is being retried.

/** Source of the current time in milliseconds; injected so limiters and queues are testable without real time. */
export interface Clock {
  now(): number;
}

/**
 * Wall-clock time. Looked up on every call (not captured at import) so vitest fake timers, which
 * replace Date, also drive code that uses the default clock.
 */
export const realClock: Clock = { now: () => Date.now() };

/** Decides how long an item waits before it is retried, and tracks its retries until forgotten. */
export interface RateLimiter {
  /** Milliseconds the item should wait; counts as one more retry of it. */
  when(item: string): number;
  /** Stops tracking the item: its next failure starts from the first delay again. */
  forget(item: string): void;
  /** How many times the item has been retried since it was last forgotten. */
  numRequeues(item: string): number;
}

/** First per-item retry delay (client-go's DefaultControllerRateLimiter: 5 ms). */
export const DEFAULT_ITEM_BASE_DELAY_MS = 5;
/** Ceiling of the per-item retry delay (client-go: 1000 s), so a broken object is still retried now and then. */
export const DEFAULT_ITEM_MAX_DELAY_MS = 1_000_000;
/** Overall retry rate across all items once the burst is spent (client-go: 10 per second). */
export const DEFAULT_BUCKET_QPS = 10;
/** Retries allowed back to back before the overall rate applies (client-go: 100). */
export const DEFAULT_BUCKET_BURST = 100;

/**
 * Per-item exponential backoff: base·2^failures, capped at max. Only the item's own failures count,
 * so one object that keeps failing never slows the others.
 */
export class ItemExponentialFailureRateLimiter implements RateLimiter {
  readonly #failures = new Map<string, number>();
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;

  constructor(baseDelayMs: number = DEFAULT_ITEM_BASE_DELAY_MS, maxDelayMs: number = DEFAULT_ITEM_MAX_DELAY_MS) {
    if (!(baseDelayMs >= 0) || !(maxDelayMs >= baseDelayMs)) {
      throw new RangeError(
        `ItemExponentialFailureRateLimiter needs 0 <= baseDelayMs <= maxDelayMs, got baseDelayMs=${baseDelayMs} maxDelayMs=${maxDelayMs}`,
      );
    }
    this.#baseDelayMs = baseDelayMs;
    this.#maxDelayMs = maxDelayMs;
  }

  when(item: string): number {
    const failures = this.#failures.get(item) ?? 0;
    this.#failures.set(item, failures + 1);
    // 2^failures overflows to Infinity after ~1000 failures; the cap handles that as well.
    const backoff = this.#baseDelayMs * 2 ** failures;
    return backoff > this.#maxDelayMs ? this.#maxDelayMs : backoff;
  }

  forget(item: string): void {
    this.#failures.delete(item);
  }

  numRequeues(item: string): number {
    return this.#failures.get(item) ?? 0;
  }
}

export interface BucketRateLimiterOptions {
  /** Tokens added per second. */
  qps?: number;
  /** Bucket size: how many retries may go out back to back. */
  burst?: number;
  clock?: Clock;
}

/**
 * Overall token bucket shared by every item, with golang.org/x/time/rate's Reserve semantics: a
 * call never fails, it takes a token now and, when the bucket is empty, goes into debt and returns
 * the time until that token exists. Successive calls on an empty bucket are therefore spaced
 * 1/qps apart, which is what keeps a mass failure from turning into a retry storm.
 */
export class BucketRateLimiter implements RateLimiter {
  readonly #qps: number;
  readonly #burst: number;
  readonly #clock: Clock;
  #tokens: number;
  #last: number;

  constructor(options: BucketRateLimiterOptions = {}) {
    const qps = options.qps ?? DEFAULT_BUCKET_QPS;
    const burst = options.burst ?? DEFAULT_BUCKET_BURST;
    if (!(qps > 0) || !Number.isFinite(qps)) {
      throw new RangeError(`BucketRateLimiter needs a finite qps > 0, got ${qps}`);
    }
    if (!Number.isInteger(burst) || burst < 1) {
      throw new RangeError(`BucketRateLimiter needs an integer burst >= 1, got ${burst}`);
    }
    this.#qps = qps;
    this.#burst = burst;
    this.#clock = options.clock ?? realClock;
    this.#tokens = burst;
    this.#last = this.#clock.now();
  }

  when(_item: string): number {
    const now = this.#clock.now();
    // A clock that steps backwards must not mint tokens; treat it as no time passed.
    const elapsedMs = Math.max(0, now - this.#last);
    const refilled = Math.min(this.#burst, this.#tokens + (elapsedMs * this.#qps) / 1000);
    this.#tokens = refilled - 1;
    this.#last = Math.max(now, this.#last);
    return this.#tokens < 0 ? (-this.#tokens * 1000) / this.#qps : 0;
  }

  forget(_item: string): void {}

  numRequeues(_item: string): number {
    return 0;
  }
}

/**
 * Asks every limiter and returns the longest wait. Every limiter is asked on each call, even when an
 * earlier one already answered with a long delay, so the token bucket is charged for every retry.
 */
export class MaxOfRateLimiter implements RateLimiter {
  readonly #limiters: readonly RateLimiter[];

  constructor(...limiters: RateLimiter[]) {
    this.#limiters = limiters;
  }

  when(item: string): number {
    let longest = 0;
    for (const limiter of this.#limiters) {
      longest = Math.max(longest, limiter.when(item));
    }
    return longest;
  }

  forget(item: string): void {
    for (const limiter of this.#limiters) limiter.forget(item);
  }

  numRequeues(item: string): number {
    let most = 0;
    for (const limiter of this.#limiters) most = Math.max(most, limiter.numRequeues(item));
    return most;
  }
}

/**
 * client-go's DefaultControllerRateLimiter: per-item exponential backoff (5 ms → 1000 s) combined
 * with an overall 10 qps / 100 burst bucket, taking whichever wait is longer.
 */
export function defaultControllerRateLimiter(clock: Clock = realClock): RateLimiter {
  return new MaxOfRateLimiter(
    new ItemExponentialFailureRateLimiter(DEFAULT_ITEM_BASE_DELAY_MS, DEFAULT_ITEM_MAX_DELAY_MS),
    new BucketRateLimiter({ qps: DEFAULT_BUCKET_QPS, burst: DEFAULT_BUCKET_BURST, clock }),
  );
}
