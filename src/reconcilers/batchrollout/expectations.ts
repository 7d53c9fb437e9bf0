// Writes we made that the informer's cache has not shown yet. Without them a reconcile that runs
// before the cache catches up would create the same ordinal twice (it answers 409, but that is a
// wasted write under load) or delete a pod twice. Entries clear when the cache shows the change,
// when the write fails, or after a TTL in case an event was missed.

/** An expectation older than this is dropped: the relist will have repaired the cache by then. */
export const EXPECTATION_TTL_MS = 5 * 60_000;

interface Pending {
  creates: Map<number, number>; // ordinal → since (ms)
  deletes: Map<string, number>; // pod name → since (ms)
}

export class Expectations {
  readonly #byRollout = new Map<string, Pending>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  #entry(key: string): Pending {
    let e = this.#byRollout.get(key);
    if (!e) this.#byRollout.set(key, (e = { creates: new Map(), deletes: new Map() }));
    return e;
  }

  expectCreate(key: string, ordinal: number): void {
    this.#entry(key).creates.set(ordinal, this.#now());
  }

  expectDelete(key: string, name: string): void {
    this.#entry(key).deletes.set(name, this.#now());
  }

  /** The cache showed the pod, or the create failed: either way nothing is in flight any more. */
  observeCreate(key: string, ordinal: number): void {
    this.#byRollout.get(key)?.creates.delete(ordinal);
  }

  observeDelete(key: string, name: string): void {
    this.#byRollout.get(key)?.deletes.delete(name);
  }

  /** In-flight writes for a rollout, after dropping those past their TTL. */
  pending(key: string): { creates: Set<number>; deletes: Set<string> } {
    const e = this.#byRollout.get(key);
    if (!e) return { creates: new Set(), deletes: new Set() };
    const cutoff = this.#now() - EXPECTATION_TTL_MS;
    for (const [ordinal, since] of e.creates) if (since < cutoff) e.creates.delete(ordinal);
    for (const [name, since] of e.deletes) if (since < cutoff) e.deletes.delete(name);
    return { creates: new Set(e.creates.keys()), deletes: new Set(e.deletes.keys()) };
  }

  /**
   * How long until the oldest pending write passes its TTL, or undefined with none pending. A
   * reconcile waiting on the cache requeues by then: with the event lost, nothing else would wake it.
   */
  expiresInMs(key: string): number | undefined {
    const e = this.#byRollout.get(key);
    if (!e) return undefined;
    let oldest = Infinity;
    for (const since of e.creates.values()) oldest = Math.min(oldest, since);
    for (const since of e.deletes.values()) oldest = Math.min(oldest, since);
    return oldest === Infinity ? undefined : Math.max(0, oldest + EXPECTATION_TTL_MS - this.#now());
  }

  forget(key: string): void {
    this.#byRollout.delete(key);
  }
}
