import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { ClusterPace } from "./cluster-pace.ts";
import { RetryAfterGate } from "./retry-after.ts";

const logger = pino({ level: "silent" });

describe("ClusterPace", () => {
  it("leaves a rollout that writes alone to its own sizer (no budget)", () => {
    const pace = new ClusterPace({ gate: new RetryAfterGate(), logger, now: 0 });
    expect(pace.grant("ns/a", 1, 1_000, 0)).toBeUndefined();
    expect(pace.grant("ns/a", 1, 1_000, 1_000)).toBeUndefined();
  });

  it("gives two rollouts writing at once a share each, from the first wave", () => {
    const pace = new ClusterPace({ gate: new RetryAfterGate(), logger, now: 0 });
    expect(pace.grant("ns/a", 1, 1_000, 0)).toBeUndefined();
    const b = pace.grant("ns/b", 1, 1_000, 10);
    const a = pace.grant("ns/a", 1, 1_000, 20);
    expect(b).toBeGreaterThan(0);
    expect(a).toBeGreaterThanOrEqual(0);
    // Over a few waves both progress and neither takes everything.
    let totalA = 0;
    let totalB = 0;
    for (let t = 1_000; t <= 10_000; t += 1_000) {
      totalA += pace.grant("ns/a", 1, 1_000, t) ?? 0;
      totalB += pace.grant("ns/b", 1, 1_000, t + 1) ?? 0;
    }
    expect(totalA).toBeGreaterThan(0);
    expect(totalB).toBeGreaterThan(0);
    expect(Math.max(totalA, totalB) / Math.min(totalA, totalB)).toBeLessThan(2);
  });

  it("weights shares by spec.priority", () => {
    const pace = new ClusterPace({ gate: new RetryAfterGate(), logger, now: 0 });
    let low = 0;
    let high = 0;
    for (let t = 0; t <= 30_000; t += 1_000) {
      low += pace.grant("ns/low", 1, 100_000, t) ?? 0;
      high += pace.grant("ns/high", 3, 100_000, t + 1) ?? 0;
    }
    expect(high / low).toBeGreaterThan(2);
    expect(high / low).toBeLessThan(4);
  });

  it("returns a rollout to writing alone once the other has nothing left", () => {
    const pace = new ClusterPace({ gate: new RetryAfterGate(), logger, now: 0 });
    pace.grant("ns/a", 1, 1_000, 0);
    expect(pace.grant("ns/b", 1, 1_000, 10)).toBeDefined();
    expect(pace.grant("ns/b", 1, 0, 20)).toBeUndefined();
    expect(pace.grant("ns/a", 1, 1_000, 30)).toBeUndefined();
  });
});
