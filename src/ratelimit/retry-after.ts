// Retry-After (RFC 9110 §10.2.3): delta-seconds or an HTTP-date. kube-apiserver's APF sends
// delta-seconds on 429s, starting at 1 s and doubling under sustained rejection up to 32 s.

/**
 * Longest wait we honour from one Retry-After. Above APF's own 32 s ceiling, so the API server's
 * answer is never cut short, yet bounded so a proxy's "Retry-After: 3600" cannot stall a rollout.
 */
export const MAX_RETRY_AFTER_MS = 60_000;

/** Wait assumed when a 429 carries no usable Retry-After: APF's first Retry-After is 1 s. */
export const DEFAULT_RETRY_AFTER_MS = 1_000;

const DELTA_SECONDS = /^[0-9]+$/;
// asctime-date ("Sun Nov  6 08:49:37 1994") carries no zone; RFC 9110 says it is GMT.
const ASCTIME = /^[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2} [0-9]{4}$/;

export type HeaderValue = string | readonly string[] | null | undefined;

/**
 * Milliseconds to wait, relative to `now`, clamped to [0, maxMs]; undefined when absent or unreadable.
 * Accepts delta-seconds and the three HTTP-date forms (IMF-fixdate, RFC 850, asctime).
 * A date in the past means "now" (0).
 */
export function parseRetryAfter(value: HeaderValue, now: number, maxMs: number = MAX_RETRY_AFTER_MS): number | undefined {
  const text = (typeof value === "string" ? value : value?.[0])?.trim();
  if (!text) return undefined;
  let ms: number;
  if (DELTA_SECONDS.test(text)) {
    ms = Number(text) * 1_000;
  } else {
    const at = Date.parse(ASCTIME.test(text) ? `${text} GMT` : text);
    // A bare number like "1.5" is not an HTTP-date, though Date.parse would read it as a year.
    if (Number.isNaN(at) || !/[A-Za-z]/.test(text)) return undefined;
    ms = at - now;
  }
  return Math.min(Math.max(0, ms), maxMs);
}

/**
 * Remembers the latest instant before which no write should be sent. Each Retry-After can only push
 * that instant later (the largest wait seen wins), so concurrent 429s answered with 1 s and 4 s
 * leave us waiting 4 s. One gate per API server identity: APF judges the whole priority level.
 */
export class RetryAfterGate {
  #notBefore = 0;
  #lastRetryAfterMs: number | undefined;
  readonly #maxMs: number;

  constructor(maxMs: number = MAX_RETRY_AFTER_MS) {
    this.#maxMs = maxMs;
  }

  /** Records a wait of `retryAfterMs` from `now` (clamped to the gate's max); returns the new notBefore. */
  observe(now: number, retryAfterMs: number): number {
    const wait = Math.min(Math.max(0, retryAfterMs), this.#maxMs);
    this.#lastRetryAfterMs = wait;
    this.#notBefore = Math.max(this.#notBefore, now + wait);
    return this.#notBefore;
  }

  /**
   * Records a response's Retry-After header. A throttling response without a readable header still
   * closes the gate for DEFAULT_RETRY_AFTER_MS; a non-throttling one without a header changes nothing.
   * Returns the wait recorded, if any.
   */
  observeHeader(now: number, header: HeaderValue, throttled = true): number | undefined {
    const parsed = parseRetryAfter(header, now, this.#maxMs);
    const wait = parsed ?? (throttled ? DEFAULT_RETRY_AFTER_MS : undefined);
    if (wait !== undefined) this.observe(now, wait);
    return wait;
  }

  /** Milliseconds until writes may resume; 0 when open. */
  waitMs(now: number): number {
    return Math.max(0, this.#notBefore - now);
  }

  isOpen(now: number): boolean {
    return this.waitMs(now) === 0;
  }

  /** The instant (ms since the epoch, on the caller's clock) before which nothing should be sent. */
  get notBefore(): number {
    return this.#notBefore;
  }

  /** The last Retry-After recorded, for status.signals.apiServer.retryAfterSeconds. */
  get lastRetryAfterMs(): number | undefined {
    return this.#lastRetryAfterMs;
  }
}
