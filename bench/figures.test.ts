import { describe, expect, it } from "vitest";
import { runningThroughput, runningThroughputFromSamples } from "./figures.ts";
import type { Sample } from "./samples.ts";

describe("runningThroughput", () => {
  it("counts the pods that ran over first seen → the last of them Running", () => {
    expect(runningThroughput(1_000, [2_000, undefined, 5_000, 3_000])).toEqual({ pods: 3, perS: 0.8 });
  });

  it("is undefined when nothing ran or nothing was seen", () => {
    expect(runningThroughput(1_000, [undefined])).toBeUndefined();
    expect(runningThroughput(undefined, [2_000])).toBeUndefined();
  });

  it("reads the same figure from the per-second samples of a saved run", () => {
    const sample = (at: number, running: number): Sample => ({ t: at / 1_000, at, pods: { created: 10, scheduled: 10, running, unscheduled: 0 } }) as Sample;
    const samples = [sample(1_000, 0), sample(2_000, 4), sample(3_000, 9), sample(4_000, 9)];
    expect(runningThroughputFromSamples(samples, 0)).toEqual({ pods: 9, perS: 3 });
  });
});
