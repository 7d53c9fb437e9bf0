import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { BUDGET_BURST_PERIODS, BUDGET_IDLE_TIMEOUT_MS, DEFAULT_BUDGET_WEIGHT, WriteBudget } from "./budget.ts";

// 100 writes/s and 1 s waves: a lone rollout may create 100 pods per wave.
const RATE = 100;
const PERIOD = 1_000;

function budget(now = 0) {
  const lines: Array<{ msg: string }> = [];
  const logger = pino({ level: "info" }, { write: (l: string) => void lines.push(JSON.parse(l) as { msg: string }) });
  return { b: new WriteBudget({ perSecond: RATE, periodMs: PERIOD, now, logger }), lines };
}

/** Calls share for each rollout once per period from `from` for `periods` periods; returns per-rollout grants. */
function run(b: WriteBudget, rollouts: Array<[string, number]>, from: number, periods: number): Map<string, number[]> {
  const grants = new Map<string, number[]>(rollouts.map(([k]) => [k, []]));
  for (let i = 0; i < periods; i++) {
    const now = from + i * PERIOD;
    for (const [key, weight] of rollouts) grants.get(key)!.push(b.share(key, weight, now));
  }
  return grants;
}

const sum = (xs: number[] | undefined) => (xs ?? []).reduce((a, x) => a + x, 0);

describe("WriteBudget", () => {
  it("a lone rollout gets the whole rate, one period's worth per wave", () => {
    const { b } = budget();
    const grants = run(b, [["a", 1]], 0, 5);
    expect(grants.get("a")).toEqual([100, 100, 100, 100, 100]);
  });

  it("two equal rollouts started together get equal shares, and never more than the rate in total", () => {
    const { b } = budget();
    const grants = run(b, [["a", 1], ["b", 1]], 0, 20);
    const a = grants.get("a")!;
    const c = grants.get("b")!;
    expect(sum(a)).toBe(sum(c));
    // 19 periods of accrual between the 20 waves, plus the one opening period: exactly the rate.
    expect(sum(a) + sum(c)).toBe(RATE * 20);
    // Both progress from the start: after the opening, each gets half a period's rate per wave.
    expect(c.slice(0, 3)).toEqual([50, 50, 50]);
    expect(a.slice(2)).toEqual(Array(18).fill(50));
  });

  it("splits 1:3 by weight", () => {
    const { b } = budget();
    const grants = run(b, [["light", 1], ["heavy", 3]], 0, 40);
    expect(sum(grants.get("heavy"))).toBe(3 * sum(grants.get("light")));
    expect(grants.get("light")!.slice(-5)).toEqual([25, 25, 25, 25, 25]);
    expect(grants.get("heavy")!.slice(-5)).toEqual([75, 75, 75, 75, 75]);
  });

  it("gives the share a rollout hands back to the busy one", () => {
    const { b } = budget();
    const busy: number[] = [];
    for (let i = 0; i < 20; i++) {
      const now = i * PERIOD;
      const idle = b.share("idle", 1, now);
      b.release("idle", idle, now);
      busy.push(b.share("busy", 1, now));
    }
    // From the second wave on, the busy rollout gets the whole rate.
    expect(busy.slice(1)).toEqual(Array(19).fill(RATE));
  });

  it("lets a rollout that stops asking bank only its burst; the rest flows to the others", () => {
    const { b } = budget();
    b.share("quiet", 1, 0);
    const busy = run(b, [["busy", 1]], 0, 10).get("busy")!;
    // The quiet rollout's bank fills within BUDGET_BURST_PERIODS (plus its opening debt), then all goes to busy.
    expect(busy.slice(BUDGET_BURST_PERIODS + 2)).toEqual(Array(10 - BUDGET_BURST_PERIODS - 2).fill(RATE));
    expect(b.snapshot(10 * PERIOD).find((s) => s.rollout === "quiet")?.credit).toBeCloseTo(BUDGET_BURST_PERIODS * 50);
  });

  it("gives a new rollout a share at once, without waiting for another to finish", () => {
    const { b, lines } = budget();
    run(b, [["first", 1]], 0, 5);
    const newcomer = b.share("second", 1, 5 * PERIOD);
    expect(newcomer).toBe(50);
    const after = run(b, [["first", 1], ["second", 1]], 6 * PERIOD, 10);
    // The first rollout repays the newcomer's opening credit on its next wave, then they are even.
    expect(after.get("first")!.slice(1)).toEqual(Array(9).fill(50));
    expect(after.get("second")).toEqual(Array(10).fill(50));
    expect(lines.filter((l) => l.msg === "rollout joined the cluster write budget")).toHaveLength(2);
  });

  it("never hands out more than the rate over time, however many rollouts start at once", () => {
    const { b } = budget();
    const keys: Array<[string, number]> = Array.from({ length: 7 }, (_, i) => [`r${i}`, i + 1]);
    const grants = run(b, keys, 0, 30);
    const total = [...grants.values()].reduce((a, g) => a + sum(g), 0);
    // 29 periods of accrual plus one opening period; only fractions of a pod stay banked.
    expect(total).toBeLessThanOrEqual(RATE * 30);
    expect(total).toBeGreaterThan(RATE * 30 - keys.length);
    for (const [key] of keys) expect(sum(grants.get(key))).toBeGreaterThan(0);
  });

  it("forget and the idle timeout return a rollout's weight to the others", () => {
    const { b } = budget();
    run(b, [["a", 1], ["b", 1], ["c", 1]], 0, 3);
    b.forget("a");
    expect(b.snapshot(3 * PERIOD).map((s) => s.rollout)).toEqual(["b", "c"]);
    // c stops asking; after the idle timeout b has the rate to itself.
    const later = 3 * PERIOD + BUDGET_IDLE_TIMEOUT_MS + PERIOD;
    b.share("b", 1, later);
    expect(b.snapshot(later).map((s) => s.rollout)).toEqual(["b"]);
    expect(b.share("b", 1, later + PERIOD)).toBe(RATE);
  });

  it("follows a rate change from the moment it is made", () => {
    const { b } = budget();
    b.share("a", 1, 0);
    b.setRate(10, 0);
    expect(b.share("a", 1, PERIOD)).toBe(10);
    expect(b.perSecond).toBe(10);
  });

  it("treats a missing or non-positive weight as the default, and logs a weight change", () => {
    const { b, lines } = budget();
    b.share("a", undefined, 0);
    b.share("b", 0, 0);
    expect(b.snapshot(0).map((s) => s.weight)).toEqual([DEFAULT_BUDGET_WEIGHT, DEFAULT_BUDGET_WEIGHT]);
    b.share("a", 4, 0);
    expect(lines.some((l) => l.msg === "rollout's budget weight changed")).toBe(true);
    expect(b.snapshot(0).find((s) => s.rollout === "a")?.fraction).toBeCloseTo(0.8);
  });

  it("ignores releases of nothing or by strangers", () => {
    const { b } = budget();
    b.share("a", 1, 0);
    b.release("a", 0, 0);
    b.release("stranger", 10, 0);
    expect(b.share("a", 1, PERIOD)).toBe(RATE);
  });
});
