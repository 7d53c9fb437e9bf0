// Adaptive waves: the write rate R (writes/s) is the control variable, and a wave is R × the wave
// period (plus what a late cycle left unsent). Each decision applies the first rule that matches:
//   1. loss (429, 5xx, timeout, dropped connection): halve once per episode and pause (AIMD);
//   2. the smoothed p90 past the queueing ceiling while others launch pods beside us: yield to them;
//   3. p90 above spec.guards.apiServer.latencyTarget, a hard ceiling: cut by target/p90 or more;
//   4. the tick after a baseline probe only re-anchors the baseline;
//   5. the latency gradient (Gradient2, with LEDBAT's allowance above the baseline): ease off or cut;
//   6. near the target, p99 over it, or a wave a guard held back (app-limited): hold;
//   7. grow: slow start ×2, then R + 0.2·√R, with quick recovery towards the last episode's rate.
// Why each rule is there and how they bound one another: docs/architecture.md, "The wave sizer".

import { durationToMs } from "../../api/duration.ts";
import { lossCount } from "../write-latency.ts";
import {
  APP_LIMITED_FRACTION,
  BASELINE_PROBE_INTERVAL_MS,
  BASELINE_WARMUP_SAMPLES,
  CONCURRENCY_HEADROOM,
  CYCLE_OVERHEAD_ALPHA,
  CYCLE_OVERHEAD_DECAY,
  CYCLE_PERIOD_SLACK_MS,
  FAST_CONVERGENCE_FACTOR,
  GRADIENT_MIN,
  GRADIENT_SMOOTHING,
  GRADIENT_TOLERANCE,
  INITIAL_LATENCY_ESTIMATE_MS,
  LATENCY_CEILING_MIN_FACTOR,
  LATENCY_TARGET_HEADROOM,
  LOSS_DECREASE_FACTOR,
  LOSS_MIN_PAUSE_MS,
  MAX_CONCURRENCY,
  MAX_CYCLE_OVERHEAD_SHARE,
  MAX_GROWTH_PER_TICK,
  MAX_LATE_WAVE_CREDIT_SHARE,
  MIN_CONCURRENCY,
  OTHERS_CREATING_MIN_PER_S,
  OTHERS_CREATING_MIN_SHARE,
  OVER_CEILING_GRADIENT_WEIGHT,
  PROBE_AFTER_CONGESTED_TICKS,
  PROBE_AFTER_OVER_CEILING_TICKS,
  PROBE_BASELINE_WEIGHT,
  PROBE_MIN_SPACING_MS,
  PROBE_RATE_FACTOR,
  QUEUEING_ALLOWANCE_SHARE,
  QUEUEING_CEILING_SHARE,
  RECOVERY_GAIN,
  RECOVERY_TARGET_FRACTION,
  SHORT_LATENCY_ALPHA,
  SLOW_START_EXIT_TICKS,
  SLOW_START_FACTOR,
  WARMUP_SAMPLE_CAP,
  YIELD_DRAINED_SHARE,
  YIELD_MIN_WRITE_RATE_PER_S,
} from "./constants.ts";
import { type Candidate, type RateLimit, type SizerSpec, type WaveDecision, type WaveSignals, type WaveSizer, clamp, waveIntervalMs, wavePeriodMs } from "./contract.ts";
import { capByGuards } from "./guards.ts";
import { describeLosses, formatMs, formatRate } from "./messages.ts";
import { stopDecision } from "./stop.ts";

/** Time a late wave is credited for, and at what rate. */
interface Credit {
  ms: number;
  perSecond: number;
}
const NO_CREDIT: Credit = { ms: 0, perSecond: 0 };

/** What the last control step did to the rate, and why. */
interface RateAction {
  limitedBy: "Rate" | "ApiServer" | "Latency" | "Yielding";
  note: string;
  /**
   * The rate rule acted (growth, or a hold at the rate), not a cut or hold for loss or latency: only
   * then did a long cycle leave writes the rate allowed unsent, rather than show the answers slowing.
   */
  byRate: boolean;
}

export class AdaptiveWaveSizer implements WaveSizer {
  #spec: SizerSpec;
  #periodMs: number;
  /** At least the period; longer when minInterval exceeds MAX_WAVE_PERIOD_MS. */
  #intervalMs: number;
  #latencyTargetMs: number;
  #rate: number;
  #slowStart = true;
  #baselineMs: number | undefined;
  #baselineSamples = 0;
  #shortMs: number | undefined;
  #congestedTicks = 0;
  /**
   * The rate the last congestion episode began at, whether a loss or a latency episode began it
   * (less after fast convergence): recovery climbs back towards it.
   */
  #episodeStartRate: number | undefined;
  /** Inside a latency episode (from the first congested tick to the next growth): its start rate is kept. */
  #latencyEpisode = false;
  #pauseUntil = 0;
  #lossEpochEnd = -Infinity;
  /**
   * The previous decision: the wave we asked for, what the rate alone would have allowed, when,
   * and how long its writes take to send at the pace it was given.
   */
  #lastWave = { size: 0, rateSize: 0, at: 0, sendMs: 0 };
  /** The part of a wave cycle that is not sending: slowest answers, status patch, next reconcile. */
  #overheadMs = 0;
  #lastProbeAt: number | undefined;
  #probe: "idle" | "sending" = "idle";
  #overCeilingTicks = 0;
  /** Set while yielding (YIELD_MIN_WRITE_RATE_PER_S): the rate that ends it. */
  #yield: { untilRate: number } | undefined;
  /** Why a yield ended this tick, if one did: its wave says so, and a probe waits a tick. */
  #yieldEndedNow: string | undefined;
  #action: RateAction = { limitedBy: "Rate", note: "starting at spec.waves.initialSize", byRate: true };

  constructor(spec: SizerSpec) {
    this.#spec = spec;
    this.#periodMs = wavePeriodMs(spec);
    this.#intervalMs = waveIntervalMs(spec);
    this.#latencyTargetMs = durationToMs(spec.guards.apiServer.latencyTarget);
    this.#rate = clamp(spec.waves.initialSize, spec.waves.minSize, spec.waves.maxSize) / (this.#periodMs / 1_000);
  }

  updateSpec(spec: SizerSpec): void {
    this.#spec = spec;
    this.#periodMs = wavePeriodMs(spec);
    this.#intervalMs = waveIntervalMs(spec);
    this.#latencyTargetMs = durationToMs(spec.guards.apiServer.latencyTarget);
    this.#rate = clamp(this.#rate, this.#minRate(), this.#maxRate());
    // Learned under the old period; a shorter one must not leave it at or past the whole period.
    this.#overheadMs = Math.min(this.#overheadMs, MAX_CYCLE_OVERHEAD_SHARE * this.#periodMs);
  }

  /** What the controller has learned, for logs and tests. */
  get state() {
    return {
      perSecond: this.#rate,
      baselineMs: this.#baselineMs,
      shortMs: this.#shortMs,
      slowStart: this.#slowStart,
      pauseUntil: this.#pauseUntil,
      episodeStartRate: this.#episodeStartRate,
      probing: this.#probe === "sending",
      overheadMs: this.#overheadMs,
      yielding: this.#yield !== undefined,
    };
  }

  next(signals: WaveSignals): WaveDecision {
    const { now } = signals;
    const lastWave = this.#lastWave;
    const rateBefore = this.#rate;
    this.#measureCycle(now);
    this.#control(signals);
    // The late time is credited at the rate that applied then, or the new one if lower.
    const late: Credit = { ms: this.#lateMs(lastWave, now), perSecond: Math.min(rateBefore, this.#rate) };
    this.#lastProbeAt ??= now;
    this.#lastWave = { size: 0, rateSize: 0, at: now, sendMs: 0 };
    const stop = this.#stop(signals);
    if (stop) return stop;
    const sinceProbe = now - this.#lastProbeAt;
    const early = this.#congestedTicks >= PROBE_AFTER_CONGESTED_TICKS || this.#overCeilingTicks >= PROBE_AFTER_OVER_CEILING_TICKS;
    const probe =
      !this.#slowStart &&
      !this.#yield &&
      this.#yieldEndedNow === undefined &&
      this.#baselineSamples >= BASELINE_WARMUP_SAMPLES &&
      (sinceProbe >= BASELINE_PROBE_INTERVAL_MS || (sinceProbe >= PROBE_MIN_SPACING_MS && early));
    if (probe) this.#probe = "sending";
    const { rateSize, ...decision } = this.#decide(signals, late);
    const pace = decision.rateLimit.sendPerSecond ?? decision.rateLimit.perSecond;
    this.#lastWave = { size: decision.size, rateSize, at: now, sendMs: pace > 0 ? (decision.size / pace) * 1_000 : 0 };
    return decision;
  }

  peek(signals: Omit<WaveSignals, "writes">): WaveDecision {
    this.#pauseUntil = Math.max(this.#pauseUntil, signals.retryAfterUntil ?? 0);
    const stop = this.#stop(signals);
    if (stop) return stop;
    const { rateSize: _, ...decision } = this.#decide(signals, NO_CREDIT);
    return decision;
  }

  /** Nothing left, or a Retry-After pause; the pause says what rate follows it. */
  #stop(signals: Omit<WaveSignals, "writes">): WaveDecision | undefined {
    return stopDecision(signals.now, signals.remaining, this.#pauseUntil, this.#rateLimit(1), `; then ${formatRate(this.#rate)} (${this.#action.note})`);
  }

  #minRate(): number {
    const floor = this.#spec.waves.minSize / (this.#periodMs / 1_000);
    return this.#yield ? Math.min(floor, YIELD_MIN_WRITE_RATE_PER_S) : floor;
  }

  #maxRate(): number {
    return this.#spec.waves.maxSize / (this.#periodMs / 1_000);
  }

  #rateLimit(factor: number): RateLimit {
    const perSecond = this.#rate * factor;
    const sendPerSecond = perSecond * (this.#periodMs / (this.#periodMs - this.#overheadMs));
    const latency = this.#baselineMs ?? INITIAL_LATENCY_ESTIMATE_MS;
    // Little's law at the pace the writes actually go out.
    const concurrency = clamp(Math.ceil(((sendPerSecond * latency) / 1_000) * CONCURRENCY_HEADROOM), MIN_CONCURRENCY, MAX_CONCURRENCY);
    return { concurrency, perSecond, sendPerSecond };
  }

  /** Learns the cycle overhead from when the previous wave was decided and how long it took to send. */
  #measureCycle(now: number): void {
    const last = this.#lastWave;
    if (last.size === 0) return;
    const cycle = now - last.at;
    if (cycle <= this.#intervalMs + CYCLE_PERIOD_SLACK_MS) {
      this.#overheadMs *= CYCLE_OVERHEAD_DECAY;
      return;
    }
    // Past MAX_WAVE_PERIOD_MS the interval beyond the period is waiting by design, not overhead.
    const sample = clamp(cycle - last.sendMs - (this.#intervalMs - this.#periodMs), 0, MAX_CYCLE_OVERHEAD_SHARE * this.#periodMs);
    this.#overheadMs += CYCLE_OVERHEAD_ALPHA * (sample - this.#overheadMs);
  }

  /**
   * How late the wave now decided is, as far as that earns it credit. None after a Retry-After pause
   * that began since the last wave (not time the rate allowed), and none unless the rate rule acts:
   * while the sizer holds or cuts for latency, or after a loss, a long cycle is the server's answers
   * slowing (sending self-clocked by the in-flight cap), and bigger waves would only slow the loop.
   */
  #lateMs(last: { size: number; at: number; sendMs: number }, now: number): number {
    if (last.size === 0 || this.#pauseUntil > last.at || !this.#action.byRate) return 0;
    // A wave of minSize paced below minSize per period (yielding) is meant to take longer.
    return clamp(now - last.at - Math.max(this.#intervalMs, last.sendMs), 0, MAX_LATE_WAVE_CREDIT_SHARE * this.#periodMs);
  }

  /**
   * The wave the current rate allows in one period, plus the late credit, bounded by the guards; a
   * probe wave goes at PROBE_RATE_FACTOR. rateSize leaves the credit out: the app-limited test
   * compares a guard-held wave with what the rate alone allows.
   */
  #decide(signals: Omit<WaveSignals, "writes">, late: Credit): WaveDecision & { rateSize: number } {
    const probe = this.#probe === "sending";
    const factor = probe ? PROBE_RATE_FACTOR : 1;
    const { minSize, maxSize } = this.#spec.waves;
    const perPeriod = (this.#rate * factor * this.#periodMs) / 1_000;
    const raw = Math.round(perPeriod + (factor * late.perSecond * late.ms) / 1_000);
    const size = clamp(raw, minSize, maxSize);
    const rateSize = clamp(Math.round(perPeriod), minSize, maxSize);
    const bound = raw >= maxSize ? ", at spec.waves.maxSize" : raw <= minSize ? ", at spec.waves.minSize" : "";
    const note = probe ? `re-measuring unloaded write latency at ${PROBE_RATE_FACTOR}× rate for one wave` : this.#action.note;
    const pacedMs = (size / (this.#rate * factor)) * 1_000;
    const base: Candidate = {
      size,
      limitedBy: probe ? "Rate" : this.#action.limitedBy,
      message: `${formatRate(this.#rate * factor)} writes → ${size} pods per ${formatMs(Math.max(this.#periodMs + late.ms, pacedMs))} wave${bound} (${note})`,
    };
    return { ...capByGuards(this.#spec, signals, base), rateLimit: this.#rateLimit(factor), waitMs: 0, rateSize };
  }

  #control(signals: WaveSignals): void {
    const { now } = signals;
    const w = signals.writes;
    const previous = this.#rate;
    const p90 = w?.p90;
    const measuringProbe = this.#probe === "sending";
    this.#probe = "idle";
    if (measuringProbe) {
      this.#lastProbeAt = now;
      this.#congestedTicks = 0;
      this.#overCeilingTicks = 0;
    }
    this.#pauseUntil = Math.max(this.#pauseUntil, signals.retryAfterUntil ?? 0, w?.retryAfterUntil ?? 0);

    const losses = w ? lossCount(w) : 0;
    // A loss tick is handled by the loss rule, and the pause that follows drains the queue it measured.
    const latencyTick = p90 !== undefined && !measuringProbe && losses === 0;
    if (latencyTick) this.#shortMs = this.#shortMs === undefined ? p90 : this.#shortMs + SHORT_LATENCY_ALPHA * (p90 - this.#shortMs);
    const short = latencyTick ? this.#shortMs : undefined;
    const others = signals.othersCreating ?? 0;
    this.#yieldEndedNow = this.#yield ? this.#yieldEnds(short, others) : undefined;
    if (this.#yieldEndedNow) this.#yield = undefined;
    const baseline = this.#baselineMs;
    const tolerated = baseline === undefined ? undefined : this.#tolerated(baseline);
    const gradient = short !== undefined && tolerated !== undefined ? clamp(tolerated / short, GRADIENT_MIN, 1) : 1;
    if (short !== undefined) this.#congestedTicks = gradient < 1 ? this.#congestedTicks + 1 : 0;
    const overCeiling = short !== undefined && short > QUEUEING_CEILING_SHARE * this.#latencyTargetMs;
    if (short !== undefined) this.#overCeilingTicks = overCeiling ? this.#overCeilingTicks + 1 : 0;
    const yieldsNow = !this.#yield && losses === 0 && overCeiling && others >= Math.max(OTHERS_CREATING_MIN_PER_S, OTHERS_CREATING_MIN_SHARE * previous);
    // Gradient2's estimate; rule 5 takes a GRADIENT_SMOOTHING share of it below the ceiling. Its √R
    // term claims a share of a queue that may be ours; one we yield to others on, it leaves alone.
    const gradientRate = gradient * previous + (this.#yield && overCeiling ? 0 : Math.sqrt(previous));
    const warm = this.#baselineSamples >= BASELINE_WARMUP_SAMPLES;
    const latencyNote = short === undefined ? "" : `p90 ${formatMs(short)}${baseline === undefined ? "" : `, baseline ${formatMs(baseline)}`}`;
    // Decided from the last wave, not from elapsed time, so a slow reconcile cadence cannot freeze growth.
    const last = this.#lastWave;
    const appLimited = !w || last.size < APP_LIMITED_FRACTION * last.rateSize || w.count < APP_LIMITED_FRACTION * last.size || last.size === 0;

    if (w && losses > 0) {
      this.#pauseUntil = Math.max(this.#pauseUntil, now + LOSS_MIN_PAUSE_MS);
      if (now >= this.#lossEpochEnd) {
        this.#rememberEpisodeRate(previous);
        this.#rate = previous * LOSS_DECREASE_FACTOR;
        this.#slowStart = false;
        // Writes sent before the pause may still fail after it; they belong to this episode, not a new one.
        this.#lossEpochEnd = this.#pauseUntil + Math.max(this.#periodMs, w.p99 ?? 0);
        this.#action = { limitedBy: "ApiServer", note: `API server rejected ${describeLosses(w)}: rate halved from ${formatRate(previous)}`, byRate: false };
      } else {
        this.#action = { limitedBy: "ApiServer", note: `API server still rejecting (${describeLosses(w)}); rate already halved for this episode`, byRate: false };
      }
    } else if (yieldsNow) {
      this.#beginLatencyEpisode(previous);
      this.#yield = { untilRate: RECOVERY_TARGET_FRACTION * Math.max(this.#episodeStartRate ?? previous, previous) };
      this.#rate = previous * GRADIENT_MIN;
      this.#slowStart = false;
      this.#action = {
        limitedBy: "Yielding",
        note: `others create pods at ${formatRate(others)} and write latency ${latencyNote} is past ${QUEUEING_CEILING_SHARE}× the target: yielding to them`,
        byRate: false,
      };
    } else if (p90 !== undefined && p90 > this.#latencyTargetMs) {
      this.#beginLatencyEpisode(previous);
      // Never a smaller cut than the gradient would take just below the target: the response must
      // not weaken as latency rises past it.
      const gradientFactor = overCeiling ? gradientRate / previous : 1;
      this.#rate = previous * Math.max(LATENCY_CEILING_MIN_FACTOR, Math.min(this.#latencyTargetMs / p90, gradientFactor));
      this.#slowStart = false;
      this.#action = {
        limitedBy: "Latency",
        note: `write latency p90 ${formatMs(p90)} is above spec.guards.apiServer.latencyTarget ${this.#spec.guards.apiServer.latencyTarget}`,
        byRate: false,
      };
    } else if (measuringProbe) {
      if (p90 !== undefined && baseline !== undefined) {
        // Upwards a probe is trusted (latency that stays high at half rate is not ours), though what the
        // gradient tolerates stays under QUEUEING_CEILING_SHARE of the target; downwards one
        // lucky probe may lower the baseline by at most 1/GRADIENT_TOLERANCE, or it would read all load as queueing.
        const sample = Math.max(p90, baseline / GRADIENT_TOLERANCE);
        this.#baselineMs = baseline + PROBE_BASELINE_WEIGHT * (sample - baseline);
      }
      this.#action = { limitedBy: "Rate", note: `baseline re-measured: p90 ${p90 === undefined ? "unknown" : formatMs(p90)} at ${PROBE_RATE_FACTOR}× rate`, byRate: true };
    } else if (gradient < 1 && (!warm || (this.#slowStart && this.#congestedTicks < SLOW_START_EXIT_TICKS))) {
      this.#beginLatencyEpisode(previous);
      this.#action = { limitedBy: "Latency", note: `write latency ${latencyNote}: holding to see whether it is queueing`, byRate: false };
    } else if (gradient < 1) {
      const weight = overCeiling ? OVER_CEILING_GRADIENT_WEIGHT : GRADIENT_SMOOTHING;
      const eased = (1 - weight) * previous + weight * gradientRate;
      this.#beginLatencyEpisode(previous);
      this.#rate = Math.min(previous, eased);
      this.#slowStart = false;
      const yielding = this.#yield !== undefined && overCeiling;
      this.#action = {
        limitedBy: yielding ? "Yielding" : "Latency",
        note: `write latency ${latencyNote}: ${
          overCeiling
            ? `queueing past ${QUEUEING_CEILING_SHARE}× the target, cutting${yielding ? ` (yielding: others create pods at ${formatRate(others)})` : ""}`
            : "queueing, easing off"
        }`,
        byRate: false,
      };
    } else if (p90 !== undefined && p90 >= LATENCY_TARGET_HEADROOM * this.#latencyTargetMs) {
      this.#action = { limitedBy: "Latency", note: `write latency p90 ${formatMs(p90)} is near the ${this.#spec.guards.apiServer.latencyTarget} target: holding`, byRate: false };
    } else if (w?.p99 !== undefined && w.p99 > this.#latencyTargetMs) {
      // Kubernetes' API call SLO is a p99: while our own slowest writes break it, more load would too.
      this.#action = { limitedBy: "Latency", note: `write latency p99 ${formatMs(w.p99)} is above the ${this.#spec.guards.apiServer.latencyTarget} target: holding`, byRate: false };
    } else if (appLimited) {
      this.#action = { limitedBy: "Rate", note: "holding: the last wave did not use the rate", byRate: true };
    } else if (this.#slowStart) {
      this.#latencyEpisode = false;
      this.#rate = previous * SLOW_START_FACTOR;
      this.#action = { limitedBy: "Rate", note: `ramping up ×${SLOW_START_FACTOR} per wave${latencyNote ? `, ${latencyNote}` : ""}`, byRate: true };
    } else {
      this.#latencyEpisode = false;
      let grown = previous + GRADIENT_SMOOTHING * Math.sqrt(previous);
      // Recovery assumes the server's room came back; beside someone else's load only slow growth finds out.
      const recoveryTarget = this.#yield ? 0 : (this.#episodeStartRate ?? 0) * RECOVERY_TARGET_FRACTION;
      if (previous < recoveryTarget) grown = Math.max(grown, previous + (recoveryTarget - previous) * RECOVERY_GAIN);
      this.#rate = grown;
      const mode = this.#yield
        ? `yielding to others creating pods at ${formatRate(others)} until back at ${formatRate(this.#yieldEndRate(this.#yield))}, growing slowly`
        : previous < recoveryTarget
          ? this.#yieldEndedNow
            ? `${this.#yieldEndedNow}, recovering`
            : "recovering"
          : "probing";
      this.#action = { limitedBy: this.#yield ? "Yielding" : "Rate", note: `${mode}${latencyNote ? `, ${latencyNote}` : ""}`, byRate: true };
    }

    // An overloaded tick (loss, or above the ceiling) says nothing about unloaded latency.
    const overloaded = losses > 0 || (p90 !== undefined && p90 > this.#latencyTargetMs);
    if (p90 !== undefined && !measuringProbe && !warm && !overloaded) this.#warmUpBaseline(p90);
    if (this.#yield && this.#rate >= this.#yieldEndRate(this.#yield)) this.#yield = undefined;
    this.#rate = clamp(Math.min(this.#rate, previous * MAX_GROWTH_PER_TICK), this.#minRate(), this.#maxRate());
  }

  /** Why the current yield ends now, if it does: the others stopped, or the queue drained. */
  #yieldEnds(short: number | undefined, others: number): string | undefined {
    if (others < OTHERS_CREATING_MIN_PER_S) return "the others stopped creating pods";
    if (short !== undefined && short < YIELD_DRAINED_SHARE * this.#latencyTargetMs) return "the queue it yielded to has drained";
    return undefined;
  }

  /** A spec change may lower maxSize below the rate yielding waits for. */
  #yieldEndRate(y: { untilRate: number }): number {
    return Math.min(y.untilRate, this.#maxRate());
  }

  /** The p90 the gradient reads as no queueing. */
  #tolerated(baseline: number): number {
    const target = this.#latencyTargetMs;
    // Slow start doubles, so it stops at the first sign of a queue (HyStart, RFC 9406), not at the
    // allowance: one more doubling from there overshoots into the latency target and the guards.
    const tolerated = this.#slowStart ? GRADIENT_TOLERANCE * baseline : baseline + QUEUEING_ALLOWANCE_SHARE * target;
    return Math.min(tolerated, QUEUEING_CEILING_SHARE * target);
  }

  /** Queueing began: remember the rate it began at, which recovery climbs back towards as after a loss. */
  #beginLatencyEpisode(rate: number): void {
    if (this.#latencyEpisode) return;
    this.#latencyEpisode = true;
    this.#rememberEpisodeRate(rate);
  }

  /** Fast convergence: an episode that begins below the last one's start remembers less than its own rate. */
  #rememberEpisodeRate(rate: number): void {
    const last = this.#episodeStartRate;
    this.#episodeStartRate = last !== undefined && rate < last ? rate * FAST_CONVERGENCE_FACTOR : rate;
  }

  #warmUpBaseline(p90: number): void {
    this.#baselineSamples += 1;
    const current = this.#baselineMs;
    this.#baselineMs = current === undefined ? p90 : current + (Math.min(p90, WARMUP_SAMPLE_CAP * current) - current) / this.#baselineSamples;
  }
}
