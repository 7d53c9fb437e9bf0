import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { FINALIZER, LABEL_ORDINAL, type BatchRolloutStatus } from "../../api/batchrollout.ts";
import type { ReconcileContext } from "../../controllers/controller.ts";
import type { KubeResponse, RequestOptions } from "../../kube/client.ts";
import { ApiError } from "../../kube/errors.ts";
import { FencedError } from "../../kube/fence.ts";
import { RetryAfterGate } from "../../ratelimit/retry-after.ts";
import { LOSS_MIN_PAUSE_MS } from "../../ratelimit/sizer/index.ts";
import { MAX_WRITE_ATTEMPTS } from "./act.ts";
import { EventReason, StallReason } from "./conditions.ts";
import { EXPECTATION_TTL_MS, Expectations } from "./expectations.ts";
import { BY_ROLLOUT, slimPod, type CachedPod } from "./pod-cache.ts";
import { podEventHandlers } from "./pod-events.ts";
import { BatchRolloutReconciler, STATUS_PROGRESS_INTERVAL_MS, type RawRollout } from "./reconciler.ts";

// The reconciler against an in-memory cluster: the writes it sends land in a store, and the test
// decides when the informer caches catch up (sync), as they lag the API server in a real one.
// The API server itself is exercised by test/integration; here it is every branch of one pass.

const KEY = "sims/sim";
const POD_PATH = "/api/v1/namespaces/sims/pods";
const template = { metadata: { labels: { app: "sim" } }, spec: { containers: [{ name: "sim", image: "pause" }] } };

/** An API server answer whose body no caller here reads. */
const answered = (code: number): KubeResponse<never> => ({ code, headers: {}, body: undefined as never });

interface Event {
  type: string;
  reason: string;
  note: string;
}

class FakeCluster {
  rollout: RawRollout | undefined;
  readonly served = new Map<string, Record<string, unknown>>();
  readonly cached = new Map<string, CachedPod>();
  readonly requests: RequestOptions[] = [];
  readonly events: Event[] = [];
  readonly expectations = new Expectations();
  statusPatches = 0;
  /** Returns the error the API server answers a pod create with, if any. */
  refuseCreate: (pod: Record<string, unknown>) => Error | undefined = () => undefined;
  #uid = 0;
  readonly #handlers = podEventHandlers({ addAfter: () => undefined }, this.expectations);

  constructor(spec: Record<string, unknown>) {
    this.rollout = {
      apiVersion: "batchrollout.dev/v1alpha1",
      kind: "BatchRollout",
      metadata: { name: "sim", namespace: "sims", uid: "rollout-uid", generation: 1, resourceVersion: "1" },
      spec: { template, ...spec },
    };
  }

  readonly client = {
    request: async (req: RequestOptions) => {
      // As KubeClient does: a write whose fence says no is never sent.
      if (req.fence?.() === false) throw new FencedError(req.method, req.path);
      this.requests.push(req);
      await Promise.resolve();
      if (req.method === "POST" && req.path === POD_PATH) return this.#create(req.body as Record<string, unknown>);
      if (req.method === "DELETE" && req.path.startsWith(`${POD_PATH}/`)) return this.#delete(req.path.slice(POD_PATH.length + 1));
      if (req.method === "PATCH" && req.path.endsWith("/status")) return this.#patchStatus(req.body as { status: BatchRolloutStatus });
      if (req.method === "PATCH") return this.#patchMetadata(req.body as { metadata: { finalizers: string[] } });
      throw new Error(`unexpected request ${req.method} ${req.path}`);
    },
  };

  readonly rollouts = { get: (key: string) => (key === KEY ? this.rollout : undefined) };
  readonly pods = { byIndex: (_index: string, key: string) => (key === KEY && _index === BY_ROLLOUT ? [...this.cached.values()] : []) };

  #create(pod: Record<string, unknown>) {
    const name = (pod.metadata as { name: string }).name;
    const refusal = this.refuseCreate(pod);
    if (refusal) throw refusal;
    if (this.served.has(name)) throw new ApiError({ method: "POST", path: POD_PATH, code: 409, status: { reason: "AlreadyExists" } });
    const metadata = { ...(pod.metadata as object), namespace: "sims", uid: `pod-uid-${++this.#uid}` };
    this.served.set(name, { ...pod, metadata, status: { phase: "Pending" } });
    return answered(201);
  }

  #delete(name: string) {
    if (!this.served.delete(name)) throw new ApiError({ method: "DELETE", path: POD_PATH, code: 404, status: { reason: "NotFound" } });
    return answered(200);
  }

  #patchStatus({ status }: { status: BatchRolloutStatus }) {
    this.statusPatches++;
    if (this.rollout) this.rollout = { ...this.rollout, status };
    return answered(200);
  }

  #patchMetadata({ metadata }: { metadata: { finalizers: string[] } }) {
    if (!this.rollout) throw new ApiError({ method: "PATCH", path: "", code: 404, status: { reason: "NotFound" } });
    const { finalizers } = metadata;
    if (finalizers.length === 0 && this.rollout.metadata.deletionTimestamp) this.rollout = undefined;
    else this.rollout = { ...this.rollout, metadata: { ...this.rollout.metadata, finalizers } };
    return answered(200);
  }

  /** Every served pod scheduled, Running and Ready, as kwok would make them. */
  runAll(): void {
    for (const [name, pod] of this.served) {
      const conditions = [{ type: "PodScheduled", status: "True" }, { type: "Ready", status: "True" }];
      this.served.set(name, { ...pod, spec: { ...(pod.spec as object), nodeName: "node-0" }, status: { phase: "Running", conditions } });
    }
  }

  /** Every served pod bound to a node, still Pending. */
  scheduleAll(): void {
    for (const [name, pod] of this.served) {
      const conditions = [{ type: "PodScheduled", status: "True" }];
      this.served.set(name, { ...pod, spec: { ...(pod.spec as object), nodeName: "node-0" }, status: { phase: "Pending", conditions } });
    }
  }

  /** The informer caches catch up with the API server, and the pod event handlers run. */
  sync(): void {
    for (const [name, pod] of this.cached) {
      if (!this.served.has(name)) {
        this.cached.delete(name);
        this.#handlers.onDelete?.(pod);
      }
    }
    for (const [name, raw] of this.served) {
      const pod = slimPod(raw as never);
      const old = this.cached.get(name);
      this.cached.set(name, pod);
      if (old) this.#handlers.onUpdate?.(old, pod);
      else this.#handlers.onAdd?.(pod);
    }
  }

  createdNames(): string[] {
    return this.requests.filter((r) => r.method === "POST").map((r) => (r.body as { metadata: { name: string } }).metadata.name);
  }

  condition(type: string) {
    return this.rollout?.status?.conditions?.find((c) => c.type === type);
  }

  updateSpec(spec: Record<string, unknown>): void {
    if (!this.rollout) return;
    const generation = (this.rollout.metadata.generation ?? 0) + 1;
    this.rollout = { ...this.rollout, metadata: { ...this.rollout.metadata, generation }, spec: { ...(this.rollout.spec as object), ...spec } };
  }
}

function setup(spec: Record<string, unknown>, mayWrite?: () => boolean) {
  const cluster = new FakeCluster(spec);
  // The reconciler's clock, moved by the test; the pacer still spaces writes in real time.
  const clock = { now: Date.now() };
  const reconciler = new BatchRolloutReconciler({
    client: cluster.client,
    rollouts: cluster.rollouts,
    pods: cluster.pods,
    expectations: cluster.expectations,
    events: { event: (_regarding, type, reason, _action, note) => cluster.events.push({ type, reason, note }) },
    gate: new RetryAfterGate(),
    logger: pino({ level: "silent" }),
    now: () => clock.now,
    ...(mayWrite ? { mayWrite } : {}),
  });
  const ctx: ReconcileContext = { reconcileID: "r", logger: pino({ level: "silent" }), signal: new AbortController().signal };
  return { cluster, clock, reconcile: () => reconciler.reconcile(KEY, ctx) };
}

/** Fixed waves with no wait between them, so a test drives a rollout through as fast as it reconciles. */
const fixed = (size: number) => ({ waves: { strategy: "Fixed", initialSize: size, minInterval: "0s" } });

describe("BatchRolloutReconciler", () => {
  it("adds its finalizer, starts wave 1 with its writes and records it in status", async () => {
    const { cluster, reconcile } = setup({ replicas: 10, ...fixed(4) });
    await reconcile();
    expect(cluster.rollout?.metadata.finalizers).toEqual([FINALIZER]);
    expect(cluster.createdNames()).toEqual(["sim-0", "sim-1", "sim-2", "sim-3"]);
    expect(cluster.rollout?.status?.wave).toMatchObject({ number: 1, size: 4, limitedBy: "Fixed" });
    expect(cluster.rollout?.status?.observedGeneration).toBe(1);
    expect(cluster.events.map((e) => e.reason)).toEqual(expect.arrayContaining([EventReason.WaveStarted, EventReason.WaveFinished]));
  });

  it("never sends a create twice while the cache has not shown it yet", async () => {
    const { cluster, reconcile } = setup({ replicas: 6, ...fixed(4) });
    await reconcile();
    await reconcile(); // the cache still shows no pod: the four creates are expected, so only two remain
    await reconcile();
    expect(cluster.createdNames()).toEqual(["sim-0", "sim-1", "sim-2", "sim-3", "sim-4", "sim-5"]);
  });

  it("requeues itself by the time its writes' expectations expire, when the cache never shows them", async () => {
    const { cluster, clock, reconcile } = setup({ replicas: 4, ...fixed(4) });
    await reconcile();
    // The pod events are lost: nothing will enqueue the rollout again, so the reconcile must, once
    // its status is written and nothing else is due.
    clock.now += STATUS_PROGRESS_INTERVAL_MS;
    await reconcile();
    clock.now += 60_000;
    const waiting = await reconcile();
    expect(cluster.createdNames()).toHaveLength(4);
    expect(waiting.requeueAfterMs).toBeGreaterThan(0);
    expect(waiting.requeueAfterMs).toBeLessThanOrEqual(EXPECTATION_TTL_MS);
  });

  it("once its Lease is stale, sends neither pod writes nor a status patch that would overwrite its successor's", async () => {
    let leading = true;
    const { cluster, reconcile } = setup({ replicas: 8, ...fixed(4) }, () => leading);
    await reconcile();
    cluster.runAll();
    cluster.sync();
    const patches = cluster.statusPatches;
    const sent = cluster.requests.length;
    leading = false;
    // The status has news (four pods Ready) and a wave is due; neither may reach the API server, and
    // the reconcile fails so that the controller logs it (the replica exits once its renewal notices).
    await expect(reconcile()).rejects.toBeInstanceOf(FencedError);
    expect(cluster.statusPatches).toBe(patches);
    expect(cluster.requests.slice(sent).filter((r) => r.method !== "GET")).toEqual([]);
    expect(cluster.createdNames()).toHaveLength(4);
  });

  it("drives a rollout to Ready, creating each ordinal exactly once", async () => {
    const { cluster, reconcile } = setup({ replicas: 25, ...fixed(10) });
    for (let pass = 0; pass < 10 && cluster.condition("Ready")?.status !== "True"; pass++) {
      await reconcile();
      cluster.runAll();
      cluster.sync();
    }
    expect(cluster.condition("Ready")).toMatchObject({ status: "True", reason: "AllReplicasReady" });
    expect(new Set(cluster.createdNames()).size).toBe(25);
    expect(cluster.createdNames()).toHaveLength(25);
    expect(cluster.rollout?.status).toMatchObject({ replicas: 25, readyReplicas: 25 });
  });

  it("creates no more than spec.guards.kubelet.maxStarting pods ahead of the nodes that start them", async () => {
    const { cluster, reconcile } = setup({ replicas: 40, ...fixed(10), guards: { kubelet: { maxStarting: 15 } } });
    await reconcile();
    cluster.scheduleAll();
    cluster.sync();
    await reconcile();
    expect(cluster.createdNames()).toHaveLength(15);
    expect(cluster.rollout?.status?.wave).toMatchObject({ size: 5, limitedBy: "Kubelet" });
    expect(cluster.rollout?.status?.signals?.kubelet).toEqual({ starting: 10 });
    cluster.scheduleAll();
    cluster.sync();
    await reconcile();
    expect(cluster.createdNames()).toHaveLength(15);
    expect(cluster.rollout?.status?.wave).toMatchObject({ size: 0, limitedBy: "Kubelet" });
    expect(cluster.condition("Progressing")).toMatchObject({ status: "True" });
    expect(cluster.condition("Stalled")?.status).not.toBe("True");
    cluster.runAll();
    cluster.sync();
    await reconcile();
    expect(cluster.createdNames()).toHaveLength(25);
    expect(cluster.rollout?.status?.signals?.kubelet).toEqual({ starting: 0 });
  });

  it("counts its creates the cache has not shown yet against maxStarting, so a lagging watch cannot overshoot it", async () => {
    const { cluster, reconcile } = setup({ replicas: 40, ...fixed(10), guards: { kubelet: { maxStarting: 15 } } });
    await reconcile();
    await reconcile(); // no sync: the ten creates are still expected, not yet seen
    expect(cluster.createdNames()).toHaveLength(15);
    expect(cluster.rollout?.status?.signals?.kubelet).toEqual({ starting: 10 });
  });

  it("reports a template the API server rejects as Stalled in the same reconcile, and resumes once the spec changes", async () => {
    const { cluster, reconcile } = setup({ replicas: 5, ...fixed(50) });
    const invalid = new ApiError({ method: "POST", path: POD_PATH, code: 422, status: { reason: "Invalid", message: 'Pod "sim-0" is invalid: spec.containers[0].image: Required value' } });
    cluster.refuseCreate = () => invalid;
    await reconcile();
    expect(cluster.condition("Stalled")).toMatchObject({ status: "True", reason: StallReason.TemplateRejected });
    expect(cluster.condition("Stalled")?.message).toContain("spec.containers[0].image: Required value");
    expect(cluster.events.some((e) => e.type === "Warning" && e.reason === EventReason.TemplateRejected)).toBe(true);

    // Nothing more is sent for this generation.
    const sent = cluster.requests.filter((r) => r.method === "POST").length;
    await reconcile();
    expect(cluster.requests.filter((r) => r.method === "POST")).toHaveLength(sent);

    cluster.refuseCreate = () => undefined;
    cluster.updateSpec({ template: { ...template, spec: { containers: [{ name: "sim", image: "pause:3.10" }] } } });
    await reconcile();
    expect(cluster.served.size).toBe(5);
    expect(cluster.condition("Stalled")).toMatchObject({ status: "False" });
  });

  it("throws when writes fail after every retry, so the controller backs off, and retries the same ordinals after a pause", async () => {
    const { cluster, clock, reconcile } = setup({ replicas: 2, ...fixed(50) });
    let down = true;
    cluster.refuseCreate = () => (down ? new ApiError({ method: "POST", path: POD_PATH, code: 500, status: { reason: "InternalError" } }) : undefined);
    await expect(reconcile()).rejects.toThrow(/500 InternalError/);
    expect(cluster.requests.filter((r) => r.method === "POST")).toHaveLength(2 * MAX_WRITE_ATTEMPTS);
    expect(cluster.events.some((e) => e.type === "Warning" && e.reason === EventReason.WriteFailed)).toBe(true);
    down = false;
    // The failures were losses: the sizer holds the next wave for a while.
    const held = await reconcile();
    expect(held.requeueAfterMs).toBeGreaterThan(0);
    expect(held.requeueAfterMs).toBeLessThanOrEqual(LOSS_MIN_PAUSE_MS);
    expect(cluster.served.size).toBe(0);
    clock.now += LOSS_MIN_PAUSE_MS;
    await reconcile();
    expect([...cluster.served.keys()].sort()).toEqual(["sim-0", "sim-1"]);
  });

  it("reports a spec the API server did not validate as InvalidSpec and writes nothing", async () => {
    const { cluster, reconcile } = setup({ replicas: -3 });
    expect(await reconcile()).toEqual({});
    expect(cluster.condition("Stalled")).toMatchObject({ status: "True", reason: StallReason.InvalidSpec });
    expect(cluster.events.some((e) => e.reason === EventReason.InvalidSpec)).toBe(true);
    expect(cluster.requests.filter((r) => r.method !== "PATCH")).toHaveLength(0);
  });

  it("scales down from the highest ordinal, with each pod's UID as the delete's precondition", async () => {
    const { cluster, reconcile } = setup({ replicas: 4, ...fixed(50) });
    await reconcile();
    cluster.runAll();
    cluster.sync();
    cluster.updateSpec({ replicas: 2 });
    await reconcile();
    const deletes = cluster.requests.filter((r) => r.method === "DELETE");
    expect(deletes.map((r) => r.path.split("/").pop())).toEqual(["sim-3", "sim-2"]);
    expect(deletes.map((r) => (r.body as { preconditions?: { uid: string } }).preconditions?.uid)).toEqual(["pod-uid-4", "pod-uid-3"]);
  });

  it("on deletion removes every pod first and its finalizer last", async () => {
    const { cluster, reconcile } = setup({ replicas: 3, ...fixed(50) });
    await reconcile();
    cluster.sync();
    if (!cluster.rollout) throw new Error("rollout missing");
    cluster.rollout = { ...cluster.rollout, metadata: { ...cluster.rollout.metadata, deletionTimestamp: "2026-12-02T00:00:00Z" } };
    await reconcile();
    expect(cluster.served.size).toBe(0);
    expect(cluster.rollout?.metadata.finalizers).toEqual([FINALIZER]); // the cache has not shown the pods gone yet
    cluster.sync();
    await reconcile();
    expect(cluster.rollout).toBeUndefined();
  });

  it("batches status patches that only report progress to one per STATUS_PROGRESS_INTERVAL_MS", async () => {
    const { cluster, clock, reconcile } = setup({ replicas: 2, ...fixed(50) });
    await reconcile();
    cluster.sync(); // the pods show, Pending: the Progressing condition moves on, which is patched at once
    await reconcile();
    const patches = cluster.statusPatches;
    cluster.scheduleAll(); // bound to a node but not yet Running: a change of counts only
    cluster.sync();
    const batched = await reconcile();
    expect(cluster.statusPatches).toBe(patches);
    expect(batched.requeueAfterMs).toBeGreaterThan(0);
    expect(batched.requeueAfterMs).toBeLessThanOrEqual(STATUS_PROGRESS_INTERVAL_MS);
    clock.now += STATUS_PROGRESS_INTERVAL_MS;
    await reconcile();
    expect(cluster.statusPatches).toBe(patches + 1);
    expect(cluster.rollout?.status).toMatchObject({ scheduledReplicas: 2 });
    await reconcile(); // nothing changed: no patch
    expect(cluster.statusPatches).toBe(patches + 1);
  });

  it("forgets a rollout that is gone from the cache", async () => {
    const { cluster, reconcile } = setup({ replicas: 1, ...fixed(50) });
    await reconcile();
    cluster.rollout = undefined;
    expect(await reconcile()).toEqual({});
    expect(cluster.expectations.pending(KEY).creates.size).toBe(0);
  });

  it("keeps the ordinal label on every pod it creates", async () => {
    const { cluster, reconcile } = setup({ replicas: 2, ...fixed(50) });
    await reconcile();
    const labels = [...cluster.served.values()].map((p) => (p.metadata as { labels: Record<string, string> }).labels[LABEL_ORDINAL]);
    expect(labels.sort()).toEqual(["0", "1"]);
  });
});
