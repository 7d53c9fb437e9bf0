import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { BatchRolloutSpec } from "../../api/batchrollout.ts";
import type { WriteTick } from "../write-latency.ts";
import { answeredTick } from "./write-ticks.test-support.ts";
import { AdaptiveWaveSizer, type SizerSpec, type WaveDecision, type WaveSignals, guardCandidates, Mode, TUNABLES as T, createWaveSizer, MAX_CONCURRENCY } from "./index.ts";

const TEMPLATE = { spec: { containers: [{ name: "sim", image: "busybox" }] } };

function spec(fields: Record<string, unknown> = {}): SizerSpec {
  return BatchRolloutSpec.parse({ replicas: 10_000, template: TEMPLATE, ...fields });
}

const writes = answeredTick;

/** Drives a sizer one wave per second: every pod of the last wave was written and answered, with the given p90. */
class Trace {
  now = 0;
  last: WaveDecision | undefined;
  readonly sizer: AdaptiveWaveSizer;

  constructor(sizer: AdaptiveWaveSizer) {
    this.sizer = sizer;
  }

  get rate(): number {
    return this.sizer.state.perSecond;
  }

  step(p90?: number, tick: Partial<WriteTick> = {}, signals: Partial<WaveSignals> = {}): WaveDecision {
    const decision = this.sizer.next({ now: this.now, remaining: 1_000_000, ...(this.last ? { writes: writes(this.now, this.last.size, p90, tick) } : {}), ...signals });
    this.last = decision;
    this.now += 1_000;
    return decision;
  }

  run(ticks: number, p90: number, signals: Partial<WaveSignals> = {}): WaveDecision[] {
    return Array.from({ length: ticks }, () => this.step(p90, {}, signals));
  }
}

/** A server whose p90 is 40 ms up to 400 writes/s and grows with the square of the overload beyond. */
const server = (rate: number) => 40 * Math.max(1, (rate / 400) ** 2);

/** Steady with a warm 40 ms baseline, near where the server's p90 meets baseline + the allowance (about 1,000/s). */
function settled(): Trace {
  const trace = new Trace(new AdaptiveWaveSizer(spec({ waves: { maxSize: 100_000 } })));
  for (let i = 0; i < 25; i++) trace.step(server(trace.last?.size ?? 0));
  expect(trace.sizer.state.mode).toBe(Mode.Steady);
  return trace;
}

/** Seeded PRNG (mulberry32), so noisy traces are the same on every run. */
function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

describe("AdaptiveWaveSizer: start and pace", () => {
  it("starts at initialSize and doubles each wave while latency stays flat, up to maxSize", () => {
    const trace = new Trace(new AdaptiveWaveSizer(spec()));
    expect(trace.run(7, 40).map((d) => d.size)).toEqual([50, 100, 200, 400, 800, 1600, 2000]);
    expect(trace.last).toMatchObject({ limitedBy: "Rate", waitMs: 0 });
    expect(trace.last?.message).toContain("at spec.waves.maxSize");
  });

  it("stops doubling at the first queue (p90 past startTolerance × the baseline), well within the allowance", () => {
    const trace = new Trace(new AdaptiveWaveSizer(spec({ waves: { maxSize: 100_000 } })));
    trace.run(6, 40);
    const rate = trace.rate;
    expect(trace.step(100)).toMatchObject({ limitedBy: "Latency" }); // held, not doubled
    expect(trace.rate).toBe(rate);
    trace.step(100);
    expect(trace.sizer.state.mode).toBe(Mode.BackingOff);
    expect(trace.rate).toBeLessThan(rate);
  });

  it("spreads a wave over its period (a 5 s minInterval: 5 s of writes), and over at most 10 s however long minInterval is", () => {
    expect(new Trace(new AdaptiveWaveSizer(spec({ waves: { minInterval: "5s" } }))).step()).toMatchObject({ size: 50, rateLimit: { perSecond: 10 } });
    const day = new Trace(new AdaptiveWaveSizer(spec({ waves: { minInterval: "24h", initialSize: 100 } }))).step();
    expect(day.rateLimit.perSecond).toBe(10);
  });

  it("sets concurrency by Little's law at the send pace × startGain, within [minSize, MAX_CONCURRENCY]", () => {
    const trace = new Trace(new AdaptiveWaveSizer(spec({ waves: { maxSize: 100_000 } })));
    trace.run(3, 40);
    const d = trace.step(40);
    expect(d.rateLimit.concurrency).toBe(Math.ceil(((d.rateLimit.sendPerSecond ?? 0) * 40 * T.startGain) / 1_000));
    expect(trace.step(40).rateLimit.concurrency).toBeLessThan(MAX_CONCURRENCY);
    trace.run(10, 40);
    expect(trace.step(40).rateLimit.concurrency).toBe(MAX_CONCURRENCY);
  });
});

describe("AdaptiveWaveSizer: loss", () => {
  it("a 429 halves the rate and pauses at least the Retry-After", () => {
    const trace = settled();
    const rate = trace.rate;
    const paused = trace.step(40, { throttled: 3, retryAfterUntil: trace.now + 4_000 });
    expect(paused).toMatchObject({ size: 0, limitedBy: "ApiServer" });
    expect(paused.waitMs).toBeGreaterThanOrEqual(4_000);
    expect(trace.rate).toBeCloseTo(T.decrease * rate, 6);
    expect(paused.message).toContain("halved");
    for (let i = 0; i < 3; i++) expect(trace.step(40, { throttled: 1 })).toMatchObject({ size: 0, limitedBy: "ApiServer" }); // sent before the pause
    expect(trace.rate).toBeCloseTo(T.decrease * rate, 6); // once per episode
  });

  it("honours the shared gate's Retry-After in peek and next, and pauses at least 1 s on a timeout", () => {
    const trace = settled();
    expect(trace.sizer.peek({ now: trace.now, remaining: 10, retryAfterUntil: trace.now + 2_500 })).toMatchObject({ size: 0, waitMs: 2_500 });
    expect(trace.step(40, { timeouts: 1 }).waitMs).toBeGreaterThanOrEqual(1_000);
  });
});

describe("AdaptiveWaveSizer: latency", () => {
  it("rising latency cuts the rate; recovery grows it back", () => {
    const trace = settled();
    const before = trace.rate;
    trace.step(450); // the first tick moves the short p90 half way: the √R term may still hold
    const cuts = Array.from({ length: 3 }, () => (trace.step(450), trace.rate)); // (a fifth congested tick would call an early probe)
    for (let i = 1; i < cuts.length; i++) expect(cuts[i] ?? 0).toBeLessThan(cuts[i - 1] ?? 0);
    expect(cuts[2]).toBeLessThan(0.9 * before);
    expect(trace.last?.limitedBy).toBe("Latency");
    trace.run(12, 40);
    expect(trace.rate).toBeGreaterThan(0.85 * before);
  });

  it("past the latency target it cuts by target/p90 or more, never more than a loss", () => {
    const trace = settled();
    const before = trace.rate;
    trace.step(1_600);
    expect(trace.rate).toBeLessThanOrEqual(before * (1_000 / 1_600) + 1e-9);
    expect(trace.rate).toBeGreaterThanOrEqual(T.decrease * before - 1e-9);
    expect(trace.last?.message).toContain("latencyTarget");
  });

  it("holds while its own p99 is above the target (the API call SLO is a p99)", () => {
    const trace = settled();
    const before = trace.rate;
    trace.step(40, { p99: 1_500 });
    expect(trace.rate).toBe(before);
  });

  it("does not grow while a guard holds its waves under half the rate (what was answered, not what it decided)", () => {
    const trace = settled();
    trace.step(40, {}, { starting: 480 }); // learns from the last full wave
    const before = trace.rate;
    for (let i = 0; i < 5; i++) expect(trace.step(40, {}, { starting: 480 }).limitedBy).toBe("Kubelet");
    expect(trace.rate).toBe(before);
  });

  it("probes once every probeIntervalMs with one wave at decrease × R, and raises the baseline when latency stays high", () => {
    const trace = settled();
    const probes = trace.run(2 * T.probeIntervalMs / 1_000, 40).filter((d) => d.message.includes("re-measuring"));
    expect(probes.length).toBeGreaterThanOrEqual(1);
    expect(probes.length).toBeLessThanOrEqual(3);
    const before = trace.sizer.state.baselineMs ?? 0;
    for (let i = 0; i < 2 * T.probeIntervalMs / 1_000 && !trace.step(200).message.includes("re-measuring"); i++);
    trace.step(200);
    expect(trace.sizer.state.baselineMs).toBeGreaterThan(before);
  });
});

describe("AdaptiveWaveSizer: others launching pods", () => {
  it("yields past the ceiling while others create pods: halves at once, then grows only slowly, down to minSize waves paced over 10 s", () => {
    const trace = settled();
    const before = trace.rate;
    const others = trace.rate; // a writer as fast as we are
    const first = trace.step(900, {}, { othersCreating: others }); // its first tick moves the short p90 past the ceiling
    expect(first).toMatchObject({ limitedBy: "Yielding" });
    expect(first.message).toContain("yielding to them");
    expect(trace.rate).toBeCloseTo(T.decrease * before, 6);
    trace.run(30, 700, { othersCreating: others });
    expect(trace.sizer.state.mode).toBe(Mode.Yielding);
    expect(trace.rate).toBeLessThan(5);
    expect(trace.rate).toBeGreaterThanOrEqual(1); // minSize over 10 s
  });

  it("does not yield to its own queue, nor to a writer under othersMinShare of its rate, nor under the ceiling", () => {
    for (const [p90, others] of [[700, 0], [700, 2 * T.othersMinPerSecond], [200, 10_000]] as const) {
      const trace = settled();
      trace.run(3, p90, { othersCreating: others });
      expect(trace.sizer.state.mode, `${p90} ms, others ${others}/s`).not.toBe(Mode.Yielding);
    }
  });

  it("stops yielding once the others stop, and recovers quickly", () => {
    const trace = settled();
    const before = trace.rate;
    trace.run(5, 700, { othersCreating: before });
    expect(trace.sizer.state.mode).toBe(Mode.Yielding);
    const floor = trace.rate;
    trace.run(12, 40, { othersCreating: 0 });
    expect(trace.sizer.state.mode).not.toBe(Mode.Yielding);
    // Back to `recovery` × the yield's rate, itself 0.75 × what it began at (fast convergence: the
    // episode began below the last one's rate): over half the rate before, from the yield's floor.
    expect(trace.rate).toBeGreaterThan(10 * floor);
    expect(trace.rate).toBeGreaterThan(0.6 * before);
  });
});

describe("AdaptiveWaveSizer: noise", () => {
  // The bound we defend: ±50 % noise on every tick's p90 of a fixed server, 270 ticks after the ramp.
  // Below the ceiling no tick cuts more than smoothing × (1 − decrease) = 10 % nor grows more than
  // smoothing × √R; whatever happens, the settled rate stays within [0.75, 1.5] of where the tolerated
  // p90 meets the server, and its largest and smallest values within a factor 2.5 of each other.
  function noisyRun(seed: number, server: (rate: number) => number) {
    const random = mulberry32(seed);
    const sizer = new AdaptiveWaveSizer(spec({ waves: { maxSize: 100_000 } }));
    let last: WaveDecision | undefined;
    const rates: number[] = [];
    const steps: number[] = [];
    for (let i = 0; i < 300; i++) {
      const now = i * 1_000;
      const p90 = last ? server(last.size) * (0.5 + random()) : undefined;
      const before = sizer.state.perSecond;
      last = sizer.next({ now, remaining: 1_000_000, ...(last ? { writes: writes(now, last.size, p90) } : {}) });
      if (i >= 30) {
        rates.push(sizer.state.perSecond);
        steps.push(sizer.state.perSecond / before);
      }
    }
    return { rates, steps };
  }

  function expectSettles(server: (rate: number) => number, near: number, belowCeiling: boolean): void {
    for (const seed of [1, 2, 3, 4, 5, 7]) {
      const { rates, steps } = noisyRun(seed, server);
      const mean = rates.reduce((a, b) => a + b, 0) / rates.length;
      expect(mean, `seed ${seed}`).toBeGreaterThan(0.75 * near);
      expect(mean, `seed ${seed}`).toBeLessThan(1.5 * near);
      expect(Math.max(...rates) / Math.min(...rates), `seed ${seed}`).toBeLessThan(2.5);
      const probeOrRecovery = (s: number) => s === 1 || s > 1.05;
      for (const s of steps) expect(s).toBeGreaterThanOrEqual(belowCeiling ? 1 - T.smoothing * (1 - T.decrease) - 1e-9 : T.decrease);
      expect(steps.filter((s) => !probeOrRecovery(s)).length).toBeGreaterThan(0);
    }
  }

  it("steady 50 ms ±50 %: the ramp is not lost", () => {
    for (const seed of [1, 2, 3]) expect(Math.min(...noisyRun(seed, () => 50).rates), `seed ${seed}`).toBeGreaterThan(10_000);
  });

  it("a fast server (50 ms, knee at 400/s): settles where p90 reaches baseline + the allowance", () => {
    const tolerated = 50 + T.queueAllowance * 1_000;
    expectSettles((rate) => 50 * Math.max(1, (rate / 400) ** 2), 400 * Math.sqrt(tolerated / 50), true);
  });

  it("a slow server (380 ms, knee at 400/s): settles where p90 reaches the ceiling", () => {
    const ceiling = T.queueCeiling * 1_000;
    expectSettles((rate) => 380 * Math.max(1, (rate / 400) ** 2), 400 * Math.sqrt(ceiling / 380), false);
  });
});

describe("AdaptiveWaveSizer: guards", () => {
  const guardSignals = fc.record(
    {
      pending: fc.integer({ min: 0, max: 3_000 }),
      starting: fc.integer({ min: 0, max: 3_000 }),
      nodeSlots: fc.integer({ min: 0, max: 5_000 }),
      budget: fc.integer({ min: 0, max: 5_000 }),
      unschedulable: fc.record({ count: fc.integer({ min: 0, max: 3 }) }),
      ipam: fc.record({ provider: fc.constant("NodePodCIDR" as const), free: fc.integer({ min: 0, max: 5_000 }), capacity: fc.constant(25_600) }),
    },
    { requiredKeys: [] },
  );

  it("a wave never exceeds any guard, nor maxSize, at any rate the law reaches (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 20, max: 2_000 }), { minLength: 1, maxLength: 25 }), guardSignals, fc.boolean(), (p90s, guards, peek) => {
        const s = spec({ waves: { maxSize: 3_000 } });
        const trace = new Trace(new AdaptiveWaveSizer(s));
        for (const p90 of p90s) trace.step(p90);
        const signals = { now: trace.now, remaining: 1_000_000, ...guards };
        const d = peek ? trace.sizer.peek(signals) : trace.step(100, {}, guards);
        expect(d.size).toBeLessThanOrEqual(3_000);
        for (const g of guardCandidates(s, signals)) expect(d.size).toBeLessThanOrEqual(g.size);
      }),
      { numRuns: 300, seed: 28 },
    );
  });

  it("names the guard that bound the wave; a tie goes to the guard; guards may go below minSize", () => {
    const trace = new Trace(new AdaptiveWaveSizer(spec()));
    expect(trace.step(undefined, {}, { pending: 480 })).toMatchObject({ size: 20, limitedBy: "Scheduler" });
    expect(trace.step(40, {}, { pending: 500 })).toMatchObject({ size: 0, limitedBy: "Scheduler" });
    expect(trace.step(40, {}, { budget: 3 })).toMatchObject({ size: 3, limitedBy: "Budget" });
    expect(trace.step(40, {}, { remaining: 0 })).toMatchObject({ size: 0, limitedBy: "None" });
  });
});

describe("AdaptiveWaveSizer: peek, spec changes, sharing", () => {
  it("peek reads guards afresh but learns nothing", () => {
    const trace = settled();
    const before = trace.rate;
    for (let i = 0; i < 5; i++) trace.sizer.peek({ now: trace.now + i, remaining: 10, pending: 10 });
    expect(trace.rate).toBe(before);
  });

  it("keeps what it learned across a spec change, within the new bounds", () => {
    const trace = new Trace(new AdaptiveWaveSizer(spec()));
    trace.run(6, 40);
    trace.sizer.updateSpec(spec({ waves: { maxSize: 500 } }));
    expect(trace.step(40)).toMatchObject({ size: 500 });
  });

  it("createWaveSizer gives Adaptive sizers the shared controller when there is one", () => {
    const a = new AdaptiveWaveSizer(spec());
    const shared = { controller: a.controller, learn: () => a.controller };
    const b = createWaveSizer(spec(), shared) as AdaptiveWaveSizer;
    expect(b.controller).toBe(a.controller);
  });
});
