import { describe, expect, it } from "vitest";
import { BatchRolloutSpec } from "../../api/batchrollout.ts";
import type { WriteTick } from "../write-latency.ts";
import { AdaptiveWaveSizer } from "./adaptive.ts";
import type { SizerSpec } from "./contract.ts";
import { FixedWaveSizer } from "./fixed.ts";
import { createWaveSizer } from "./index.ts";

const TEMPLATE = { spec: { containers: [{ name: "sim", image: "busybox" }] } };

function spec(fields: Record<string, unknown> = {}): SizerSpec {
  return BatchRolloutSpec.parse({ replicas: 10_000, template: TEMPLATE, ...fields });
}

/** A wave's writes as the write-latency window reports them; the Fixed sizer reads only losses and Retry-After. */
function writes(at: number, count: number, extra: Partial<WriteTick> = {}): WriteTick {
  return { at, count, throttled: 0, serverErrors: 0, timeouts: 0, networkErrors: 0, latencySamples: 0, latencySource: "none", ...extra };
}

describe("FixedWaveSizer", () => {
  const fixed = () => new FixedWaveSizer(spec({ waves: { strategy: "Fixed", initialSize: 500 } }));

  it("always initialSize, spread over the wave period", () => {
    const sizer = fixed();
    for (let i = 0; i < 3; i++) {
      expect(sizer.next({ now: i * 1_000, remaining: 5_000, writes: writes(i * 1_000, 500, { latencySamples: 500, latencySource: "tick", p50: 630, p90: 900, p99: 1_350 }) })).toMatchObject({
        size: 500,
        limitedBy: "Fixed",
        rateLimit: { concurrency: 256, perSecond: 500 },
      });
    }
  });

  it("respects the guards and Retry-After (it fixes the pace, not the safety)", () => {
    expect(fixed().next({ now: 0, remaining: 120 })).toMatchObject({ size: 500, limitedBy: "Fixed" }); // the planner bounds the last wave
    expect(fixed().next({ now: 0, remaining: 5_000, pending: 600 })).toMatchObject({ size: 0, limitedBy: "Scheduler" });
    expect(fixed().next({ now: 0, remaining: 5_000, ipam: { provider: "NodePodCIDR", free: 300, capacity: 2_000 } })).toMatchObject({ size: 200, limitedBy: "IPAM" });
    const sizer = fixed();
    expect(sizer.next({ now: 0, remaining: 5_000, writes: writes(0, 500, { throttled: 3, retryAfterUntil: 2_000 }) })).toMatchObject({ size: 0, limitedBy: "ApiServer", waitMs: 2_000 });
    expect(sizer.next({ now: 2_000, remaining: 5_000 })).toMatchObject({ size: 500, limitedBy: "Fixed" });
    expect(fixed().next({ now: 0, remaining: 0 })).toMatchObject({ size: 0, limitedBy: "None" });
  });
});

describe("createWaveSizer", () => {
  it("follows spec.waves.strategy", () => {
    expect(createWaveSizer(spec())).toBeInstanceOf(AdaptiveWaveSizer);
    expect(createWaveSizer(spec({ waves: { strategy: "Fixed" } }))).toBeInstanceOf(FixedWaveSizer);
  });
});
