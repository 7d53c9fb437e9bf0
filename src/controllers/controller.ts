// The controller runner: N workers take keys from a rate-limited queue and call the reconciler, and
// the reconciler's outcome decides what happens to the key next. The rules are controller-runtime's
// reconcileHandler, so a reconciler written with that contract in mind behaves the same here:
//
//   threw TerminalError   → counted as an error, not requeued (retrying cannot help)
//   threw anything else   → counted as an error, requeued with the rate limiter's backoff
//   { requeueAfterMs > 0 } → backoff forgotten, key added again after exactly that delay
//   { requeue: true }     → key requeued with the rate limiter's backoff
//   anything else         → success, backoff forgotten
//
// A panic (a synchronous throw, or a thrown value that is not an Error) is recovered, counted as a
// panic, and then handled like an ordinary error.
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import type { ControllerMetrics, ReconcileResultLabel } from "./metrics.ts";
import {
  RECONCILE_RESULT_ERROR,
  RECONCILE_RESULT_REQUEUE,
  RECONCILE_RESULT_REQUEUE_AFTER,
  RECONCILE_RESULT_SUCCESS,
} from "./metrics.ts";
import { realClock } from "./rate-limiter.ts";
import type { Clock } from "./rate-limiter.ts";
import { realTimers } from "./workqueue.ts";
import type { RateLimitingQueue, Timers } from "./workqueue.ts";

/** Workers when none are configured (controller-runtime's MaxConcurrentReconciles default). */
export const DEFAULT_MAX_CONCURRENT_RECONCILES = 1;
/**
 * How long stop() waits for in-flight reconciles before giving up on them (controller-runtime's
 * manager GracefulShutdownTimeout default), so a stuck reconcile cannot hold shutdown forever.
 */
export const DEFAULT_DRAIN_TIMEOUT_MS = 30_000;

/** What a reconcile asks for next. An empty result means done until the object changes again. */
export interface Result {
  /** Requeue with the rate limiter's backoff. */
  requeue?: boolean;
  /** Requeue after exactly this many milliseconds; wins over `requeue`. */
  requeueAfterMs?: number;
}

export interface ReconcileContext {
  /** Unique per reconcile call, also bound in `logger`, to tie every log line of one pass together. */
  reconcileID: string;
  /** The controller's logger with `controller`, `key` and `reconcileID` bound. */
  logger: Logger;
  /** Aborted when the controller starts shutting down; long waits should give up on it. */
  signal: AbortSignal;
}

export type ReconcileFunc = (key: string, ctx: ReconcileContext) => Promise<Result>;

/**
 * An error retrying cannot fix (e.g. the spec is invalid): the key is not requeued and
 * controller_runtime_terminal_reconcile_errors_total counts it. Wrap the underlying error as `cause`.
 */
export class TerminalError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TerminalError";
  }
}

/** True if the error, or any error in its `cause` chain, is a TerminalError (like errors.Is). */
export function isTerminalError(err: unknown): boolean {
  const seen = new Set<unknown>();
  for (let current = err; current instanceof Error && !seen.has(current); current = current.cause) {
    if (current instanceof TerminalError) return true;
    seen.add(current);
  }
  return false;
}

/** A recovered panic, turned into an error the way controller-runtime reports it. */
class ReconcilePanic extends Error {
  constructor(value: unknown, how: string) {
    super(`panic: ${describe(value)} [recovered] (${how})`, { cause: value });
    this.name = "ReconcilePanic";
  }
}

function describe(value: unknown): string {
  if (value instanceof Error) return value.message;
  try {
    return typeof value === "string" ? value : (JSON.stringify(value) ?? String(value));
  } catch {
    return String(value);
  }
}

export interface ControllerOptions {
  /** Identifies the controller in logs and in the `controller` metric label; keep it unique. */
  name: string;
  queue: RateLimitingQueue;
  reconcile: ReconcileFunc;
  /** Concurrent reconciles; a key is still never reconciled by two workers at once. */
  workers?: number;
  logger: Logger;
  /** Omit to run without metrics (unit tests). */
  metrics?: ControllerMetrics;
  clock?: Clock;
  timers?: Timers;
  drainTimeoutMs?: number;
}

export class Controller {
  readonly name: string;
  readonly #queue: RateLimitingQueue;
  readonly #reconcile: ReconcileFunc;
  readonly #workers: number;
  readonly #logger: Logger;
  readonly #metrics: ControllerMetrics | undefined;
  readonly #clock: Clock;
  readonly #timers: Timers;
  readonly #drainTimeoutMs: number;

  readonly #shutdown = new AbortController();
  /** Keys being reconciled right now, named in the log when a drain times out. */
  readonly #inFlight = new Set<string>();
  #workerLoops: Promise<void>[] = [];
  #started = false;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  readonly #stopFinished = Promise.withResolvers<void>();

  constructor(options: ControllerOptions) {
    const workers = options.workers ?? DEFAULT_MAX_CONCURRENT_RECONCILES;
    if (!Number.isInteger(workers) || workers < 1) {
      throw new RangeError(`controller "${options.name}": workers must be an integer >= 1, got ${workers}`);
    }
    const drainTimeoutMs = options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
    if (!(drainTimeoutMs >= 0)) {
      throw new RangeError(`controller "${options.name}": drainTimeoutMs must be >= 0, got ${drainTimeoutMs}`);
    }
    this.name = options.name;
    this.#queue = options.queue;
    this.#reconcile = options.reconcile;
    this.#workers = workers;
    this.#logger = options.logger.child({ controller: options.name });
    this.#metrics = options.metrics;
    this.#clock = options.clock ?? realClock;
    this.#timers = options.timers ?? realTimers;
    this.#drainTimeoutMs = drainTimeoutMs;
  }

  /**
   * Starts the workers and resolves once they have all exited: after stop() (or `signal` aborting)
   * has drained them, or the queue was shut down elsewhere. Like controller-runtime's Start, it runs
   * for the controller's whole life, so call it without awaiting if the caller has more to do.
   */
  async run(signal?: AbortSignal): Promise<void> {
    if (this.#started) throw new Error(`controller "${this.name}" was started more than once`);
    this.#started = true;

    const onAbort = (): void => void this.stop();
    if (signal?.aborted) void this.stop();
    else signal?.addEventListener("abort", onAbort, { once: true });

    this.#metrics?.initController(this.name, this.#workers);
    this.#logger.info({ workers: this.#workers }, "Starting workers");
    this.#workerLoops = Array.from({ length: this.#workers }, () => this.#worker());
    try {
      // A drain that timed out leaves stuck workers behind; run() must still return then.
      await Promise.race([Promise.all(this.#workerLoops), this.#stopFinished.promise]);
      // Workers can exit before stop() has logged and cleaned up; return only after it has.
      if (this.#stopped !== undefined) await this.#stopped;
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Stops handing out keys, cancels the reconcile signal, and waits up to the drain timeout for the
   * reconciles in flight to finish. Safe to call more than once; every call gets the same promise.
   */
  stop(): Promise<void> {
    this.#stopped ??= this.#drain().finally(() => this.#stopFinished.resolve());
    return this.#stopped;
  }

  async #drain(): Promise<void> {
    this.#stopping = true;
    this.#logger.info({ inFlight: this.#inFlight.size }, "Shutdown signal received, waiting for all workers to finish");
    this.#shutdown.abort(new Error(`controller "${this.name}" is shutting down`));

    let timer: unknown;
    const timedOut = new Promise<false>((resolve) => {
      timer = this.#timers.setTimeout(() => resolve(false), this.#drainTimeoutMs);
    });
    const drained = this.#queue
      .shutDownWithDrain()
      .then(() => Promise.all(this.#workerLoops))
      .then(() => true as const);
    const finished = await Promise.race([drained, timedOut]);
    this.#timers.clearTimeout(timer);

    if (finished) {
      this.#logger.info("All workers finished");
      return;
    }
    this.#logger.warn(
      { drainTimeoutMs: this.#drainTimeoutMs, stuckKeys: [...this.#inFlight] },
      "Gave up waiting for in-flight reconciles; they may still be running",
    );
    this.#queue.shutDown();
  }

  async #worker(): Promise<void> {
    while (!this.#stopping) {
      const key = await this.#queue.get();
      if (key === undefined) return;
      await this.#processItem(key);
    }
  }

  async #processItem(key: string): Promise<void> {
    this.#inFlight.add(key);
    this.#metrics?.activeWorkers.inc({ controller: this.name });
    try {
      await this.#reconcileHandler(key);
    } catch (err) {
      // Only a bug in the queue or logger gets here; a dead worker would silently shrink concurrency.
      this.#logger.error({ err, key }, "Reconcile handler failed; the key is dropped until it is added again");
    } finally {
      this.#metrics?.activeWorkers.dec({ controller: this.name });
      this.#inFlight.delete(key);
      this.#queue.done(key);
    }
  }

  async #reconcileHandler(key: string): Promise<void> {
    const startedAt = this.#clock.now();
    const reconcileID = randomUUID();
    const logger = this.#logger.child({ key, reconcileID });
    const ctx: ReconcileContext = { reconcileID, logger, signal: this.#shutdown.signal };

    logger.debug("Reconciling");
    try {
      const result = await this.#invokeReconcile(key, ctx);
      this.#handleResult(key, result ?? {}, logger);
    } catch (err) {
      this.#handleError(key, err, logger);
    } finally {
      this.#metrics?.reconcileTime.observe({ controller: this.name }, (this.#clock.now() - startedAt) / 1000);
    }
  }

  /** Calls the reconciler, turning a synchronous throw or a thrown non-Error into a ReconcilePanic. */
  async #invokeReconcile(key: string, ctx: ReconcileContext): Promise<Result | undefined> {
    let pending: Promise<Result>;
    try {
      pending = this.#reconcile(key, ctx);
    } catch (thrown) {
      throw new ReconcilePanic(thrown, "thrown synchronously");
    }
    try {
      return await pending;
    } catch (thrown) {
      if (thrown instanceof Error) throw thrown;
      throw new ReconcilePanic(thrown, "threw a non-Error value");
    }
  }

  #handleError(key: string, err: unknown, logger: Logger): void {
    const controller = this.name;
    if (err instanceof ReconcilePanic) {
      this.#metrics?.reconcilePanics.inc({ controller });
      logger.error({ err }, "Observed a panic in reconciler");
    }
    if (isTerminalError(err)) {
      this.#metrics?.terminalReconcileErrors.inc({ controller });
    } else {
      this.#queue.addRateLimited(key);
    }
    this.#metrics?.reconcileErrors.inc({ controller });
    this.#count(RECONCILE_RESULT_ERROR);
    logger.error({ err, terminal: isTerminalError(err) }, "Reconciler error");
  }

  #handleResult(key: string, result: Result, logger: Logger): void {
    const after = result.requeueAfterMs;
    if (after !== undefined && after > 0) {
      logger.debug({ requeueAfterMs: after }, "Reconcile done, requeueing after delay");
      // A fixed delay is not a failure: drop the backoff so a later error starts from the base delay.
      this.#queue.forget(key);
      this.#queue.addAfter(key, after);
      this.#count(RECONCILE_RESULT_REQUEUE_AFTER);
    } else if (result.requeue === true) {
      logger.debug("Reconcile done, requeueing");
      this.#queue.addRateLimited(key);
      this.#count(RECONCILE_RESULT_REQUEUE);
    } else {
      logger.debug("Reconcile successful");
      this.#queue.forget(key);
      this.#count(RECONCILE_RESULT_SUCCESS);
    }
  }

  #count(result: ReconcileResultLabel): void {
    this.#metrics?.reconcileTotal.inc({ controller: this.name, result });
  }
}
