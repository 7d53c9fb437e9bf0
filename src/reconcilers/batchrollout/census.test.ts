import { describe, expect, it } from "vitest";
import { census, remainingWrites, type PendingWrites } from "./census.ts";
import type { ObservedPod } from "./observed.ts";

const NAME = "sim";
const HASH = "h1";
const NONE: PendingWrites = { creates: new Set(), deletes: new Set() };

function pod(ordinal: number, fields: Partial<ObservedPod> = {}): ObservedPod {
  return { name: `${NAME}-${ordinal}`, ordinal, phase: "Running", scheduled: true, ready: true, deleting: false, templateHash: HASH, ...fields };
}

const of = (pods: ObservedPod[], desired: number, expectations: PendingWrites = NONE) =>
  census({ name: NAME, desired, pods, expectations, templateHash: HASH, uids: new Map(pods.map((p) => [p.name, `uid-${p.name}`])) });

describe("census: one count of a rollout's pods for plan, status and sizer", () => {
  it("counts progress against the spec and status counts over every live pod of ours", () => {
    const pods = [
      pod(0),
      pod(1, { ready: false, phase: "Pending" }),
      pod(2, { phase: "Succeeded", ready: false }),
      pod(3, { phase: "Failed", ready: false }),
      pod(4, { deleting: true }),
      pod(7, { templateHash: "old" }),
    ];
    const c = of(pods, 6, { creates: new Set([5]), deletes: new Set() });
    expect(c.progress).toEqual({
      desired: 6,
      present: 4,
      missing: 0,
      creating: 1,
      complete: 2,
      extra: 1,
      terminating: 0,
      failed: 1,
      failedDesired: 1,
      unschedulable: 0,
      updated: 4,
      outdated: 0,
      // 1 not Ready, 3 failed, 4 terminating, 5 creating
      unavailable: 4,
      failedUpdated: 1,
    });
    expect(c.missing).toEqual([]);
    expect(c.extras.map((p) => p.name)).toEqual(["sim-7"]);
    expect(c.counts).toEqual({ replicas: 5, updatedReplicas: 4, updatedReadyReplicas: 1, scheduledReplicas: 5, runningReplicas: 2, readyReplicas: 2, succeededReplicas: 1, failedReplicas: 1 });
    expect(c.live.map((p) => p.ordinal)).toEqual([0, 1, 2, 3, 7]);
    expect(c.starting).toBe(1);
    expect(c.uids.get("sim-4")).toBe("uid-sim-4");
  });

  it("lists missing ordinals lowest first, and extras highest first without those whose delete is in flight", () => {
    const c = of([pod(1), pod(9), pod(8), pod(7)], 4, { creates: new Set([2]), deletes: new Set(["sim-8"]) });
    expect(c.missing).toEqual([0, 3]);
    expect(c.extras.map((p) => p.ordinal)).toEqual([9, 7]);
    expect(c.progress.extra).toBe(3);
    expect(remainingWrites(c)).toBe(4);
  });

  it("keeps a terminating pod's name: its ordinal is neither missing nor present, and above spec.replicas it is terminating", () => {
    const c = of([pod(0, { deleting: true }), pod(3, { deleting: true })], 1);
    expect(c.missing).toEqual([]);
    expect(c.progress).toMatchObject({ present: 0, missing: 0, extra: 0, terminating: 1 });
    expect(c.counts.replicas).toBe(0);
  });

  // The two disagreements of the first draft, now one answer.
  it("ignores pods not named <name>-<ordinal> everywhere: missing, starting and counts alike", () => {
    const foreign = { ...pod(0, { scheduled: true, phase: "Pending", ready: false }), name: "other-0" };
    const c = of([foreign, pod(1)], 2);
    expect(c.missing).toEqual([0]);
    expect(c.starting).toBe(0);
    expect(c.counts.replicas).toBe(1);
    expect(remainingWrites(c)).toBe(1);
  });

  it("reports the lowest unschedulable ordinal's message, whatever the cache's order", () => {
    const stuck = (ordinal: number) => pod(ordinal, { scheduled: false, phase: "Pending", ready: false, unschedulableMessage: `no node for ${ordinal}` });
    for (const order of [[stuck(5), stuck(2), stuck(9)], [stuck(9), stuck(5), stuck(2)]]) {
      const c = of(order, 10);
      expect(c.progress).toMatchObject({ unschedulable: 3, unschedulableMessage: "no node for 2" });
    }
  });
});
