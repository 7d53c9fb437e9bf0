// Adaptive waves: a wave is the API server's rate R (control.ts, one controller shared by every
// rollout through ClusterPace) × this rollout's wave period, plus what a late cycle left unsent
// (cycle.ts), within [minSize, maxSize] and capped by the guards (guards.ts). The README's "Pace"
// section says how to predict the next wave from the signals.

import { durationToMs } from "../../api/duration.ts";
import { type Candidate, type RateLimit, type SizerSpec, type WaveDecision, type WaveSignals, type WaveSizer, MAX_WAVE_PERIOD_MS, clamp, waveIntervalMs, wavePeriodMs } from "./contract.ts";
import { type Limits, Mode, RateController } from "./control.ts";
import { Cycle } from "./cycle.ts";
import { capByGuards } from "./guards.ts";
import { formatMs, formatRate } from "./messages.ts";
import { stopDecision } from "./stop.ts";
import { MAX_CONCURRENCY, TUNABLES as T } from "./tunables.ts";

/** The API server's one controller, taught by every rollout's decisions (ClusterPace). */
export interface SharedRate {
  readonly controller: RateController;
  /** Learns from all writes since its last tick, at most once a wave period, and returns the controller. */
  learn(signals: WaveSignals, limits: Limits): RateController;
}

export class AdaptiveWaveSizer implements WaveSizer {
  #spec!: SizerSpec;
  #periodMs!: number;
  #intervalMs!: number;
  #limits!: Limits;
  readonly #cycle: Cycle;
  readonly #shared: SharedRate | undefined;
  readonly #own = new RateController();

  constructor(spec: SizerSpec, shared?: SharedRate) {
    this.#shared = shared;
    this.#cycle = new Cycle(wavePeriodMs(spec), waveIntervalMs(spec));
    this.updateSpec(spec);
  }

  updateSpec(spec: SizerSpec): void {
    this.#spec = spec;
    this.#periodMs = wavePeriodMs(spec);
    this.#intervalMs = waveIntervalMs(spec);
    this.#cycle.setPeriod(this.#periodMs, this.#intervalMs);
    const { initialSize, minSize, maxSize } = spec.waves;
    const perPeriod = (n: number) => n / (this.#periodMs / 1_000);
    this.#limits = {
      targetMs: durationToMs(spec.guards.apiServer.latencyTarget),
      initialRate: perPeriod(clamp(initialSize, minSize, maxSize)),
      minRate: perPeriod(minSize),
      maxRate: perPeriod(maxSize),
      yieldFloor: minSize / (MAX_WAVE_PERIOD_MS / 1_000),
    };
  }

  get controller(): RateController {
    return this.#shared?.controller ?? this.#own;
  }

  /** What the controller has learned, for logs and tests. */
  get state() {
    const c = this.controller;
    return { perSecond: c.rate(this.#limits.initialRate), mode: c.mode, baselineMs: c.baseline.ms, pauseUntil: c.pauseUntil, overheadMs: this.#cycle.overheadMs };
  }

  next(signals: WaveSignals): WaveDecision {
    const before = this.controller.rate(this.#limits.initialRate);
    const c = this.#shared ? this.#shared.learn(signals, this.#limits) : (this.#own.tick(signals, this.#limits), this.#own);
    // Credit only while the rate rule acts: after a pause, or while holding or cutting for loss or
    // latency, a long cycle is the answers slowing, and bigger waves would only slow the loop more.
    const creditable = (c.mode === Mode.Starting || c.mode === Mode.Steady) && c.action.limitedBy === "Rate";
    const lateMs = this.#cycle.close(signals.now, creditable, c.pauseUntil);
    const stop = this.#stop(signals);
    if (stop) return stop;
    const decision = this.#decide(signals, lateMs, Math.min(before, c.rate()));
    this.#cycle.sent(signals.now, decision.size, decision.rateLimit.sendPerSecond ?? decision.rateLimit.perSecond);
    return decision;
  }

  peek(signals: Omit<WaveSignals, "writes">): WaveDecision {
    return this.#stop(signals) ?? this.#decide(signals, 0, 0);
  }

  /** Nothing left, or a pause; the pause says what rate follows it. */
  #stop(signals: Omit<WaveSignals, "writes">): WaveDecision | undefined {
    const c = this.controller;
    const pauseUntil = Math.max(c.pauseUntil, signals.retryAfterUntil ?? 0);
    return stopDecision(signals.now, signals.remaining, pauseUntil, this.#rateLimit(c.rate(this.#limits.initialRate)), `; then ${formatRate(c.rate(this.#limits.initialRate))} (${c.action.note})`);
  }

  #rateLimit(perSecond: number): RateLimit {
    const sendPerSecond = this.#cycle.sendRate(perSecond);
    // Little's law at the send pace, × startGain: the in-flight cap binds once latency doubles, before the law reacts.
    const latencyMs = this.controller.baseline.ms ?? T.queueAllowance * this.#limits.targetMs;
    const concurrency = clamp(Math.ceil((sendPerSecond * latencyMs * T.startGain) / 1_000), this.#spec.waves.minSize, MAX_CONCURRENCY);
    return { concurrency, perSecond, sendPerSecond };
  }

  /** R × the period (+ the late credit, at the lower of the old and new rate), within [minSize, maxSize], capped by the guards. */
  #decide(signals: Omit<WaveSignals, "writes">, lateMs: number, creditRate: number): WaveDecision {
    const c = this.controller;
    const probing = c.mode === Mode.Probing;
    const rate = c.sendRate(this.#limits.initialRate);
    const factor = probing ? T.decrease : 1;
    const { minSize, maxSize } = this.#spec.waves;
    const raw = Math.round((rate * this.#periodMs + factor * creditRate * lateMs) / 1_000);
    const size = clamp(raw, minSize, maxSize);
    const bound = raw >= maxSize ? ", at spec.waves.maxSize" : raw <= minSize ? ", at spec.waves.minSize" : "";
    const pacedMs = rate > 0 ? (size / rate) * 1_000 : 0;
    const base: Candidate = {
      size,
      limitedBy: c.action.limitedBy,
      message: `${formatRate(rate)} writes → ${size} pods per ${formatMs(Math.max(this.#periodMs + lateMs, pacedMs))} wave${bound} (${c.action.note})`,
    };
    return { ...capByGuards(this.#spec, signals, base), rateLimit: this.#rateLimit(rate), waitMs: 0 };
  }
}
