import { describe, expect, it } from "vitest";
import { LABEL_NAME } from "../../src/api/batchrollout.ts";
import type { KubeClient } from "../../src/kube/client.ts";
import { isNotFound } from "../../src/kube/errors.ts";
import { NODES, resourcePath } from "../../src/kube/resources.ts";
import { kwokNode } from "../cluster/cluster.ts";
import { eventually } from "./support/cluster.ts";
import { PAUSE_IMAGE, POD_REQUESTS, conditionOf, createRollout, seconds, useTestBed, type TestRollout } from "./support/batchrollout.ts";
import { PodTracker, StatusRecorder, type Taint, inBatches, isNodeReady, nodePath, waitForNoNewPods } from "./support/adaptive.ts";

// Issue 4, IP headroom: 50 extra nodes with a /28 podCIDR each (13 usable addresses: network,
// gateway and broadcast are not) hold 650 pod IPs. A 2,000-pod rollout confined to them with
// spec.guards.ipam {provider NodePodCIDR, reserve 10%} must stop at exactly 650 − ceil(10 % × 650)
// = 585 pods, never create one more (checked at every watch event), and say so (limitedBy IPAM,
// Stalled InsufficientPodIPs with the numbers). Ten more such nodes raise the cap to
// 780 − 78 = 702, and it must resume up to exactly that.

const NAME = "fleet";
const REPLICAS = 2_000;
const POOL = { pool: "small-cidr" } as const;
const NODE_NAME_PREFIX = "adaptive-ipam-node-";
const FIRST_NODES = 50;
const EXTRA_NODES = 10;
const POD_CIDR_PREFIX_LENGTH = 28;
/** Addresses of an IPv4 range no pod gets: the network address, the .1 gateway and broadcast. */
const IPV4_UNUSABLE_PER_RANGE = 3;
const USABLE_PER_NODE = 2 ** (32 - POD_CIDR_PREFIX_LENGTH) - IPV4_UNUSABLE_PER_RANGE;
const RESERVE_PERCENT = 10;
/**
 * Keeps every other test's pods off these nodes: a stray pod there would take one of the few
 * addresses and move the cap under this test's feet. The template tolerates it.
 */
const POOL_TAINT: Taint = { key: "batchrollout.dev/test-pool", value: "small-cidr", effect: "NoSchedule" };
/**
 * Spreads the pods evenly over the pool. The scheduler knows nothing of pod IPs and, with every
 * node scoring the same, places pods at random: some nodes would get more pods than addresses,
 * pods that can never get an IP, and "exactly 585" would not be well defined. With maxSkew 1 no
 * node holds more than ceil(702 / 60) = 12 pods, within its 13 addresses (checked below).
 */
const TEMPLATE = {
  spec: {
    containers: [{ name: "main", image: PAUSE_IMAGE, resources: { requests: POD_REQUESTS } }],
    nodeSelector: POOL,
    tolerations: [{ key: POOL_TAINT.key, operator: "Equal", value: POOL_TAINT.value, effect: POOL_TAINT.effect }],
    topologySpreadConstraints: [
      { maxSkew: 1, topologyKey: "kubernetes.io/hostname", whenUnsatisfiable: "DoNotSchedule", labelSelector: { matchLabels: { [LABEL_NAME]: NAME } } },
    ],
  },
};
/** The packed case (issue 23): 20 such nodes, no spread constraint, 500 replicas, reserve 5 %. */
const PACKED_NODES = 20;
const PACKED_REPLICAS = 500;
const PACKED_RESERVE_PERCENT = 5;
const NODE_WRITE_CONCURRENCY = 10;
/** kwok makes a node Ready within a second or two; the not-ready taint follows shortly after. */
const NODES_READY_TIMEOUT_MS = 90_000;
const NODES_GONE_TIMEOUT_MS = 60_000;
/** "Stopped creating": no pod added for this long. */
const QUIET_MS = 10_000;
/** Until the rollout holds at the cap: a few hundred pods, then the quiet period. */
const HOLD_TIMEOUT_MS = 180_000;
const TEST_TIMEOUT_MS = 420_000;

interface Expectation {
  nodes: number;
  capacity: number;
  reserve: number;
  cap: number;
}

/** What the guard must allow with `nodes` pool nodes: every usable address but the reserve. */
function expectationFor(nodes: number): Expectation {
  const capacity = nodes * USABLE_PER_NODE;
  const reserve = Math.ceil((capacity * RESERVE_PERCENT) / 100);
  return { nodes, capacity, reserve, cap: capacity - reserve };
}

const nodeName = (i: number) => `${NODE_NAME_PREFIX}${String(i).padStart(2, "0")}`;

interface NodeObject {
  metadata: { name: string };
  spec?: { taints?: Taint[] };
  status?: { conditions?: { type: string; status: string }[] };
}

/** Creates pool nodes first..first+count-1 and waits until each is Ready and carries no taint but the pool's. */
async function createPoolNodes(admin: KubeClient, first: number, count: number, created: string[]): Promise<void> {
  const indices = Array.from({ length: count }, (_, i) => first + i);
  const names = indices.map(nodeName);
  await inBatches(indices, NODE_WRITE_CONCURRENCY, async (i) => {
    const name = nodeName(i);
    const node = kwokNode(name, { labels: POOL, podCIDR: `10.200.${i}.0/${POD_CIDR_PREFIX_LENGTH}` }) as { spec: Record<string, unknown> };
    node.spec = { ...node.spec, taints: [POOL_TAINT] };
    created.push(name);
    await admin.create(resourcePath(NODES), node);
  });
  const wanted = new Set(names);
  await eventually(
    `${count} pool nodes Ready without a not-ready taint`,
    async () => {
      const list = await admin.get<{ items: NodeObject[] }>(resourcePath(NODES), { labelSelector: "pool=small-cidr" });
      const usable = list.items.filter((n) => wanted.has(n.metadata.name) && isNodeReady(n) && (n.spec?.taints ?? []).every((t) => t.key === POOL_TAINT.key));
      return usable.length === count;
    },
    NODES_READY_TIMEOUT_MS,
    1_000,
  );
}

async function deletePoolNodes(admin: KubeClient, names: readonly string[]): Promise<void> {
  await inBatches(names, NODE_WRITE_CONCURRENCY, (name) =>
    admin.delete(nodePath(name)).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    }),
  );
  await eventually(
    "pool nodes gone",
    async () => (await admin.get<{ items: unknown[] }>(resourcePath(NODES), { labelSelector: "pool=small-cidr" })).items.length === 0,
    NODES_GONE_TIMEOUT_MS,
    1_000,
  );
}

interface Pool {
  tracker: PodTracker;
  recorder: StatusRecorder;
  /** Names of the pool nodes created, deleted again whatever happens. */
  created: string[];
}

/**
 * Runs `body` with a pod tracker and a status recorder on `ns`, on a pool cleared of nodes a run
 * that died before its cleanup left (they would change every number), and removes the pool after:
 * every other test shares the scheduler and the operator's node caches.
 */
async function withPool(admin: KubeClient, ns: string, body: (pool: Pool) => Promise<void>): Promise<void> {
  const leftovers = await admin.get<{ items: NodeObject[] }>(resourcePath(NODES), { labelSelector: "pool=small-cidr" });
  await deletePoolNodes(admin, leftovers.items.map((n) => n.metadata.name));
  const pool: Pool = { tracker: new PodTracker(admin, ns), recorder: new StatusRecorder(admin, ns, [NAME]), created: [] };
  await pool.tracker.start();
  try {
    await body(pool);
  } finally {
    await pool.recorder.stop();
    await pool.tracker.stop();
    await deletePoolNodes(admin, pool.created);
  }
}

/** The rollout's latest status once `held` says it is held, or an error with the pod count and status. */
function waitForHold(pool: Pool, what: string, held: (r: TestRollout) => boolean): Promise<TestRollout> {
  return eventually(
    what,
    async () => {
      const r = pool.recorder.latest(NAME);
      return r && held(r) ? r : undefined;
    },
    HOLD_TIMEOUT_MS,
  ).catch((err: unknown) => {
    throw new Error(`${String(err)}; ${pool.tracker.counts().count} pods; last status ${JSON.stringify(pool.recorder.latest(NAME)?.status)}`, { cause: err });
  });
}

describe("adaptive waves against pod IP headroom", () => {
  const bed = useTestBed();

  it(
    "stops at exactly the pool's usable addresses minus the reserve (never one pod more), says so, and resumes up to the new cap when nodes are added",
    async () => {
      const ns = await bed.namespace("adaptive-ipam");
      const { admin } = bed;
      await withPool(admin, ns, async (pool) => {
        const { tracker, recorder, created } = pool;
        const first = expectationFor(FIRST_NODES);
        tracker.setCap(first.cap);
        await createPoolNodes(admin, 0, FIRST_NODES, created);
        bed.operator();
        recorder.start();
        const started = Date.now();
        await createRollout(admin, ns, NAME, { replicas: REPLICAS, template: TEMPLATE, guards: { ipam: { provider: "NodePodCIDR", reserve: `${RESERVE_PERCENT}%` } } });
        await holdsAt(first, started);

        const second = expectationFor(FIRST_NODES + EXTRA_NODES);
        tracker.setCap(second.cap);
        const added = Date.now();
        await createPoolNodes(admin, FIRST_NODES, EXTRA_NODES, created);
        // The old hold is still in status until the operator sees the new nodes: first the resume.
        await eventually(`creation resumed beyond ${first.cap} pods`, async () => tracker.counts().count > first.cap, HOLD_TIMEOUT_MS).catch((err: unknown) => {
          throw new Error(`${String(err)}; last status ${JSON.stringify(recorder.latest(NAME)?.status)}`, { cause: err });
        });
        await holdsAt(second, added);

        /** Waits for the hold at `e.cap`, then checks the count, the watch's maximum and the status. */
        async function holdsAt(e: Expectation, since: number): Promise<void> {
          const held = await waitForHold(
            pool,
            `the rollout held by IPAM at ${e.cap} pods`,
            (r) => conditionOf(r, "Stalled")?.reason === "InsufficientPodIPs" && r.status?.signals?.ipam?.capacity === e.capacity,
          );
          const stopped = await waitForNoNewPods(tracker, QUIET_MS, HOLD_TIMEOUT_MS);
          const latest = recorder.latest(NAME) ?? held;
          const status = latest.status;
          const free = e.capacity - e.cap;
          const perNode = [...tracker.podsPerNode(new Set(created)).values()];
          console.log(
            `[figure] IP headroom with ${e.nodes} /${POD_CIDR_PREFIX_LENGTH} nodes (${e.capacity} usable, reserve ${e.reserve}): ` +
              `held at ${stopped} pods (expected ${e.cap}, most ever seen ${tracker.counts().maxCount}) ${seconds(Date.now() - since - QUIET_MS)} s after start; ` +
              `most pods on one node ${Math.max(0, ...perNode)}; wave ${status?.wave?.number}: ${status?.wave?.message}`,
          );
          // Soft: the second phase (more nodes) is worth running even when the first hold is off.
          expect.soft(tracker.violations).toEqual([]);
          expect.soft(stopped).toBe(e.cap);
          expect.soft(tracker.counts().maxCount).toBe(e.cap);
          // The premise of the arithmetic: no node holds more pods than it has addresses.
          expect.soft(Math.max(0, ...perNode)).toBeLessThanOrEqual(USABLE_PER_NODE);
          expect.soft(status?.wave?.limitedBy).toBe("IPAM");
          expect.soft(status?.signals?.ipam).toMatchObject({ provider: "NodePodCIDR", capacity: e.capacity, free });
          const stalled = conditionOf(latest, "Stalled");
          expect.soft(stalled).toMatchObject({ status: "True", reason: "InsufficientPodIPs" });
          expect.soft(stalled?.message).toContain(`${free} pod IPs free`);
          expect.soft(stalled?.message).toContain(`${e.reserve} kept in reserve`);
        }
      });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "holds however the scheduler places pods: without a spread constraint, pods beyond a node's addresses count against the pool and stop creation",
    async () => {
      const ns = await bed.namespace("adaptive-ipam-packed");
      const { admin } = bed;
      const capacity = PACKED_NODES * USABLE_PER_NODE;
      const reserve = Math.ceil((capacity * PACKED_RESERVE_PERCENT) / 100);
      const cap = capacity - reserve;
      await withPool(admin, ns, async (pool) => {
        const { tracker, recorder, created } = pool;
        tracker.setCap(cap);
        await createPoolNodes(admin, 0, PACKED_NODES, created);
        bed.operator();
        recorder.start();
        const started = Date.now();
        const { topologySpreadConstraints: _spread, ...unspread } = TEMPLATE.spec;
        await createRollout(admin, ns, NAME, {
          replicas: PACKED_REPLICAS,
          template: { spec: unspread },
          guards: { ipam: { provider: "NodePodCIDR", reserve: `${PACKED_RESERVE_PERCENT}%` } },
        });
        const held = await waitForHold(pool, "the rollout held by IPAM", (r) => conditionOf(r, "Stalled")?.reason === "InsufficientPodIPs");
        const stopped = await waitForNoNewPods(tracker, QUIET_MS, HOLD_TIMEOUT_MS);
        const latest = recorder.latest(NAME) ?? held;
        const perNode = [...tracker.podsPerNode(new Set(created)).values()];
        const beyond = perNode.reduce((sum, n) => sum + Math.max(0, n - USABLE_PER_NODE), 0);
        const message = conditionOf(latest, "Stalled")?.message ?? "";
        console.log(
          `[figure] IP headroom with ${PACKED_NODES} /${POD_CIDR_PREFIX_LENGTH} nodes allowing 110 pods each, no spread (${capacity} usable, reserve ${reserve}): ` +
            `held at ${stopped} pods (at most ${cap}; most ever seen ${tracker.counts().maxCount}) ${seconds(Date.now() - started - QUIET_MS)} s after start; ` +
            `pods per node ${perNode.sort((a, b) => b - a).join(",")}; ${beyond} beyond their node's addresses; Stalled: ${message}`,
        );
        expect(tracker.violations).toEqual([]);
        expect(tracker.counts().maxCount).toBeLessThanOrEqual(cap);
        expect(stopped).toBeLessThanOrEqual(cap);
        // Every pod takes an address from the pool, wherever it stands.
        expect(latest.status?.signals?.ipam).toMatchObject({ provider: "NodePodCIDR", capacity, free: capacity - stopped });
        if (beyond > 0) expect(message).toContain(`${beyond} pods stand beyond their node's podCIDR addresses`);
        else expect(stopped).toBe(cap);
      });
    },
    TEST_TIMEOUT_MS,
  );
});
