import { describe, expect, it } from "vitest";
import { Cycle } from "./cycle.ts";
import { TUNABLES as T } from "./tunables.ts";

const PERIOD = 1_000;

function cycleOf(periodMs: number, intervalMs: number): Cycle {
  const cycle = new Cycle();
  cycle.setPeriod(periodMs, intervalMs);
  return cycle;
}

/** Waves of `rate` × the period, each decided `cycleMs` after the last. */
function run(cycle: Cycle, rate: number, cycleMs: number, waves: number, creditable = true, start = 0): number[] {
  const late: number[] = [];
  for (let i = 0; i < waves; i++) {
    const now = start + i * cycleMs;
    late.push(cycle.close(now, creditable, 0));
    cycle.sent(now, (rate * PERIOD) / 1_000, cycle.sendRate(rate));
  }
  return late;
}

describe("Cycle", () => {
  it("learns the overhead of cycles that run past the period and sends faster to fit it, up to 1 / (1 − cycleShare) × R", () => {
    const cycle = cycleOf(PERIOD, PERIOD);
    expect(cycle.sendRate(100)).toBe(100);
    run(cycle, 100, 1_300, 8);
    expect(cycle.overheadMs).toBeGreaterThan(250);
    expect(cycle.sendRate(100)).toBeGreaterThan(130);
    run(cycle, 100, 5_000, 20);
    expect(cycle.overheadMs).toBeLessThanOrEqual(T.cycleShare * PERIOD);
    expect(cycle.sendRate(100)).toBeLessThanOrEqual(100 / (1 - T.cycleShare) + 1e-9);
  });

  it("shrinks the allowance by smoothing a wave once waves wait for minInterval again", () => {
    const cycle = cycleOf(PERIOD, PERIOD);
    run(cycle, 100, 1_300, 8);
    const learned = cycle.overheadMs;
    run(cycle, 100, PERIOD, 3, true, 8 * 1_300); // the first close ends the last slow cycle
    const shrunk = cycle.overheadMs;
    expect(shrunk).toBeLessThan(learned);
    run(cycle, 100, PERIOD, 1, true, 8 * 1_300 + 3 * PERIOD);
    expect(cycle.overheadMs).toBeCloseTo(shrunk * (1 - T.smoothing), 6);
  });

  it("credits a late wave with the extra time, up to cycleShare of the period; none when not creditable or after a pause", () => {
    const cycle = cycleOf(PERIOD, PERIOD);
    expect(run(cycle, 100, 1_200, 3)).toEqual([0, 200, 200]);
    expect(run(cycleOf(PERIOD, PERIOD), 100, 3_000, 2)).toEqual([0, T.cycleShare * PERIOD]);
    expect(run(cycleOf(PERIOD, PERIOD), 100, 1_200, 2, false)).toEqual([0, 0]);
    const paused = cycleOf(PERIOD, PERIOD);
    paused.sent(0, 100, 100);
    expect(paused.close(2_000, true, 1_500)).toBe(0);
  });

  it("counts the wait of a minInterval longer than the longest period as waiting, not overhead", () => {
    const cycle = cycleOf(10_000, 60_000);
    run(cycle, 10, 60_000, 5);
    expect(cycle.overheadMs).toBe(0);
  });

  it("keeps the allowance within a shortened period", () => {
    const cycle = cycleOf(5_000, 5_000);
    run(cycle, 100, 9_000, 8);
    cycle.setPeriod(PERIOD, PERIOD);
    expect(cycle.overheadMs).toBeLessThanOrEqual(T.cycleShare * PERIOD);
  });
});
