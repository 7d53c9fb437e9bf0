import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { KubeResponse, Query, RequestOptions, WatchEvent } from "../../kube/client.ts";
import {
  SchedulerSignal,
  UNSCHEDULABLE_MESSAGE_MAX_CHARS,
  UNSCHEDULED_PODS_FIELD_SELECTOR,
  countPending,
  parseSchedulerQueues,
  slimUnscheduledPod,
  waitReason,
} from "./scheduler.ts";
import { CREATION_RATE_WINDOW_MS } from "./creation-rate.ts";
import { OthersCreatingSignal } from "./others-creating.ts";

const logger = pino({ level: "silent" });
const NO_NODE = "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.";

function rawPod(name: string, opts: { ns?: string; rollout?: string; gates?: boolean; condition?: { status: string; reason?: string; message?: string }; deleting?: boolean; node?: string } = {}) {
  return {
    metadata: {
      name,
      namespace: opts.ns ?? "sims",
      resourceVersion: "1",
      labels: { app: "sim", ...(opts.rollout ? { "batchrollout.dev/name": opts.rollout } : {}) },
      managedFields: [{ manager: "kubectl" }],
      ...(opts.deleting ? { deletionTimestamp: "2026-01-01T00:00:00Z" } : {}),
    },
    spec: { containers: [{ name: "c", image: "busybox" }], ...(opts.gates ? { schedulingGates: [{ name: "example.com/quota" }] } : {}), ...(opts.node ? { nodeName: opts.node } : {}) },
    status: { phase: "Pending", conditions: opts.condition ? [{ type: "PodScheduled", lastTransitionTime: "2026-01-01T00:00:00Z", ...opts.condition }] : [] },
  };
}

describe("slimUnscheduledPod", () => {
  it("keeps identity, our label, gates and PodScheduled only", () => {
    const slim = slimUnscheduledPod(rawPod("a", { rollout: "fleet", gates: true, condition: { status: "False", reason: "SchedulingGated" } }));
    expect(slim).toEqual({
      metadata: { name: "a", namespace: "sims", resourceVersion: "1", labels: { "batchrollout.dev/name": "fleet" } },
      gated: true,
      scheduled: { status: "False", reason: "SchedulingGated" },
    });
  });
});

describe("waitReason", () => {
  it("splits gated, unschedulable and not yet tried", () => {
    expect(waitReason(slimUnscheduledPod(rawPod("g", { gates: true })))).toBe("SchedulingGated");
    expect(waitReason(slimUnscheduledPod(rawPod("u", { condition: { status: "False", reason: "Unschedulable", message: NO_NODE } })))).toBe("Unschedulable");
    expect(waitReason(slimUnscheduledPod(rawPod("n")))).toBe("NotYetTried");
    expect(waitReason(slimUnscheduledPod(rawPod("e", { condition: { status: "False", reason: "SchedulerError" } })))).toBe("NotYetTried");
    expect(waitReason(slimUnscheduledPod(rawPod("d", { deleting: true })))).toBeUndefined();
  });
});

describe("countPending", () => {
  it("counts each reason and quotes one unschedulable message, truncated", () => {
    const long = "x".repeat(UNSCHEDULABLE_MESSAGE_MAX_CHARS + 10);
    const pods = [
      rawPod("u1", { condition: { status: "False", reason: "Unschedulable", message: long } }),
      rawPod("u2", { condition: { status: "False", reason: "Unschedulable", message: NO_NODE } }),
      rawPod("g", { gates: true }),
      rawPod("n"),
      rawPod("d", { deleting: true }),
    ].map(slimUnscheduledPod);
    const counts = countPending(pods);
    expect(counts).toMatchObject({ pending: 4, unschedulable: 2, gated: 1, notYetTried: 1 });
    expect(counts.firstUnschedulableMessage).toHaveLength(UNSCHEDULABLE_MESSAGE_MAX_CHARS);
  });
});

describe("parseSchedulerQueues", () => {
  it("reads scheduler_pending_pods by queue", () => {
    const text = [
      "# TYPE scheduler_pending_pods gauge",
      'scheduler_pending_pods{queue="active"} 2',
      'scheduler_pending_pods{queue="backoff"} 1',
      'scheduler_pending_pods{queue="gated"} 4',
      'scheduler_pending_pods{queue="unschedulable"} 30',
      "scheduler_pending_pods_other 9",
    ].join("\n");
    expect(parseSchedulerQueues(text, 5)).toEqual({ at: 5, active: 2, backoff: 1, gated: 4, unschedulable: 30 });
    expect(parseSchedulerQueues("up 1", 5)).toBeUndefined();
  });
});

describe("SchedulerSignal", () => {
  const controllers: AbortController[] = [];
  afterEach(() => {
    for (const c of controllers.splice(0)) c.abort();
  });

  function fakeClient(items: unknown[], events: WatchEvent<unknown>[] = []) {
    const requests: RequestOptions[] = [];
    return {
      requests,
      client: {
        request: async <T>(o: RequestOptions): Promise<KubeResponse<T>> => {
          requests.push(o);
          return { code: 200, headers: {}, body: { metadata: { resourceVersion: "10" }, items } as T };
        },
        async *watch<T>(_path: string, _query: Query, signal: AbortSignal): AsyncGenerator<WatchEvent<T>> {
          yield* events.splice(0) as WatchEvent<T>[];
          await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
          // A watch that stays open without events until the informer stops.
          yield* [];
        },
      },
    };
  }

  it("lists unbound pods only and counts them per rollout or for the cluster", async () => {
    const { client, requests } = fakeClient([
      rawPod("fleet-0", { rollout: "fleet", condition: { status: "False", reason: "Unschedulable", message: NO_NODE } }),
      rawPod("fleet-1", { rollout: "fleet", gates: true }),
      rawPod("fleet-0", { ns: "other", rollout: "fleet" }),
      rawPod("stray"),
      rawPod("fleet-2", { rollout: "fleet", node: "node-a" }), // Pending but bound: the kubelet's, not the scheduler's
    ]);
    const signal = new SchedulerSignal({ client, logger });
    expect(signal.pending("Rollout", "sims/fleet")).toBeUndefined();
    const c = new AbortController();
    controllers.push(c);
    void signal.run(c.signal);
    await signal.waitForSync();
    expect(requests[0]?.query?.fieldSelector).toBe(UNSCHEDULED_PODS_FIELD_SELECTOR);
    expect(requests[0]?.path).toBe("/api/v1/pods");
    expect(signal.pending("Rollout", "sims/fleet")).toEqual({ pending: 2, unschedulable: 1, gated: 1, notYetTried: 0, firstUnschedulableMessage: NO_NODE });
    expect(signal.pending("Rollout", "other/fleet")).toMatchObject({ pending: 1, notYetTried: 1 });
    expect(signal.pending("Cluster", "sims/fleet")).toMatchObject({ pending: 4, unschedulable: 1, gated: 1, notYetTried: 2 });
    expect(signal.pending("Rollout", "sims/none")).toMatchObject({ pending: 0 });
  });

  it("keeps the last scheduler queues and drops them when a scrape fails", async () => {
    let fail = false;
    const metrics = { url: "https://scheduler/metrics", scrape: async () => (fail ? Promise.reject(new Error("connection refused")) : 'scheduler_pending_pods{queue="active"} 7') };
    const signal = new SchedulerSignal({ client: fakeClient([]).client, logger, metrics, clock: () => 42 });
    expect(await signal.scrapeQueues()).toEqual({ at: 42, active: 7 });
    fail = true;
    expect(await signal.scrapeQueues()).toBeUndefined();
    expect(signal.queues()).toBeUndefined();
  });

  it("feeds OthersCreatingSignal the pods others create once synced: not those listed at start, not any rollout's, not those created bound", async () => {
    let now = 100_000;
    const { client } = fakeClient(
      [rawPod("before-0"), rawPod("before-1")],
      [
        { type: "ADDED", object: rawPod("job-0") },
        { type: "ADDED", object: rawPod("job-1") },
        { type: "MODIFIED", object: { ...rawPod("job-1"), metadata: { ...rawPod("job-1").metadata, resourceVersion: "2" } } },
        { type: "ADDED", object: rawPod("fleet-0", { rollout: "fleet" }) },
        { type: "ADDED", object: rawPod("static", { node: "node-a" }) },
      ],
    );
    const signal = new SchedulerSignal({ client, logger, clock: () => now });
    const others = new OthersCreatingSignal({ pods: signal, clock: () => now });
    expect(others.perSecond()).toBeUndefined();
    const c = new AbortController();
    controllers.push(c);
    void signal.run(c.signal);
    await signal.waitForSync();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(signal.pending("Cluster", "")).toMatchObject({ pending: 5 });
    expect(others.perSecond()).toBe(2 / (CREATION_RATE_WINDOW_MS / 1_000));
    now += CREATION_RATE_WINDOW_MS;
    expect(others.perSecond()).toBe(0);
  });
});
