import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { PORTS } from "../cluster/layout.ts";
import type { KubeClient } from "../../src/kube/client.ts";
import { PODS, resourcePath } from "../../src/kube/resources.ts";
import { MetricsEndpoint } from "../../src/ratelimit/signals/metrics-endpoint.ts";
import { CREATION_RATE_WINDOW_MS } from "../../src/ratelimit/signals/creation-rate.ts";
import { OthersCreatingSignal } from "../../src/ratelimit/signals/others-creating.ts";
import { SchedulerSignal } from "../../src/ratelimit/signals/scheduler.ts";
import { adminClient, createTestNamespace, deleteNamespace, eventually, operatorClient } from "./support/cluster.ts";

// The scheduler signal against the real kube-scheduler: pods it cannot place carry its verdict
// (PodScheduled=False, Unschedulable, and its message), a gated pod waits without a try, and a pod it
// binds leaves the unscheduled-pod cache. The same cache tells how fast others create pods.

const logger = pino({ level: process.env.BATCHROLLOUT_TEST_LOG ?? "silent" });
const ROLLOUT = "fleet";

/** A node selector no node matches: the scheduler finds these pods unschedulable. */
const NOWHERE = { nodeSelector: { "batchrollout.dev/test-no-such-node": "true" } };

function pod(name: string, spec: Record<string, unknown> = {}, labels: Record<string, string> = { "batchrollout.dev/name": ROLLOUT }) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, labels },
    spec: { containers: [{ name: "main", image: "registry.k8s.io/pause:3.10" }], ...spec },
  };
}

describe("SchedulerSignal", () => {
  let admin: KubeClient;
  let operator: KubeClient;
  let ns: string;
  const stops: AbortController[] = [];
  const endpoints: MetricsEndpoint[] = [];

  beforeAll(async () => {
    admin = await adminClient();
    operator = await operatorClient();
  });

  afterEach(async () => {
    for (const c of stops.splice(0)) c.abort();
    for (const e of endpoints.splice(0)) await e.close();
    await deleteNamespace(admin, ns);
  });

  afterAll(async () => {
    await Promise.all([admin.close(), operator.close()]);
  });

  /** A running signal whose cache has synced, stopped after the test. */
  async function startSignal(
    opts: Omit<ConstructorParameters<typeof SchedulerSignal>[0], "client" | "logger"> = {},
    subscribe: (signal: SchedulerSignal) => void = () => undefined,
  ): Promise<SchedulerSignal> {
    const signal = new SchedulerSignal({ client: operator, logger, ...opts });
    subscribe(signal);
    const stop = new AbortController();
    stops.push(stop);
    void signal.run(stop.signal);
    await signal.waitForSync();
    return signal;
  }

  it("counts unschedulable pods with the scheduler's message, gated pods, and forgets bound ones", async () => {
    ns = await createTestNamespace(admin, "signals-scheduler");
    const metrics = new MetricsEndpoint({ url: `https://127.0.0.1:${PORTS.scheduler}/metrics`, insecureSkipTLSVerify: true });
    endpoints.push(metrics);
    const signal = await startSignal({ metrics, metricsIntervalMs: 500 });

    const pods = resourcePath(PODS, { namespace: ns });
    for (let i = 0; i < 3; i++) await operator.create(pods, pod(`${ROLLOUT}-${i}`, NOWHERE));
    await operator.create(pods, pod(`${ROLLOUT}-gated`, { schedulingGates: [{ name: "batchrollout.dev/test-gate" }] }));
    await operator.create(pods, pod(`${ROLLOUT}-placed`));
    await operator.create(pods, pod("stranger", NOWHERE, { app: "other" }));

    const counts = await eventually("the scheduler's verdict on every pod", async () => {
      const c = signal.pending("Rollout", `${ns}/${ROLLOUT}`);
      return c && c.pending === 4 && c.unschedulable === 3 && c.gated === 1 ? c : undefined;
    });
    expect(counts).toMatchObject({ pending: 4, unschedulable: 3, gated: 1, notYetTried: 0 });
    expect(counts.firstUnschedulableMessage).toMatch(/node\(s\) didn't match Pod's node affinity\/selector/);

    // The bound pod is on a node: it is not in the cache at all.
    const placed = await eventually("fleet-placed bound", async () => {
      const p = await admin.get<{ spec: { nodeName?: string } }>(`${pods}/${ROLLOUT}-placed`);
      return p.spec.nodeName;
    });
    expect(placed).toMatch(/^kwok-node-/);
    // Cluster scope counts the stranger too (and whatever other tests left waiting). The stranger was
    // created last, so the scheduler's verdict on it may still be on its way.
    const cluster = await eventually("the scheduler's verdict on the stranger", async () => {
      const c = signal.pending("Cluster", `${ns}/${ROLLOUT}`);
      return c && c.pending >= 5 && c.unschedulable >= 4 ? c : undefined;
    });
    expect(cluster.pending).toBeGreaterThanOrEqual(5);
    expect(cluster.unschedulable).toBeGreaterThanOrEqual(4);

    // kube-scheduler's own queues agree: at least our gated pod and our four unschedulable ones.
    const queues = await eventually("kube-scheduler queues", async () => {
      const q = signal.queues();
      return q && (q.gated ?? 0) >= 1 && (q.unschedulable ?? 0) + (q.backoff ?? 0) >= 4 ? q : undefined;
    });
    expect(queues.active).toBeGreaterThanOrEqual(0);

    // Removing the gate lets the scheduler try; the pod lands on a node and leaves the count.
    await operator.patch(`${pods}/${ROLLOUT}-gated`, { spec: { schedulingGates: null } }, "application/strategic-merge-patch+json");
    const after = await eventually("gated pod bound", async () => {
      const c = signal.pending("Rollout", `${ns}/${ROLLOUT}`);
      return c && c.gated === 0 && c.pending === 3 ? c : undefined;
    });
    expect(after).toMatchObject({ pending: 3, unschedulable: 3, gated: 0 });
  });

  it("reads how fast others create pods, from pods no rollout owns", async () => {
    ns = await createTestNamespace(admin, "signals-others");
    // A clock that stands still keeps every pod seen since the sync inside the window, however
    // slowly a loaded machine answers the creates.
    let others: OthersCreatingSignal | undefined;
    await startSignal({ clock: () => 0 }, (signal) => (others = new OthersCreatingSignal({ pods: signal, clock: () => 0 })));

    const pods = resourcePath(PODS, { namespace: ns });
    const strangers = 20;
    await Promise.all(Array.from({ length: strangers }, (_, i) => operator.create(pods, pod(`stranger-${i}`, NOWHERE, { app: "other" }))));
    // Other tests' pods may add to it.
    const rate = await eventually("the strangers counted", async () => {
      const r = others?.perSecond() ?? 0;
      return r * (CREATION_RATE_WINDOW_MS / 1_000) >= strangers ? r : undefined;
    });
    expect(rate).toBeGreaterThanOrEqual(strangers / (CREATION_RATE_WINDOW_MS / 1_000));
  });
});
