import { describe, expect, it } from "vitest";
import type { Figures } from "../figures.ts";
import type { MethodResult } from "../result.ts";
import { computeTargets, STORM_THROUGHPUT_SHARE } from "./targets.ts";

function method(id: string, figures: Partial<Figures>, pods = 10_000): MethodResult {
  return {
    id, label: id, namespace: id, pods, startedAt: 0, endedAt: 1, timedOut: false, notes: [], samples: [],
    figures: {
      peakRunningPerS: 0, bystander: { requests: 100, p99Ms: 500, errors: 0 }, retryAfterS: {}, apfRejectedWriter: 0,
      apfRejectedLevel: 0, maxInQueueLevel: 0, postPodsP99Ms: {}, maxUnscheduled: 0, proc: {}, dispatched: [],
      correctness: { expected: pods, seen: pods, existing: pods, duplicates: 0, notRunningAtEnd: 0, ok: true },
      ...figures,
    },
  };
}

const stormTarget = (...methods: MethodResult[]) => computeTargets(methods).find((t) => t.name === "throughput vs storm")!;
const rollout = (perS: number) => method("batchrollout", { makespanRunningS: 10_000 / perS, throughputPerS: perS, runningThroughput: { pods: 10_000, perS } });

describe("throughput vs storm", () => {
  it("compares with a storm that got every pod Running", () => {
    const t = stormTarget(rollout(80), method("storm", { throughputPerS: 90, runningThroughput: { pods: 10_000, perS: 90 } }));
    expect(t.verdict).toBe("PASS");
    expect(t.ratio).toBe(0.89);
    expect(t.detail).not.toContain("lost");
  });

  it("fails below the share of the storm's rate", () => {
    const stormRate = 100;
    const t = stormTarget(rollout(STORM_THROUGHPUT_SHARE * stormRate - 1), method("storm", { throughputPerS: stormRate, runningThroughput: { pods: 10_000, perS: stormRate } }));
    expect(t.verdict).toBe("FAIL");
  });

  it("scores a storm that lost creates on the rate of the pods it did get Running, and says so", () => {
    const lossy = method("storm", {
      runningThroughput: { pods: 9_976, perS: 120 },
      correctness: { expected: 10_000, seen: 9_976, existing: 9_976, duplicates: 0, notRunningAtEnd: 0, ok: false },
    });
    const t = stormTarget(rollout(90), lossy);
    expect(t.verdict).toBe("FAIL");
    expect(t.ratio).toBe(0.75);
    expect(t.detail).toContain("9976 pods it got Running; 24 of its 10000 creates were lost");
  });

  it("skips when the storm got nothing Running or BatchRollout did not finish", () => {
    expect(stormTarget(rollout(90), method("storm", {})).verdict).toBe("SKIP");
    expect(stormTarget(method("batchrollout", {}), method("storm", { throughputPerS: 50 })).verdict).toBe("SKIP");
    expect(stormTarget(rollout(90)).verdict).toBe("SKIP");
  });
});
