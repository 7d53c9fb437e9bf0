// Our own write outcomes, the primary API server signal: latency percentiles and loss counts per tick.
// Client-side numbers are immediate and cover exactly the priority level we write in; scraped APF
// metrics lag by a scrape interval, so they are only guardrails (docs/architecture.md, "Signals and
// their sources").

import type { SignalsStatus } from "../api/batchrollout.ts";

/** Latency samples kept; at 2,000 writes/s this is two seconds of history. Sorting it per tick is cheap. */
export const WRITE_WINDOW_CAPACITY = 4_096;
/** Samples older than this never feed a percentile, so a quiet spell does not replay stale latency. */
export const WRITE_WINDOW_MAX_AGE_MS = 10_000;
/**
 * Fewest samples since the last tick for the tick's own percentiles; with fewer, the newest this many
 * samples of the last WRITE_WINDOW_MAX_AGE_MS are used. 20 samples put p90 between the 18th and
 * 19th, enough not to be one outlier, and taking only the newest keeps a small wave after a cut from
 * reading the latency of the large waves before it (which would cut again, down to minSize).
 */
export const MIN_TICK_LATENCY_SAMPLES = 20;

export const HTTP_TOO_MANY_REQUESTS = 429;
const HTTP_NOT_FOUND = 404;
const HTTP_CONFLICT = 409;

export interface WriteOutcome {
  /** When the response (or the timeout) arrived, ms on the caller's clock. */
  at: number;
  /** Time from dispatch to response or timeout. */
  latencyMs: number;
  /** HTTP status; undefined when no response arrived. */
  status?: number;
  /** The client gave up waiting. */
  timedOut?: boolean;
  /** Parsed Retry-After, if the response carried one. */
  retryAfterMs?: number;
}

export type LatencySource = "tick" | "window" | "none";

export interface WriteTick {
  /** The tick's `now`. */
  at: number;
  /** Outcomes recorded since the previous tick. */
  count: number;
  /** Of those, HTTP 429. */
  throttled: number;
  /** Of those, HTTP 5xx. */
  serverErrors: number;
  /** Of those, client-side timeouts. */
  timeouts: number;
  /** Of those, failures with no response and no timeout (connection reset or refused). */
  networkErrors: number;
  /** Largest Retry-After among them. */
  maxRetryAfterMs?: number;
  /** Latest instant any of them asked us to wait until (response time + Retry-After). */
  retryAfterUntil?: number;
  p50?: number;
  p90?: number;
  p99?: number;
  /** How many samples the percentiles came from, and whether from this tick or the rolling window. */
  latencySamples: number;
  latencySource: LatencySource;
}

/** Losses are what AIMD halves on: rejection (429), server failure (5xx), timeouts and dropped connections. */
export function lossCount(tick: WriteTick): number {
  return tick.throttled + tick.serverErrors + tick.timeouts + tick.networkErrors;
}

/**
 * Whether an outcome's latency says something about queueing. 429s and 5xx are excluded: a fast
 * rejection would drag p90 down just when the server is struggling; they count as losses instead.
 * So are refusals (403 quota, 422 invalid, ...): answered before storage, they are fast whatever the
 * load, and waves grew on them. 404 and 409 went to storage and count. Timeouts are included at the
 * time we waited: they are the slowest writes, not missing ones.
 */
export function isLatencySample(outcome: WriteOutcome): boolean {
  if (outcome.timedOut) return true;
  const status = outcome.status;
  if (status === undefined) return false;
  return status < 400 || status === HTTP_NOT_FOUND || status === HTTP_CONFLICT;
}

/** Nearest-rank percentile (the smallest value with at least q of the samples at or below it). */
export function nearestRank(sorted: ArrayLike<number>, q: number): number | undefined {
  if (sorted.length === 0) return undefined;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1];
}

export interface WriteLatencyWindowOptions {
  capacity?: number;
  maxAgeMs?: number;
  minTickSamples?: number;
}

/**
 * A bounded ring buffer of latency samples plus loss counters reset on each tick. Percentiles are
 * exact over what the buffer holds (sort a copy): no sketch error to argue about at these sizes.
 */
export class WriteLatencyWindow {
  readonly #latency: Float64Array;
  readonly #at: Float64Array;
  readonly #maxAgeMs: number;
  readonly #minTickSamples: number;
  #next = 0;
  #size = 0;
  #lastTickAt = -Infinity;
  #tick = WriteLatencyWindow.#emptyCounters();

  constructor(options: WriteLatencyWindowOptions = {}) {
    const capacity = options.capacity ?? WRITE_WINDOW_CAPACITY;
    this.#latency = new Float64Array(capacity);
    this.#at = new Float64Array(capacity);
    this.#maxAgeMs = options.maxAgeMs ?? WRITE_WINDOW_MAX_AGE_MS;
    this.#minTickSamples = options.minTickSamples ?? MIN_TICK_LATENCY_SAMPLES;
  }

  static #emptyCounters() {
    return {
      count: 0,
      throttled: 0,
      serverErrors: 0,
      timeouts: 0,
      networkErrors: 0,
      maxRetryAfterMs: undefined as number | undefined,
      retryAfterUntil: undefined as number | undefined,
    };
  }

  record(outcome: WriteOutcome): void {
    const t = this.#tick;
    t.count += 1;
    if (outcome.timedOut) t.timeouts += 1;
    else if (outcome.status === undefined) t.networkErrors += 1;
    else if (outcome.status === HTTP_TOO_MANY_REQUESTS) t.throttled += 1;
    else if (outcome.status >= 500) t.serverErrors += 1;
    if (outcome.retryAfterMs !== undefined) {
      t.maxRetryAfterMs = Math.max(t.maxRetryAfterMs ?? 0, outcome.retryAfterMs);
      t.retryAfterUntil = Math.max(t.retryAfterUntil ?? -Infinity, outcome.at + outcome.retryAfterMs);
    }
    if (!isLatencySample(outcome)) return;
    this.#latency[this.#next] = outcome.latencyMs;
    this.#at[this.#next] = outcome.at;
    this.#next = (this.#next + 1) % this.#latency.length;
    this.#size = Math.min(this.#size + 1, this.#latency.length);
  }

  /** Latencies recorded after `since`, newest first, at most `limit` of them, sorted ascending. */
  #samples(since: number, limit = Infinity): Float64Array {
    const out: number[] = [];
    const capacity = this.#latency.length;
    for (let k = 1; k <= this.#size && out.length < limit; k++) {
      const i = (this.#next - k + capacity) % capacity;
      if ((this.#at[i] ?? -Infinity) > since) out.push(this.#latency[i] ?? 0);
    }
    return Float64Array.from(out).sort();
  }

  /** The tick's figures; resets the per-tick counters. Call once per wave decision. */
  tick(now: number): WriteTick {
    const counters = this.#tick;
    this.#tick = WriteLatencyWindow.#emptyCounters();
    let sorted = this.#samples(this.#lastTickAt);
    let source: LatencySource = "tick";
    if (sorted.length < this.#minTickSamples) {
      sorted = this.#samples(now - this.#maxAgeMs, this.#minTickSamples);
      source = sorted.length ? "window" : "none";
    }
    this.#lastTickAt = now;
    const { maxRetryAfterMs, retryAfterUntil, ...counts } = counters;
    return {
      at: now,
      ...counts,
      ...(maxRetryAfterMs === undefined ? {} : { maxRetryAfterMs }),
      ...(retryAfterUntil === undefined ? {} : { retryAfterUntil }),
      ...(sorted.length ? { p50: nearestRank(sorted, 0.5), p90: nearestRank(sorted, 0.9), p99: nearestRank(sorted, 0.99) } : {}),
      latencySamples: sorted.length,
      latencySource: source,
    };
  }
}

export interface ApiServerIdentity {
  flowSchema?: string;
  priorityLevel?: string;
  /** 429s seen by this rollout's writes so far. */
  throttledTotal?: number;
  /** Last Retry-After honoured (RetryAfterGate.lastRetryAfterMs). */
  retryAfterMs?: number;
}

/** status.signals.apiServer from a tick and what the lead knows of our APF identity. */
export function apiServerSignals(tick: WriteTick | undefined, identity: ApiServerIdentity = {}): NonNullable<SignalsStatus["apiServer"]> {
  return {
    ...(identity.flowSchema ? { flowSchema: identity.flowSchema } : {}),
    ...(identity.priorityLevel ? { priorityLevel: identity.priorityLevel } : {}),
    ...(tick?.p90 === undefined ? {} : { writeLatencyP90Ms: Math.round(tick.p90) }),
    ...(identity.throttledTotal === undefined ? {} : { throttled: identity.throttledTotal }),
    ...(identity.retryAfterMs === undefined ? {} : { retryAfterSeconds: identity.retryAfterMs / 1_000 }),
  };
}
