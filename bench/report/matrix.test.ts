import { describe, expect, it } from "vitest";
import type { Figures, StressorFigures } from "../figures.ts";
import type { MethodResult } from "../result.ts";
import { levelX, matrixChart } from "./matrix-charts.ts";
import { type LevelResult, ORACLE_METHOD_ID, bestSingleRate, levelTable, levelTargets, ratioToOracle } from "./matrix.ts";

function method(id: string, makespanRunningS: number | undefined, bystander: Partial<Figures["bystander"]> = {}, extra: Partial<MethodResult> = {}): MethodResult {
  return {
    id, label: id, namespace: id, pods: 1_000, startedAt: 0, endedAt: 1, timedOut: false, notes: [], samples: [],
    figures: {
      ...(makespanRunningS !== undefined ? { makespanRunningS, throughputPerS: Math.round(1_000 / makespanRunningS) } : {}),
      peakRunningPerS: 0, bystander: { requests: 100, p99Ms: 500, errors: 0, ...bystander }, retryAfterS: {}, apfRejectedWriter: 3,
      apfRejectedLevel: 0, maxInQueueLevel: 0, postPodsP99Ms: {}, maxUnscheduled: 0, proc: {}, dispatched: [],
      correctness: { expected: 1_000, seen: 1_000, existing: 1_000, duplicates: 0, notRunningAtEnd: 0, ok: true },
    },
    ...extra,
  };
}

function level(label: string, cpus: number | undefined, methods: MethodResult[], oracle?: number): LevelResult {
  return {
    level: { label, ...(cpus !== undefined ? { cpus } : {}) }, cgroup: { path: "/cg", quotaUs: -1, periodUs: 100_000, processes: {} }, startedAt: 0, loadAverageAtStart: [1, 1, 1],
    methods, throttled: { batchrollout: { nrPeriods: 100, nrThrottled: 40, throttledS: 1.234 } }, targets: [], notes: [],
    baseline: { windowS: 30, requests: 300, p99Ms: 40, errors: 0, degenerate: false },
    ...(oracle !== undefined ? { search: { reused: false, probes: [], oracle, reason: "test" } } : {}),
  };
}

const stressor = (cutAfterS: number | undefined, p99Ms: number): StressorFigures => ({
  triggerS: 10, baselineRatePerS: 40, ...(cutAfterS !== undefined ? { cutAfterS } : {}), bystanderDuring: { requests: 100, p99Ms, errors: 0 }, stormThrottled: 0,
} as StressorFigures);

describe("a level's ratios and targets", () => {
  it("divides each makespan by the oracle's run at the same N", () => {
    const l = level("1", 1, [method(ORACLE_METHOD_ID, 50), method("batchrollout", 45), method("seed-batches", 120)]);
    expect(ratioToOracle(l.methods[1]!, l)).toBe(0.9);
    expect(ratioToOracle(l.methods[2]!, l)).toBe(2.4);
    expect(ratioToOracle(method("stressor", 90, {}, { pods: 3_000 }), l)).toBeUndefined();
  });

  it("passes BatchRollout at ≤ 1.0× the oracle within the SLO, fails it beyond or over the SLO", () => {
    const pass = levelTargets(level("1", 1, [method(ORACLE_METHOD_ID, 50), method("batchrollout", 50)]));
    expect(pass[0]).toMatchObject({ verdict: "PASS", ratio: 1 });
    const slow = levelTargets(level("1", 1, [method(ORACLE_METHOD_ID, 50), method("batchrollout", 56)]));
    expect(slow[0]).toMatchObject({ verdict: "FAIL", ratio: 1.12 });
    const loud = levelTargets(level("1", 1, [method(ORACLE_METHOD_ID, 50), method("batchrollout", 40, { p99Ms: 1_300 })]));
    expect(loud[0]!.verdict).toBe("FAIL");
    expect(levelTargets(level("1", 1, [method("batchrollout", 40)]))[0]!.verdict).toBe("SKIP");
  });

  it("judges the stressor on its cut time and the bystander while the second writer writes", () => {
    const ok = levelTargets(level("1", 1, [method("stressor", 90, {}, { stressor: stressor(4, 800) })]));
    expect(ok.find((t) => t.name.startsWith("stressor"))).toMatchObject({ verdict: "PASS", ratio: 0.4 });
    const late = levelTargets(level("1", 1, [method("stressor", 90, {}, { stressor: stressor(14, 800) })]));
    expect(late.find((t) => t.name.startsWith("stressor"))!.verdict).toBe("FAIL");
    const never = levelTargets(level("1", 1, [method("stressor", 90, {}, { stressor: stressor(undefined, 300) })]));
    expect(never.find((t) => t.name.startsWith("stressor"))!.verdict).toBe("FAIL");
  });

  it("tables every method with its throttled time, ratio and verdict", () => {
    const l = level("0.5", 0.5, [method(ORACLE_METHOD_ID, 50), method("batchrollout", 60)]);
    l.targets = levelTargets(l);
    const table = levelTable(l).split("\n");
    expect(table).toHaveLength(4);
    expect(table[3]).toBe("| batchrollout | 1000 | 60 | 17 | 500 | 0/100 | 3 | 1.23 | 1.2 | **FAIL** |");
  });
});

describe("the best single fixed rate", () => {
  it("is the slowest oracle (the only one safe everywhere), with its ratio at each level", () => {
    const best = bestSingleRate([{ level: "0.5", oracle: 12 }, { level: "1", oracle: 30 }, { level: "unlimited", oracle: 96 }]);
    expect(best).toMatchObject({ qps: 12, worstRatio: 8, withinTolerance: false });
    expect(best!.perLevel.map((p) => p.ratio)).toEqual([1, 2.5, 8]);
  });

  it("stays within tolerance when the levels do not differ, and skips levels without an oracle", () => {
    expect(bestSingleRate([{ level: "1", oracle: 50 }, { level: "2", oracle: 52 }, { level: "x" }])).toMatchObject({ qps: 50, withinTolerance: true });
    expect(bestSingleRate([{ level: "x" }])).toBeUndefined();
  });
});

describe("the matrix chart", () => {
  it("puts unlimited at the core count and scales a level with APF shares", () => {
    expect(levelX(level("unlimited", undefined, []), 2)).toBe(2);
    expect(levelX(level("0.5", 0.5, []), 2)).toBe(0.5);
    const shared = level("unlimited@25", undefined, []);
    shared.level.shares = 25;
    expect(levelX(shared, 2)).toBe(0.5);
  });

  it("draws one dotted line per method against CPU, the oracle dashed, unlimited at the core count", () => {
    const levels = [level("0.5", 0.5, [method(ORACLE_METHOD_ID, 80), method("batchrollout", 70)], 12), level("unlimited", undefined, [method(ORACLE_METHOD_ID, 20), method("batchrollout", 22)], 60)];
    const svg = matrixChart("t", levels, 2);
    expect(svg).toContain("oracle (fastest safe fixed rate)");
    expect(svg).toContain('stroke-dasharray="8 4"');
    expect(svg).toContain("bystander alone (no writer)");
    expect((svg.match(/<circle/g) ?? []).length).toBe(2 * 2 + 2 * 2 + 2);
  });

  it("gives BatchRollout and the stressor colours of their own", () => {
    const levels = [level("1", 1, [method("batchrollout", 70), method("stressor", 90)], 12)];
    const svg = matrixChart("t", levels, 2);
    const legendColour = (label: string) => new RegExp(`stroke="(#[0-9A-Fa-f]{3,6})" stroke-width="3"/><text[^>]*>${label}<`).exec(svg)?.[1];
    expect(legendColour("batchrollout")).toBeDefined();
    expect(legendColour("stressor")).toBeDefined();
    expect(legendColour("stressor")).not.toBe(legendColour("batchrollout"));
  });
});
