import { describe, expect, it } from "vitest";
import { BatchRolloutSpec } from "../../api/batchrollout.ts";
import {
  AdaptiveWaveSizer,
  BASELINE_PROBE_INTERVAL_MS,
  FAST_CONVERGENCE_FACTOR,
  FixedWaveSizer,
  GRADIENT_MIN,
  GRADIENT_SMOOTHING,
  GRADIENT_TOLERANCE,
  LOSS_DECREASE_FACTOR,
  MAX_CONCURRENCY,
  MAX_CYCLE_OVERHEAD_SHARE,
  MAX_LATE_WAVE_CREDIT_SHARE,
  MAX_WAVE_PERIOD_MS,
  MIN_CONCURRENCY,
  PROBE_RATE_FACTOR,
  QUEUEING_ALLOWANCE_SHARE,
  QUEUEING_CEILING_SHARE,
  SHORT_LATENCY_ALPHA,
  RECOVERY_GAIN,
  RECOVERY_TARGET_FRACTION,
  type SizerSpec,
  type WaveDecision,
  type WaveSignals,
  type WaveSizer,
  WARMUP_SAMPLE_CAP,
  YIELD_DRAINED_SHARE,
  YIELD_MIN_WRITE_RATE_PER_S,
  OTHERS_CREATING_MIN_PER_S,
  OTHERS_CREATING_MIN_SHARE,
  createWaveSizer,
  wavePeriodMs,
} from "./index.ts";
import type { WriteTick } from "../write-latency.ts";

const TEMPLATE = { spec: { containers: [{ name: "sim", image: "busybox" }] } };

function spec(fields: Record<string, unknown> = {}): SizerSpec {
  return BatchRolloutSpec.parse({ replicas: 10_000, template: TEMPLATE, ...fields });
}

function writes(now: number, count: number, p90: number | undefined, extra: Partial<WriteTick> = {}): WriteTick {
  return {
    at: now,
    count,
    throttled: 0,
    serverErrors: 0,
    timeouts: 0,
    networkErrors: 0,
    latencySamples: p90 === undefined ? 0 : count,
    latencySource: p90 === undefined ? "none" : "tick",
    ...(p90 === undefined ? {} : { p50: p90 * 0.7, p90, p99: p90 * 1.5 }),
    ...extra,
  };
}

/**
 * A p90 far past the queueing allowance (a 40 ms baseline + 0.25 × the default 1 s target) and the
 * ceiling (0.5 ×): even its first smoothed tick from a 40 ms baseline, 470 ms, reads as queueing.
 */
const QUEUED_P90 = 900;

/** Drives a sizer one wave per second: every pod of the last wave was written, with the given p90. */
class Trace {
  now = 0;
  last: WaveDecision | undefined;
  readonly sizer: WaveSizer;

  constructor(sizer: WaveSizer) {
    this.sizer = sizer;
  }

  step(p90?: number, tick: Partial<WriteTick> = {}, signals: Partial<WaveSignals> = {}): WaveDecision {
    const decision = this.sizer.next({
      now: this.now,
      remaining: 1_000_000,
      ...(this.last ? { writes: writes(this.now, this.last.size, p90, tick) } : {}),
      ...signals,
    });
    this.last = decision;
    this.now += 1_000;
    return decision;
  }

  run(ticks: number, p90: number): WaveDecision[] {
    return Array.from({ length: ticks }, () => this.step(p90));
  }
}

/** The sizer's rate after each of `ticks` waves at the given p90. */
function ratesOver(trace: Trace, sizer: AdaptiveWaveSizer, ticks: number, p90: number): number[] {
  return Array.from({ length: ticks }, () => (trace.step(p90), sizer.state.perSecond));
}

/** Seeded PRNG (mulberry32), so the noisy traces are the same on every run. */
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

describe("AdaptiveWaveSizer: start and ramp", () => {
  it("starts at initialSize and doubles each wave while latency stays flat (slow start)", () => {
    const trace = new Trace(new AdaptiveWaveSizer(spec()));
    const sizes = trace.run(7, 40).map((d) => d.size);
    expect(sizes).toEqual([50, 100, 200, 400, 800, 1600, 2000]);
    expect(trace.last).toMatchObject({ limitedBy: "Rate", waitMs: 0 });
    expect(trace.last?.message).toContain("at spec.waves.maxSize");
  });

  it("takes a warm-up tick far above the baseline so far (slow start's own queue) in only at the gradient's floor point", () => {
    const sizer = new AdaptiveWaveSizer(spec());
    const trace = new Trace(sizer);
    trace.step(); // no writes yet
    trace.step(75);
    trace.step(150); // within WARMUP_SAMPLE_CAP: taken as it is
    expect(sizer.state.baselineMs).toBeCloseTo(112.5, 6);
    trace.step(460); // our own queue: capped at 2.5 × 112.5
    expect(sizer.state.baselineMs).toBeCloseTo(112.5 + (WARMUP_SAMPLE_CAP * 112.5 - 112.5) / 3, 6);
  });

  it("stops doubling once p90 passes 1.25× the baseline, though it is still within the queueing allowance (HyStart)", () => {
    const sizer = new AdaptiveWaveSizer(spec({ waves: { maxSize: 100_000 } }));
    const trace = new Trace(sizer);
    trace.run(6, 40);
    const rate = sizer.state.perSecond;
    const queueing = 100;
    expect(queueing).toBeLessThan(40 + QUEUEING_ALLOWANCE_SHARE * 1_000);
    expect(trace.step(queueing)).toMatchObject({ limitedBy: "Latency" }); // held, not doubled
    expect(sizer.state.perSecond).toBe(rate);
    trace.step(queueing);
    expect(sizer.state.slowStart).toBe(false);
    const eased = sizer.state.perSecond;
    expect(eased).toBeLessThan(rate);
    trace.run(10, queueing); // out of slow start the same latency is within the allowance: growth resumes
    expect(sizer.state.perSecond).toBeGreaterThan(eased);
  });

  it("derives concurrency from the rate and the baseline latency, within bounds", () => {
    const trace = new Trace(new AdaptiveWaveSizer(spec()));
    expect(trace.step().rateLimit).toEqual({ concurrency: 10, perSecond: 50, sendPerSecond: 50 }); // 50/s × 100 ms assumed × 2
    trace.run(3, 40);
    expect(trace.step(40).rateLimit).toEqual({ concurrency: 64, perSecond: 800, sendPerSecond: 800 }); // 800/s × 40 ms × 2
    const slow = new Trace(new AdaptiveWaveSizer(spec({ waves: { initialSize: 2000 } })));
    slow.step();
    expect(slow.step(900).rateLimit.concurrency).toBe(MAX_CONCURRENCY);
    const tiny = new Trace(new AdaptiveWaveSizer(spec({ waves: { initialSize: 10 } })));
    expect(tiny.step().rateLimit.concurrency).toBe(MIN_CONCURRENCY);
  });

  it("spreads a wave over its period: a 5 s minInterval gives waves of 5 s of writes", () => {
    const trace = new Trace(new AdaptiveWaveSizer(spec({ waves: { initialSize: 50, minInterval: "5s" } })));
    expect(trace.step()).toMatchObject({ size: 50, rateLimit: { perSecond: 10 } });
  });

  it("paces a wave over at most MAX_WAVE_PERIOD_MS, however long minInterval is", () => {
    const long = spec({ waves: { strategy: "Fixed", initialSize: 50, minInterval: "24h" } });
    expect(wavePeriodMs(long)).toBe(MAX_WAVE_PERIOD_MS);
    expect(createWaveSizer(long).next({ now: 0, remaining: 200 })).toMatchObject({ size: 50, rateLimit: { perSecond: 50 / (MAX_WAVE_PERIOD_MS / 1_000) } });
    const adaptive = new Trace(new AdaptiveWaveSizer(spec({ waves: { initialSize: 50, minInterval: "1h" } })));
    expect(adaptive.step()).toMatchObject({ size: 50, rateLimit: { perSecond: 50 / (MAX_WAVE_PERIOD_MS / 1_000) } });
  });

  it("never grows more than ×2 in one wave", () => {
    const trace = new Trace(new AdaptiveWaveSizer(spec({ waves: { maxSize: 100_000 } })));
    const sizes = trace.run(12, 20).map((d) => d.size);
    for (let i = 1; i < sizes.length; i++) expect(sizes[i]).toBeLessThanOrEqual(2 * (sizes[i - 1] ?? 0));
  });
});

describe("AdaptiveWaveSizer: wave cycle overhead", () => {
  /**
   * Waves as the reconciler runs them: the next wave starts when the last answer is in and the
   * status is patched (`overheadMs` after the last write is sent), but never before minInterval.
   * Flat latency; returns each cycle's average rate against R.
   */
  function cycles(sizer: AdaptiveWaveSizer, count: number, overheadMs: number, periodMs = 1_000) {
    const out: { ratio: number; decision: WaveDecision }[] = [];
    let now = 0;
    let last: WaveDecision | undefined;
    for (let i = 0; i < count; i++) {
      const decision = sizer.next({ now, remaining: 1_000_000, ...(last ? { writes: writes(now, last.size, 40) } : {}) });
      const pace = decision.rateLimit.sendPerSecond ?? decision.rateLimit.perSecond;
      const cycle = Math.max(periodMs, (decision.size / pace) * 1_000 + overheadMs);
      out.push({ ratio: decision.size / (cycle / 1_000) / decision.rateLimit.perSecond, decision });
      last = decision;
      now += cycle;
    }
    return out;
  }
  const steady = () => new AdaptiveWaveSizer(spec({ waves: { initialSize: 200, maxSize: 200 } }));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

  it("sends a wave faster when its cycle runs past the period, so the average rate stays R", () => {
    const sizer = steady();
    const run = cycles(sizer, 30, 300);
    // Without the allowance every cycle is 1.3 s: 77 % of R.
    expect(run[0]?.ratio).toBeCloseTo(1 / 1.3, 2);
    expect(mean(run.slice(-10).map((c) => c.ratio))).toBeGreaterThan(0.95);
    const { perSecond, sendPerSecond = perSecond } = run.at(-1)!.decision.rateLimit;
    expect(perSecond).toBe(200);
    expect(sendPerSecond).toBeGreaterThan(perSecond * 1.3);
    expect(sendPerSecond).toBeLessThan(perSecond / 0.7);
  });

  it("lets the allowance shrink again once waves fit their period", () => {
    const sizer = steady();
    cycles(sizer, 20, 300);
    expect(sizer.state.overheadMs).toBeGreaterThan(200);
    cycles(sizer, 30, 0);
    expect(sizer.state.overheadMs).toBeLessThan(20);
  });

  it("keeps the allowance within the period when a spec change shortens it", () => {
    const sizer = new AdaptiveWaveSizer(spec({ waves: { initialSize: 200, maxSize: 1_000, minInterval: "5s" } }));
    cycles(sizer, 20, 2_000, 5_000);
    expect(sizer.state.overheadMs).toBeGreaterThan(1_000);
    sizer.updateSpec(spec({ waves: { initialSize: 200, maxSize: 1_000, minInterval: "1s" } }));
    const { perSecond, sendPerSecond = 0 } = sizer.peek({ now: 1e9, remaining: 1_000_000 }).rateLimit;
    expect(sendPerSecond).toBeCloseTo(perSecond / (1 - MAX_CYCLE_OVERHEAD_SHARE), 6);
  });

  it("never sends faster than 1 / (1 − MAX_CYCLE_OVERHEAD_SHARE) × R, and concurrency follows the pace", () => {
    const sizer = steady();
    const last = cycles(sizer, 20, 5_000).at(-1)!.decision.rateLimit;
    expect(last.sendPerSecond).toBeCloseTo(last.perSecond / (1 - MAX_CYCLE_OVERHEAD_SHARE), 2);
    expect(last.concurrency).toBe(Math.ceil((((last.sendPerSecond ?? 0) * 40) / 1_000) * 2)); // Little's law × 2 headroom at the send pace
  });

  it("gives a late wave what the rate allowed in the extra time, at the lower of the old and new rate, up to MAX_LATE_WAVE_CREDIT_SHARE", () => {
    const sizer = new AdaptiveWaveSizer(spec({ waves: { initialSize: 50, maxSize: 5_000 } }));
    const trace = new Trace(sizer);
    trace.run(2, 40);
    for (const lateMs of [0, 300, 2_000]) {
      trace.now += lateMs;
      const before = sizer.state.perSecond;
      const { size, rateLimit } = trace.step(40); // slow start: the rate doubles on this tick
      const creditS = Math.min(lateMs / 1_000, MAX_LATE_WAVE_CREDIT_SHARE);
      expect(size).toBe(Math.round(rateLimit.perSecond + Math.min(before, rateLimit.perSecond) * creditS));
    }
  });

  it("gives a late wave no credit for a Retry-After pause, nor while it holds or cuts for latency", () => {
    const sizer = new AdaptiveWaveSizer(spec({ waves: { initialSize: 50, maxSize: 5_000 } }));
    const trace = new Trace(sizer);
    trace.run(3, 40);
    trace.now += 600;
    // The pause began after the last wave and is over by now: the wave is one period's worth.
    const paused = trace.step(40, {}, { retryAfterUntil: trace.now - 100 });
    expect(paused.size).toBe(Math.round(paused.rateLimit.perSecond));
    trace.now += 600;
    const queued = trace.step(QUEUED_P90);
    expect(queued.limitedBy).toBe("Latency");
    expect(queued.size).toBe(Math.round(queued.rateLimit.perSecond));
  });
});

describe("AdaptiveWaveSizer: latency", () => {
  it("latency rises → waves shrink (gradient), then recover when it falls back", () => {
    const sizer = new AdaptiveWaveSizer(spec());
    const trace = new Trace(sizer);
    trace.run(8, 40); // at maxSize 2000
    const rising: WaveDecision[] = [];
    const rates: number[] = [];
    for (let i = 0; i < 12; i++) {
      rising.push(trace.step(QUEUED_P90));
      rates.push(sizer.state.perSecond);
    }
    const sizes = rising.map((d) => d.size);
    expect(sizes[0]).toBe(2000); // one congested tick in slow start only holds
    // The rate only falls; the waves with it, but for one deliberate half-rate probe after 10 such ticks.
    for (let i = 2; i < rates.length; i++) expect(rates[i]).toBeLessThanOrEqual(rates[i - 1] ?? 0);
    expect(rising.filter((d) => d.message.includes("re-measuring"))).toHaveLength(1);
    expect(sizes.at(-1)).toBeLessThan(2000 * 0.1); // whole gradient steps past the ceiling, each about a halving here
    expect(rising.at(-1)).toMatchObject({ limitedBy: "Latency" });
    expect(rising.at(-1)?.message).toContain("queueing past 0.5× the target, cutting");

    const recovering = trace.run(20, 40).map((d) => d.size);
    expect(recovering.at(-1)).toBeGreaterThan(Math.max(...sizes.slice(-3)));
  });

  it("below the queueing ceiling, a cut in one wave is at most what the smoothed gradient floor allows", () => {
    const sizer = new AdaptiveWaveSizer(spec());
    const trace = new Trace(sizer);
    trace.run(8, 40);
    trace.step(480); // the first congested tick of slow start only holds
    const before = sizer.state.perSecond;
    trace.step(480); // 12× the baseline, below the ceiling
    expect(sizer.state.shortMs).toBeLessThan(QUEUEING_CEILING_SHARE * 1_000);
    expect(sizer.state.perSecond).toBeLessThan(before);
    expect(sizer.state.perSecond).toBeGreaterThanOrEqual(before * (1 - GRADIENT_SMOOTHING * (1 - GRADIENT_MIN)) - 1e-9);
  });

  it("above the queueing ceiling, the whole gradient step: R = g·R + √R", () => {
    const sizer = new AdaptiveWaveSizer(spec());
    const trace = new Trace(sizer);
    trace.run(8, 40);
    trace.step(QUEUED_P90); // the first congested tick of slow start only holds
    const before = sizer.state.perSecond;
    const decision = trace.step(QUEUED_P90);
    const short = sizer.state.shortMs ?? 0;
    expect(short).toBeGreaterThan(QUEUEING_CEILING_SHARE * 1_000);
    const g = Math.max(GRADIENT_MIN, (GRADIENT_TOLERANCE * (sizer.state.baselineMs ?? 0)) / short); // slow start's tolerance
    expect(sizer.state.perSecond).toBeCloseTo(g * before + Math.sqrt(before), 6);
    expect(decision.message).toContain("queueing past 0.5× the target, cutting");
  });

  it("treats latencyTarget as a hard ceiling: target/p90, or the gradient's whole step if that cuts more", () => {
    const sizer = new AdaptiveWaveSizer(spec({ guards: { apiServer: { latencyTarget: "1s" } } }));
    const trace = new Trace(sizer);
    trace.run(5, 40); // 800/s
    const decision = trace.step(1_500);
    const short = sizer.state.shortMs ?? 0;
    const g = Math.max(GRADIENT_MIN, (GRADIENT_TOLERANCE * (sizer.state.baselineMs ?? 0)) / short); // slow start's tolerance
    expect(decision.size).toBe(Math.round(800 * Math.max(0.5, Math.min(1_000 / 1_500, g + Math.sqrt(800) / 800))));
    expect(decision.limitedBy).toBe("Latency");
    expect(decision.message).toContain("above spec.guards.apiServer.latencyTarget 1s");
    const before = sizer.state.perSecond;
    expect(trace.step(5_000).size).toBe(Math.round(before * 0.5)); // never more than halved per wave
  });

  it("cuts at least as much just above the target as just below it", () => {
    const rateAfter = (p90: number) => {
      const sizer = new AdaptiveWaveSizer(spec({ guards: { apiServer: { latencyTarget: "1s" } } }));
      const trace = new Trace(sizer);
      trace.run(6, 40);
      trace.step(40, { throttled: 1 }); // out of slow start
      trace.now = 60_000;
      trace.run(5, 40);
      trace.step(p90);
      return sizer.state.perSecond;
    };
    expect(rateAfter(1_050)).toBeLessThanOrEqual(rateAfter(950));
    expect(rateAfter(950)).toBeLessThan(rateAfter(40));
  });

  it("holds, without growing, while our own p99 is above the target (the API call SLO is a p99)", () => {
    const trace = new Trace(new AdaptiveWaveSizer(spec({ guards: { apiServer: { latencyTarget: "1s" } } })));
    const before = trace.run(3, 100).at(-1)?.size ?? 0; // slow start on a 100 ms baseline
    const held = Array.from({ length: 5 }, () => trace.step(100, { p99: 1_200 }));
    expect(new Set(held.map((d) => d.size))).toEqual(new Set([before]));
    expect(held.at(-1)).toMatchObject({ limitedBy: "Latency" });
    expect(held.at(-1)?.message).toContain("p99 1.2 s is above the 1s target: holding");
    expect(trace.step(100).size).toBe(2 * before); // growth resumes once p99 is back within the target
  });

  it("holds, without growing, on a tick whose p90 is close to the target before the smoothed p90 shows queueing", () => {
    const trace = new Trace(new AdaptiveWaveSizer(spec({ guards: { apiServer: { latencyTarget: "1s" } } })));
    trace.run(8, 420); // slow start at maxSize on a ~400 ms baseline: 500 ms tolerated out of it (the ceiling)
    trace.step(420, { throttled: 1 }); // a loss: out of slow start, halved
    trace.now = 60_000;
    trace.run(5, 40); // quick answers bring the smoothed p90 under 100 ms
    const sizer = trace.sizer as AdaptiveWaveSizer;
    const rate = sizer.state.perSecond;
    const tolerated = Math.min((sizer.state.baselineMs ?? 0) + QUEUEING_ALLOWANCE_SHARE * 1_000, QUEUEING_CEILING_SHARE * 1_000);
    const short = sizer.state.shortMs ?? Infinity;
    expect(short + SHORT_LATENCY_ALPHA * (800 - short)).toBeLessThan(tolerated);
    const spike = trace.step(800); // smoothed, it is tolerated; the tick itself is 0.8 × the target
    expect(spike.message).toContain("is near the 1s target: holding");
    expect(sizer.state.perSecond).toBe(rate);
  });

  it("a server whose unloaded p90 is above QUEUEING_CEILING_SHARE of the target: cuts and never grows", () => {
    const sizer = new AdaptiveWaveSizer(spec({ guards: { apiServer: { latencyTarget: "500ms" } } }));
    const trace = new Trace(sizer);
    const slow = 420; // unloaded, yet 0.84 × the 500 ms target
    expect(slow).toBeGreaterThan(QUEUEING_CEILING_SHARE * 500);
    const rates = ratesOver(trace, sizer, 30, slow);
    for (let i = 1; i < rates.length; i++) expect(rates[i]).toBeLessThanOrEqual(rates[i - 1]!);
    expect(rates.at(-1)).toBeLessThan(50); // below initialSize's 50/s
    expect(trace.step(slow).message).toContain("queueing past 0.5× the target, cutting");
  });
});

describe("AdaptiveWaveSizer: recovery after queueing", () => {
  it.each([
    { episode: "the gradient eases off, below the queueing ceiling", p90: 480, ticks: 6, cutBelow: 0.8, recoveryTicks: 8 },
    { episode: "one held tick, then whole gradient steps past the ceiling", p90: QUEUED_P90, ticks: 3, cutBelow: 0.3, recoveryTicks: 12 },
  ])("climbs back quickly towards the rate the episode began at, not by √R steps: $episode", ({ p90, ticks, cutBelow, recoveryTicks }) => {
    const sizer = new AdaptiveWaveSizer(spec({ waves: { maxSize: 100_000 } }));
    const trace = new Trace(sizer);
    trace.run(6, 40); // slow start to 1,600/s on a 40 ms baseline
    const before = sizer.state.perSecond;
    trace.run(ticks, p90);
    const cut = sizer.state.perSecond;
    expect(cut).toBeLessThan(cutBelow * before);
    trace.run(recoveryTicks, 40);
    const additiveOnly = cut + recoveryTicks * GRADIENT_SMOOTHING * Math.sqrt(before);
    expect(sizer.state.perSecond).toBeGreaterThan(additiveOnly);
    expect(sizer.state.perSecond).toBeGreaterThan(0.8 * before);
    expect(sizer.state.perSecond).toBeLessThanOrEqual(before);
  });
});

describe("AdaptiveWaveSizer: a second writer (fast convergence)", () => {
  it("an episode that begins below the last one's rate remembers less than its own rate, so recovery leaves the newcomer its share", () => {
    const sizer = new AdaptiveWaveSizer(spec({ waves: { maxSize: 100_000 } }));
    const trace = new Trace(sizer);
    trace.run(6, 40); // slow start to 1,600/s on a 40 ms baseline
    const first = sizer.state.perSecond;
    trace.run(6, QUEUED_P90); // queueing: the first episode begins at `first`
    expect(sizer.state.episodeStartRate).toBe(first);
    trace.run(4, 40); // the short-term latency falls back, then recovery climbs part of the way
    const second = sizer.state.perSecond;
    expect(second).toBeLessThan(first);
    trace.run(6, QUEUED_P90); // queueing again before reaching the old rate: someone else took a share
    expect(sizer.state.episodeStartRate).toBeCloseTo(second * FAST_CONVERGENCE_FACTOR, 6);
    const cut = sizer.state.perSecond;
    trace.run(20, 40);
    // Recovery aims at 0.9 × the remembered rate; beyond it only the slow √R growth remains.
    const slowGrowthBound = Math.max(cut, RECOVERY_TARGET_FRACTION * second * FAST_CONVERGENCE_FACTOR) + 20 * GRADIENT_SMOOTHING * Math.sqrt(first);
    expect(sizer.state.perSecond).toBeLessThan(slowGrowthBound);
    expect(sizer.state.perSecond).toBeLessThan(second);
  });

  it("an episode that begins at or above the last one's rate remembers its own rate", () => {
    const sizer = new AdaptiveWaveSizer(spec({ waves: { maxSize: 100_000 } }));
    const trace = new Trace(sizer);
    trace.run(6, 40);
    trace.step(40, { throttled: 1 }); // a loss at 1,600/s: halved, remembered
    const remembered = sizer.state.episodeStartRate ?? 0;
    trace.now = sizer.state.pauseUntil;
    trace.run(40, 40); // recovers past the old rate
    const rate = sizer.state.perSecond;
    expect(rate).toBeGreaterThan(remembered);
    trace.run(3, QUEUED_P90);
    expect(sizer.state.episodeStartRate).toBe(rate);
  });
});

describe("AdaptiveWaveSizer: yielding to others launching pods", () => {
  /** p90 over the 500 ms queueing ceiling of the default 1 s target, under the target itself. */
  const OTHERS_P90 = 700;
  /** A second writer creating pods at 50/s, as the benchmark's stressor does. */
  const WRITER = { othersCreating: 50 };
  const isProbe = (d: WaveDecision | undefined) => d?.message.includes("re-measuring") ?? false;

  /** A sizer at maxSize 200/s after a flat start, then `ticks` waves at `p90` beside `others`. */
  function besideOthers(ticks: number, p90: number, others: Partial<WaveSignals>) {
    const sizer = new AdaptiveWaveSizer(spec({ waves: { maxSize: 200 } }));
    const trace = new Trace(sizer);
    trace.run(8, 40);
    const before = sizer.state.perSecond;
    const decisions = Array.from({ length: ticks }, () => trace.step(p90, {}, others));
    return { sizer, trace, before, decisions };
  }

  it("yields as soon as the smoothed p90 passes the ceiling while others create pods: the rate halves at once, then falls to YIELD_MIN_WRITE_RATE_PER_S with minSize waves paced over longer", () => {
    const { sizer, trace, before, decisions } = besideOthers(1, OTHERS_P90, WRITER);
    expect(before).toBe(200);
    // The first tick at 700 ms smooths to 370 ms from the 40 ms baseline: under the ceiling.
    expect(sizer.state.yielding).toBe(false);
    const yielding = trace.step(OTHERS_P90, {}, WRITER);
    expect(sizer.state.yielding).toBe(true);
    expect(sizer.state.perSecond).toBe(GRADIENT_MIN * decisions[0]!.rateLimit.perSecond);
    expect(yielding.message).toContain("others create pods at 50/s");
    expect(yielding.message).toContain("yielding to them");
    expect(yielding.limitedBy).toBe("Yielding");
    for (let i = 0; i < 40; i++) trace.step(OTHERS_P90, {}, WRITER);
    expect(sizer.state.perSecond).toBe(YIELD_MIN_WRITE_RATE_PER_S);
    expect(sizer.state.baselineMs).toBe(40);
    const wave = trace.step(OTHERS_P90, {}, WRITER);
    expect(wave).toMatchObject({ size: 10, limitedBy: "Yielding" });
    expect(wave.rateLimit.perSecond).toBe(YIELD_MIN_WRITE_RATE_PER_S);
    expect(wave.message).toContain("per 5.0 s wave");
    expect(wave.message).toContain("yielding: others create pods at 50/s");
  });

  it("yields on a tick above the latency target too", () => {
    const { sizer } = besideOthers(2, 2 * QUEUED_P90, WRITER);
    expect(sizer.state.yielding).toBe(true);
  });

  it("does not yield on a queue past the ceiling with no one else creating pods: the load is ours (or our pods'), and the √R term keeps the rate at or above minSize per period", () => {
    for (const others of [{}, { othersCreating: 0 }, { othersCreating: OTHERS_CREATING_MIN_PER_S - 0.2 }]) {
      const { sizer, decisions } = besideOthers(100, OTHERS_P90, others);
      expect(sizer.state.yielding).toBe(false);
      expect(decisions.some((d) => d.message.includes("yielding"))).toBe(false);
      expect(sizer.state.perSecond).toBeGreaterThanOrEqual(10);
    }
  });

  it("does not yield to a writer under OTHERS_CREATING_MIN_SHARE of its own rate", () => {
    const { sizer, trace } = besideOthers(0, OTHERS_P90, {});
    // Past the ceiling from the second tick on, while the rate stays far above OTHERS_CREATING_MIN_PER_S / share.
    for (let i = 0; i < 5; i++) {
      trace.step(OTHERS_P90, {}, { othersCreating: 0.9 * OTHERS_CREATING_MIN_SHARE * sizer.state.perSecond });
      expect(sizer.state.yielding).toBe(false);
    }
    expect(OTHERS_CREATING_MIN_SHARE * sizer.state.perSecond).toBeGreaterThan(OTHERS_CREATING_MIN_PER_S);
    // With the writer at the share, it yields.
    trace.step(OTHERS_P90, {}, { othersCreating: OTHERS_CREATING_MIN_SHARE * sizer.state.perSecond });
    expect(sizer.state.yielding).toBe(true);
  });

  it("does not yield while latency stays under the ceiling, however many pods others create", () => {
    const { sizer, decisions } = besideOthers(60, 0.9 * QUEUEING_CEILING_SHARE * 1_000, { othersCreating: 500 });
    expect(sizer.state.yielding).toBe(false);
    expect(decisions.some((d) => d.message.includes("yielding"))).toBe(false);
  });

  it("grows only additively while yielding, without probes, and stops yielding once back at RECOVERY_TARGET_FRACTION of the episode's rate", () => {
    const { sizer, trace, before } = besideOthers(35, OTHERS_P90, WRITER);
    expect(sizer.state.yielding).toBe(true);
    // The other writer still runs: p90 is under the gradient's tolerance (40 ms + 0.25 s) but well
    // above a drained queue's.
    const besideWriter = 250;
    expect(besideWriter).toBeGreaterThan(YIELD_DRAINED_SHARE * 1_000);
    let rate = sizer.state.perSecond;
    let ticks = 0;
    let slow = 0;
    while (sizer.state.yielding && ticks < 500) {
      const d = trace.step(besideWriter, {}, WRITER);
      ticks++;
      if (sizer.state.yielding) expect(isProbe(d)).toBe(false);
      const next = sizer.state.perSecond;
      expect(next).toBeLessThanOrEqual(rate + GRADIENT_SMOOTHING * Math.sqrt(rate) + 1e-9);
      if (d.message.includes(`yielding to others creating pods at 50/s until back at ${Math.round(RECOVERY_TARGET_FRACTION * before)}/s, growing slowly`)) {
        slow++;
        expect(d.limitedBy).toBe("Yielding");
      }
      expect(d.message).not.toContain("recovering");
      rate = next;
    }
    expect(slow).toBeGreaterThan(100);
    expect(sizer.state.yielding).toBe(false);
    expect(rate).toBeGreaterThanOrEqual(RECOVERY_TARGET_FRACTION * before);
    // Additive growth from the floor, (√180 − √2) / 0.1 ≈ 120 ticks: slow, as meant.
    expect(ticks).toBeGreaterThan(100);
  });

  it("stops yielding once the others stop creating pods, and recovers quickly though the queue has not drained yet", () => {
    const { sizer, trace, before } = besideOthers(35, OTHERS_P90, WRITER);
    // Beside the writer the queue has come down within the gradient's tolerance, not drained.
    for (let i = 0; i < 10; i++) trace.step(250, {}, WRITER);
    expect(sizer.state.yielding).toBe(true);
    const stopped = trace.step(250, {}, { othersCreating: OTHERS_CREATING_MIN_PER_S - 1 });
    expect(sizer.state.yielding).toBe(false);
    expect(stopped.message).toContain("the others stopped creating pods, recovering");
    trace.run(15, 250);
    // Additive growth alone (√R up 0.1 a tick) would have reached about 9/s from the 2/s floor.
    expect(sizer.state.perSecond).toBeGreaterThan(0.8 * before);
  });

  it("stops yielding once the smoothed p90 is below YIELD_DRAINED_SHARE of the target, and recovers quickly from there", () => {
    const { sizer, trace, before } = besideOthers(35, OTHERS_P90, WRITER);
    expect(sizer.state.yielding).toBe(true);
    const drainedP90 = 0.5 * YIELD_DRAINED_SHARE * 1_000;
    // Each tick halves the smoothed p90's gap to it (SHORT_LATENCY_ALPHA): 700 → 388 → 231 → 153 → 114 ms.
    const ticks = Array.from({ length: 4 }, () => ({ wave: trace.step(drainedP90, {}, WRITER), yielding: sizer.state.yielding }));
    expect(ticks.map((t) => t.yielding)).toEqual([true, true, true, false]);
    expect(ticks.at(-1)?.wave.message).toContain("the queue it yielded to has drained, recovering");
    // Probes resume on the next tick (the last was over 30 s ago).
    expect(trace.step(drainedP90, {}, WRITER).message).toContain("re-measuring");
    trace.run(10, drainedP90);
    expect(sizer.state.perSecond).toBeGreaterThan(0.8 * before);
  });
});

describe("AdaptiveWaveSizer: API server loss", () => {
  it("429 → halve the rate and pause at least the largest Retry-After", () => {
    const trace = new Trace(new AdaptiveWaveSizer(spec()));
    trace.run(4, 40); // 400/s
    const t = trace.now;
    const throttled = trace.step(40, { throttled: 25, maxRetryAfterMs: 4_000, retryAfterUntil: t + 4_000 });
    expect(throttled).toMatchObject({ size: 0, limitedBy: "ApiServer", waitMs: 4_000 });
    expect(throttled.message).toContain("API server rejected 25×429: rate halved from 400/s");
    expect((trace.sizer as AdaptiveWaveSizer).state.perSecond).toBe(400 * LOSS_DECREASE_FACTOR);
    // Still waiting a second later, even with nothing new to report.
    expect(trace.sizer.next({ now: t + 3_000, remaining: 1_000 })).toMatchObject({ size: 0, limitedBy: "ApiServer", waitMs: 1_000 });
    expect(trace.sizer.next({ now: t + 4_000, remaining: 1_000 })).toMatchObject({ size: 200 });
  });

  it("honours the shared gate's Retry-After, and pauses at least LOSS_MIN_PAUSE_MS on a timeout", () => {
    const gated = new AdaptiveWaveSizer(spec());
    expect(gated.next({ now: 0, remaining: 100, retryAfterUntil: 7_000 })).toMatchObject({ size: 0, limitedBy: "ApiServer", waitMs: 7_000 });
    const trace = new Trace(new AdaptiveWaveSizer(spec()));
    trace.run(3, 40);
    expect(trace.step(40, { timeouts: 1 })).toMatchObject({ size: 0, limitedBy: "ApiServer", waitMs: 1_000 });
  });

  it("halves once per episode: late failures of writes sent before the pause do not halve again", () => {
    const trace = new Trace(new AdaptiveWaveSizer(spec()));
    trace.run(4, 40);
    const t = trace.now;
    trace.step(40, { throttled: 10, retryAfterUntil: t + 1_000 });
    const second = trace.sizer.next({ now: t + 1_000, remaining: 1_000, writes: writes(t + 1_000, 40, 40, { throttled: 3 }) });
    expect(second.message).toContain("already halved for this episode");
    expect((trace.sizer as AdaptiveWaveSizer).state.perSecond).toBe(200);
  });

  it("recovery → growth back towards the rate of the loss, then probing", () => {
    const trace = new Trace(new AdaptiveWaveSizer(spec()));
    trace.run(5, 40); // 800/s
    const t = trace.now;
    trace.step(40, { serverErrors: 4 });
    trace.now = t + 1_000;
    trace.last = trace.sizer.next({ now: trace.now, remaining: 1_000_000 }); // after the pause: 400
    trace.now += 1_000;
    const sizes = trace.run(12, 40).map((d) => d.size);
    for (let i = 1; i < sizes.length; i++) expect(sizes[i]).toBeGreaterThan(sizes[i - 1] ?? Infinity);
    expect(sizes.at(-1)).toBeGreaterThan(0.8 * 800);
    expect(trace.last?.message).toMatch(/recovering|probing/);
  });
});

describe("AdaptiveWaveSizer: guards", () => {
  function fresh(fields: Record<string, unknown> = {}): AdaptiveWaveSizer {
    return new AdaptiveWaveSizer(spec({ waves: { initialSize: 2000 }, ...fields }));
  }

  it("pending above the cap → 0 new pods, limitedBy Scheduler", () => {
    expect(fresh().next({ now: 0, remaining: 5_000, pending: 520 })).toMatchObject({
      size: 0,
      limitedBy: "Scheduler",
      message: "520 pods pending for the scheduler (max 500, scope Rollout): waiting for it to catch up",
    });
    expect(fresh().next({ now: 0, remaining: 5_000, pending: 480 })).toMatchObject({
      size: 20,
      limitedBy: "Scheduler",
      message: "480 pods pending for the scheduler (max 500, scope Rollout): room for 20 more",
    });
  });

  it("unschedulable pods of the rollout stop new waves even below maxPending, saying why", () => {
    const message = "0/100 nodes are available: 100 node(s) didn't match Pod's node affinity/selector.";
    expect(fresh().next({ now: 0, remaining: 5_000, pending: 12, unschedulable: { count: 12, message } })).toMatchObject({
      size: 0,
      limitedBy: "Scheduler",
      message: `12 pods unschedulable: ${message}`,
    });
    expect(fresh().next({ now: 0, remaining: 5_000, pending: 12, unschedulable: { count: 0 } })).toMatchObject({ size: 488, limitedBy: "Scheduler" });
  });

  it("pods waiting for their nodes to start them cap the wave at maxStarting, limitedBy Kubelet", () => {
    expect(fresh().next({ now: 0, remaining: 5_000, starting: 500 })).toMatchObject({
      size: 0,
      limitedBy: "Kubelet",
      message: expect.stringMatching(/^500 pods bound to nodes but not yet Running \(spec.guards.kubelet.maxStarting 500\): waiting for their nodes/),
    });
    expect(fresh().next({ now: 0, remaining: 5_000, starting: 620 }).size).toBe(0);
    expect(fresh().next({ now: 0, remaining: 5_000, starting: 380 })).toMatchObject({
      size: 120,
      limitedBy: "Kubelet",
      message: "380 pods bound to nodes but not yet Running (spec.guards.kubelet.maxStarting 500): room for 120 more",
    });
    expect(fresh({ guards: { kubelet: { maxStarting: 5_000 } } }).next({ now: 0, remaining: 5_000, starting: 380 })).toMatchObject({ size: 2_000, limitedBy: "Rate" });
    const fixed = new FixedWaveSizer(spec({ waves: { strategy: "Fixed", initialSize: 500 } }));
    expect(fixed.next({ now: 0, remaining: 5_000, starting: 490 })).toMatchObject({ size: 10, limitedBy: "Kubelet" });
  });

  it("the scheduler's backlog wins a tie with the kubelet's: pods reach the scheduler first", () => {
    expect(fresh().next({ now: 0, remaining: 5_000, pending: 400, starting: 400 })).toMatchObject({ size: 100, limitedBy: "Scheduler" });
    expect(fresh().next({ now: 0, remaining: 5_000, pending: 450, starting: 400 })).toMatchObject({ size: 50, limitedBy: "Scheduler" });
    expect(fresh().next({ now: 0, remaining: 5_000, pending: 350, starting: 400 })).toMatchObject({ size: 100, limitedBy: "Kubelet" });
  });

  it("IP headroom → exactly free minus the reserve", () => {
    const ipam = { provider: "Calico" as const, free: 1_300, capacity: 6_000 };
    expect(fresh().next({ now: 0, remaining: 5_000, ipam })).toMatchObject({
      size: 1_000,
      limitedBy: "IPAM",
      message: "1300 pod IPs free (Calico), 300 kept in reserve (spec.guards.ipam.reserve 5%): room for 1000",
    });
    expect(fresh({ guards: { ipam: { reserve: 250 } } }).next({ now: 0, remaining: 5_000, ipam }).size).toBe(1_050);
    expect(fresh().next({ now: 0, remaining: 5_000, ipam: { provider: "NodePodCIDR", free: 200, capacity: 6_000 } })).toMatchObject({ size: 0, limitedBy: "IPAM" });
    expect(fresh({ guards: { ipam: { provider: "None" } } }).next({ now: 0, remaining: 5_000, ipam }).limitedBy).toBe("Rate");
    expect(fresh().next({ now: 0, remaining: 5_000, ipam: { provider: "Cilium", free: undefined } }).limitedBy).toBe("Rate");
  });

  it("IP overflow → no pod while a node with pods beyond its addresses still takes pods", () => {
    const message = "422 pods stand beyond their node's podCIDR addresses on 6 nodes (...)";
    const ipam = { provider: "NodePodCIDR" as const, free: 200, capacity: 260, overflow: { pods: 422, openNodes: 4, message } };
    expect(fresh().next({ now: 0, remaining: 5_000, ipam })).toMatchObject({
      size: 0,
      limitedBy: "IPAM",
      message: `${message}; no pod is created while 4 of those nodes have free pod slots`,
    });
    // Those nodes full: the pool's count (overflow already taken off `free`) bounds the wave.
    const full = { ...ipam, overflow: { ...ipam.overflow, openNodes: 0 } };
    expect(fresh().next({ now: 0, remaining: 5_000, ipam: full })).toMatchObject({ size: 200 - 13, limitedBy: "IPAM" });
    expect(fresh({ guards: { ipam: { provider: "None" } } }).next({ now: 0, remaining: 5_000, ipam }).limitedBy).toBe("Rate");
  });

  it("node slots and the cluster budget cap too", () => {
    expect(fresh().next({ now: 0, remaining: 5_000, nodeSlots: 640 })).toMatchObject({ size: 640, limitedBy: "NodeCapacity" });
    expect(fresh().next({ now: 0, remaining: 5_000, nodeSlots: 0 }).message).toContain("no free pod slots");
    expect(fresh().next({ now: 0, remaining: 5_000, budget: 75 })).toMatchObject({ size: 75, limitedBy: "Budget" });
  });

  it("the smallest term wins, and a guard wins a tie", () => {
    const decision = fresh().next({ now: 0, remaining: 300, pending: 200, nodeSlots: 300, ipam: { provider: "Calico", free: 400, capacity: 0 } });
    expect(decision).toMatchObject({ size: 300, limitedBy: "Scheduler" });
    // What is left is not a term here (the planner bounds the last wave by what fits): the rate's tie stands.
    expect(fresh().next({ now: 0, remaining: 2_000 })).toMatchObject({ size: 2_000, limitedBy: "Rate" });
  });

  it("what is left does not bound the wave (the planner does); nothing left is None", () => {
    const trace = new Trace(new AdaptiveWaveSizer(spec()));
    trace.run(5, 40);
    expect(trace.step(40, {}, { remaining: 37 })).toMatchObject({ size: 1_600, limitedBy: "Rate" });
    expect(trace.step(40, {}, { remaining: 0 })).toMatchObject({ size: 0, limitedBy: "None" });
  });

  it("minSize floors the rate term only: guards may still go below it", () => {
    const sizer = new AdaptiveWaveSizer(spec({ waves: { initialSize: 10, minSize: 10 } }));
    const trace = new Trace(sizer);
    trace.step();
    for (let i = 0; i < 6; i++) trace.step(40, { throttled: 1 }, { now: trace.now + 10_000 });
    expect(sizer.state.perSecond).toBe(10);
    expect(sizer.next({ now: trace.now + 60_000, remaining: 100 })).toMatchObject({ size: 10, limitedBy: "Rate" });
    expect(sizer.next({ now: trace.now + 61_000, remaining: 100, pending: 497 })).toMatchObject({ size: 3, limitedBy: "Scheduler" });
  });

  it("does not grow the rate while a guard holds the waves back (app-limited)", () => {
    const sizer = new AdaptiveWaveSizer(spec());
    const trace = new Trace(sizer);
    trace.run(3, 40);
    trace.step(40, {}, { pending: 495 }); // the wave before used its rate in full, so this tick still grows
    const before = sizer.state.perSecond;
    for (let i = 0; i < 10; i++) expect(trace.step(40, {}, { pending: 495 }).size).toBe(5);
    expect(sizer.state.perSecond).toBe(before);
    expect(trace.step(40).size).toBe(before); // the guard lifts: back at the rate it had, not inflated
  });
});

describe("AdaptiveWaveSizer: peek between waves", () => {
  it("reads guards and Retry-After afresh but learns nothing: the next decision sees the wave as sent", () => {
    const sizer = new AdaptiveWaveSizer(spec());
    const trace = new Trace(sizer);
    trace.run(3, 40); // 200/s
    const before = sizer.state.perSecond;
    for (let i = 0; i < 20; i++) expect(sizer.peek({ now: trace.now - 500, remaining: 1_000_000 })).toMatchObject({ size: 200, limitedBy: "Rate" });
    expect(sizer.peek({ now: trace.now - 500, remaining: 1_000_000, pending: 450 })).toMatchObject({ size: 50, limitedBy: "Scheduler" });
    expect(sizer.peek({ now: trace.now - 500, remaining: 1_000_000, retryAfterUntil: trace.now + 2_000 })).toMatchObject({ size: 0, limitedBy: "ApiServer" });
    expect(sizer.state.perSecond).toBe(before);
    // The wave before the peeks was sent in full, so slow start still doubles once the pause is over;
    // the pause the server asked for earns the late wave no credit.
    trace.now += 2_000;
    expect(trace.step(40).size).toBe(400);
  });
});

describe("AdaptiveWaveSizer: baseline re-probe", () => {
  it("sends one half-rate wave every BASELINE_PROBE_INTERVAL_MS once out of slow start", () => {
    const sizer = new AdaptiveWaveSizer(spec({ waves: { maxSize: 100_000 } }));
    const trace = new Trace(sizer);
    trace.run(6, 40);
    trace.step(40, { throttled: 1 }); // leave slow start
    const decisions = trace.run(45, 40);
    const probes = decisions.filter((d) => d.message.includes("re-measuring"));
    expect(probes.length).toBe(1);
    const i = decisions.indexOf(probes[0]!);
    const ratio = (probes[0]?.rateLimit.perSecond ?? 0) / (decisions[i - 1]?.rateLimit.perSecond ?? 1);
    expect(ratio).toBeGreaterThanOrEqual(PROBE_RATE_FACTOR);
    expect(ratio).toBeLessThan(PROBE_RATE_FACTOR * 1.05); // R itself grew a little on that tick
    expect(decisions[i + 1]?.message).toContain("baseline re-measured");
    expect(i * 1_000).toBeLessThanOrEqual(BASELINE_PROBE_INTERVAL_MS + 2_000);
  });

  it("raises the baseline when latency stays high at half rate (the cluster got slower, not us)", () => {
    const sizer = new AdaptiveWaveSizer(spec());
    const trace = new Trace(sizer);
    trace.run(8, 40);
    const slower = 480; // 12× latency, ours or not; above the allowance, below the ceiling
    expect(slower).toBeGreaterThan(40 + QUEUEING_ALLOWANCE_SHARE * 1_000);
    expect(slower).toBeLessThan(QUEUEING_CEILING_SHARE * 1_000);
    const rates = ratesOver(trace, sizer, 100, slower);
    expect(sizer.state.baselineMs).toBeGreaterThan(slower / GRADIENT_TOLERANCE); // the probes followed it up
    expect(Math.min(...rates)).toBeLessThan(0.75 * rates[0]!); // eased off at first: it might have been us
    expect(rates.at(-1)).toBe(rates[0]); // then grew back at the new normal, to maxSize here
  });

  it("counts p90 above QUEUEING_CEILING_SHARE of the target as queueing however high the baseline climbs (a slower cluster is no licence to queue past it)", () => {
    const sizer = new AdaptiveWaveSizer(spec());
    const trace = new Trace(sizer);
    trace.run(8, 40);
    trace.run(100, 480); // the probes follow latency up: the cluster got slower, not us
    const baseline = sizer.state.baselineMs ?? 0;
    expect(baseline).toBeGreaterThan((QUEUEING_CEILING_SHARE * 1_000) / GRADIENT_TOLERANCE);
    const loaded = 520; // past the ceiling, under the target, and within 1.25× that baseline: not a yield
    expect(loaded).toBeLessThan(GRADIENT_TOLERANCE * baseline);
    const rates = ratesOver(trace, sizer, 40, loaded);
    for (let i = 1; i < rates.length; i++) expect(rates[i]).toBeLessThanOrEqual(rates[i - 1]!);
    expect(rates.at(-1)).toBeLessThan(rates[0]!);
    expect(sizer.state.yielding).toBe(false);
  });
});

describe("AdaptiveWaveSizer: noise", () => {
  // Swing bound we defend: outside loss and the latency ceilings, a wave is cut by at most
  // GRADIENT_SMOOTHING × (1 − GRADIENT_MIN) = 10 % of the last, and grows by 0.2·√R (≤ 3 % above
  // 50/s) or ×2 in slow start. Past the queueing ceiling the whole step is taken, at most to
  // GRADIENT_MIN of the last, and recovery from such a cut closes RECOVERY_GAIN of the gap to
  // RECOVERY_TARGET_FRACTION of the episode's rate a wave. Probe waves (one in 30, deliberately half
  // size) are left out.
  interface Step {
    step: number;
    overCeiling: boolean;
    recovering: boolean;
  }
  const MAX_CUT = GRADIENT_SMOOTHING * (1 - GRADIENT_MIN);
  const CEILING_MS = QUEUEING_CEILING_SHARE * 1_000; // the default 1 s latencyTarget

  const MAX_RECOVERY_STEP = 1 + RECOVERY_GAIN * (RECOVERY_TARGET_FRACTION / GRADIENT_MIN - 1);

  /** Every step within the smoothed gradient's bounds, none past the ceiling. */
  function expectSmoothedSteps(steps: Step[]): void {
    for (const { step, overCeiling } of steps) {
      expect(overCeiling).toBe(false);
      expect(step).toBeGreaterThanOrEqual(1 - MAX_CUT - 0.01);
      expect(step).toBeLessThanOrEqual(1.05);
    }
  }

  function expectBoundedSteps(steps: Step[]): void {
    for (const { step, overCeiling, recovering } of steps) {
      expect(step).toBeGreaterThanOrEqual((overCeiling ? GRADIENT_MIN : 1 - MAX_CUT) - 0.01);
      expect(step).toBeLessThanOrEqual(recovering ? MAX_RECOVERY_STEP : 1.05);
    }
  }

  function noisyRun(seed: number, server: (rate: number) => number) {
    const random = mulberry32(seed);
    const sizer = new AdaptiveWaveSizer(spec({ waves: { maxSize: 100_000 } }));
    let last: WaveDecision | undefined;
    const rates: number[] = [];
    const steps: Step[] = [];
    for (let i = 0; i < 300; i++) {
      const now = i * 1_000;
      const p90 = last ? server(last.size) * (0.5 + random()) : undefined; // ±50 %
      const decision = sizer.next({ now, remaining: 1_000_000, ...(last ? { writes: writes(now, last.size, p90) } : {}) });
      const probing = sizer.state.probing;
      if (i >= 30 && !probing && last && !last.message.includes("re-measuring")) {
        steps.push({
          step: decision.size / last.size,
          overCeiling: (sizer.state.shortMs ?? 0) > CEILING_MS,
          recovering: decision.message.includes("recovering"),
        });
      }
      if (i >= 30) rates.push(sizer.state.perSecond);
      last = decision;
    }
    return { rates, steps };
  }

  it("steady 50 ms ±50 %: the ramp is not lost and waves do not swing", () => {
    for (const seed of [1, 2, 3]) {
      const { rates, steps } = noisyRun(seed, () => 50);
      expect(Math.min(...rates), `seed ${seed}`).toBeGreaterThan(10_000); // noise alone must not stop the ramp
      expectSmoothedSteps(steps);
    }
  });

  /** pastCeiling: whether the noise may carry the smoothed p90 past the queueing ceiling. */
  function expectSettles(server: (rate: number) => number, near: number, pastCeiling: boolean): void {
    for (const seed of [1, 2, 3, 4, 5, 7]) {
      const { rates, steps } = noisyRun(seed, server);
      const mean = rates.reduce((a, b) => a + b, 0) / rates.length;
      expect(mean, `seed ${seed}`).toBeGreaterThan(0.75 * near);
      expect(mean, `seed ${seed}`).toBeLessThan(1.5 * near);
      expect(Math.max(...rates) / Math.min(...rates), `seed ${seed}`).toBeLessThan(2.5);
      if (pastCeiling) expectBoundedSteps(steps);
      else expectSmoothedSteps(steps);
    }
  }

  it("±50 % noise on a slow server (380 ms unloaded, knee at 400/s): the ceiling bounds the queueing, so it settles where p90 reaches it", () => {
    // Latency is 380 ms up to 400 writes/s and grows with the square of the overload beyond it; the
    // baseline plus the allowance is past the ceiling, so the ceiling is what the gradient holds.
    const unloaded = 380;
    const ceiling = QUEUEING_CEILING_SHARE * 1_000; // the default 1 s latencyTarget
    expect(unloaded + QUEUEING_ALLOWANCE_SHARE * 1_000).toBeGreaterThan(ceiling);
    const server = (rate: number) => unloaded * Math.max(1, (rate / 400) ** 2);
    expectSettles(server, 400 * Math.sqrt(ceiling / unloaded), true);
  });

  it("±50 % noise on a fast server (50 ms, knee at 400/s): queueing up to the allowance above the baseline is tolerated, so it settles where p90 reaches it", () => {
    const unloaded = 50;
    const tolerated = unloaded + QUEUEING_ALLOWANCE_SHARE * 1_000; // the default 1 s latencyTarget
    expect(tolerated).toBeLessThan(QUEUEING_CEILING_SHARE * 1_000);
    const server = (rate: number) => unloaded * Math.max(1, (rate / 400) ** 2);
    expectSettles(server, 400 * Math.sqrt(tolerated / unloaded), false);
  });
});

describe("AdaptiveWaveSizer: spec changes", () => {
  it("keeps what it learned, clamped to the new bounds", () => {
    const sizer = new AdaptiveWaveSizer(spec());
    const trace = new Trace(sizer);
    trace.run(6, 40); // 1600/s
    sizer.updateSpec(spec({ waves: { maxSize: 500 } }));
    expect(trace.step(40)).toMatchObject({ size: 500 });
  });
});
