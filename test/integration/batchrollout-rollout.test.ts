import { describe, expect, it } from "vitest";
import { eventually } from "./support/cluster.ts";
import {
  auditOrdinals,
  cleanAudit,
  createRollout,
  eventsAbout,
  getRollout,
  kubectl,
  listPods,
  ordinalOf,
  parseTable,
  recordWaveStarts,
  rolloutPath,
  seconds,
  useTestBed,
  waitForReady,
} from "./support/batchrollout.ts";

// Acceptance of the operator core on the real control plane: a large rollout reaches Ready and
// says so in kubectl's columns, a finished rollout scales down through the scale subresource, and
// the Fixed strategy keeps its wave size and spacing.

const NAME = "fleet";

/**
 * Budgets. On an idle 2-core machine 2,000 pods are Ready in about 30 s; the ceilings leave room for
 * a machine shared with other suites, where write latency (and so the adaptive wave size) suffers.
 */
const READY_2000_TIMEOUT_MS = 180_000;
/** Budget for 1,500 deletes and their confirmation by kwok. */
const SCALE_DOWN_TIMEOUT_MS = 90_000;
const FIXED_READY_TIMEOUT_MS = 60_000;
const READY_TEST_TIMEOUT_MS = 240_000;
const SCALE_TEST_TIMEOUT_MS = 300_000;
const FIXED_TEST_TIMEOUT_MS = 90_000;

/** The priority-0 printer columns of the CRD, in order, as `kubectl get br` prints them. */
const PRINTER_COLUMNS = ["NAME", "DESIRED", "CREATED", "UPDATED", "RUNNING", "WAVE", "LIMITED-BY", "READY", "AGE"];

/** Fixed strategy under test: 3 waves of 100, at least 2 s apart. */
const FIXED = { replicas: 300, initialSize: 100, minIntervalMs: 2_000 } as const;
/**
 * minInterval runs from a wave's startTime, stamped just before its first create is sent, so the
 * first creates of two waves may be a few ms under 2 s apart, which whole-second creationTimestamps
 * can show as 1 s.
 */
const TIMESTAMP_GRANULARITY_MS = 1_000;

describe("BatchRollout rollout", () => {
  const bed = useTestBed();

  it(
    "creates 2,000 pods with ordinals 0..1999, all Running, reports Ready and shows it in kubectl's columns",
    async () => {
      const ns = await bed.namespace("br-ready");
      const { admin } = bed;
      bed.operator();
      const started = Date.now();
      await createRollout(admin, ns, NAME, { replicas: 2_000 });
      const ready = await waitForReady(admin, ns, NAME, READY_2000_TIMEOUT_MS);
      console.log(`[figure] time to Ready for 2,000 pods: ${seconds(Date.now() - started)} s in ${ready.status?.wave?.number} waves`);

      expect(auditOrdinals(await listPods(admin, ns), NAME, 2_000)).toEqual(cleanAudit(2_000));
      expect(ready.status).toMatchObject({ replicas: 2_000, updatedReplicas: 2_000, scheduledReplicas: 2_000, runningReplicas: 2_000, readyReplicas: 2_000, failedReplicas: 0 });

      const table = parseTable(await kubectl(["get", "br", "-n", ns]));
      // Nothing is left to do once Ready, so the status read after kubectl is the one it printed.
      const { status } = await getRollout(admin, ns, NAME);
      expect(status?.wave?.number).toBeGreaterThan(0);
      expect(status?.wave?.limitedBy).toBe("None");
      expect(table).toHaveLength(1);
      expect(Object.keys(table[0] ?? {})).toEqual(PRINTER_COLUMNS);
      expect(table[0]).toMatchObject({
        NAME,
        DESIRED: "2000",
        CREATED: "2000",
        UPDATED: "2000",
        RUNNING: "2000",
        WAVE: String(status?.wave?.number),
        "LIMITED-BY": "None",
        READY: "True",
      });
    },
    READY_TEST_TIMEOUT_MS,
  );

  it(
    "scales a finished 2,000-pod rollout to 500 with kubectl scale, keeping ordinals 0..499 untouched",
    async () => {
      const ns = await bed.namespace("br-scale");
      const { admin } = bed;
      bed.operator();
      await createRollout(admin, ns, NAME, { replicas: 2_000 });
      await waitForReady(admin, ns, NAME, READY_2000_TIMEOUT_MS);
      const before = new Map((await listPods(admin, ns)).map((p) => [p.metadata.name, p.metadata.uid]));
      const watch = await bed.watch();

      const started = Date.now();
      const out = await kubectl(["scale", `br/${NAME}`, "--replicas=500", "-n", ns]);
      expect(out).toContain("scaled");
      const rollout = await waitForReady(admin, ns, NAME, SCALE_DOWN_TIMEOUT_MS);
      expect(rollout.spec.replicas).toBe(500);
      const pods = await eventually(
        "500 pods left, none terminating",
        async () => {
          const left = await listPods(admin, ns);
          return left.length === 500 ? left : undefined;
        },
        SCALE_DOWN_TIMEOUT_MS,
      );
      console.log(`[figure] scale-down 2,000 → 500 pods: ${seconds(Date.now() - started)} s to Ready with 500 pods`);

      expect(auditOrdinals(pods, NAME, 500)).toEqual(cleanAudit(500));
      // The survivors are the very pods that were there before: nothing below 500 was replaced.
      const replaced = pods.filter((p) => before.get(p.metadata.name) !== p.metadata.uid).map((p) => p.metadata.name);
      expect(replaced).toEqual([]);
      const wrongDeletes = watch.changes("DELETED").filter((e) => e.ordinal === undefined || e.ordinal < 500).map((e) => e.name);
      expect(wrongDeletes).toEqual([]);
      expect(watch.changes("ADDED").map((e) => e.name)).toEqual([]);
      expect(rollout.status).toMatchObject({ replicas: 500, readyReplicas: 500 });

      const scale = await admin.get<{ spec: { replicas: number }; status: { replicas: number; selector: string } }>(`${rolloutPath(ns, NAME)}/scale`);
      expect(scale.spec.replicas).toBe(500);
      expect(scale.status.replicas).toBe(500);
      expect(scale.status.selector).toBe(`batchrollout.dev/name=${NAME}`);
      expect(await eventsAbout(admin, ns, rollout.metadata.uid, "ScaledDown")).not.toEqual([]);
    },
    SCALE_TEST_TIMEOUT_MS,
  );

  it(
    "runs a Fixed rollout of 300 pods as 3 waves of 100 at least minInterval (2 s) apart",
    async () => {
      const ns = await bed.namespace("br-fixed");
      const { admin } = bed;
      const watch = await bed.watch();
      bed.operator();
      await createRollout(admin, ns, NAME, {
        replicas: FIXED.replicas,
        waves: { strategy: "Fixed", initialSize: FIXED.initialSize, minInterval: `${FIXED.minIntervalMs / 1000}s` },
      });
      const recorder = recordWaveStarts(admin, ns, NAME);
      const rollout = await waitForReady(admin, ns, NAME, FIXED_READY_TIMEOUT_MS).finally(() => recorder.stop());
      expect(rollout.status?.wave?.number).toBe(3);
      expect(rollout.status?.wave?.limitedBy).toBe("None");

      const waveEvents = await eventsAbout(admin, ns, rollout.metadata.uid, "WaveStarted");
      expect(waveEvents.map((e) => e.note).sort()).toEqual([
        expect.stringMatching(/^wave 1: creating 100 pods \(ordinals 0-99\)/),
        expect.stringMatching(/^wave 2: creating 100 pods \(ordinals 100-199\)/),
        expect.stringMatching(/^wave 3: creating 100 pods \(ordinals 200-299\)/),
      ]);
      expect(waveEvents.map((e) => e.series?.count ?? 1)).toEqual([1, 1, 1]);

      const pods = await listPods(admin, ns);
      expect(auditOrdinals(pods, NAME, FIXED.replicas)).toEqual(cleanAudit(FIXED.replicas));
      const waveOf = (ordinal: number) => Math.floor(ordinal / FIXED.initialSize);
      const created = [0, 1, 2].map((wave) =>
        pods.filter((p) => waveOf(ordinalOf(p) ?? -1) === wave).map((p) => Date.parse(p.metadata.creationTimestamp ?? "")),
      );
      const added = [0, 1, 2].map((wave) => watch.changes("ADDED").filter((e) => waveOf(e.ordinal ?? -1) === wave).map((e) => e.at));
      expect([...recorder.starts.keys()].sort()).toEqual([1, 2, 3]);
      const gaps: string[] = [];
      for (const wave of [1, 2]) {
        const [previous, current] = [created[wave - 1] ?? [], created[wave] ?? []];
        // Waves do not overlap: every pod of a wave exists before the next one starts.
        expect(Math.min(...current)).toBeGreaterThanOrEqual(Math.max(...previous));
        const createdGap = Math.min(...current) - Math.min(...previous);
        expect(createdGap).toBeGreaterThanOrEqual(FIXED.minIntervalMs - TIMESTAMP_GRANULARITY_MS);
        const startGap = Date.parse(recorder.starts.get(wave + 1) ?? "") - Date.parse(recorder.starts.get(wave) ?? "");
        expect(startGap).toBeGreaterThanOrEqual(FIXED.minIntervalMs);
        // Watch delivery delays vary under load, so this one is reported, not asserted.
        const seenGap = Math.min(...(added[wave] ?? [])) - Math.min(...(added[wave - 1] ?? []));
        gaps.push(`wave ${wave}→${wave + 1}: ${seconds(startGap)} s by status.wave.startTime, ${seconds(createdGap)} s by creationTimestamp, ${seconds(seenGap)} s by watch`);
      }
      console.log(`[figure] Fixed waves of ${FIXED.initialSize}, minInterval ${FIXED.minIntervalMs / 1000} s: ${gaps.join("; ")}`);
    },
    FIXED_TEST_TIMEOUT_MS,
  );
});
