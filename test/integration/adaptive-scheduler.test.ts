import { describe, expect, it } from "vitest";
import type { KubeClient } from "../../src/kube/client.ts";
import { NODES, PODS, resourcePath } from "../../src/kube/resources.ts";
import { ACTIVE_PODS_FIELD_SELECTOR } from "../../src/ratelimit/signals/node-slots.ts";
import { NODE_NAME_PREFIX } from "../cluster/cluster.ts";
import { eventually } from "./support/cluster.ts";
import {
  POD_REQUESTS,
  TEST_LIST_PAGE_SIZE,
  auditOrdinals,
  cleanAudit,
  conditionOf,
  createRollout,
  eventsAbout,
  listPods,
  podTemplate,
  seconds,
  useTestBed,
  waitForReady,
} from "./support/batchrollout.ts";
import { PodTracker, StatusRecorder, type Taint, inBatches, nodesWithTaint, setTaint, waitForNoNewPods } from "./support/adaptive.ts";

// Issue 4, scheduler backlog: with all but 10 nodes tainted, a rollout whose pods request a whole
// CPU fits only ~640 pods (10 nodes × 64 CPU); the NodeCapacity guard counts pod slots (110 a
// node), not CPU, so it is the scheduler that finds out. The rollout must stop creating once its
// pods are unschedulable, say how many and why (the scheduler's own reason), keep the backlog within
// spec.guards.scheduler.maxPending plus one wave, and finish on its own once the taints are gone.

const NAME = "fleet";
const REPLICAS = 3_000;
const MAX_PENDING = 200;
/** Nodes left untainted: 10 × 64 CPU is room for 640 one-CPU pods, a fifth of the rollout. */
const UNTAINTED_NODES = 10;
const TAINT: Taint = { key: "batchrollout.dev/test-taint", value: "true", effect: "NoSchedule" };
/** A whole CPU per pod, so CPU (which no operator guard counts) is what runs out. */
const TEMPLATE = podTemplate("main", { requests: { ...POD_REQUESTS, cpu: "1" } });
/** Node patches in flight at once: 90 nodes in a few seconds without a burst on the API server. */
const NODE_PATCH_CONCURRENCY = 10;
/** "Stopped creating": no pod added for this long. */
const QUIET_MS = 10_000;
/** Until the rollout holds: ~640 pods plus the backlog, then the quiet period. */
const STOP_TIMEOUT_MS = 120_000;
/** After the taints go: the unschedulable pods are placed and the other ~2,300 created. */
const READY_AFTER_UNTAINT_TIMEOUT_MS = 240_000;
const TEST_TIMEOUT_MS = 420_000;

/** Node names of every pod cluster-wide that holds a node's slot (bound, not finished). */
async function listActivePods(admin: KubeClient): Promise<string[]> {
  const out: string[] = [];
  let continueToken: string | undefined;
  do {
    const page = await admin.get<{ items: { spec?: { nodeName?: string } }[]; metadata: { continue?: string } }>(resourcePath(PODS), {
      fieldSelector: ACTIVE_PODS_FIELD_SELECTOR,
      limit: TEST_LIST_PAGE_SIZE,
      continue: continueToken,
    });
    for (const pod of page.items) if (pod.spec?.nodeName) out.push(pod.spec.nodeName);
    continueToken = page.metadata.continue || undefined;
  } while (continueToken);
  return out;
}

/** "wave 3: creating 200 pods (...)" → 200. */
function waveSizeOf(note: string): number | undefined {
  const match = /^wave \d+: creating (\d+) pods/.exec(note);
  return match ? Number(match[1]) : undefined;
}

describe("adaptive waves against the scheduler's backlog", () => {
  const bed = useTestBed();

  it(
    "stops creating when its pods are unschedulable (limitedBy Scheduler, the scheduler's reason), bounds the backlog, and completes once the taints are removed",
    async () => {
      const ns = await bed.namespace("adaptive-sched");
      const { admin } = bed;
      // A run that died before its finally may have left taints; they would skew this run.
      await inBatches(await nodesWithTaint(admin, TAINT), NODE_PATCH_CONCURRENCY, (node) => setTaint(admin, node, TAINT, false));

      // The 10 emptiest test-bed nodes stay open: other tests' pods there would leave less room for
      // this one (while the taints are on, every other test's pods can only go there too).
      const nodes = (await admin.get<{ items: { metadata: { name: string } }[] }>(resourcePath(NODES))).items.map((n) => n.metadata.name);
      const podsOn = new Map<string, number>();
      for (const pod of await listActivePods(admin)) podsOn.set(pod, (podsOn.get(pod) ?? 0) + 1);
      const byLoad = nodes.filter((n) => n.startsWith(NODE_NAME_PREFIX)).sort((a, b) => (podsOn.get(a) ?? 0) - (podsOn.get(b) ?? 0) || a.localeCompare(b));
      const kept = new Set(byLoad.slice(0, UNTAINTED_NODES));
      expect(kept.size).toBe(UNTAINTED_NODES);
      const tainted = nodes.filter((n) => !kept.has(n));

      const tracker = new PodTracker(admin, ns);
      await tracker.start();
      const recorder = new StatusRecorder(admin, ns, [NAME]);
      let stoppedAt = 0;
      try {
        try {
          await inBatches(tainted, NODE_PATCH_CONCURRENCY, (node) => setTaint(admin, node, TAINT, true));
          bed.operator();
          recorder.start();
          const started = Date.now();
          const created = await createRollout(admin, ns, NAME, { replicas: REPLICAS, template: TEMPLATE, guards: { scheduler: { maxPending: MAX_PENDING } } });

          await eventually("the first pods", async () => tracker.counts(NAME).count > 0, STOP_TIMEOUT_MS);
          stoppedAt = await waitForNoNewPods(tracker, QUIET_MS, STOP_TIMEOUT_MS);
          const held = await eventually(
            "status of the held rollout",
            async () => {
              const r = recorder.latest(NAME);
              const s = r?.status;
              // Held by the scheduler, and with its verdict: "pending, catching up" comes before "unschedulable".
              const verdict = /unschedulable/.test(s?.wave?.message ?? "") && (s?.signals?.scheduler?.unschedulable ?? 0) > 0;
              return s?.wave?.limitedBy === "Scheduler" && s.replicas === stoppedAt && verdict ? r : undefined;
            },
            QUIET_MS,
          ).catch(() => recorder.latest(NAME));
          const status = held?.status;
          const unschedulable = status?.signals?.scheduler?.unschedulable ?? 0;
          const bound = (await listPods(admin, ns)).filter((p) => p.spec?.nodeName !== undefined).length;
          console.log(
            `[figure] scheduler backlog: creation stopped at ${stoppedAt} of ${REPLICAS} pods after ${seconds(Date.now() - started - QUIET_MS)} s ` +
              `(${bound} bound to the ${UNTAINTED_NODES} untainted nodes, ${unschedulable} unschedulable), wave ${status?.wave?.number}: ${status?.wave?.message}`,
          );

          expect(stoppedAt).toBeLessThan(REPLICAS);
          // Soft from here: a wrong word in status must not hide whether the rollout finishes afterwards.
          expect.soft(status?.wave?.limitedBy).toBe("Scheduler");
          expect.soft(status?.wave?.size).toBe(0);
          // How many pods are unschedulable and the scheduler's reason.
          const message = status?.wave?.message ?? "";
          expect.soft(message).toMatch(/\d+ pods/);
          expect.soft(message).toContain("unschedulable");
          expect.soft(message).toMatch(/Insufficient cpu|taint/);
          const stalled = held ? conditionOf(held, "Stalled") : undefined;
          const progressing = held ? conditionOf(held, "Progressing") : undefined;
          const holdReason = stalled?.status === "True" ? `Stalled:${stalled.reason}` : `Progressing:${progressing?.reason}`;
          expect.soft(["Stalled:PodsUnschedulable", "Progressing:WaitingForCapacity"]).toContain(holdReason);
          expect.soft(unschedulable).toBeGreaterThan(0);

          // The backlog: unbound pods seen by the watch at any event, against maxPending + the largest wave.
          const waveSizes = (await eventsAbout(admin, ns, created.metadata.uid, "WaveStarted")).map((e) => waveSizeOf(e.note) ?? 0);
          const statusSizes = recorder.samples(NAME).map((s) => s.rollout.status?.wave?.size ?? 0);
          const largestWave = Math.max(0, ...waveSizes, ...statusSizes);
          const maxPendingSeen = Math.max(0, ...recorder.samples(NAME).map((s) => s.rollout.status?.signals?.scheduler?.pending ?? 0));
          console.log(
            `[figure] scheduler backlog: at most ${tracker.counts(NAME).maxUnbound} unbound pods by watch, ${maxPendingSeen} pending in status; ` +
              `maxPending ${MAX_PENDING}, largest wave ${largestWave}`,
          );
          expect.soft(tracker.counts(NAME).maxUnbound).toBeLessThanOrEqual(MAX_PENDING + largestWave);
        } finally {
          // Every other test shares these nodes: the taints go whatever happened above.
          await inBatches(tainted, NODE_PATCH_CONCURRENCY, (node) => setTaint(admin, node, TAINT, false));
        }
        const untaintedAt = Date.now();
        expect(await nodesWithTaint(admin, TAINT)).toEqual([]);

        const ready = await waitForReady(admin, ns, NAME, READY_AFTER_UNTAINT_TIMEOUT_MS);
        console.log(`[figure] scheduler backlog: Ready with ${REPLICAS} pods ${seconds(Date.now() - untaintedAt)} s after the taints were removed (from ${stoppedAt} pods)`);
        expect(auditOrdinals(await listPods(admin, ns), NAME, REPLICAS)).toEqual(cleanAudit(REPLICAS));
        // Ready came from the operator's watch; let the tracker's own watch see the last pods too.
        await eventually("the tracker seeing every pod", async () => tracker.counts(NAME).count >= REPLICAS).catch(() => undefined);
        expect(tracker.counts(NAME).maxCount).toBe(REPLICAS);
        expect(conditionOf(ready, "Stalled")?.status).toBe("False");
      } finally {
        await recorder.stop();
        await tracker.stop();
      }
    },
    TEST_TIMEOUT_MS,
  );
});
