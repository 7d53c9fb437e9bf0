import { pino } from "pino";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { KubeResponse, Query, RequestOptions, WatchEvent } from "../kube/client.ts";
import { ApiError, WatchIdleError } from "../kube/errors.ts";
import { ERROR_BACKOFF_INITIAL_MS, Informer, LIST_PAGE_SIZE, METADATA_ONLY_ACCEPT, dropManagedFields, objectKey } from "./informer.ts";
import type { InformerOptions, ObjectWithMeta } from "./informer.ts";

const logger = pino({ level: "silent" });
const PATH = "/api/v1/namespaces/apps/pods";

interface Pod extends ObjectWithMeta {
  metadata: { name: string; namespace: string; resourceVersion: string; labels?: Record<string, string>; managedFields?: unknown };
  spec?: { nodeName?: string };
}

function pod(name: string, resourceVersion: string, nodeName = "node-a"): Pod {
  return {
    metadata: { name, namespace: "apps", resourceVersion, managedFields: [{ manager: "kubectl" }] },
    spec: { nodeName },
  };
}

/** Lets every pending promise continuation run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** One watch connection: the test pushes events into it, ends it or breaks it. */
class WatchStream {
  readonly #queue: (WatchEvent<unknown> | { end: true } | { error: unknown })[] = [];
  #wake: (() => void) | undefined;
  readonly query: Query;
  readonly accept: string | undefined;

  constructor(query: Query, accept: string | undefined) {
    this.query = query;
    this.accept = accept;
  }

  push(type: WatchEvent<unknown>["type"], object: unknown): void {
    this.#queue.push({ type, object: structuredClone(object) });
    this.#wake?.();
  }

  end(): void {
    this.#queue.push({ end: true });
    this.#wake?.();
  }

  fail(error: unknown): void {
    this.#queue.push({ error });
    this.#wake?.();
  }

  async *events(signal: AbortSignal): AsyncGenerator<WatchEvent<unknown>> {
    const onAbort = () => this.#wake?.();
    signal.addEventListener("abort", onAbort);
    try {
      for (;;) {
        if (signal.aborted) return;
        const next = this.#queue.shift();
        if (next === undefined) {
          await new Promise<void>((resolve) => (this.#wake = resolve));
          continue;
        }
        if ("end" in next) return;
        if ("error" in next) throw next.error;
        yield next;
      }
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
  }
}

/** An API server's list and watch of one collection, in memory. */
class FakeApi {
  readonly objects = new Map<string, Pod>();
  resourceVersion = 100;
  readonly lists: RequestOptions[] = [];
  readonly watches: WatchStream[] = [];
  /** Fails the next list pages, in order. */
  readonly listFaults: unknown[] = [];
  /** Holds list requests until released. */
  listGate: Promise<void> | undefined;

  readonly request = async <T>(opts: RequestOptions): Promise<KubeResponse<T>> => {
    this.lists.push(opts);
    if (this.listGate) {
      await Promise.race([
        this.listGate,
        new Promise((_, reject) => opts.signal?.addEventListener("abort", () => reject(opts.signal?.reason), { once: true })),
      ]);
    }
    const fault = this.listFaults.shift();
    if (fault !== undefined) throw fault;
    const limit = Number(opts.query?.limit ?? Infinity);
    const start = opts.query?.continue ? Number(String(opts.query.continue).slice("page-".length)) : 0;
    const all = [...this.objects.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
    const items = all.slice(start, start + limit).map((o) => structuredClone(o));
    const next = start + limit < all.length ? `page-${start + limit}` : undefined;
    const body = { metadata: { resourceVersion: String(this.resourceVersion), ...(next ? { continue: next } : {}) }, items };
    return { code: 200, headers: {}, body: body as T };
  };

  readonly watch = <T>(_path: string, query: Query, signal: AbortSignal, accept?: string): AsyncGenerator<WatchEvent<T>> => {
    const stream = new WatchStream(query, accept);
    this.watches.push(stream);
    return stream.events(signal) as AsyncGenerator<WatchEvent<T>>;
  };

  get lastWatch(): WatchStream {
    const w = this.watches.at(-1);
    if (!w) throw new Error("no watch yet");
    return w;
  }

  /** Changes the server state and returns the object, as a watch event would carry it. */
  put(name: string, nodeName = "node-a"): Pod {
    const obj = pod(name, String(++this.resourceVersion), nodeName);
    this.objects.set(name, obj);
    return obj;
  }

  remove(name: string): Pod {
    const obj = this.objects.get(name)!;
    this.objects.delete(name);
    return { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.resourceVersion) } };
  }
}

interface Seen {
  adds: string[];
  updates: [string, string][];
  deletes: string[];
}

function startInformer(api: FakeApi, overrides: Partial<InformerOptions<Pod>> = {}) {
  const informer = new Informer<Pod>({
    name: "pods",
    client: api,
    path: PATH,
    logger,
    indexers: { byNode: (p) => (p.spec?.nodeName ? [p.spec.nodeName] : []) },
    ...overrides,
  });
  const seen: Seen = { adds: [], updates: [], deletes: [] };
  const rv = (p: Pod) => `${p.metadata.name}@${p.metadata.resourceVersion}`;
  informer.addHandlers({
    onAdd: (p) => seen.adds.push(rv(p)),
    onUpdate: (o, n) => seen.updates.push([rv(o), rv(n)]),
    onDelete: (p) => seen.deletes.push(rv(p)),
  });
  const controller = new AbortController();
  const done = informer.start(controller.signal);
  const stop = async () => {
    controller.abort();
    await done;
  };
  return { informer, seen, controller, done, stop };
}

function names(pods: Pod[]): string[] {
  return pods.map((p) => p.metadata.name).sort();
}

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("objectKey and dropManagedFields", () => {
  it("keys namespaced objects ns/name and cluster-scoped ones by name", () => {
    expect(objectKey(pod("a", "1"))).toBe("apps/a");
    expect(objectKey({ metadata: { name: "node-1" } })).toBe("node-1");
  });

  it("drops managedFields in place", () => {
    const p = pod("a", "1");
    expect(dropManagedFields(p).metadata.managedFields).toBeUndefined();
    expect("managedFields" in p.metadata).toBe(false);
  });
});

describe("Informer", () => {
  it("lists page by page with continue tokens, fills the cache, fires onAdd, then watches from the list's resourceVersion", async () => {
    const api = new FakeApi();
    for (const n of ["a", "b", "c", "d", "e"]) api.put(n);
    const { informer, seen, stop } = startInformer(api, { pageSize: 2, labelSelector: "app=web", fieldSelector: "spec.nodeName!=" });
    await informer.waitForSync();
    expect(api.lists.map((l) => l.query?.continue)).toEqual([undefined, "page-2", "page-4"]);
    expect(api.lists.every((l) => l.query?.limit === 2 && l.query.labelSelector === "app=web" && l.query.fieldSelector === "spec.nodeName!=")).toBe(true);
    expect(informer.size).toBe(5);
    expect(names(informer.list())).toEqual(["a", "b", "c", "d", "e"]);
    expect(seen.adds).toHaveLength(5);
    expect(informer.get("apps/c")?.metadata.resourceVersion).toBe("103");
    await settle();
    expect(api.watches).toHaveLength(1);
    expect(api.lastWatch.query).toMatchObject({ resourceVersion: "105", labelSelector: "app=web", fieldSelector: "spec.nodeName!=" });
    await stop();
  });

  it("pages at LIST_PAGE_SIZE by default", async () => {
    const api = new FakeApi();
    api.put("a");
    const { informer, stop } = startInformer(api);
    await informer.waitForSync();
    expect(api.lists[0]?.query?.limit).toBe(LIST_PAGE_SIZE);
    await stop();
  });

  it("applies ADDED, MODIFIED and DELETED to the cache, the index and the handlers", async () => {
    const api = new FakeApi();
    api.put("a", "node-a");
    const { informer, seen, stop } = startInformer(api);
    await informer.waitForSync();
    await settle();
    const watch = api.lastWatch;

    watch.push("ADDED", api.put("b", "node-a"));
    await settle();
    expect(seen.adds).toEqual(["a@101", "b@102"]);
    expect(names(informer.byIndex("byNode", "node-a"))).toEqual(["a", "b"]);

    watch.push("MODIFIED", api.put("b", "node-b"));
    await settle();
    expect(seen.updates).toEqual([["b@102", "b@103"]]);
    expect(informer.get("apps/b")?.spec?.nodeName).toBe("node-b");
    expect(names(informer.byIndex("byNode", "node-a"))).toEqual(["a"]);
    expect(names(informer.byIndex("byNode", "node-b"))).toEqual(["b"]);

    watch.push("DELETED", api.remove("a"));
    await settle();
    // Handlers get the object as the DELETED event carries it (its final state), as in client-go.
    expect(seen.deletes).toEqual(["a@104"]);
    expect(informer.get("apps/a")).toBeUndefined();
    expect(informer.byIndex("byNode", "node-a")).toEqual([]);
    expect(informer.size).toBe(1);
    await stop();
  });

  it("keeps only what `keep` accepts: from the list, and as watch events move objects out of it and back in", async () => {
    const api = new FakeApi();
    api.put("unbound", "");
    api.put("bound", "node-a");
    const { informer, seen, stop } = startInformer(api, { keep: (raw) => !(raw as Pod).spec?.nodeName });
    await informer.waitForSync();
    await settle();
    expect(seen.adds).toEqual(["unbound@101"]);
    const watch = api.lastWatch;

    watch.push("MODIFIED", api.put("bound", "node-b")); // still rejected, never held: no handler
    watch.push("MODIFIED", api.put("unbound", "node-a")); // leaves: removed as handlers last saw it
    await settle();
    expect(seen.deletes).toEqual(["unbound@101"]);
    expect(informer.size).toBe(0);

    watch.push("MODIFIED", api.put("unbound", "")); // back in
    watch.push("ADDED", api.put("new", ""));
    await settle();
    expect(seen.adds).toEqual(["unbound@101", "unbound@105", "new@106"]);
    expect(seen.updates).toEqual([]);
    expect(informer.size).toBe(2);
    await stop();
  });

  it("fires onDelete only for an object it held", async () => {
    const api = new FakeApi();
    api.put("a");
    const { informer, seen, stop } = startInformer(api);
    await informer.waitForSync();
    await settle();
    api.lastWatch.push("DELETED", pod("never-seen", "150"));
    await settle();
    expect(seen.deletes).toEqual([]);
    expect(informer.size).toBe(1);
    await stop();
  });

  it("moves the resourceVersion on a BOOKMARK without firing handlers, and resumes the watch from it", async () => {
    const api = new FakeApi();
    api.put("a");
    const { informer, seen, stop } = startInformer(api);
    await informer.waitForSync();
    await settle();
    api.lastWatch.push("BOOKMARK", { kind: "Pod", apiVersion: "v1", metadata: { resourceVersion: "500" } });
    await settle();
    expect(seen).toEqual({ adds: ["a@101"], updates: [], deletes: [] });
    expect(informer.size).toBe(1);
    // The server's watch timeout ends the stream; the informer resumes without relisting.
    api.lastWatch.end();
    await settle();
    expect(api.watches).toHaveLength(2);
    expect(api.lastWatch.query.resourceVersion).toBe("500");
    expect(api.lists).toHaveLength(1);
    await stop();
  });

  it("resumes a watch that fell silent from its last resourceVersion, at once and without relisting, and replays what it held back", async () => {
    const api = new FakeApi();
    api.put("a");
    const { informer, seen, stop } = startInformer(api);
    await informer.waitForSync();
    await settle();
    api.lastWatch.push("MODIFIED", api.put("a", "node-b"));
    await settle();
    // The stream stalls: the next change never reaches it, and the client cuts it for silence.
    const missed = api.put("b");
    api.lastWatch.fail(new WatchIdleError(PATH, 180_000));
    await settle();
    expect(api.lists).toHaveLength(1);
    expect(api.watches).toHaveLength(2);
    expect(api.lastWatch.query.resourceVersion).toBe("102");
    api.lastWatch.push("ADDED", missed);
    await settle();
    expect(seen.adds).toEqual(["a@101", "b@103"]);
    expect(names(informer.list())).toEqual(["a", "b"]);
    await stop();
  });

  async function expectRelist(cause: (api: FakeApi) => void): Promise<void> {
    const api = new FakeApi();
    api.put("gone");
    api.put("changed");
    api.put("same");
    const { informer, seen, stop } = startInformer(api);
    await informer.waitForSync();
    await settle();
    seen.adds.length = 0;
    // While the watch is broken the server moves on: events the informer never sees.
    api.remove("gone");
    api.put("changed", "node-b");
    api.put("new");
    cause(api);
    await settle();
    expect(api.lists).toHaveLength(2);
    expect(seen.deletes).toEqual(["gone@101"]);
    expect(seen.updates).toEqual([["changed@102", "changed@105"]]);
    expect(seen.adds).toEqual(["new@106"]);
    expect(names(informer.list())).toEqual(["changed", "new", "same"]);
    expect(names(informer.byIndex("byNode", "node-b"))).toEqual(["changed"]);
    expect(api.watches).toHaveLength(2);
    expect(api.lastWatch.query.resourceVersion).toBe("106");
    await stop();
  }

  it("relists on a watch ERROR event with code 410, telling handlers only what differs", async () => {
    await expectRelist((api) => api.lastWatch.push("ERROR", { kind: "Status", status: "Failure", reason: "Expired", code: 410, message: "too old resource version" }));
  });

  it("relists when the watch throws 410 Gone", async () => {
    await expectRelist((api) =>
      api.lastWatch.fail(new ApiError({ method: "WATCH", path: PATH, code: 410, status: { reason: "Gone", code: 410, message: "too old resource version" } })),
    );
  });

  it("retries a failing list with doubling backoff, and syncs once it succeeds", async () => {
    vi.useFakeTimers({ fakeNodeBuiltins: true });
    // No jitter: the waits are exactly the backoff.
    vi.spyOn(Math, "random").mockReturnValue(0);
    const api = new FakeApi();
    api.put("a");
    const unavailable = () => new ApiError({ method: "GET", path: PATH, code: 503, status: { reason: "ServiceUnavailable", code: 503 } });
    api.listFaults.push(unavailable(), unavailable());
    const { informer, stop } = startInformer(api);
    let synced = false;
    void informer.waitForSync().then(() => (synced = true));

    await vi.advanceTimersByTimeAsync(0);
    expect(api.lists).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(ERROR_BACKOFF_INITIAL_MS - 1);
    expect(api.lists).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(api.lists).toHaveLength(2);
    expect(synced).toBe(false);
    await vi.advanceTimersByTimeAsync(2 * ERROR_BACKOFF_INITIAL_MS - 1);
    expect(api.lists).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(api.lists).toHaveLength(3);
    expect(synced).toBe(true);
    expect(informer.hasSynced).toBe(true);
    expect(informer.size).toBe(1);
    await stop();
  });

  it("resolves waitForSync only once the first list is in the cache", async () => {
    const api = new FakeApi();
    api.put("a");
    let release!: () => void;
    api.listGate = new Promise((resolve) => (release = resolve));
    const { informer, stop } = startInformer(api);
    let synced = false;
    const waiting = informer.waitForSync().then(() => (synced = true));
    await settle();
    expect(synced).toBe(false);
    expect(informer.hasSynced).toBe(false);
    release();
    await waiting;
    expect(informer.size).toBe(1);
    // Later callers return at once.
    await informer.waitForSync();
    await stop();
  });

  it("rejects waitForSync when its signal aborts before the sync", async () => {
    const api = new FakeApi();
    api.listGate = new Promise(() => undefined);
    const { informer, stop } = startInformer(api);
    const abort = new AbortController();
    const waiting = informer.waitForSync(abort.signal);
    abort.abort(new Error("shutting down"));
    await expect(waiting).rejects.toThrow("shutting down");
    await stop();
  });

  it("drops managedFields by default, from lists and watch events alike", async () => {
    const api = new FakeApi();
    api.put("a");
    const { informer, stop } = startInformer(api);
    await informer.waitForSync();
    await settle();
    api.lastWatch.push("ADDED", api.put("b"));
    await settle();
    expect(informer.get("apps/a")?.metadata.managedFields).toBeUndefined();
    expect(informer.get("apps/b")?.metadata.managedFields).toBeUndefined();
    expect(informer.get("apps/b")?.spec?.nodeName).toBe("node-a");
    await stop();
  });

  it("caches what a custom transform returns", async () => {
    const api = new FakeApi();
    api.put("a", "node-x");
    const { informer, stop } = startInformer(api, {
      transform: (raw) => {
        const p = raw as Pod;
        return { metadata: { name: p.metadata.name, namespace: p.metadata.namespace, resourceVersion: p.metadata.resourceVersion }, spec: { nodeName: p.spec?.nodeName?.toUpperCase() } };
      },
    });
    await informer.waitForSync();
    expect(informer.get("apps/a")).toEqual({ metadata: { name: "a", namespace: "apps", resourceVersion: "101" }, spec: { nodeName: "NODE-X" } });
    await stop();
  });

  it("asks for PartialObjectMetadata on list and watch when metadataOnly", async () => {
    const api = new FakeApi();
    const { informer, stop } = startInformer(api, { metadataOnly: true });
    await informer.waitForSync();
    await settle();
    expect(api.lists[0]?.accept).toBe(METADATA_ONLY_ACCEPT.list);
    expect(api.lastWatch.accept).toBe(METADATA_ONLY_ACCEPT.watch);
    await stop();
  });

  it("ignores a watch event whose resourceVersion it already has, and stops on abort", async () => {
    const api = new FakeApi();
    const a = api.put("a");
    const { informer, seen, done, controller } = startInformer(api);
    await informer.waitForSync();
    await settle();
    api.lastWatch.push("MODIFIED", a);
    await settle();
    expect(seen.updates).toEqual([]);
    controller.abort();
    await expect(done).resolves.toBeUndefined();
  });
});
