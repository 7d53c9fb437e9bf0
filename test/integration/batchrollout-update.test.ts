import { setTimeout as sleep } from "node:timers/promises";
import { isDeepStrictEqual } from "node:util";
import { describe, expect, it } from "vitest";
import { LABEL_TEMPLATE_HASH } from "../../src/api/batchrollout.ts";
import type { KubeClient } from "../../src/kube/client.ts";
import { eventually } from "./support/cluster.ts";
import { failPod } from "./support/pod-failure.ts";
import { ensureCrd } from "./support/crd.ts";
import {
  auditOrdinals,
  cleanAudit,
  conditionOf,
  createRollout,
  getRollout,
  listPods,
  loggedAt,
  ordinalOf,
  podTemplate,
  rolloutPath,
  seconds,
  useTestBed,
  waitForReady,
  type PodWatch,
  type TestPod,
  type TestRollout,
} from "./support/batchrollout.ts";

// Issue 27 on the real control plane: spec.updateStrategy RollingRecreate replaces a Ready fleet's
// pods in paced waves when the template changes, within maxUnavailable (sampled each second from a
// watch), stops on a template whose pods fail, keeps ordinals below a partition, rolls back by
// replacing only the pods on the other template, and survives a SIGKILL of the operator mid-update.

const NAME = "fleet";
/** A label a template change sets: a new template hash, nothing a kubelet would notice. */
const VERSION_LABEL = "version";
/** The test's own kubelet stand-in fails pods carrying this label (kwok never fails a pod). */
const FAIL_LABEL = "test.batchrollout.dev/fail";

/** The acceptance fleet: 3,000 pods; maxUnavailable 5 % (150 pods), tight enough to bound waves. */
const FLEET = { replicas: 3_000, maxUnavailable: "5%", maxUnavailablePods: 150 } as const;
/** Partition: ordinals 0..1999 stay on the old template until it is lowered to 0. */
const PARTITION = 2_000;
/** Failing template: a small fleet, a tight bound and budget, so the stop is quick and the overshoot visible. */
const FAILING = { replicas: 300, maxUnavailable: 10, maxFailedPods: 5 } as const;
/** Rollback: ordinals at or above the partition go to v2, then the whole fleet goes back to v1. */
const ROLLBACK = { replicas: 600, partition: 300 } as const;
/** SIGKILL: the operator dies once this share of the fleet runs the new template. */
const KILL = { replicas: 1_500, atShare: 0.3 } as const;

/**
 * 3,000 pods are Ready in about a minute on an idle 2-core machine; a machine shared with two
 * benchmark control planes wrote 14 pods/s (4 minutes for 3,000), hence the room.
 */
const READY_TIMEOUT_MS = 600_000;
/** An update replaces every pod: twice the writes of the rollout, plus waits for Ready. */
const UPDATE_TIMEOUT_MS = 900_000;
const BIG_TEST_TIMEOUT_MS = 2_400_000;
const SMALL_TEST_TIMEOUT_MS = 300_000;
/** The not-Ready sample period of issue 27's acceptance. */
const SAMPLE_MS = 1_000;
/** How often the failing kubelet stand-in looks for pods to fail. */
const FAIL_POLL_MS = 200;
/** How long the failed update must then stay put (no more old pods deleted). */
const STALL_HOLD_MS = 8_000;
/** Time the test's own pod watch gets to catch up with a Ready read from another connection. */
const WATCH_CATCH_UP_MS = 15_000;
/** Polling of the kill trigger: fine enough to land mid-wave. */
const KILL_POLL_MS = 50;
const OPERATOR_START_TIMEOUT_MS = 90_000;
const isReadyPod = (pod: TestPod) =>
  pod.metadata.deletionTimestamp === undefined &&
  ((pod.status as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True");

/** Ordinals 0..replicas-1 without a Ready, live pod: what maxUnavailable bounds. */
function notReady(pods: readonly TestPod[], replicas: number): number {
  let ready = 0;
  for (const pod of pods) {
    const ordinal = ordinalOf(pod);
    if (ordinal !== undefined && ordinal < replicas && isReadyPod(pod)) ready++;
  }
  return replicas - ready;
}

/**
 * Samples the watch's not-Ready count and pod count once a second until stopped. The test bed's
 * kubelet (kwok v0.8.0) deletes a terminating pod by name, without the UID precondition a kubelet
 * sends, and plays some pods twice under load (README, benchmark): its late second delete then
 * removes the replacement created under the same name. The operator never deletes a pod on the new
 * template, so those deletes are counted apart: `ours` leaves out the ordinals whose new pod was
 * deleted and that have no Ready pod again yet.
 */
function sampleEachSecond(watch: PodWatch, replicas: number, oldHash: string) {
  const samples: { notReady: number; ours: number; pods: number }[] = [];
  const since = Date.now();
  const sample = () => {
    const pods = watch.pods();
    const readyOrdinals = new Set(pods.filter(isReadyPod).map(ordinalOf));
    const hit = new Set(
      watch
        .changes("DELETED")
        .filter((e) => e.at >= since && e.templateHash !== oldHash && e.ordinal !== undefined && e.ordinal < replicas && !readyOrdinals.has(e.ordinal))
        .map((e) => e.ordinal),
    );
    const raw = notReady(pods, replicas);
    samples.push({ notReady: raw, ours: raw - hit.size, pods: watch.count });
  };
  const timer = setInterval(sample, SAMPLE_MS);
  return {
    samples,
    stop: () => clearInterval(timer),
    maxNotReady: () => Math.max(0, ...samples.map((s) => s.notReady)),
    maxOurs: () => Math.max(0, ...samples.map((s) => s.ours)),
    maxPods: () => Math.max(0, ...samples.map((s) => s.pods)),
  };
}

/** Deletes of pods on the new template: never the operator's (see sampleEachSecond). */
const foreignDeletes = (watch: PodWatch, oldHash: string) => watch.changes("DELETED").filter((e) => e.templateHash !== oldHash).length;

const hashOf = (pod: TestPod) => pod.metadata.labels?.[LABEL_TEMPLATE_HASH];
const byHash = (pods: readonly TestPod[]) => {
  const counts = new Map<string, number>();
  for (const pod of pods) counts.set(hashOf(pod) ?? "-", (counts.get(hashOf(pod) ?? "-") ?? 0) + 1);
  return Object.fromEntries(counts);
};

/** The template with the version label (and, to fail its pods, the fail label). */
function versioned(version: string, fail = false): Record<string, unknown> {
  const labels = { [VERSION_LABEL]: version, ...(fail ? { [FAIL_LABEL]: "true" } : {}) };
  return { metadata: { labels }, ...podTemplate() };
}

async function setSpec(admin: KubeClient, ns: string, spec: Record<string, unknown>): Promise<TestRollout> {
  return admin.patch<TestRollout>(rolloutPath(ns, NAME), { spec }, "application/merge-patch+json");
}

/** Waits until the test's own watch shows the same as `check` wants (Ready came from another connection). */
async function watchCatchUp(watch: PodWatch, what: string, check: (pods: TestPod[]) => boolean): Promise<void> {
  await eventually(what, async () => check(watch.pods()), WATCH_CATCH_UP_MS).catch(() => undefined);
}

/**
 * A kubelet for the fail label: fails every bound pod that carries it. kwok's stages come from the
 * configuration it started with, so a stage of our own would need a restart of the shared test bed.
 */
function failLabelledPods(admin: KubeClient, ns: string, watch: PodWatch) {
  const failed = new Set<string>();
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      for (const pod of watch.pods()) {
        if (pod.metadata.labels?.[FAIL_LABEL] !== "true" || pod.status?.phase === "Failed" || failed.has(pod.metadata.uid)) continue;
        if (pod.metadata.deletionTimestamp !== undefined || pod.spec?.nodeName === undefined) continue;
        failed.add(pod.metadata.uid);
        await failPod(admin, ns, pod.metadata.name).catch(() => failed.delete(pod.metadata.uid));
      }
      await sleep(FAIL_POLL_MS);
    }
  })();
  return {
    failed,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

describe("BatchRollout updates (RollingRecreate)", () => {
  const bed = useTestBed();
  /** A Ready fleet on template v1, seen Ready by the test's watch too. */
  async function readyFleet(prefix: string, replicas: number, spec: Record<string, unknown> = {}) {
    const ns = await bed.namespace(prefix);
    const { admin } = bed;
    await ensureCrd(admin);
    const watch = await bed.watch(replicas);
    const operator = bed.operator();
    await createRollout(admin, ns, NAME, { replicas, template: versioned("v1"), ...spec });
    await waitForReady(admin, ns, NAME, READY_TIMEOUT_MS);
    await watchCatchUp(watch, "the watch seeing every pod Ready", (pods) => notReady(pods, replicas) === 0);
    const hashes = Object.keys(byHash(watch.pods()));
    expect(hashes).toHaveLength(1);
    return { ns, admin, watch, operator, oldHash: hashes[0] ?? "" };
  }

  it(
    "replaces a Ready 3,000-pod fleet after a template change: every ordinal once on the new hash, never over maxUnavailable not Ready nor over 3,000 pods",
    async () => {
      const { ns, admin, watch, oldHash } = await readyFleet("br-update", FLEET.replicas, { updateStrategy: { maxUnavailable: FLEET.maxUnavailable } });
      const sampler = sampleEachSecond(watch, FLEET.replicas, oldHash);
      const started = Date.now();
      await setSpec(admin, ns, { template: versioned("v2") });
      const ready = await waitForReady(admin, ns, NAME, UPDATE_TIMEOUT_MS).finally(() => sampler.stop());
      const took = Date.now() - started;
      const newHash = ready.status?.updateTemplateHash ?? "";
      await watchCatchUp(watch, "the watch seeing every pod on the new hash and Ready", (pods) => pods.every((p) => hashOf(p) === newHash) && notReady(pods, FLEET.replicas) === 0);
      console.log(
        `[figure] update of ${FLEET.replicas} pods (maxUnavailable ${FLEET.maxUnavailable} = ${FLEET.maxUnavailablePods}): Ready on the new template ${seconds(took)} s after the change, ` +
          `${ready.status?.wave?.number} waves in all; max not Ready at a 1 s sample ${sampler.maxNotReady()} (${sampler.maxOurs()} without the replacements kwok deleted by name), ` +
          `${foreignDeletes(watch, oldHash)} replacements deleted by kwok and created again, max pods ${Math.max(watch.maxCount, sampler.maxPods())}, ${sampler.samples.length} samples`,
      );

      expect(newHash).not.toBe(oldHash);
      expect(sampler.maxOurs()).toBeLessThanOrEqual(FLEET.maxUnavailablePods);
      expect(watch.violations).toEqual([]);
      expect(watch.maxCount).toBeLessThanOrEqual(FLEET.replicas);
      const pods = await listPods(admin, ns);
      expect(auditOrdinals(pods, NAME, FLEET.replicas)).toEqual(cleanAudit(FLEET.replicas));
      expect(byHash(pods)).toEqual({ [newHash]: FLEET.replicas });
      // Each old pod was deleted exactly once.
      const oldDeletes = watch.changes("DELETED").filter((e) => e.templateHash === oldHash);
      expect(oldDeletes.length).toBe(FLEET.replicas);
      expect(new Set(oldDeletes.map((e) => e.ordinal)).size).toBe(FLEET.replicas);
      expect(ready.status).toMatchObject({
        replicas: FLEET.replicas,
        updatedReplicas: FLEET.replicas,
        updatedReadyReplicas: FLEET.replicas,
        currentTemplateHash: newHash,
        updateTemplateHash: newHash,
      });
    },
    BIG_TEST_TIMEOUT_MS,
  );

  it(
    "stops an update whose new pods fail once more than maxFailedPods failed: the rest stays on the old template, Stalled",
    async () => {
      const { ns, admin, watch, oldHash } = await readyFleet("br-update-fail", FAILING.replicas, {
        updateStrategy: { maxUnavailable: FAILING.maxUnavailable },
        failurePolicy: { maxFailedPods: FAILING.maxFailedPods, action: "Pause" },
      });
      const failer = failLabelledPods(admin, ns, watch);
      try {
        await setSpec(admin, ns, { template: versioned("v2", true) });
        const stalled = await eventually(
          "Stalled FailureBudgetExceeded",
          async () => {
            const r = await getRollout(admin, ns, NAME);
            const c = conditionOf(r, "Stalled");
            return r.status?.observedGeneration === r.metadata.generation && c?.status === "True" && c.reason === "FailureBudgetExceeded" ? r : undefined;
          },
          UPDATE_TIMEOUT_MS,
        );
        const atStall = byHash(await listPods(admin, ns));
        await sleep(STALL_HOLD_MS);
        const after = byHash(await listPods(admin, ns));
        const r = await getRollout(admin, ns, NAME);
        const old = after[oldHash] ?? 0;
        console.log(
          `[figure] failing template on ${FAILING.replicas} pods (maxUnavailable ${FAILING.maxUnavailable}, maxFailedPods ${FAILING.maxFailedPods}): stalled with ${FAILING.replicas - old} ordinals replaced, ` +
            `${r.status?.failedReplicas} failed; ${old} pods still on the old template ${STALL_HOLD_MS / 1000} s later; message: ${conditionOf(stalled, "Stalled")?.message}`,
        );
        // The update stopped: nothing more was replaced while Stalled.
        expect(old).toBe(atStall[oldHash] ?? 0);
        // What went before the stop is bounded by maxUnavailable: the failed pods are never Ready.
        expect(FAILING.replicas - old).toBeLessThanOrEqual(FAILING.maxUnavailable + FAILING.maxFailedPods + 1);
        expect(r.status?.failedReplicas ?? 0).toBeGreaterThan(FAILING.maxFailedPods);
        expect(conditionOf(r, "Ready")?.status).toBe("False");
        expect(conditionOf(r, "Stalled")?.message).toContain("the update is paused and no further old pods are deleted");
        expect(watch.violations).toEqual([]);
      } finally {
        await failer.stop();
      }
    },
    SMALL_TEST_TIMEOUT_MS,
  );

  it(
    "keeps ordinals 0..1999 on the old template under partition 2,000, then finishes the update once the partition is 0",
    async () => {
      const { ns, admin, watch, oldHash } = await readyFleet("br-update-partition", FLEET.replicas);
      const started = Date.now();
      const patched = await setSpec(admin, ns, { template: versioned("v2"), updateStrategy: { partition: PARTITION } });
      const staged = await waitForReady(admin, ns, NAME, UPDATE_TIMEOUT_MS);
      const newHash = staged.status?.updateTemplateHash ?? "";
      const stagedAt = Date.now();
      const pods = await listPods(admin, ns);
      expect(patched.metadata.generation).toBeGreaterThan(1);
      expect(auditOrdinals(pods, NAME, FLEET.replicas)).toEqual(cleanAudit(FLEET.replicas));
      const wrong = pods.filter((p) => ((ordinalOf(p) ?? 0) < PARTITION ? hashOf(p) !== oldHash : hashOf(p) !== newHash)).map((p) => p.metadata.name);
      expect(wrong).toEqual([]);
      expect(staged.status).toMatchObject({ updatedReplicas: FLEET.replicas - PARTITION, currentTemplateHash: oldHash, updateTemplateHash: newHash });

      await setSpec(admin, ns, { updateStrategy: { partition: 0 } });
      const done = await waitForReady(admin, ns, NAME, UPDATE_TIMEOUT_MS);
      console.log(
        `[figure] partition ${PARTITION} of ${FLEET.replicas}: ${FLEET.replicas - PARTITION} pods updated and Ready in ${seconds(stagedAt - started)} s; the other ${PARTITION} in ${seconds(Date.now() - stagedAt)} s once lowered to 0`,
      );
      const all = await listPods(admin, ns);
      expect(auditOrdinals(all, NAME, FLEET.replicas)).toEqual(cleanAudit(FLEET.replicas));
      expect(byHash(all)).toEqual({ [newHash]: FLEET.replicas });
      expect(done.status).toMatchObject({ updatedReplicas: FLEET.replicas, currentTemplateHash: newHash });
      expect(watch.violations).toEqual([]);
    },
    BIG_TEST_TIMEOUT_MS,
  );

  it(
    "rolls back by applying the previous template again: only the pods on the other template are replaced, the rest keep their UIDs",
    async () => {
      const { ns, admin, watch, oldHash } = await readyFleet("br-update-rollback", ROLLBACK.replicas);
      await setSpec(admin, ns, { template: versioned("v2"), updateStrategy: { partition: ROLLBACK.partition } });
      const staged = await waitForReady(admin, ns, NAME, UPDATE_TIMEOUT_MS);
      const v2Hash = staged.status?.updateTemplateHash ?? "";
      expect(v2Hash).not.toBe(oldHash);
      const before = await listPods(admin, ns);
      const v1Uids = new Map(before.filter((p) => hashOf(p) === oldHash).map((p) => [p.metadata.name, p.metadata.uid]));
      expect(v1Uids.size).toBe(ROLLBACK.partition);

      const started = Date.now();
      const v1DeletesBefore = watch.changes("DELETED").filter((e) => e.templateHash === oldHash).length;
      await setSpec(admin, ns, { template: versioned("v1"), updateStrategy: { partition: 0 } });
      const done = await waitForReady(admin, ns, NAME, UPDATE_TIMEOUT_MS);
      const took = Date.now() - started;
      const after = await listPods(admin, ns);
      const kept = after.filter((p) => v1Uids.get(p.metadata.name) === p.metadata.uid).length;
      console.log(
        `[figure] rollback of ${ROLLBACK.replicas} pods (${ROLLBACK.replicas - ROLLBACK.partition} on v2): Ready on v1 again ${seconds(took)} s after the change; ${kept} of ${ROLLBACK.partition} v1 pods kept their UID`,
      );
      // The previous template hashes the same: the rollout is back on its first hash, not a third one.
      expect(done.status).toMatchObject({ updatedReplicas: ROLLBACK.replicas, currentTemplateHash: oldHash, updateTemplateHash: oldHash });
      expect(auditOrdinals(after, NAME, ROLLBACK.replicas)).toEqual(cleanAudit(ROLLBACK.replicas));
      expect(byHash(after)).toEqual({ [oldHash]: ROLLBACK.replicas });
      expect(kept).toBe(ROLLBACK.partition);
      // No pod on v1 was deleted by the rollback; every v2 pod was, once.
      expect(watch.changes("DELETED").filter((e) => e.templateHash === oldHash).length).toBe(v1DeletesBefore);
      const v2Deletes = watch.changes("DELETED").filter((e) => e.templateHash === v2Hash);
      expect(new Set(v2Deletes.map((e) => e.ordinal)).size).toBe(ROLLBACK.replicas - ROLLBACK.partition);
      expect(watch.violations).toEqual([]);
    },
    SMALL_TEST_TIMEOUT_MS,
  );

  it(
    "completes an update through a SIGKILL of the operator mid-update, no ordinal missing or doubled",
    async () => {
      const { ns, admin, watch, operator, oldHash } = await readyFleet("br-update-kill", KILL.replicas);
      const started = Date.now();
      await setSpec(admin, ns, { template: versioned("v2") });
      const target = Math.round(KILL.replicas * KILL.atShare);
      const newHash = await eventually(
        "the new template hash in status",
        async () => {
          const r = await getRollout(admin, ns, NAME);
          return r.status?.observedGeneration === r.metadata.generation ? r.status?.updateTemplateHash : undefined;
        },
        OPERATOR_START_TIMEOUT_MS,
      );
      await eventually(`${target} pods on the new template`, async () => watch.pods().filter((p) => hashOf(p) === newHash).length >= target, UPDATE_TIMEOUT_MS, KILL_POLL_MS);
      const atKill = watch.pods().filter((p) => hashOf(p) === newHash).length;
      await operator.kill();
      const next = bed.operator();
      const restartedAt = Date.now();
      await eventually("the restarted operator starting a wave", () => loggedAt(next.logFile, "wave started"), OPERATOR_START_TIMEOUT_MS, KILL_POLL_MS);
      const ready = await waitForReady(admin, ns, NAME, UPDATE_TIMEOUT_MS);
      await watchCatchUp(watch, "the watch seeing every pod on the new hash", (pods) => isDeepStrictEqual(auditOrdinals(pods, NAME, KILL.replicas), cleanAudit(KILL.replicas)) && pods.every((p) => hashOf(p) === newHash));
      console.log(
        `[figure] SIGKILL at ${atKill}/${KILL.replicas} pods on the new template: Ready ${seconds(Date.now() - restartedAt)} s after the restart, ${seconds(Date.now() - started)} s after the change; ` +
          `${foreignDeletes(watch, oldHash)} replacements deleted by kwok and created again`,
      );
      expect(watch.violations).toEqual([]);
      expect(watch.maxCount).toBeLessThanOrEqual(KILL.replicas);
      const pods = await listPods(admin, ns);
      expect(auditOrdinals(pods, NAME, KILL.replicas)).toEqual(cleanAudit(KILL.replicas));
      expect(byHash(pods)).toEqual({ [newHash]: KILL.replicas });
      // Each old pod was deleted exactly once, whichever operator did it.
      expect(watch.changes("DELETED").filter((e) => e.templateHash === oldHash).length).toBe(KILL.replicas);
      expect(ready.status).toMatchObject({ updatedReplicas: KILL.replicas, currentTemplateHash: newHash });
    },
    BIG_TEST_TIMEOUT_MS,
  );
});
