import { describe, expect, it } from "vitest";
import { Baseline } from "./baseline.ts";
import { TUNABLES as T } from "./tunables.ts";

describe("Baseline", () => {
  it("is the mean of the first warmupTicks ticks, each capped at startTolerance / decrease × the mean so far", () => {
    const b = new Baseline();
    b.warmUp(75);
    b.warmUp(150); // within the cap: taken as it is
    expect(b.ms).toBeCloseTo(112.5, 6);
    b.warmUp(460); // slow start's own queue: capped at 2.5 × 112.5
    expect(b.ms).toBeCloseTo(112.5 + ((T.startTolerance / T.decrease) * 112.5 - 112.5) / 3, 6);
    expect(b.warm).toBe(false);
    b.warmUp(100);
    b.warmUp(100);
    expect(b.warm).toBe(true);
    const warm = b.ms;
    b.warmUp(1_000); // warm: only probes move it now
    expect(b.ms).toBe(warm);
  });

  it("tolerates startTolerance × itself while starting, itself + the allowance after, never past the ceiling", () => {
    const b = new Baseline();
    expect(b.tolerated(true, 1_000)).toBeUndefined();
    b.warmUp(40);
    expect(b.tolerated(true, 1_000)).toBe(T.startTolerance * 40);
    expect(b.tolerated(false, 1_000)).toBe(40 + T.queueAllowance * 1_000);
    const slow = new Baseline();
    slow.warmUp(400);
    expect(slow.tolerated(false, 1_000)).toBe(T.queueCeiling * 1_000);
  });

  it("is due for a probe every probeIntervalMs once warm, or after half of it when warmupTicks ticks in a row read queueing", () => {
    const b = new Baseline();
    expect(b.probeDue(0, 0)).toBe(false); // starts the clock
    for (let i = 0; i < T.warmupTicks; i++) b.warmUp(40);
    expect(b.probeDue(T.probeIntervalMs - 1, 0)).toBe(false);
    expect(b.probeDue(T.probeIntervalMs, 0)).toBe(true);
    b.probed(T.probeIntervalMs, 40);
    const early = T.probeIntervalMs + T.decrease * T.probeIntervalMs;
    expect(b.probeDue(early - 1, T.warmupTicks)).toBe(false);
    expect(b.probeDue(early, T.warmupTicks - 1)).toBe(false);
    expect(b.probeDue(early, T.warmupTicks)).toBe(true);
  });

  it("moves half way to a probe's p90: up when latency stays at reduced rate, down by at most 1/startTolerance", () => {
    const b = new Baseline();
    for (let i = 0; i < T.warmupTicks; i++) b.warmUp(100);
    b.probed(0, 300);
    expect(b.ms).toBeCloseTo(100 + T.decrease * 200, 6);
    b.probed(1, 10);
    expect(b.ms).toBeCloseTo(200 + T.decrease * (200 / T.startTolerance - 200), 6);
  });
});
