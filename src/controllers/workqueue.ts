// A rate-limited work queue with client-go's guarantees, which every controller in this operator
// relies on:
//   - a key is queued at most once however often it is added (the dirty set);
//   - a key is handed to at most one worker at a time (the processing set); an add while it is being
//     processed is remembered and the key is queued again when the worker calls done();
//   - delayed adds wait in a heap ordered by ready time, one entry per key, earliest wins.
import type { ControllerMetrics, WorkqueueMetrics } from "./metrics.ts";
import { defaultControllerRateLimiter, realClock } from "./rate-limiter.ts";
import type { Clock, RateLimiter } from "./rate-limiter.ts";
import { timerDelay } from "./timer-delay.ts";

/** Timer functions, injected so tests can drive delays with a manual scheduler or vitest fake timers. */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/**
 * Node's timers, unref'd: a pending delayed add is no reason to keep the process alive. The globals
 * are looked up on every call so vitest fake timers installed after import still apply. Delays past
 * Node's limit are clamped (the queue re-arms when a timer fires before its item is due).
 */
export const realTimers: Timers = {
  setTimeout(callback, ms) {
    const handle = setTimeout(callback, timerDelay(ms)) as unknown as { unref?: () => unknown };
    handle.unref?.();
    return handle;
  },
  clearTimeout(handle) {
    clearTimeout(handle as Parameters<typeof clearTimeout>[0]);
  },
};

/** What a controller needs from its queue (client-go's RateLimitingInterface). */
export interface RateLimitingQueue {
  /** Marks the key as needing processing. No-op after shutdown. */
  add(key: string): void;
  /** Next key to process; undefined once the queue is shut down and has nothing left to hand out. */
  get(): Promise<string | undefined>;
  /** The worker is finished with the key; a key added meanwhile is queued again. */
  done(key: string): void;
  /** Adds the key after `ms`; if it is already waiting, the earlier of the two times wins. */
  addAfter(key: string, ms: number): void;
  /** Adds the key after the delay the rate limiter chooses for it. */
  addRateLimited(key: string): void;
  /** Resets the key's retry history in the rate limiter. Does not remove it from the queue. */
  forget(key: string): void;
  numRequeues(key: string): number;
  /** Keys waiting to be handed out (not those being processed or still delayed). */
  len(): number;
  isShuttingDown(): boolean;
  /** Stops accepting adds and wakes idle workers with undefined. Keys already queued can still be taken. */
  shutDown(): void;
  /** Like shutDown, then resolves once every key handed out has been marked done. */
  shutDownWithDrain(): Promise<void>;
}

export interface WorkQueueOptions {
  /** Names the queue in metrics (`name` and `controller` labels) and in errors. */
  name: string;
  /** Defaults to client-go's DefaultControllerRateLimiter on the same clock. */
  rateLimiter?: RateLimiter;
  clock?: Clock;
  timers?: Timers;
  /** Omit to run without metrics (unit tests). */
  metrics?: ControllerMetrics;
}

/** Plain FIFO of keys; an index instead of Array.shift keeps a deep queue O(1) per take. */
class KeyFifo {
  #items: string[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(key: string): void {
    this.#items.push(key);
  }

  shift(): string | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const key = this.#items[this.#head];
    this.#head += 1;
    // Reclaim the consumed prefix once it dominates, so memory follows the live length.
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return key;
  }
}

interface DelayedKey {
  key: string;
  readyAt: number;
  /** Insertion order, so keys due at the same instant come out in the order they were scheduled. */
  seq: number;
  /** Position in the heap array, kept current so an entry can be moved when its time changes. */
  index: number;
}

/** Binary min-heap of delayed keys by (readyAt, seq), at most one entry per key. */
class DelayHeap {
  readonly #heap: DelayedKey[] = [];
  readonly #byKey = new Map<string, DelayedKey>();
  #seq = 0;

  get size(): number {
    return this.#heap.length;
  }

  peek(): DelayedKey | undefined {
    return this.#heap[0];
  }

  /** Schedules the key, or moves its existing entry earlier; a later time never delays it. */
  schedule(key: string, readyAt: number): void {
    const existing = this.#byKey.get(key);
    if (existing !== undefined) {
      if (readyAt < existing.readyAt) {
        existing.readyAt = readyAt;
        this.#up(existing.index);
      }
      return;
    }
    const entry: DelayedKey = { key, readyAt, seq: this.#seq++, index: this.#heap.length };
    this.#heap.push(entry);
    this.#byKey.set(key, entry);
    this.#up(entry.index);
  }

  pop(): DelayedKey | undefined {
    const top = this.#heap[0];
    const last = this.#heap.pop();
    if (top === undefined || last === undefined) return undefined;
    this.#byKey.delete(top.key);
    if (last !== top) {
      this.#place(last, 0);
      this.#down(0);
    }
    return top;
  }

  clear(): void {
    this.#heap.length = 0;
    this.#byKey.clear();
  }

  #before(a: DelayedKey, b: DelayedKey): boolean {
    return a.readyAt < b.readyAt || (a.readyAt === b.readyAt && a.seq < b.seq);
  }

  #place(entry: DelayedKey, index: number): void {
    this.#heap[index] = entry;
    entry.index = index;
  }

  #up(index: number): void {
    const entry = this.#heap[index];
    if (entry === undefined) return;
    let i = index;
    while (i > 0) {
      const parentIndex = (i - 1) >> 1;
      const parent = this.#heap[parentIndex];
      if (parent === undefined || !this.#before(entry, parent)) break;
      this.#place(parent, i);
      i = parentIndex;
    }
    this.#place(entry, i);
  }

  #down(index: number): void {
    const entry = this.#heap[index];
    if (entry === undefined) return;
    const n = this.#heap.length;
    let i = index;
    for (;;) {
      const leftIndex = 2 * i + 1;
      if (leftIndex >= n) break;
      const rightIndex = leftIndex + 1;
      const left = this.#heap[leftIndex];
      const right = this.#heap[rightIndex];
      if (left === undefined) break;
      const [childIndex, child] =
        right !== undefined && this.#before(right, left) ? [rightIndex, right] : [leftIndex, left];
      if (!this.#before(child, entry)) break;
      this.#place(child, i);
      i = childIndex;
    }
    this.#place(entry, i);
  }
}

/**
 * The work queue. Single-threaded JavaScript makes client-go's mutex and condition variable
 * unnecessary: every method runs to completion, and a waiting get() is handed its key (and the key
 * moved to the processing set) synchronously inside the add that made it available.
 */
export class WorkQueue implements RateLimitingQueue {
  readonly name: string;
  readonly #rateLimiter: RateLimiter;
  readonly #clock: Clock;
  readonly #timers: Timers;
  readonly #metrics: WorkqueueMetrics | undefined;

  readonly #queue = new KeyFifo();
  /** Keys that need processing: queued, or added again while being processed. */
  readonly #dirty = new Set<string>();
  /** Keys handed to a worker and not yet done. */
  readonly #processing = new Set<string>();
  readonly #waiters: ((key: string | undefined) => void)[] = [];
  readonly #drainWaiters: (() => void)[] = [];

  readonly #delayed = new DelayHeap();
  #timer: unknown = undefined;
  /** readyAt the armed timer was set for, so re-arming is skipped when the head has not changed. */
  #timerReadyAt: number | undefined = undefined;

  #shuttingDown = false;

  constructor(options: WorkQueueOptions) {
    this.name = options.name;
    this.#clock = options.clock ?? realClock;
    this.#timers = options.timers ?? realTimers;
    this.#rateLimiter = options.rateLimiter ?? defaultControllerRateLimiter(this.#clock);
    this.#metrics = options.metrics?.workqueue(options.name, this.#clock);
  }

  add(key: string): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#metrics?.add(key);
    this.#dirty.add(key);
    // The worker holding it will see it dirty in done() and queue it then, never concurrently.
    if (this.#processing.has(key)) return;
    this.#queue.push(key);
    this.#handOut();
  }

  get(): Promise<string | undefined> {
    if (this.#queue.length > 0) return Promise.resolve(this.#take());
    if (this.#shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  done(key: string): void {
    // A done for a key that was never handed out would otherwise queue a dirty key a second time.
    if (!this.#processing.has(key)) return;
    this.#metrics?.done(key);
    this.#processing.delete(key);
    if (this.#dirty.has(key)) {
      this.#queue.push(key);
      this.#handOut();
    }
    // A drain waits only for work already handed out, not for keys still queued (as client-go).
    if (this.#processing.size === 0) this.#wakeDrainWaiters();
  }

  addAfter(key: string, ms: number): void {
    if (this.#shuttingDown) return;
    this.#metrics?.retry();
    // NaN and non-positive delays mean "now", as a zero duration does in client-go.
    if (!(ms > 0)) {
      this.add(key);
      return;
    }
    this.#delayed.schedule(key, this.#clock.now() + ms);
    this.#armTimer();
  }

  addRateLimited(key: string): void {
    if (this.#shuttingDown) return;
    this.addAfter(key, this.#rateLimiter.when(key));
  }

  forget(key: string): void {
    this.#rateLimiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.#rateLimiter.numRequeues(key);
  }

  len(): number {
    return this.#queue.length;
  }

  isShuttingDown(): boolean {
    return this.#shuttingDown;
  }

  shutDown(): void {
    this.#shutDown();
    // Also ends a shutDownWithDrain that is still waiting, as client-go allows to force a stuck drain.
    this.#wakeDrainWaiters();
  }

  shutDownWithDrain(): Promise<void> {
    this.#shutDown();
    if (this.#processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  #shutDown(): void {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    // Delayed keys are dropped, as client-go's waiting loop exits: nothing may be added any more.
    this.#delayed.clear();
    this.#disarmTimer();
    // Waiters exist only while the queue is empty, so each of them gets "no more work".
    for (const resolve of this.#waiters.splice(0)) resolve(undefined);
    this.#metrics?.release();
  }

  /** Moves the next queued key to the processing set; the caller checked the queue is not empty. */
  #take(): string | undefined {
    const key = this.#queue.shift();
    if (key === undefined) return undefined;
    this.#metrics?.get(key);
    this.#processing.add(key);
    this.#dirty.delete(key);
    return key;
  }

  #handOut(): void {
    while (this.#waiters.length > 0 && this.#queue.length > 0) {
      const resolve = this.#waiters.shift();
      resolve?.(this.#take());
    }
  }

  #wakeDrainWaiters(): void {
    for (const resolve of this.#drainWaiters.splice(0)) resolve();
  }

  #armTimer(): void {
    const head = this.#delayed.peek();
    if (head === undefined) {
      this.#disarmTimer();
      return;
    }
    if (this.#timer !== undefined && this.#timerReadyAt === head.readyAt) return;
    this.#disarmTimer();
    this.#timerReadyAt = head.readyAt;
    this.#timer = this.#timers.setTimeout(() => {
      this.#timer = undefined;
      this.#timerReadyAt = undefined;
      this.#addReady();
    }, Math.max(0, head.readyAt - this.#clock.now()));
  }

  #disarmTimer(): void {
    if (this.#timer !== undefined) this.#timers.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerReadyAt = undefined;
  }

  #addReady(): void {
    const now = this.#clock.now();
    for (let head = this.#delayed.peek(); head !== undefined && head.readyAt <= now; head = this.#delayed.peek()) {
      this.#delayed.pop();
      // add() dedupes against keys already queued, exactly like an immediate add would.
      this.add(head.key);
    }
    // Also re-arms when a timer fired before the injected clock reached the head's time.
    this.#armTimer();
  }
}
