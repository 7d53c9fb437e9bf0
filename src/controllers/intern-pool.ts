// One shared copy of what informer caches repeat on every object. JSON.parse allocates each string
// anew (V8 shares only very short ones), so 10,000 cached pods otherwise hold 10,000 copies of their
// namespace, node name, owner reference and conditions: the larger part of what a slim pod costs.

/**
 * Entries a pool keeps before it starts over. The values interned are bounded by the cluster's
 * namespaces, nodes, rollouts and the few condition states a pod goes through, so this only guards
 * against unbounded growth; starting over costs nothing but sharing for the objects cached after.
 */
export const INTERN_POOL_MAX_ENTRIES = 20_000;

export class InternPool {
  readonly #strings = new Map<string, string>();
  readonly #values = new Map<string, unknown>();
  readonly #maxEntries: number;

  constructor(maxEntries = INTERN_POOL_MAX_ENTRIES) {
    this.#maxEntries = maxEntries;
  }

  /** The pool's copy of `value` (undefined stays undefined). */
  intern<S extends string | undefined>(value: S): S {
    if (value === undefined) return value;
    const shared = this.#strings.get(value);
    if (shared !== undefined) return shared as S;
    if (this.#strings.size >= this.#maxEntries) this.#strings.clear();
    this.#strings.set(value, value);
    return value;
  }

  /**
   * One value for every call with the same `key`, made by `make` on the first and frozen (one level
   * deep), since every holder shares it. The key must say everything the value is made of.
   */
  share<T extends object>(key: string, make: () => T): Readonly<T> {
    const shared = this.#values.get(key);
    if (shared !== undefined) return shared as Readonly<T>;
    if (this.#values.size >= this.#maxEntries) this.#values.clear();
    const value = Object.freeze(make());
    this.#values.set(key, value);
    return value;
  }

  get size(): number {
    return this.#strings.size + this.#values.size;
  }
}
