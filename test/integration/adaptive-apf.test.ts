import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { KubeClient } from "../../src/kube/client.ts";
import { adminClient, createTestNamespace, eventually, operatorClient } from "./support/cluster.ts";
import { ensureCrd } from "./support/crd.ts";
import { startOperator } from "./support/operator.ts";
import {
  auditOrdinals,
  cleanAudit,
  createRollout,
  eventsAbout,
  listPods,
  seconds,
  teardown,
  waitForReady,
} from "./support/batchrollout.ts";
import {
  type ApfSqueeze,
  PRIORITY_LEVELS_PATH,
  PodTracker,
  StatusRecorder,
  createApfSqueeze,
  creationRate,
  creationRateFromTimestamps,
  deleteApfSqueeze,
  priorityLevelUidOf,
  stalledSamples,
  summarizeOperatorLog,
} from "./support/adaptive.ts";

// Issue 4, APF squeeze: the operator's ServiceAccount is routed to a priority level of one share
// with a single queue of 5, so its pod writes meet 429s and long queueing. A 3,000-pod rollout must
// still reach Ready with no write failure lost (every pod exists) or shown to the user (no
// WriteFailed or TemplateRejected event, never Stalled), name that level in status, and keep its
// 429s bounded. The same rollout on the default level (workload-low) is the yardstick: squeezed,
// the operator must create pods more slowly, i.e. it really adapted to the level it landed in.

const NAME = "fleet";
const REPLICAS = 3_000;

/** Both the FlowSchema and the level; the name says where it comes from if a run leaves it behind. */
const SQUEEZE: ApfSqueeze = {
  name: "batchrollout-adaptive-test-squeeze",
  matchingPrecedence: 100,
  nominalConcurrencyShares: 1,
  queues: 1,
  queueLengthLimit: 5,
  handSize: 1,
};
/** Where a ServiceAccount outside kube-system lands by default (FlowSchema service-accounts). */
const DEFAULT_PRIORITY_LEVEL = "workload-low";
/** The level a FlowSchema change routes to is in effect within seconds; a loaded machine gets more. */
const APF_APPLY_TIMEOUT_MS = 30_000;
/**
 * 3,000 pods through a level of 3 seats (600 seats × 1/246 shares): about 11 pods/s, 4.5 min here,
 * longer when other tests' operators (the same ServiceAccount, so the same flow) write meanwhile.
 */
const SQUEEZED_READY_TIMEOUT_MS = 400_000;
const SQUEEZED_TEST_TIMEOUT_MS = 480_000;
const DEFAULT_READY_TIMEOUT_MS = 180_000;
const DEFAULT_TEST_TIMEOUT_MS = 240_000;
/**
 * 429s allowed for 3,000 pods: one per pod. AIMD halves the rate and waits out Retry-After on the
 * first 429 of an episode, so a rollout that kept hammering the queue would blow through this.
 */
const MAX_THROTTLED = REPLICAS;

interface RunFigures {
  ns: string;
  readyMs: number;
  /** Pods/s between the first and the last pod seen by the watch. */
  rate: number;
  /** Pods/s by creationTimestamp, as a cross-check of the watch. */
  rateByTimestamp: number | undefined;
  throttled: number;
  retryAfterSeconds: number | undefined;
  priorityLevel: string | undefined;
  flowSchema: string | undefined;
  waves: number;
  /** Lines the operator logged at warn or above. */
  warnings: number;
}

describe("adaptive waves under an APF squeeze", () => {
  let admin: KubeClient;
  let operatorIdentity: KubeClient;
  /** Namespaces still to tear down, with their operators; emptied as they go. */
  const pending: { ns: string; stop: () => Promise<void> }[] = [];

  const tearDownPending = async () => {
    for (const item of pending.splice(0)) {
      await item.stop();
    }
  };

  beforeAll(async () => {
    admin = await adminClient();
    operatorIdentity = await operatorClient();
    await ensureCrd(admin);
    // A previous run that died before its finally must not squeeze this one (or anyone else).
    await deleteApfSqueeze(admin, SQUEEZE.name);
  });

  afterAll(async () => {
    await deleteApfSqueeze(admin, SQUEEZE.name);
    await tearDownPending();
    await Promise.all([admin.close(), operatorIdentity.close()]);
  });

  /** Waits until the operator's identity is classified into the level with this UID. */
  async function waitForLevel(uid: string, what: string): Promise<void> {
    await eventually(`the operator's requests land in ${what}`, async () => (await priorityLevelUidOf(operatorIdentity, "default")) === uid, APF_APPLY_TIMEOUT_MS, 500);
  }

  /**
   * One 3,000-pod rollout in a fresh namespace with its own operator, run to Ready, with every check
   * that no write failure was lost or shown. The namespace is left for the caller to tear down (it
   * is queued in `pending`), so the squeeze can be lifted before a slow teardown.
   */
  async function runToReady(prefix: string, timeoutMs: number): Promise<RunFigures> {
    const ns = await createTestNamespace(admin, prefix);
    const operator = startOperator(ns);
    const tracker = new PodTracker(admin, ns);
    const recorder = new StatusRecorder(admin, ns, [NAME]);
    pending.push({
      ns,
      stop: async () => {
        await recorder.stop();
        await tracker.stop();
        await teardown(admin, ns, [operator]);
      },
    });
    await tracker.start();
    recorder.start();
    const started = Date.now();
    const created = await createRollout(admin, ns, NAME, { replicas: REPLICAS });
    const ready = await waitForReady(admin, ns, NAME, timeoutMs).finally(() => console.log(`operator log (${prefix}): ${operator.logFile}`));
    const readyMs = Date.now() - started;
    await recorder.stop();

    // Nothing lost: exactly ordinals 0..2999, one Running pod each, and the watch never saw more.
    expect(auditOrdinals(await listPods(admin, ns), NAME, REPLICAS)).toEqual(cleanAudit(REPLICAS));
    // Ready came from the operator's watch; let the tracker's own watch see the last pods too.
    await eventually("the tracker seeing every pod", async () => tracker.counts(NAME).count >= REPLICAS).catch(() => undefined);
    expect(tracker.counts(NAME).maxCount).toBe(REPLICAS);
    // Nothing shown: no failure event, never Stalled at any poll, and the log agrees (an event could
    // itself be throttled away, the log cannot).
    expect(await eventsAbout(admin, ns, created.metadata.uid, "WriteFailed")).toEqual([]);
    expect(await eventsAbout(admin, ns, created.metadata.uid, "TemplateRejected")).toEqual([]);
    expect(stalledSamples(recorder.samples(NAME))).toEqual([]);
    const log = await summarizeOperatorLog(operator.logFile);
    expect({ wavesWithFailures: log.wavesWithFailures, failedWrites: log.failedWrites }).toEqual({ wavesWithFailures: 0, failedWrites: 0 });

    const apiServer = ready.status?.signals?.apiServer;
    const rate = creationRate(tracker.counts(NAME).addedAt);
    expect(rate).toBeDefined();
    return {
      ns,
      readyMs,
      rate: rate ?? 0,
      rateByTimestamp: creationRateFromTimestamps((await listPods(admin, ns)).map((p) => p.metadata.creationTimestamp)),
      throttled: apiServer?.throttled ?? 0,
      retryAfterSeconds: apiServer?.retryAfterSeconds,
      priorityLevel: apiServer?.priorityLevel,
      flowSchema: apiServer?.flowSchema,
      waves: ready.status?.wave?.number ?? 0,
      warnings: log.warnings.length,
    };
  }

  const describeRun = (what: string, r: RunFigures) =>
    `[figure] ${what}: ${REPLICAS} pods Ready in ${seconds(r.readyMs)} s, creation rate ${r.rate.toFixed(1)} pods/s by watch ` +
    `(${r.rateByTimestamp?.toFixed(1) ?? "?"} pods/s by creationTimestamp), 429s ${r.throttled}, last Retry-After ${r.retryAfterSeconds ?? "-"} s, ` +
    `${r.waves} waves, ${r.warnings} operator warnings, FlowSchema ${r.flowSchema ?? "?"} → priority level ${r.priorityLevel ?? "?"}`;

  afterEach(async () => {
    await tearDownPending();
  });

  /** The squeezed run's figures, for the comparison in the next test. */
  let squeezed: RunFigures | undefined;

  it(
    "reaches Ready with 3,000 pods, no visible write failure and bounded 429s when squeezed into a 1-share APF level",
    async () => {
      let run: RunFigures;
      try {
        const { priorityLevelUid } = await createApfSqueeze(admin, SQUEEZE);
        await waitForLevel(priorityLevelUid, `priority level ${SQUEEZE.name}`);
        run = await runToReady("adaptive-apf-squeezed", SQUEEZED_READY_TIMEOUT_MS);
      } finally {
        // Other tests run as the same ServiceAccount: the squeeze must never outlive this block.
        await deleteApfSqueeze(admin, SQUEEZE.name);
      }
      console.log(describeRun(`APF squeeze (level ${SQUEEZE.name}: 1 share, 1 queue of ${SQUEEZE.queueLengthLimit}, no lending or borrowing)`, run));
      expect(run.priorityLevel).toBe(SQUEEZE.name);
      expect(run.flowSchema).toBe(SQUEEZE.name);
      expect(run.throttled).toBeLessThan(MAX_THROTTLED);
      squeezed = run;
    },
    SQUEEZED_TEST_TIMEOUT_MS,
  );

  it(
    "creates the same 3,000 pods faster on the default level (workload-low) than squeezed",
    async () => {
      // Separate tests keep each within its budget; this one only means something after the first.
      if (!squeezed) throw new Error("the squeezed run did not finish, so there is nothing to compare with");
      const level = await admin.get<{ metadata: { uid: string } }>(`${PRIORITY_LEVELS_PATH}/${DEFAULT_PRIORITY_LEVEL}`);
      await waitForLevel(level.metadata.uid, `the default priority level ${DEFAULT_PRIORITY_LEVEL}`);
      const baseline = await runToReady("adaptive-apf-default", DEFAULT_READY_TIMEOUT_MS);
      console.log(describeRun("default APF level", baseline));
      console.log(
        `[figure] APF squeeze slowed creation to ${((squeezed.rate / baseline.rate) * 100).toFixed(0)} % of the default level's rate ` +
          `(${squeezed.rate.toFixed(1)} vs ${baseline.rate.toFixed(1)} pods/s)`,
      );
      expect(baseline.priorityLevel).toBe(DEFAULT_PRIORITY_LEVEL);
      expect(squeezed.rate).toBeLessThan(baseline.rate);
    },
    DEFAULT_TEST_TIMEOUT_MS,
  );
});
