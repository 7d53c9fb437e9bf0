// The write pacer: every create goes through one bottleneck limiter whose concurrency and spacing the
// sizer sets each tick, and which stops dispatching while the API server's Retry-After runs.

import Bottleneck from "bottleneck";
import { timerDelay } from "../controllers/timer-delay.ts";
import { HTTP_TOO_MANY_REQUESTS, type WriteLatencyWindow } from "./write-latency.ts";
import type { HeaderValue, RetryAfterGate } from "./retry-after.ts";
import type { RateLimit } from "./sizer/index.ts";

/** Label used when a 429 does not say which APF priority level rejected it. */
export const UNKNOWN_PRIORITY_LEVEL = "unknown";

/** A prom-client Counter<"priority_level"> fits this, as does a plain Map. */
export type ThrottleSink = Map<string, number> | { inc(labels: { priority_level: string }, value?: number): void };

/** What the caller reads off a response (or a failure) for the pacer. */
export interface WriteResponse {
  /** HTTP status; undefined when no response arrived. */
  status?: number;
  /** The Retry-After header as received. */
  retryAfter?: HeaderValue;
  /** APF priority level (name, or the X-Kubernetes-PF-PriorityLevel-UID until it is mapped to one). */
  priorityLevel?: string;
  timedOut?: boolean;
}

export interface WritePacerOptions {
  rateLimit: RateLimit;
  gate: RetryAfterGate;
  /** Receives every outcome with its latency, for the sizer's next tick. */
  window?: Pick<WriteLatencyWindow, "record">;
  /** 429s by priority level. */
  throttled?: ThrottleSink;
  /** Reads status and headers off a job's result or error; without it outcomes are not recorded. */
  classify?: (outcome: { value?: unknown; error?: unknown }) => WriteResponse | undefined;
  /** Milliseconds clock, the same one the gate and the window are read with. */
  clock?: () => number;
}

/** bottleneck settings for a rate limit: minTime spaces starts so a wave is spread over its period. */
export function limiterSettings(rateLimit: RateLimit): { maxConcurrent: number; minTime: number } {
  const pace = rateLimit.sendPerSecond ?? rateLimit.perSecond;
  return {
    maxConcurrent: Math.max(1, Math.floor(rateLimit.concurrency)),
    minTime: pace > 0 ? Math.floor(1_000 / pace) : 0,
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, timerDelay(ms)));
}

export class WritePacer {
  readonly #limiter: Bottleneck;
  readonly #gate: RetryAfterGate;
  readonly #window: Pick<WriteLatencyWindow, "record"> | undefined;
  readonly #throttled: ThrottleSink | undefined;
  readonly #classify: WritePacerOptions["classify"];
  readonly #clock: () => number;
  #resumeTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: WritePacerOptions) {
    this.#limiter = new Bottleneck(limiterSettings(options.rateLimit));
    this.#gate = options.gate;
    this.#window = options.window;
    this.#throttled = options.throttled;
    this.#classify = options.classify;
    this.#clock = options.clock ?? Date.now;
  }

  /** Applies the sizer's rate limit for the coming wave. */
  update(rateLimit: RateLimit): void {
    this.#limiter.updateSettings(limiterSettings(rateLimit));
  }

  /**
   * Runs `fn` when the limiter allows and the gate is open. A job dispatched just before a 429 closed
   * the gate waits inside its slot rather than being sent into the rejection.
   */
  schedule<T>(fn: () => Promise<T>): Promise<T> {
    return this.#limiter.schedule(async () => {
      for (let wait = this.#gate.waitMs(this.#clock()); wait > 0; wait = this.#gate.waitMs(this.#clock())) await sleep(wait);
      const start = this.#clock();
      try {
        const value = await fn();
        this.#record(start, this.#classify?.({ value }));
        return value;
      } catch (error) {
        this.#record(start, this.#classify?.({ error }));
        throw error;
      }
    });
  }

  #record(start: number, response: WriteResponse | undefined): void {
    if (!response) return;
    const now = this.#clock();
    const retryAfterMs = this.observe(response, now);
    this.#window?.record({
      at: now,
      latencyMs: now - start,
      ...(response.status === undefined ? {} : { status: response.status }),
      ...(response.timedOut ? { timedOut: true } : {}),
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }

  /**
   * Feeds one response to the gate and the 429 counter, and stops dispatch while the gate is closed.
   * Call it directly for writes that do not go through schedule(). Returns the Retry-After honoured.
   */
  observe(response: WriteResponse, now: number = this.#clock()): number | undefined {
    const throttled = response.status === HTTP_TOO_MANY_REQUESTS;
    if (throttled) this.#countThrottled(response.priorityLevel ?? UNKNOWN_PRIORITY_LEVEL);
    // 503s may carry Retry-After too; only a 429 without one gets the default wait.
    const retryAfterMs = response.retryAfter != null || throttled ? this.#gate.observeHeader(now, response.retryAfter, throttled) : undefined;
    if (!this.#gate.isOpen(now)) this.#pauseDispatch(now);
    return retryAfterMs;
  }

  #countThrottled(priorityLevel: string): void {
    const sink = this.#throttled;
    if (!sink) return;
    if (sink instanceof Map) sink.set(priorityLevel, (sink.get(priorityLevel) ?? 0) + 1);
    else sink.inc({ priority_level: priorityLevel });
  }

  // A reservoir of 0 holds queued jobs in bottleneck; null lifts the hold and drains the queue.
  #pauseDispatch(now: number): void {
    if (this.#resumeTimer) clearTimeout(this.#resumeTimer);
    this.#limiter.updateSettings({ reservoir: 0 });
    const resume = (): void => {
      const wait = this.#gate.waitMs(this.#clock());
      if (wait > 0) {
        this.#resumeTimer = setTimeout(resume, timerDelay(wait));
        return;
      }
      this.#resumeTimer = undefined;
      this.#limiter.updateSettings({ reservoir: null });
    };
    this.#resumeTimer = setTimeout(resume, timerDelay(this.#gate.waitMs(now)));
  }

  /** Writes running and waiting, for logs and the expectations bookkeeping. */
  counts(): { running: number; queued: number } {
    const c = this.#limiter.counts();
    return { running: c.EXECUTING + c.RUNNING, queued: c.QUEUED + c.RECEIVED };
  }

  /** Lets running writes finish and rejects queued ones. */
  async stop(): Promise<void> {
    if (this.#resumeTimer) clearTimeout(this.#resumeTimer);
    this.#resumeTimer = undefined;
    await this.#limiter.stop({ dropWaitingJobs: true });
  }
}
