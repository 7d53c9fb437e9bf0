import { describe, expect, it } from "vitest";
import { BatchRolloutSpec } from "../../api/batchrollout.ts";
import type { SizerSpec } from "./contract.ts";
import { capByGuards, guardCandidates } from "./guards.ts";
import { stopDecision } from "./stop.ts";

const TEMPLATE = { spec: { containers: [{ name: "sim", image: "busybox" }] } };
const spec: SizerSpec = BatchRolloutSpec.parse({ replicas: 10_000, template: TEMPLATE });
const RATE = { concurrency: 4, perSecond: 10 };

describe("guardCandidates", () => {
  it("has no term for what is left to do: the planner bounds the last wave by what fits", () => {
    expect(guardCandidates(spec, { now: 0, remaining: 3 })).toEqual([]);
    const base = { size: 50, limitedBy: "Rate", message: "rate" } as const;
    expect(capByGuards(spec, { now: 0, remaining: 3 }, base)).toEqual(base);
  });

  it("lists the guards in the order that wins ties: scheduler, kubelet, IPAM, node slots, budget", () => {
    const all = guardCandidates(spec, {
      now: 0,
      remaining: 1_000,
      pending: 0,
      starting: 0,
      ipam: { provider: "Calico", free: 1_000, capacity: 1_000 },
      nodeSlots: 10,
      budget: 10,
    });
    expect(all.map((c) => c.limitedBy)).toEqual(["Scheduler", "Kubelet", "IPAM", "NodeCapacity", "Budget"]);
    expect(capByGuards(spec, { now: 0, remaining: 1_000, nodeSlots: 10, budget: 10 }, { size: 10, limitedBy: "Rate", message: "" }).limitedBy).toBe("NodeCapacity");
  });
});

describe("stopDecision", () => {
  it("nothing left is None, before any pause", () => {
    expect(stopDecision(0, 0, 5_000, RATE)).toEqual({ size: 0, limitedBy: "None", message: "all pods created", rateLimit: RATE, waitMs: 0 });
  });

  it("a Retry-After pause says how long is left and what follows it", () => {
    expect(stopDecision(1_000, 10, 2_500, RATE, "; then 5/s")).toEqual({
      size: 0,
      limitedBy: "ApiServer",
      message: "the API server asked us to wait (Retry-After): 1.5 s left; then 5/s",
      rateLimit: RATE,
      waitMs: 1_500,
    });
    expect(stopDecision(2_500, 10, 2_500, RATE)).toBeUndefined();
  });
});
