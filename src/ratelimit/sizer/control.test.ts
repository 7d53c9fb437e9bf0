import { describe, expect, it } from "vitest";
import { answeredTick } from "./write-ticks.test-support.ts";
import { type Facts, type Limits, Mode, RateController, transition } from "./control.ts";
import { TUNABLES as T } from "./tunables.ts";

const CALM: Facts = { paused: false, queueing: false, overTarget: false, overCeiling: false, congestedTicks: 0, othersWriting: false, recovered: true, probeDue: false };
const LIMITS: Limits = { targetMs: 1_000, initialRate: 50, minRate: 10, maxRate: 100_000, yieldFloor: 1 };

const tick = answeredTick;

/** Ticks a controller once a second; every write the rate allowed was sent and answered. */
function drive(c: RateController, p90s: (number | undefined)[], input: { othersCreating?: number } = {}, start = 0): number[] {
  return p90s.map((p90, i) => {
    const now = start + i * 1_000;
    c.tick({ now, ...(i === 0 && start === 0 ? {} : { writes: tick(now, Math.round(c.rate()), p90) }), ...input }, LIMITS);
    return c.rate();
  });
}

describe("transition: the one place a mode changes", () => {
  const all = Object.values(Mode);

  it("a loss or a pause wins from every mode", () => {
    for (const mode of all) expect(transition(mode, { ...CALM, paused: true, queueing: true, othersWriting: true, overCeiling: true })).toBe(Mode.Paused);
  });

  it("Starting stays until the second congested tick or a p90 past the target", () => {
    expect(transition(Mode.Starting, CALM)).toBe(Mode.Starting);
    expect(transition(Mode.Starting, { ...CALM, queueing: true, congestedTicks: 1 })).toBe(Mode.Starting);
    expect(transition(Mode.Starting, { ...CALM, queueing: true, congestedTicks: 2 })).toBe(Mode.BackingOff);
    expect(transition(Mode.Starting, { ...CALM, queueing: true, overTarget: true })).toBe(Mode.BackingOff);
  });

  it("Steady backs off on a queue, probes when due, and stays otherwise", () => {
    expect(transition(Mode.Steady, CALM)).toBe(Mode.Steady);
    expect(transition(Mode.Steady, { ...CALM, queueing: true, congestedTicks: 1 })).toBe(Mode.BackingOff);
    expect(transition(Mode.Steady, { ...CALM, probeDue: true })).toBe(Mode.Probing);
    expect(transition(Mode.Steady, { ...CALM, probeDue: true, queueing: true, overTarget: true })).toBe(Mode.BackingOff);
  });

  it("BackingOff lasts while queueing, then Recovering until R is back near the episode's rate; a probe lasts one tick", () => {
    const queue = { ...CALM, queueing: true, congestedTicks: 1, recovered: false };
    for (const mode of [Mode.Steady, Mode.BackingOff, Mode.Recovering, Mode.Probing, Mode.Paused]) expect(transition(mode, queue)).toBe(Mode.BackingOff);
    for (const mode of [Mode.BackingOff, Mode.Recovering, Mode.Probing, Mode.Paused]) {
      expect(transition(mode, { ...CALM, recovered: false })).toBe(Mode.Recovering);
      expect(transition(mode, CALM)).toBe(Mode.Steady);
    }
    expect(transition(Mode.Probing, { ...CALM, probeDue: true })).toBe(Mode.Steady);
    expect(transition(Mode.Paused, { ...CALM, probeDue: true })).toBe(Mode.Steady);
  });

  it("yields past the ceiling while others write, from any mode but a pause, and stops when they stop or R is back", () => {
    for (const mode of all.filter((m) => m !== Mode.Paused)) {
      expect(transition(mode, { ...CALM, othersWriting: true, overCeiling: true, queueing: true, recovered: false })).toBe(Mode.Yielding);
    }
    expect(transition(Mode.Yielding, { ...CALM, othersWriting: true, recovered: false })).toBe(Mode.Yielding);
    expect(transition(Mode.Yielding, { ...CALM, othersWriting: false, recovered: false })).toBe(Mode.Recovering);
    expect(transition(Mode.Yielding, { ...CALM, othersWriting: false, queueing: true })).toBe(Mode.BackingOff);
    expect(transition(Mode.Yielding, { ...CALM, othersWriting: true, recovered: false, probeDue: true })).toBe(Mode.Yielding); // no probes
    expect(transition(Mode.Yielding, { ...CALM, othersWriting: true, recovered: true })).toBe(Mode.Steady);
    expect(transition(Mode.Steady, { ...CALM, othersWriting: true, queueing: true })).toBe(Mode.BackingOff); // under the ceiling: ours
  });
});

describe("RateController: the law", () => {
  it("doubles while Starting, then eases off Gradient2's smoothed step once queueing", () => {
    const c = new RateController();
    expect(drive(c, [undefined, 40, 40, 40, 40, 40])).toEqual([50, 100, 200, 400, 800, 1600]);
    expect(c.mode).toBe(Mode.Starting);
    drive(c, [100], {}, 6_000); // 100 ms > 1.25 × 40 ms: first congested tick holds
    expect(c.rate()).toBe(1600);
    drive(c, [100], {}, 7_000);
    expect(c.mode).toBe(Mode.BackingOff);
    const g = 50 / 85; // tolerated while starting, 1.25 × 40 ms, over the short p90: 40 → 70 → 85 ms
    expect(c.rate()).toBeCloseTo((1 - T.smoothing) * 1600 + T.smoothing * (g * 1600 + Math.sqrt(1600)), 6);
  });

  it("does not grow past startGain × the rate actually answered", () => {
    const c = new RateController();
    drive(c, [undefined]);
    c.tick({ now: 1_000, writes: tick(1_000, 30, 40) }, LIMITS); // 30 of 50 answered: above decrease × R, not app-limited
    expect(c.rate()).toBe(60);
    c.tick({ now: 2_000, writes: tick(2_000, 20, 40) }, LIMITS); // under half of R: app-limited, holds
    expect(c.rate()).toBe(60);
  });

  it("a loss halves once per episode and pauses at least LOSS_MIN_PAUSE_MS", () => {
    const c = new RateController();
    drive(c, [undefined, 40, 40]);
    c.tick({ now: 3_000, writes: tick(3_000, 200, 40, { throttled: 5 }) }, LIMITS);
    expect(c.mode).toBe(Mode.Paused);
    expect(c.rate()).toBe(100);
    expect(c.pauseUntil).toBeGreaterThanOrEqual(4_000);
    c.tick({ now: 4_000, writes: tick(4_000, 20, 40, { throttled: 2 }) }, LIMITS); // sent before the pause
    expect(c.rate()).toBe(100);
    expect(c.action.note).toContain("already halved");
  });

  it("recovers towards `recovery` × the episode's rate half the gap a tick, then grows by smoothing × √R", () => {
    const c = new RateController();
    drive(c, [undefined, 40, 40, 40, 40, 40, 40]); // 3200/s, warm
    c.tick({ now: 7_000, writes: tick(7_000, 3200, 40, { throttled: 1 }) }, LIMITS);
    expect(c.rate()).toBe(1600);
    const rates = drive(c, Array<number>(10).fill(40), {}, 9_000);
    expect(rates[0]).toBe(1600); // the pause's tick answered 800/s: no growth past startGain × that
    expect(rates[1]).toBeCloseTo(1600 + T.decrease * (T.recovery * 3200 - 1600), 6);
    expect(rates[4]).toBeGreaterThan(0.85 * 3200); // four ticks from half to 0.85
    expect(c.mode).toBe(Mode.Steady);
    const steady = c.rate();
    drive(c, [40], {}, 19_000);
    expect(c.rate()).toBeCloseTo(steady + T.smoothing * Math.sqrt(steady), 6);
  });
});
