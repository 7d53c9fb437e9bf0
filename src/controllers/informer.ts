import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { KubeClient, Query, WatchEvent } from "../kube/client.ts";
import { ApiError, WatchIdleError, isGone } from "../kube/errors.ts";

// An informer keeps a read-only cache of one resource type in step with the API server:
// a paginated list, then a watch from the list's resourceVersion, resumed after the server's
// watch timeout or once it falls silent, relisted on 410 Gone and periodically, and restarted with
// backoff after errors.
// Handlers only learn that something changed; they enqueue keys and never act themselves.

/** Objects per list page; large lists in one response cost the API server and our heap alike. */
export const LIST_PAGE_SIZE = 500;
/** A full relist now and then repairs any drift a lost event could have caused. */
export const RELIST_INTERVAL_MS = 30 * 60_000;
/** Backoff after a failed list or watch: doubles from the initial value up to the cap, with jitter. */
export const ERROR_BACKOFF_INITIAL_MS = 800;
export const ERROR_BACKOFF_MAX_MS = 30_000;
/** A watch that ends sooner than this without an event is treated as a failure (as client-go does). */
export const MIN_HEALTHY_WATCH_MS = 1_000;

/** Accept headers that make the API server send only metadata (PartialObjectMetadata). */
export const METADATA_ONLY_ACCEPT = {
  list: "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
  watch: "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
} as const;

export interface ObjectWithMeta {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; managedFields?: unknown };
}

export interface InformerHandlers<T> {
  onAdd?(obj: T): void;
  onUpdate?(oldObj: T, newObj: T): void;
  onDelete?(obj: T): void;
}

export type Indexer<T> = (obj: T) => string[];

export interface InformerOptions<T extends ObjectWithMeta> {
  name: string;
  client: Pick<KubeClient, "request" | "watch">;
  /** Collection path, e.g. /api/v1/pods or /apis/batchrollout.dev/v1alpha1/batchrollouts. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  metadataOnly?: boolean;
  /**
   * A client-side selector, for what a field selector cannot say cheaply: objects it rejects are not
   * cached, and a watch event that moves a held object out of it removes it, handlers seeing the last
   * state they were told of in onDelete.
   */
  keep?: (raw: ObjectWithMeta) => boolean;
  /** Shapes each object before it is cached (default: drops managedFields). */
  transform?: (raw: ObjectWithMeta) => T;
  indexers?: Record<string, Indexer<T>>;
  logger: Logger;
  pageSize?: number;
  relistIntervalMs?: number;
}

interface ListBody<T> {
  metadata?: { resourceVersion?: string; continue?: string };
  items?: T[];
}

export function objectKey(obj: ObjectWithMeta): string {
  const { namespace, name } = obj.metadata ?? {};
  return namespace ? `${namespace}/${name}` : (name ?? "");
}

/** Identity only (name, namespace, resourceVersion): what a slim cache's transform keeps of metadata. */
export type SlimMeta = { name: string; namespace?: string; resourceVersion?: string };

export function slimMeta(raw: ObjectWithMeta): SlimMeta {
  const m = raw.metadata ?? {};
  return { name: m.name ?? "", ...(m.namespace ? { namespace: m.namespace } : {}), ...(m.resourceVersion ? { resourceVersion: m.resourceVersion } : {}) };
}

export function dropManagedFields<T extends ObjectWithMeta>(obj: T): T {
  if (obj.metadata?.managedFields !== undefined) delete obj.metadata.managedFields;
  return obj;
}

class RelistNeeded extends Error {}

export class Informer<T extends ObjectWithMeta> {
  readonly name: string;
  readonly #opts: InformerOptions<T>;
  readonly #store = new Map<string, T>();
  readonly #indices = new Map<string, Map<string, Set<string>>>();
  readonly #handlers: InformerHandlers<T>[] = [];
  #synced = false;
  readonly #syncWaiters: (() => void)[] = [];
  #resourceVersion = "";
  #lastListAt = 0;
  #running?: Promise<void>;

  constructor(opts: InformerOptions<T>) {
    this.name = opts.name;
    this.#opts = opts;
    for (const index of Object.keys(opts.indexers ?? {})) this.#indices.set(index, new Map());
  }

  addHandlers(handlers: InformerHandlers<T>): void {
    this.#handlers.push(handlers);
  }

  get hasSynced(): boolean {
    return this.#synced;
  }

  /** Resolves once the first list is in the cache (or rejects when the signal aborts first). */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.#synced) return Promise.resolve();
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(signal?.reason);
      this.#syncWaiters.push(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  get(key: string): T | undefined {
    return this.#store.get(key);
  }

  list(): T[] {
    return [...this.#store.values()];
  }

  get size(): number {
    return this.#store.size;
  }

  byIndex(index: string, value: string): T[] {
    const keys = this.#indices.get(index)?.get(value);
    if (!keys) return [];
    const out: T[] = [];
    for (const key of keys) {
      const obj = this.#store.get(key);
      if (obj) out.push(obj);
    }
    return out;
  }

  /** Runs until the signal aborts. Errors are logged and retried with backoff, never thrown. */
  start(signal: AbortSignal): Promise<void> {
    this.#running ??= this.#run(signal);
    return this.#running;
  }

  async #run(signal: AbortSignal): Promise<void> {
    const log = this.#opts.logger.child({ informer: this.name });
    let backoff = ERROR_BACKOFF_INITIAL_MS;
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.#list(signal);
          needList = false;
          backoff = ERROR_BACKOFF_INITIAL_MS;
        }
        const watchStarted = Date.now();
        const events = await this.#watch(signal);
        // A watch that ends at once with nothing in it means something between us and the data
        // is wrong; resuming at once would turn that into a request storm.
        if (events === 0 && Date.now() - watchStarted < MIN_HEALTHY_WATCH_MS) throw new Error("watch ended at once without events");
        backoff = ERROR_BACKOFF_INITIAL_MS;
        // The server ended the watch (its timeout): resume from the last resourceVersion,
        // unless a periodic relist is due.
        needList = Date.now() - this.#lastListAt > (this.#opts.relistIntervalMs ?? RELIST_INTERVAL_MS);
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof RelistNeeded || isGone(err)) {
          log.info({ resourceVersion: this.#resourceVersion }, "watch expired (410 Gone); relisting");
          needList = true;
          continue;
        }
        if (err instanceof WatchIdleError) {
          // Stalled, not refused: resuming from our resourceVersion replays what the stall held back.
          log.warn({ resourceVersion: this.#resourceVersion, idleSeconds: Math.round(err.idleMs / 1000) }, "watch silent past its bookmarks; resuming it");
          continue;
        }
        const wait = backoff * (1 + Math.random());
        log.warn({ err: err instanceof Error ? err.message : String(err), retryInMs: Math.round(wait) }, "list/watch failed; retrying");
        await sleep(wait, undefined, { signal }).catch(() => undefined);
        backoff = Math.min(backoff * 2, ERROR_BACKOFF_MAX_MS);
        needList = needList || !(err instanceof ApiError) || err.code >= 500;
      }
    }
  }

  #query(): Query {
    return { labelSelector: this.#opts.labelSelector, fieldSelector: this.#opts.fieldSelector };
  }

  #transform(raw: ObjectWithMeta): T {
    return this.#opts.transform ? this.#opts.transform(raw) : (dropManagedFields(raw) as T);
  }

  async #list(signal: AbortSignal): Promise<void> {
    const fresh = new Map<string, T>();
    let continueToken: string | undefined;
    let resourceVersion = "";
    do {
      const res = await this.#opts.client.request<ListBody<ObjectWithMeta>>({
        method: "GET",
        path: this.#opts.path,
        query: { ...this.#query(), limit: this.#opts.pageSize ?? LIST_PAGE_SIZE, continue: continueToken },
        accept: this.#opts.metadataOnly ? METADATA_ONLY_ACCEPT.list : undefined,
        signal,
      });
      for (const raw of res.body.items ?? []) {
        if (this.#opts.keep && !this.#opts.keep(raw)) continue;
        const obj = this.#transform(raw);
        fresh.set(objectKey(obj), obj);
      }
      continueToken = res.body.metadata?.continue || undefined;
      resourceVersion = res.body.metadata?.resourceVersion ?? resourceVersion;
    } while (continueToken);

    // Replace the cache, telling handlers only what differs from what they already saw.
    for (const [key, old] of this.#store) {
      if (!fresh.has(key)) this.#remove(key, old);
    }
    for (const [key, obj] of fresh) this.#upsert(key, obj);
    this.#resourceVersion = resourceVersion;
    this.#lastListAt = Date.now();
    if (!this.#synced) {
      this.#synced = true;
      for (const resolve of this.#syncWaiters.splice(0)) resolve();
    }
  }

  /** Follows one watch until the server ends it; returns how many events it carried. */
  async #watch(signal: AbortSignal): Promise<number> {
    let count = 0;
    const events = this.#opts.client.watch<ObjectWithMeta>(
      this.#opts.path,
      { ...this.#query(), resourceVersion: this.#resourceVersion },
      signal,
      this.#opts.metadataOnly ? METADATA_ONLY_ACCEPT.watch : undefined,
    );
    for await (const event of events as AsyncIterable<WatchEvent<ObjectWithMeta>>) {
      count++;
      if (event.type === "ERROR") {
        const status = event.object as { code?: number; message?: string };
        if (status.code === 410) throw new RelistNeeded();
        throw new Error(`watch error: ${status.code ?? "?"} ${status.message ?? ""}`);
      }
      const rv = event.object.metadata?.resourceVersion;
      if (rv) this.#resourceVersion = rv;
      if (event.type === "BOOKMARK") continue;
      // An object outside `keep` is never shaped: only its key matters, to drop what the cache held.
      if (event.type !== "DELETED" && this.#opts.keep && !this.#opts.keep(event.object)) {
        this.#leave(objectKey(event.object));
        continue;
      }
      const obj = this.#transform(event.object);
      const key = objectKey(obj);
      // Handlers see the object's last state, as the DELETED event carries it.
      if (event.type === "DELETED") this.#remove(key, obj);
      else this.#upsert(key, obj);
    }
    return count;
  }

  #upsert(key: string, obj: T): void {
    const old = this.#store.get(key);
    const version = obj.metadata?.resourceVersion;
    if (old && version !== undefined && old.metadata?.resourceVersion === version) return;
    if (old) this.#unindex(key, old);
    this.#store.set(key, obj);
    this.#index(key, obj);
    for (const h of this.#handlers) {
      if (old) h.onUpdate?.(old, obj);
      else h.onAdd?.(obj);
    }
  }

  /** An object moved out of `keep`: removed as the state the handlers last saw. */
  #leave(key: string): void {
    const held = this.#store.get(key);
    if (held) this.#remove(key, held);
  }

  /**
   * Handlers hear of a deletion only for an object the cache held: a DELETED event for anything else
   * changes nothing, and handlers that keep counts (IPAM) rely on every delete matching an add.
   */
  #remove(key: string, obj: T): void {
    const held = this.#store.get(key);
    if (!held) return;
    this.#unindex(key, held);
    this.#store.delete(key);
    for (const h of this.#handlers) h.onDelete?.(obj);
  }

  #index(key: string, obj: T): void {
    for (const [name, fn] of Object.entries(this.#opts.indexers ?? {})) {
      const index = this.#indices.get(name)!;
      for (const value of fn(obj)) {
        let keys = index.get(value);
        if (!keys) index.set(value, (keys = new Set()));
        keys.add(key);
      }
    }
  }

  #unindex(key: string, obj: T): void {
    for (const [name, fn] of Object.entries(this.#opts.indexers ?? {})) {
      const index = this.#indices.get(name)!;
      for (const value of fn(obj)) {
        const keys = index.get(value);
        keys?.delete(key);
        if (keys?.size === 0) index.delete(value);
      }
    }
  }
}
