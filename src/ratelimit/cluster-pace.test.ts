import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { BatchRolloutSpec } from "../api/batchrollout.ts";
import { ClusterPace } from "./cluster-pace.ts";
import { RetryAfterGate } from "./retry-after.ts";
import { AdaptiveWaveSizer } from "./sizer/index.ts";

const logger = pino({ level: "silent" });
const SPEC = BatchRolloutSpec.parse({ replicas: 10_000, template: { spec: { containers: [{ name: "sim", image: "busybox" }] } } });

/** A pace whose controller has ticked once, as a rollout's first decision does. */
function pace(): ClusterPace {
  const p = new ClusterPace({ gate: new RetryAfterGate(), logger, now: 0 });
  new AdaptiveWaveSizer(SPEC, p).next({ now: 0, remaining: 0 });
  return p;
}

describe("ClusterPace", () => {
  it("leaves a rollout that writes alone to the whole rate (no budget)", () => {
    const p = pace();
    expect(p.grant("ns/a", 1, 1_000, 0)).toBeUndefined();
    expect(p.grant("ns/a", 1, 1_000, 1_000)).toBeUndefined();
  });

  it("gives two rollouts writing at once a share each, from the first wave", () => {
    const p = pace();
    expect(p.grant("ns/a", 1, 1_000, 0)).toBeUndefined();
    const b = p.grant("ns/b", 1, 1_000, 10);
    const a = p.grant("ns/a", 1, 1_000, 20);
    expect(b).toBeGreaterThan(0);
    expect(a).toBeGreaterThanOrEqual(0);
    let totalA = 0;
    let totalB = 0;
    for (let t = 1_000; t <= 10_000; t += 1_000) {
      totalA += p.grant("ns/a", 1, 1_000, t) ?? 0;
      totalB += p.grant("ns/b", 1, 1_000, t + 1) ?? 0;
    }
    expect(totalA).toBeGreaterThan(0);
    expect(totalB).toBeGreaterThan(0);
    expect(Math.max(totalA, totalB) / Math.min(totalA, totalB)).toBeLessThan(2);
  });

  it("weights shares by spec.priority", () => {
    const p = pace();
    let low = 0;
    let high = 0;
    for (let t = 0; t <= 30_000; t += 1_000) {
      low += p.grant("ns/low", 1, 100_000, t) ?? 0;
      high += p.grant("ns/high", 3, 100_000, t + 1) ?? 0;
    }
    expect(high / low).toBeGreaterThan(2);
    expect(high / low).toBeLessThan(4);
  });

  it("returns a rollout to writing alone once the other has nothing left", () => {
    const p = pace();
    p.grant("ns/a", 1, 1_000, 0);
    expect(p.grant("ns/b", 1, 1_000, 10)).toBeDefined();
    expect(p.grant("ns/b", 1, 0, 20)).toBeUndefined();
    expect(p.grant("ns/a", 1, 1_000, 30)).toBeUndefined();
  });

  it("is one controller for every rollout: it learns from all their writes once a period, and a 429 to one halves them all", () => {
    const p = new ClusterPace({ logger, now: 0 });
    const a = new AdaptiveWaveSizer(SPEC, p);
    const b = new AdaptiveWaveSizer(SPEC, p);
    expect(a.controller).toBe(b.controller);
    for (let t = 0; t <= 3_000; t += 1_000) {
      for (let i = 0; i < 100 * 2 ** (t / 1_000); i++) p.record({ at: t - 1, latencyMs: 30, status: 201 });
      a.next({ now: t, remaining: 1_000 });
      b.next({ now: t + 10, remaining: 1_000 }); // within the period: no second tick
    }
    expect(a.state.perSecond).toBe(400); // 50 → 100 → 200 → 400: one doubling per period, not two
    p.record({ at: 3_500, latencyMs: 5, status: 429, retryAfterMs: 2_000 });
    expect(b.next({ now: 4_000, remaining: 1_000 })).toMatchObject({ size: 0, limitedBy: "ApiServer" });
    expect(a.state.perSecond).toBe(200);
    expect(a.next({ now: 4_100, remaining: 1_000 }).waitMs).toBeGreaterThan(0);
  });
});
