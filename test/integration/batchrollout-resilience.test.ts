import { setTimeout as sleep } from "node:timers/promises";
import { isDeepStrictEqual } from "node:util";
import { describe, expect, it } from "vitest";
import { isNotFound } from "../../src/kube/errors.ts";
import { eventually } from "./support/cluster.ts";
import {
  auditOrdinals,
  cleanAudit,
  conditionOf,
  createRollout,
  eventsAbout,
  getRollout,
  listPods,
  loggedAt,
  podPath,
  rolloutPath,
  seconds,
  useTestBed,
  waitForReady,
  type TestRollout,
} from "./support/batchrollout.ts";

// Acceptance of the operator core when things happen to it: SIGKILL mid-rollout, a pause and a
// resume, pods deleted behind its back, and the deletion of the rollout itself.

const NAME = "fleet";

/**
 * Kill/restart: pods and kills. The first kill falls at a random pod count in [first.min, first.max]
 * of the replicas, each later one a random [step.min, step.max] further on: random points, all
 * mid-rollout (at most 25 % + 2 × 20 % = 65 % of the pods), and never a long wait for the next one.
 */
const CRASH = { replicas: 3_000, kills: 3, first: { min: 0.05, max: 0.25 }, step: { min: 0.05, max: 0.2 } } as const;
/** How often the kill trigger looks at the watch's pod count: fine enough to land mid-wave. */
const KILL_POLL_MS = 10;
/** Budget for the next kill point to be reached by a freshly started operator. */
const KILL_POINT_TIMEOUT_MS = 90_000;
/**
 * Budgets: about a minute on an idle 2-core machine; the ceilings leave room for one shared with
 * other suites, where write latency (and so the adaptive wave size) suffers.
 */
const CRASH_READY_TIMEOUT_MS = 240_000;
const CRASH_TEST_TIMEOUT_MS = 300_000;

/** Pause: a Fixed rollout slow enough (100 pods a wave, a wave a second) to pause early on. */
const PAUSE = { replicas: 2_000, initialSize: 100, minInterval: "1s", pauseAtPods: 300 } as const;
/** Time after the pause for the wave in flight to be written and seen. */
const PAUSE_SETTLE_MS = 3_000;
/** Time the pod count must then stay put. */
const PAUSE_HOLD_MS = 5_000;
const PAUSE_STATUS_TIMEOUT_MS = 30_000;
const PAUSE_READY_TIMEOUT_MS = 180_000;
const PAUSE_TEST_TIMEOUT_MS = 240_000;

/** Recreate and delete: pods, and the ordinals deleted by hand. */
const RECREATE = { replicas: 500, deleteFrom: 100, deleteTo: 199 } as const;
const RECREATE_READY_TIMEOUT_MS = 90_000;
/**
 * Budget for the 100 pods to be back. Longer than their creation needs: kwok (the test bed's
 * kubelet) finishes a delete by pod name without a UID precondition, so on a loaded machine its
 * late deletes of the old pods hit the replacements again and again until it catches up.
 */
const RECREATED_TIMEOUT_MS = 120_000;
const ROLLOUT_DELETE_TIMEOUT_MS = 90_000;
const RECREATE_TEST_TIMEOUT_MS = 240_000;
/**
 * Time the test's own pod watch gets to catch up with what the API server already said. Ready and an
 * empty list come from other connections, so the watch's last events can trail them a little.
 */
const WATCH_CATCH_UP_MS = 15_000;

/** A random pod count in [min, max] of the replicas. */
function randomShare(range: { min: number; max: number }, replicas: number): number {
  return Math.round(replicas * (range.min + Math.random() * (range.max - range.min)));
}

const rangeOf = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe("BatchRollout resilience", () => {
  const bed = useTestBed();

  it(
    "converges to exactly ordinals 0..2999 through three SIGKILLs, never over 3,000 pods or two pods on one ordinal",
    async () => {
      const ns = await bed.namespace("br-crash");
      const { admin } = bed;
      const watch = await bed.watch(CRASH.replicas);
      let operator = bed.operator();
      const started = Date.now();
      await createRollout(admin, ns, NAME, { replicas: CRASH.replicas });

      let lastKillCount = 0;
      let restartedAt = started;
      const figures: string[] = [];
      for (let i = 0; i < CRASH.kills; i++) {
        // Each operator gets to start a wave of its own before it is killed, so each one acts.
        await eventually(`operator ${i + 1} starting a wave`, () => loggedAt(operator.logFile, "wave started"), KILL_POINT_TIMEOUT_MS, KILL_POLL_MS);
        const target = i === 0 ? randomShare(CRASH.first, CRASH.replicas) : lastKillCount + randomShare(CRASH.step, CRASH.replicas);
        await eventually(`${target} pods before kill ${i + 1}`, async () => watch.count >= target, KILL_POINT_TIMEOUT_MS, KILL_POLL_MS);
        const podsAtKill = watch.count;
        await operator.kill();
        const killedAt = Date.now();
        operator = bed.operator();
        restartedAt = Date.now();
        const next = operator;
        const synced = await eventually(`restart ${i + 1} syncing its caches`, () => loggedAt(next.logFile, "caches synced; starting workers"), KILL_POINT_TIMEOUT_MS, KILL_POLL_MS);
        const resumed = await eventually(`restart ${i + 1} starting a wave`, () => loggedAt(next.logFile, "wave started"), KILL_POINT_TIMEOUT_MS, KILL_POLL_MS);
        lastKillCount = podsAtKill;
        figures.push(
          `kill ${i + 1} at ${podsAtKill} pods seen (aimed at ${target}), ${seconds(killedAt - started)} s in: restarted operator synced in ${seconds(synced - restartedAt)} s, first wave ${seconds(resumed - restartedAt)} s after restart`,
        );
      }

      const ready = await waitForReady(admin, ns, NAME, CRASH_READY_TIMEOUT_MS);
      const done = Date.now();
      for (const f of figures) console.log(`[figure] ${f}`);
      console.log(`[figure] 3,000 pods with ${CRASH.kills} SIGKILLs: Ready ${seconds(done - restartedAt)} s after the last restart, ${seconds(done - started)} s in all`);
      // Ready was read from the operator's watch; let ours see the last pods Running too. On a timeout
      // the audit below fails with the difference.
      await eventually(
        "the test's pod watch seeing every pod Running",
        async () => isDeepStrictEqual(auditOrdinals(watch.pods(), NAME, CRASH.replicas), cleanAudit(CRASH.replicas)),
        WATCH_CATCH_UP_MS,
      ).catch(() => undefined);

      expect(watch.violations).toEqual([]);
      expect(watch.maxCount).toBeLessThanOrEqual(CRASH.replicas);
      // A restart has no reason to delete anything: every pod is one the rollout wants.
      expect(watch.changes("DELETED").map((e) => e.name)).toEqual([]);
      expect(auditOrdinals(await listPods(admin, ns), NAME, CRASH.replicas)).toEqual(cleanAudit(CRASH.replicas));
      expect(auditOrdinals(watch.pods(), NAME, CRASH.replicas)).toEqual(cleanAudit(CRASH.replicas));
      expect(ready.status).toMatchObject({ replicas: CRASH.replicas, readyReplicas: CRASH.replicas });
    },
    CRASH_TEST_TIMEOUT_MS,
  );

  it(
    "stops creating pods once paused (after the wave in flight), says so in status, and completes when resumed",
    async () => {
      const ns = await bed.namespace("br-pause");
      const { admin } = bed;
      const watch = await bed.watch(PAUSE.replicas);
      bed.operator();
      await createRollout(admin, ns, NAME, {
        replicas: PAUSE.replicas,
        waves: { strategy: "Fixed", initialSize: PAUSE.initialSize, minInterval: PAUSE.minInterval },
      });
      await eventually(`${PAUSE.pauseAtPods} pods`, async () => watch.count >= PAUSE.pauseAtPods, PAUSE_STATUS_TIMEOUT_MS, 20);
      const podsAtPause = watch.count;
      const paused = await admin.patch<TestRollout>(rolloutPath(ns, NAME), { spec: { paused: true } });
      const pausedAt = Date.now();

      const held = await eventually(
        "status saying Paused",
        async () => {
          const r = await getRollout(admin, ns, NAME);
          return r.status?.observedGeneration === paused.metadata.generation && r.status?.wave?.limitedBy === "Paused" ? r : undefined;
        },
        PAUSE_STATUS_TIMEOUT_MS,
      );
      await sleep(Math.max(0, pausedAt + PAUSE_SETTLE_MS - Date.now()));
      const settledPods = await listPods(admin, ns);
      const settled = settledPods.length;
      const settledAt = Date.now();
      // A pod in the settled list was created before it, even if its ADDED event reaches our watch later.
      const settledNames = new Set(settledPods.map((p) => p.metadata.name));
      await sleep(PAUSE_HOLD_MS);
      const after = (await listPods(admin, ns)).length;
      console.log(`[figure] paused at ${podsAtPause} pods seen; ${settled} pods once the wave in flight was written; ${after} after ${PAUSE_HOLD_MS / 1000} s more`);

      expect(after).toBe(settled);
      expect(watch.changes("ADDED").filter((e) => e.at > settledAt && !settledNames.has(e.name)).map((e) => e.name)).toEqual([]);
      // At most the wave in flight, plus one the operator may have started before it saw the patch.
      expect(settled).toBeLessThanOrEqual(podsAtPause + 2 * PAUSE.initialSize);
      expect(settled).toBeLessThan(PAUSE.replicas / 2);
      const status = (await getRollout(admin, ns, NAME)).status;
      expect(status?.wave).toMatchObject({ limitedBy: "Paused", size: 0 });
      expect(conditionOf(held, "Progressing")).toMatchObject({ status: "False", reason: "Paused", observedGeneration: paused.metadata.generation });
      expect(conditionOf(held, "Ready")).toMatchObject({ status: "False" });
      expect(conditionOf(held, "Stalled")).toMatchObject({ status: "False" });
      expect(await eventsAbout(admin, ns, paused.metadata.uid, "Paused")).toHaveLength(1);

      const resumedAt = Date.now();
      await admin.patch(rolloutPath(ns, NAME), { spec: { paused: false } });
      const ready = await waitForReady(admin, ns, NAME, PAUSE_READY_TIMEOUT_MS);
      console.log(`[figure] resumed from ${after} pods: Ready with ${PAUSE.replicas} in ${seconds(Date.now() - resumedAt)} s`);
      expect(ready.status?.wave?.limitedBy).toBe("None");
      expect(auditOrdinals(await listPods(admin, ns), NAME, PAUSE.replicas)).toEqual(cleanAudit(PAUSE.replicas));
      expect(watch.violations).toEqual([]);
    },
    PAUSE_TEST_TIMEOUT_MS,
  );

  it(
    "recreates 100 pods deleted by hand, then deletes every pod and releases its finalizer when the rollout is deleted",
    async () => {
      const ns = await bed.namespace("br-recreate");
      const { admin } = bed;
      const watch = await bed.watch(RECREATE.replicas);
      bed.operator();
      const created = await createRollout(admin, ns, NAME, { replicas: RECREATE.replicas });
      await waitForReady(admin, ns, NAME, RECREATE_READY_TIMEOUT_MS);
      const before = new Map((await listPods(admin, ns)).map((p) => [p.metadata.name, p.metadata.uid]));

      const victims = rangeOf(RECREATE.deleteFrom, RECREATE.deleteTo).map((o) => `${NAME}-${o}`);
      const deletedAt = Date.now();
      await Promise.all(victims.map((name) => admin.delete(podPath(ns, name))));
      const recreated = await eventually(
        "the deleted pods recreated under their names with new UIDs",
        async () => {
          const pods = await listPods(admin, ns);
          const byName = new Map(pods.map((p) => [p.metadata.name, p]));
          const back = victims.every((name) => {
            const pod = byName.get(name);
            return pod !== undefined && pod.metadata.uid !== before.get(name) && pod.metadata.deletionTimestamp === undefined;
          });
          return back ? pods : undefined;
        },
        RECREATED_TIMEOUT_MS,
      );
      const ready = await waitForReady(admin, ns, NAME, RECREATE_READY_TIMEOUT_MS);
      const victimSet = new Set(victims);
      const creates = watch.changes("ADDED").filter((e) => e.at >= deletedAt && victimSet.has(e.name)).length;
      console.log(`[figure] 100 pods deleted by hand: recreated and Ready again in ${seconds(Date.now() - deletedAt)} s (${creates} creates for the 100 names)`);
      const pods = await listPods(admin, ns);
      expect(auditOrdinals(pods, NAME, RECREATE.replicas)).toEqual(cleanAudit(RECREATE.replicas));
      const changed = pods.filter((p) => (before.get(p.metadata.name) !== p.metadata.uid) !== victimSet.has(p.metadata.name)).map((p) => p.metadata.name);
      expect(changed).toEqual([]);
      expect(recreated.filter((p) => victimSet.has(p.metadata.name))).toHaveLength(victims.length);
      expect(ready.status?.readyReplicas).toBe(RECREATE.replicas);

      const deleteStarted = Date.now();
      await admin.delete(rolloutPath(ns, NAME));
      // The finalizer holds the rollout while the operator deletes its pods.
      const terminating = await getRollout(admin, ns, NAME);
      expect(terminating.metadata.deletionTimestamp).toBeDefined();
      expect(terminating.metadata.finalizers).toContain("batchrollout.dev/pods");
      await eventually(
        "the rollout gone",
        () => getRollout(admin, ns, NAME).then(() => false, (err: unknown) => isNotFound(err)),
        ROLLOUT_DELETE_TIMEOUT_MS,
      );
      const rolloutGoneAt = Date.now();
      await eventually("every pod gone", async () => (await listPods(admin, ns)).length === 0, ROLLOUT_DELETE_TIMEOUT_MS);
      const allGoneAt = Date.now();
      const peak = watch.peakDeleteRate(deleteStarted);
      console.log(
        `[figure] deleting a ${RECREATE.replicas}-pod rollout: peak ${peak} pods/s deleted (1 s buckets), rollout gone in ${seconds(rolloutGoneAt - deleteStarted)} s, every pod gone in ${seconds(allGoneAt - deleteStarted)} s`,
      );

      const deletedSeen = () => new Set(watch.changes("DELETED").filter((e) => e.at >= deleteStarted).map((e) => e.name)).size;
      // The empty list came from another connection: let our watch see the last deletes too.
      await eventually("the test's pod watch seeing every delete", async () => deletedSeen() >= RECREATE.replicas, WATCH_CATCH_UP_MS).catch(() => undefined);
      expect(deletedSeen()).toBe(RECREATE.replicas);
      // The operator deleted them in waves, rather than the garbage collector after the finalizer went.
      expect(await eventsAbout(admin, ns, created.metadata.uid, "DeletingPods")).not.toEqual([]);
      expect(watch.violations).toEqual([]);
    },
    RECREATE_TEST_TIMEOUT_MS,
  );
});
