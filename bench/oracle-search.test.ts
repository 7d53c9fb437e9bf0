import { describe, expect, it } from "vitest";
import { ORACLE_SEARCH, type Probe, bracket, nextProbe, probeIsShort, probePods, probeVerdict } from "./oracle-search.ts";

const probe = (qps: number, safe: boolean): Probe => ({ qps, pods: 100, safe, errors: 0, requests: 300, complete: true });

/** Runs the search against a cluster whose true limit is `limit` creates/s. */
function search(limit: number): { probes: Probe[]; oracle?: number; reason: string } {
  const probes: Probe[] = [];
  for (;;) {
    const step = nextProbe(probes);
    if (step.done) return { probes, ...(step.oracle !== undefined ? { oracle: step.oracle } : {}), reason: step.reason };
    probes.push(probe(step.qps, step.qps <= limit));
  }
}

describe("the oracle search's next probe", () => {
  it("starts at the start rate, doubles while safe, then bisects", () => {
    expect(nextProbe([])).toEqual({ done: false, qps: ORACLE_SEARCH.startQps });
    expect(nextProbe([probe(16, true)])).toEqual({ done: false, qps: 32 });
    expect(nextProbe([probe(16, true), probe(32, true), probe(64, false)])).toEqual({ done: false, qps: 45 });
  });

  it("halves while unsafe", () => {
    expect(nextProbe([probe(16, false)])).toEqual({ done: false, qps: 8 });
    expect(nextProbe([probe(16, false), probe(8, false)])).toEqual({ done: false, qps: 4 });
  });

  it.each([3, 12, 37, 100, 150, 700])("finds a limit of %i within the precision, below it", (limit) => {
    const r = search(limit);
    expect(r.oracle).toBeDefined();
    expect(r.oracle!).toBeLessThanOrEqual(limit);
    expect(r.oracle! * (1 + ORACLE_SEARCH.precision)).toBeGreaterThanOrEqual(limit);
    expect(r.probes.length).toBeLessThanOrEqual(ORACLE_SEARCH.maxProbes);
  });

  it("gives up with no oracle when even the floor is unsafe, and stops at the ceiling", () => {
    const none = search(0.5);
    expect(none.oracle).toBeUndefined();
    expect(none.reason).toContain("unsafe even at");
    const top = search(10_000);
    expect(top.oracle).toBe(ORACLE_SEARCH.maxQps);
    expect(top.reason).toContain("ceiling");
  });

  it("trusts no safe probe above an unsafe one (noise)", () => {
    expect(bracket([probe(16, true), probe(32, false), probe(64, true)])).toEqual({ lo: 16, hi: 32 });
    expect(nextProbe([probe(16, true), probe(32, false), probe(64, true)])).toEqual({ done: false, qps: 23 });
  });

  it("stops at the probe budget with the bracket so far", () => {
    const probes = Array.from({ length: ORACLE_SEARCH.maxProbes }, (_, i) => probe(2 ** i, true));
    const step = nextProbe(probes);
    expect(step).toMatchObject({ done: true, oracle: 2 ** (ORACLE_SEARCH.maxProbes - 1) });
  });
});

describe("probes", () => {
  it("write for about the probe window, within [min pods, N]", () => {
    expect(probePods(16, 5_000)).toBe(16 * ORACLE_SEARCH.probeWriteS);
    expect(probePods(2, 5_000)).toBe(ORACLE_SEARCH.probeMinPods);
    expect(probePods(400, 5_000)).toBe(5_000);
  });

  it("are short when N cuts their window", () => {
    expect(probeIsShort(49, 600)).toBe(true);
    expect(probeIsShort(20, 600)).toBe(false);
  });

  it("are safe only complete, with bystander requests, no errors and p99 within the SLO", () => {
    expect(probeVerdict({ p99Ms: 900, errors: 0, requests: 300, complete: true })).toEqual({ safe: true });
    expect(probeVerdict({ p99Ms: 1_100, errors: 0, requests: 300, complete: true }).why).toContain("p99 1100");
    expect(probeVerdict({ p99Ms: 200, errors: 2, requests: 300, complete: true }).why).toContain("2 bystander errors");
    expect(probeVerdict({ p99Ms: 200, errors: 0, requests: 300, complete: false }).safe).toBe(false);
    expect(probeVerdict({ errors: 0, requests: 0, complete: true }).safe).toBe(false);
  });
});
