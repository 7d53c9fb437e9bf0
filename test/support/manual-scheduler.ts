import type { Clock } from "../../src/controllers/rate-limiter.ts";
import type { Timers } from "../../src/controllers/workqueue.ts";

// A clock and timers that only move when the test says so: deterministic tests of code that
// schedules work (queues, recorders, electors) without real waiting.

/** Lets every pending promise continuation run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
}

export class ManualScheduler implements Clock, Timers {
  #now: number;
  #nextId = 1;
  readonly #timers = new Map<number, { at: number; callback: () => void }>();

  constructor(start = 0) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.#now + ms, callback });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** Moves time forward, firing due timers in time order at their own instant. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (let next = this.#nextDue(target); next; next = this.#nextDue(target)) {
      this.#timers.delete(next.id);
      this.#now = Math.max(this.#now, next.at);
      next.callback();
    }
    this.#now = target;
  }

  /** Like advance, but lets each timer's promise continuations (e.g. writes) finish before the next fires. */
  async advanceSettled(ms: number): Promise<void> {
    const target = this.#now + ms;
    for (let next = this.#nextDue(target); next; next = this.#nextDue(target)) {
      this.#timers.delete(next.id);
      this.#now = Math.max(this.#now, next.at);
      next.callback();
      await settle();
    }
    this.#now = target;
    await settle();
  }

  #nextDue(target: number): { id: number; at: number; callback: () => void } | undefined {
    let due: { id: number; at: number; callback: () => void } | undefined;
    for (const [id, t] of this.#timers) {
      if (t.at <= target && (!due || t.at < due.at || (t.at === due.at && id < due.id))) due = { id, ...t };
    }
    return due;
  }
}
