import { describe, expect, it } from "vitest";
import { WriteLatencyWindow, apiServerSignals, isLatencySample, lossCount, nearestRank } from "./write-latency.ts";

describe("nearestRank", () => {
  it("is the smallest value with at least q of the samples at or below it", () => {
    const sorted = Float64Array.from({ length: 100 }, (_, i) => i + 1);
    expect(nearestRank(sorted, 0.5)).toBe(50);
    expect(nearestRank(sorted, 0.9)).toBe(90);
    expect(nearestRank(sorted, 0.99)).toBe(99);
    expect(nearestRank([7], 0.99)).toBe(7);
    expect(nearestRank([], 0.5)).toBeUndefined();
  });
});

describe("isLatencySample", () => {
  it("keeps completed writes and timeouts, drops 429s, 5xx and dropped connections", () => {
    expect(isLatencySample({ at: 0, latencyMs: 10, status: 201 })).toBe(true);
    expect(isLatencySample({ at: 0, latencyMs: 10, status: 409 })).toBe(true);
    expect(isLatencySample({ at: 0, latencyMs: 10, status: 429 })).toBe(false);
    expect(isLatencySample({ at: 0, latencyMs: 10, status: 503 })).toBe(false);
    expect(isLatencySample({ at: 0, latencyMs: 30_000, timedOut: true })).toBe(true);
    expect(isLatencySample({ at: 0, latencyMs: 5 })).toBe(false);
  });
});

describe("WriteLatencyWindow", () => {
  it("reports exact percentiles of the tick's writes and loss counts since the last tick", () => {
    const window = new WriteLatencyWindow();
    for (let i = 1; i <= 100; i++) window.record({ at: 1_000 + i, latencyMs: i, status: 201 });
    window.record({ at: 1_200, latencyMs: 3, status: 429, retryAfterMs: 2_000 });
    window.record({ at: 1_300, latencyMs: 4, status: 429, retryAfterMs: 1_000 });
    window.record({ at: 1_250, latencyMs: 40, status: 500 });
    window.record({ at: 1_260, latencyMs: 1_000, timedOut: true });
    window.record({ at: 1_270, latencyMs: 9 });
    const tick = window.tick(2_000);
    expect(tick).toMatchObject({
      at: 2_000,
      count: 105,
      throttled: 2,
      serverErrors: 1,
      timeouts: 1,
      networkErrors: 1,
      maxRetryAfterMs: 2_000,
      retryAfterUntil: 3_200,
      p50: 51,
      p90: 91,
      p99: 100,
      latencySamples: 101,
      latencySource: "tick",
    });
    expect(lossCount(tick)).toBe(5);
  });

  it("resets counters on each tick", () => {
    const window = new WriteLatencyWindow();
    window.record({ at: 10, latencyMs: 5, status: 429 });
    window.tick(100);
    const tick = window.tick(200);
    expect(tick).toMatchObject({ count: 0, throttled: 0, latencySource: "none", latencySamples: 0 });
    expect(tick.retryAfterUntil).toBeUndefined();
    expect(tick.p90).toBeUndefined();
  });

  it("tops a thin tick up with the newest samples of the window, and forgets old ones", () => {
    const window = new WriteLatencyWindow({ minTickSamples: 20, maxAgeMs: 10_000 });
    for (let i = 0; i < 30; i++) window.record({ at: 1_000 + i, latencyMs: i < 10 ? 900 : 100, status: 201 });
    expect(window.tick(2_000)).toMatchObject({ latencySource: "tick", latencySamples: 30, p90: 900 });
    window.record({ at: 2_500, latencyMs: 400, status: 201 });
    // The newest 20: the 400 ms write and 19 of the 100 ms ones; the older 900 ms ones no longer count.
    expect(window.tick(3_000)).toMatchObject({ count: 1, latencySource: "window", latencySamples: 20, p90: 100, p99: 400 });
    expect(window.tick(20_000)).toMatchObject({ latencySource: "none", latencySamples: 0 });
  });

  it("is bounded: the ring buffer keeps only the newest samples", () => {
    const window = new WriteLatencyWindow({ capacity: 10, minTickSamples: 1 });
    for (let i = 1; i <= 25; i++) window.record({ at: i, latencyMs: i, status: 201 });
    expect(window.tick(100)).toMatchObject({ count: 25, latencySamples: 10, p50: 20, p99: 25 });
  });
});

describe("apiServerSignals", () => {
  it("fills status.signals.apiServer from a tick and the identity", () => {
    const window = new WriteLatencyWindow({ minTickSamples: 1 });
    window.record({ at: 1, latencyMs: 42.4, status: 201 });
    expect(apiServerSignals(window.tick(10), { flowSchema: "service-accounts", priorityLevel: "workload-low", throttledTotal: 3, retryAfterMs: 2_000 })).toEqual({
      flowSchema: "service-accounts",
      priorityLevel: "workload-low",
      writeLatencyP90Ms: 42,
      throttled: 3,
      retryAfterSeconds: 2,
    });
  });
});
