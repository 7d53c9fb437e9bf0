import { describe, expect, it } from "vitest";
import { CreationRate } from "./creation-rate.ts";

describe("CreationRate", () => {
  it("averages the events of the last window per second, forgetting older ones", () => {
    const rate = new CreationRate(5_000);
    expect(rate.perSecond(0)).toBe(0);
    for (let t = 0; t < 1_000; t += 20) rate.record(t); // 50 in the first second
    expect(rate.perSecond(1_000)).toBe(10);
    expect(rate.perSecond(4_999)).toBe(10);
    // An event leaves the window exactly windowMs after it happened.
    expect(rate.perSecond(5_000)).toBe(49 / 5);
    expect(rate.perSecond(6_000)).toBe(0);
  });

  it("stays exact while it drops expired events over a long run", () => {
    const rate = new CreationRate(1_000);
    for (let t = 0; t < 100_000; t++) {
      rate.record(t);
      if (t % 100 === 0) rate.perSecond(t);
    }
    expect(rate.perSecond(100_000)).toBe(999);
  });
});
