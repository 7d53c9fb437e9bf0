import { describe, expect, it } from "vitest";
import { LABEL_NAME } from "../../src/api/batchrollout.ts";
import { eventually } from "./support/cluster.ts";
import { auditOrdinals, cleanAudit, createRollout, isReadyNow, listPods, loggedAt, seconds, useTestBed, waitForReady } from "./support/batchrollout.ts";
import { PodTracker, StatusRecorder, creationRate } from "./support/adaptive.ts";

// Issue 4, two rollouts at once: one operator shares the cluster's write budget between the
// rollouts writing, by spec.priority (equal here). Neither may wait for the other: both get pods
// from the start, and when the first is Ready the second is well on its way.

const NAMES = ["fleet-a", "fleet-b"] as const;
const REPLICAS = 2_000;
/** Both rollouts have pods within this long of being applied. */
const FIRST_PODS_WITHIN_MS = 10_000;
/** When the first is Ready, the other has at least this share of its pods. */
const OTHER_SHARE_AT_FIRST_READY = 0.5;
/** The operator logs this once its caches are synced and its workers run. */
const OPERATOR_STARTED_MSG = "caches synced; starting workers";
const OPERATOR_START_TIMEOUT_MS = 60_000;
/** 4,000 pods together: about twice one 2,000-pod rollout. */
const READY_TIMEOUT_MS = 240_000;
const TEST_TIMEOUT_MS = 360_000;

describe("adaptive waves of two rollouts at once", () => {
  const bed = useTestBed();

  it(
    "progresses two 2,000-pod rollouts applied together side by side, neither waiting for the other, to Ready",
    async () => {
      const ns = await bed.namespace("adaptive-two");
      const { admin } = bed;
      const tracker = new PodTracker(admin, ns);
      await tracker.start();
      const recorder = new StatusRecorder(admin, ns, NAMES);
      try {
        const operator = bed.operator();
        // Measured from an operator that is already up, so "from the start" is about the rollouts.
        await eventually("operator started", async () => (await loggedAt(operator.logFile, OPERATOR_STARTED_MSG)) !== undefined, OPERATOR_START_TIMEOUT_MS, 500);

        let firstReady: { name: string; at: number; other: string; otherPods: number } | undefined;
        recorder.onSample((name, sample) => {
          if (firstReady || !isReadyNow(sample.rollout)) return;
          const other = NAMES.find((n) => n !== name) ?? "";
          firstReady = { name, at: sample.at, other, otherPods: tracker.counts(other).count };
        });
        recorder.start();
        const applied = Date.now();
        await Promise.all(NAMES.map((name) => createRollout(admin, ns, name, { replicas: REPLICAS })));

        const readies = await Promise.all(NAMES.map((name) => waitForReady(admin, ns, name, READY_TIMEOUT_MS)));
        const allReadyMs = Date.now() - applied;
        // The sample that saw the first Ready may still be in flight when both are Ready.
        await recorder.stop();

        const pods = await listPods(admin, ns);
        for (const name of NAMES) {
          const own = pods.filter((p) => p.metadata.labels?.[LABEL_NAME] === name);
          expect(auditOrdinals(own, name, REPLICAS)).toEqual(cleanAudit(REPLICAS));
        }
        expect(pods).toHaveLength(NAMES.length * REPLICAS);

        const lines = NAMES.map((name, i) => {
          const added = tracker.counts(name).addedAt;
          const firstPodMs = Math.min(...added) - applied;
          const lastPodMs = Math.max(...added) - applied;
          const budgetWaves = recorder.samples(name).filter((s) => s.rollout.status?.wave?.limitedBy === "Budget").length;
          return {
            name,
            firstPodMs,
            text:
              `${name}: first pod after ${seconds(firstPodMs)} s, all ${REPLICAS} created after ${seconds(lastPodMs)} s, ` +
              `${(creationRate(added) ?? 0).toFixed(1)} pods/s, ${readies[i]?.status?.wave?.number} waves, ${budgetWaves} status polls limited by Budget`,
          };
        });
        for (const line of lines) console.log(`[figure] two rollouts at once: ${line.text}`);
        console.log(
          `[figure] two rollouts at once: ${firstReady?.name} Ready after ${seconds((firstReady?.at ?? applied) - applied)} s, when ${firstReady?.other} had ` +
            `${firstReady?.otherPods} of ${REPLICAS} pods; both Ready after ${seconds(allReadyMs)} s`,
        );

        for (const line of lines) expect(line.firstPodMs, `${line.name}'s first pod`).toBeLessThanOrEqual(FIRST_PODS_WITHIN_MS);
        expect(firstReady).toBeDefined();
        expect(firstReady?.otherPods ?? 0).toBeGreaterThanOrEqual(OTHER_SHARE_AT_FIRST_READY * REPLICAS);
      } finally {
        await recorder.stop();
        await tracker.stop();
      }
    },
    TEST_TIMEOUT_MS,
  );
});
