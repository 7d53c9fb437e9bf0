import { describe, expect, it } from "vitest";
import { BatchRolloutSpec, BatchRolloutStatus, FINALIZER } from "../../api/batchrollout.ts";
import { census } from "./census.ts";
import { EventReason, StallReason } from "./conditions.ts";
import type { ObservedPod } from "./observed.ts";
import { plan, type PlanInput, type SizerDecision } from "./plan.ts";
import { computeStatus } from "./status.ts";
import { maxUnavailableCount, replacementBudget } from "./update.ts";

// spec.updateStrategy RollingRecreate, planned from plain inputs: the cases of issue 27 and a
// seeded property check of the two invariants (maxUnavailable, one pod per ordinal).

const NAME = "sim";
const NOW = Date.parse("2025-01-01T00:00:10.000Z");
const NEW = "h2";
const OLD = "h1";
const template = { spec: { containers: [{ name: "sim", image: "busybox" }] } };

function pod(ordinal: number, fields: Partial<ObservedPod> = {}): ObservedPod {
  return { name: `${NAME}-${ordinal}`, ordinal, phase: "Running", scheduled: true, ready: true, deleting: false, templateHash: OLD, ...fields };
}
const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
const pods = (from: number, to: number, fields: Partial<ObservedPod> = {}) => range(from, to).map((o) => pod(o, fields));
const names = (ordinals: number[]) => ordinals.map((o) => `${NAME}-${o}`);

interface Options {
  spec?: Record<string, unknown>;
  pods?: ObservedPod[];
  creates?: number[];
  deletes?: string[];
  decision?: Partial<SizerDecision>;
  waveAgoMs?: number;
}

function input(options: Options = {}): PlanInput {
  const spec = BatchRolloutSpec.parse({ replicas: 10, template, ...options.spec });
  const expectations = { creates: new Set(options.creates ?? []), deletes: new Set(options.deletes ?? []) };
  const rolling = spec.updateStrategy.type === "RollingRecreate";
  const status = BatchRolloutStatus.parse({
    wave: { number: 3, size: 4, limitedBy: "Rate", startTime: new Date(NOW - (options.waveAgoMs ?? 2_000)).toISOString() },
  });
  return {
    rollout: { metadata: { name: NAME, namespace: "ns", generation: 2, finalizers: [FINALIZER] }, spec, status },
    pods: census({
      name: NAME,
      desired: spec.replicas,
      pods: options.pods ?? [],
      expectations,
      templateHash: NEW,
      ...(rolling ? { partition: spec.updateStrategy.partition } : {}),
    }),
    expectations,
    decision: { size: 10, limitedBy: "Rate", ...options.decision },
    templateHash: NEW,
    now: NOW,
  };
}

const condition = (i: PlanInput, type: string) => {
  const status = computeStatus(i, plan(i), NOW);
  return status.conditions?.find((c) => c.type === type);
};

describe("update: sizes", () => {
  it("reads maxUnavailable as a count or a percentage of replicas rounded down, at least 1", () => {
    const of = (replicas: number, maxUnavailable: number | string) =>
      maxUnavailableCount(BatchRolloutSpec.parse({ replicas, template, updateStrategy: { maxUnavailable } }));
    expect(of(3000, "25%")).toBe(750);
    expect(of(10, "25%")).toBe(2);
    expect(of(3, "25%")).toBe(1);
    expect(of(0, "25%")).toBe(1);
    expect(of(3000, 40)).toBe(40);
  });

  it("gives replacements at most half a wave (each brings a create later), at least one, within what is left", () => {
    expect(replacementBudget(10, 0)).toBe(5);
    expect(replacementBudget(23, 0)).toBe(12);
    expect(replacementBudget(10, 7)).toBe(3);
    expect(replacementBudget(1, 0)).toBe(1);
    expect(replacementBudget(1, 1)).toBe(0);
    expect(replacementBudget(0, 0)).toBe(0);
  });
});

describe("plan: RollingRecreate", () => {
  it("replaces old pods highest first from a Ready fleet, bounded by maxUnavailable", () => {
    const i = input({ pods: pods(0, 10) });
    const result = plan(i);
    // 25% of 10 is 2 pods; the wave had room for 5.
    expect(result.deletes).toEqual(names([9, 8]));
    expect(result.replaced).toBe(2);
    expect(result.creates).toEqual([]);
    expect(result.wave).toMatchObject({ number: 4, size: 2, limitedBy: "MaxUnavailable", message: expect.stringContaining("0 of 10 pods not Ready, spec.updateStrategy.maxUnavailable allows 2") });
    expect(result.events).toEqual([
      { type: "Normal", reason: EventReason.WaveStarted, message: "wave 4: replacing 2 pods on an older template (ordinals 9-8), limited by MaxUnavailable" },
    ]);
  });

  it("replaces LowestFirst when asked, and by the sizer's share when maxUnavailable has room", () => {
    const result = plan(input({ spec: { updateStrategy: { order: "LowestFirst", maxUnavailable: "100%" } }, pods: pods(0, 10) }));
    expect(result.deletes).toEqual(names([0, 1, 2, 3, 4]));
    expect(result.wave.limitedBy).toBe("Rate");
  });

  it("creates the ordinals whose old pod is gone, then replaces more within the same size", () => {
    // 9 and 8 were replaced: gone from the cache. 7 is terminating.
    const i = input({ spec: { updateStrategy: { maxUnavailable: 4 } }, pods: [...pods(0, 7), pod(7, { deleting: true })], decision: { size: 4 } });
    const result = plan(i);
    expect(result.creates).toEqual([8, 9]);
    // 3 not available (7, 8, 9): one more may go.
    expect(result.deletes).toEqual(names([6]));
    expect(result.wave.size).toBe(3);
  });

  it("is not held by maxUnavailable for creates, and waits for Ready pods without a wave", () => {
    const result = plan(input({ pods: [...pods(0, 8), pod(8, { templateHash: NEW, ready: false, phase: "Pending" }), pod(9, { templateHash: NEW, ready: false, phase: "Pending" })] }));
    expect(result).toMatchObject({ creates: [], deletes: [], waveStarted: false });
    expect(result.wave).toMatchObject({ number: 3, size: 0, limitedBy: "MaxUnavailable", message: "2 of 10 pods not Ready, spec.updateStrategy.maxUnavailable allows 2: waiting for pods to become Ready" });
    expect(result.blocker).toBeUndefined();
  });

  it("replaces pods that are not Ready first: they cost no availability", () => {
    const result = plan(input({ pods: [...pods(0, 8), pod(8, { ready: false, phase: "Failed" }), pod(9)], spec: { updateStrategy: { maxUnavailable: 1 } } }));
    // 8 (failed) costs nothing; it is the one pod not available, so maxUnavailable 1 allows no Ready pod.
    expect(result.deletes).toEqual(names([8]));
  });

  it("keeps ordinals below the partition on the old template, and is Ready once the rest is updated", () => {
    const partition = { updateStrategy: { partition: 6, maxUnavailable: "100%" } };
    const mid = plan(input({ spec: partition, pods: pods(0, 10) }));
    expect(mid.deletes).toEqual(names([9, 8, 7, 6]));

    const done = input({ spec: partition, pods: [...pods(0, 6), ...pods(6, 10, { templateHash: NEW })] });
    expect(plan(done)).toMatchObject({ creates: [], deletes: [], waveStarted: false });
    const status = computeStatus(done, plan(done), NOW);
    expect(status).toMatchObject({ updatedReplicas: 4, updatedReadyReplicas: 4, currentTemplateHash: OLD, updateTemplateHash: NEW });
    expect(status.conditions?.find((c) => c.type === "Ready")).toMatchObject({ status: "True", reason: "AllReplicasReady" });
  });

  it("reads Progressing (UpdatingPods) and not Ready while old pods remain, Ready and current = update once none does", () => {
    const mid = input({ pods: [...pods(0, 5), ...pods(5, 10, { templateHash: NEW })] });
    expect(condition(mid, "Ready")).toMatchObject({ status: "False", reason: "UpdatingPods", message: "5/10 pods on template h2, 5 at or above ordinal 0 still on older ones" });
    expect(condition(mid, "Progressing")).toMatchObject({ status: "True", reason: "UpdatingPods" });
    expect(computeStatus(mid, plan(mid), NOW).currentTemplateHash).toBe(OLD);

    const done = input({ pods: pods(0, 10, { templateHash: NEW }) });
    expect(condition(done, "Ready")).toMatchObject({ status: "True" });
    expect(computeStatus(done, plan(done), NOW)).toMatchObject({ currentTemplateHash: NEW, updateTemplateHash: NEW, updatedReplicas: 10 });
  });

  it("replaces nothing while paused mid-update", () => {
    const result = plan(input({ spec: { paused: true }, pods: [...pods(0, 7), ...pods(8, 10, { templateHash: NEW })] }));
    expect(result).toMatchObject({ creates: [], deletes: [], waveStarted: false });
    expect(result.wave.limitedBy).toBe("Paused");
  });

  it("deletes pods above replicas first and replaces within replicas with what is left", () => {
    const result = plan(input({ spec: { replicas: 6 }, pods: pods(0, 10) }));
    // 4 extras, then 25% of 6 = 1 replacement.
    expect(result.deletes).toEqual(names([9, 8, 7, 6, 5]));
    expect(result.replaced).toBe(1);
    expect(result.events[0]?.message).toBe("wave 4: replacing 1 pods on an older template (ordinals 5), deleting 4 above spec.replicas=6 (ordinals 9-6), limited by MaxUnavailable");
  });

  it("stops deleting old pods once new pods failed past the budget (Pause), and does not recreate the gaps", () => {
    const failing = { ready: false, phase: "Failed" as const, templateHash: NEW };
    const i = input({ spec: { failurePolicy: { maxFailedPods: 1 } }, pods: [...pods(0, 7), pod(8, failing), pod(9, failing)] });
    const result = plan(i);
    expect(result).toMatchObject({ creates: [], deletes: [], waveStarted: false });
    expect(result.blocker).toMatchObject({ reason: StallReason.FailureBudgetExceeded, stalled: true });
    expect(result.blocker?.message).toContain("the update is paused and no further old pods are deleted (7 left on older templates)");
    expect(result.events).toEqual([expect.objectContaining({ reason: EventReason.FailurePolicy })]);
    expect(condition(i, "Stalled")).toMatchObject({ status: "True", reason: "FailureBudgetExceeded" });
  });

  it("goes on within the failure budget, and under Continue", () => {
    const failing = { ready: false, phase: "Failed" as const, templateHash: NEW };
    const within = plan(input({ spec: { failurePolicy: { maxFailedPods: 2 }, updateStrategy: { maxUnavailable: 3 } }, pods: [...pods(0, 8), pod(8, failing), pod(9, failing)] }));
    expect(within.deletes).toEqual(names([7]));
    const cont = plan(input({ spec: { failurePolicy: { maxFailedPods: 0, action: "Continue" }, updateStrategy: { maxUnavailable: 3 } }, pods: [...pods(0, 8), pod(8, failing), pod(9, failing)] }));
    expect(cont.deletes).toEqual(names([7]));
  });

  it("rolls back as another update: pods of the broken template go first, pods already on the template stay", () => {
    // The previous template (NEW here) is applied again after 8 and 9 failed on "bad".
    const bad = { ready: false, phase: "Failed" as const, templateHash: "bad" };
    const result = plan(input({ spec: { failurePolicy: { maxFailedPods: 1 } }, pods: [...pods(0, 8, { templateHash: NEW }), pod(8, bad), pod(9, bad)] }));
    expect(result.blocker).toBeUndefined();
    expect(result.deletes).toEqual(names([9, 8]));
  });

  it("rolls back mid-update: ordinals still on the restored template are never touched", () => {
    // Rolling from NEW to "next" had replaced 8 and 9; NEW is applied again.
    const result = plan(input({ spec: { updateStrategy: { maxUnavailable: "100%" } }, pods: [...pods(0, 8, { templateHash: NEW }), pod(8, { templateHash: "next" }), pod(9, { templateHash: "next" })] }));
    expect(result.deletes).toEqual(names([9, 8]));
  });

  it("with a stale cache, counts deletes in flight as unavailable and never deletes or creates twice", () => {
    // 9 and 8 were deleted a moment ago; the cache still shows them Ready.
    const stale = plan(input({ pods: pods(0, 10), deletes: names([9, 8]) }));
    expect(stale).toMatchObject({ creates: [], deletes: [], waveStarted: false });
    // The wave in flight is still the current one.
    expect(stale.wave).toMatchObject({ number: 3, limitedBy: "Rate" });
    // 9 is gone now and its create is in flight; 8 still shows as ours.
    const later = plan(input({ pods: pods(0, 9), deletes: names([8]), creates: [9] }));
    expect(later).toMatchObject({ creates: [], deletes: [] });
    // 8 is terminating: its name is still held, so it is not created yet.
    const terminating = plan(input({ pods: [...pods(0, 8), pod(8, { deleting: true })], creates: [9] }));
    expect(terminating.creates).toEqual([]);
  });

  it("leaves running pods alone under OnDelete and reads Ready", () => {
    const i = input({ spec: { updateStrategy: { type: "OnDelete" } }, pods: pods(0, 10) });
    expect(plan(i)).toMatchObject({ creates: [], deletes: [] });
    expect(condition(i, "Ready")).toMatchObject({ status: "True" });
    expect(computeStatus(i, plan(i), NOW)).toMatchObject({ updatedReplicas: 0, currentTemplateHash: OLD, updateTemplateHash: NEW });
  });
});

/** mulberry32: a small seeded generator, so a failing case can be replayed from its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Cases for the property check: enough to hit every branch, fast enough for test:unit. */
const PROPERTY_CASES = 2_000;

describe("plan: RollingRecreate invariants over random states", () => {
  it("never plans past maxUnavailable, never two pods for an ordinal, never below the partition, never more writes than the wave", () => {
    for (let seed = 1; seed <= PROPERTY_CASES; seed++) {
      const r = random(seed);
      const int = (n: number) => Math.floor(r() * n);
      const replicas = int(30);
      const present: ObservedPod[] = [];
      const creates: number[] = [];
      const deletes: string[] = [];
      for (let ordinal = 0; ordinal < replicas + int(5); ordinal++) {
        const roll = r();
        if (roll < 0.15) {
          if (r() < 0.5 && ordinal < replicas) creates.push(ordinal);
          continue;
        }
        const phase = r() < 0.1 ? "Failed" : r() < 0.2 ? "Pending" : "Running";
        const p = pod(ordinal, { phase, ready: phase === "Running" && r() < 0.85, deleting: r() < 0.1, templateHash: [OLD, NEW, "bad"][int(3)] });
        present.push(p);
        if (!p.deleting && r() < 0.1) deletes.push(p.name);
      }
      const maxUnavailable = r() < 0.5 ? 1 + int(6) : `${1 + int(100)}%`;
      const partition = r() < 0.3 ? int(replicas + 1) : 0;
      const i = input({
        spec: { replicas, updateStrategy: { maxUnavailable, partition, order: r() < 0.5 ? "HighestFirst" : "LowestFirst" }, failurePolicy: { maxFailedPods: 100 } },
        pods: present,
        creates,
        deletes,
        decision: { size: int(12), limitedBy: "Rate" },
      });
      const result = plan(i);
      const context = `seed ${seed}`;
      const byName = new Map(present.map((p) => [p.name, p]));
      const replaced = result.deletes.slice(result.deletes.length - result.replaced).map((n) => byName.get(n));
      const bound = maxUnavailableCount(i.rollout.spec);
      const before = i.pods.progress.unavailable;
      const lost = replaced.filter((p) => p?.ready === true || p?.phase === "Succeeded").length;
      if (lost > 0) expect(before + lost, context).toBeLessThanOrEqual(bound);
      for (const p of replaced) {
        expect(p, context).toBeDefined();
        expect(p?.deleting, context).toBe(false);
        expect(p?.templateHash, context).not.toBe(NEW);
        expect(p?.ordinal ?? -1, context).toBeGreaterThanOrEqual(partition);
      }
      expect(result.deletes.filter((n) => deletes.includes(n)), context).toEqual([]);
      expect(new Set(result.deletes).size, context).toBe(result.deletes.length);
      for (const ordinal of result.creates) {
        expect(present.some((p) => p.ordinal === ordinal), context).toBe(false);
        expect(creates.includes(ordinal), context).toBe(false);
      }
      expect(result.creates.length + result.deletes.length, context).toBeLessThanOrEqual(i.decision.size);
    }
  });
});
