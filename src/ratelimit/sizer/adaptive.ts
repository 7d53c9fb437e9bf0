// Adaptive waves: a wave is the API server's rate R (control.ts; one controller shared by every
// rollout through ClusterPace) × this rollout's wave period, plus what a late cycle left unsent
// (cycle.ts), within [minSize, maxSize] and capped by the guards (guards.ts).

import { durationToMs } from "../../api/duration.ts";
import { type RateLimit, type SizerSpec, type WaveDecision, type WaveSignals, type WaveSizer, MAX_WAVE_PERIOD_MS, clamp, waveIntervalMs, wavePeriodMs } from "./contract.ts";
import { type Limits, Mode, RateController } from "./control.ts";
import { Cycle } from "./cycle.ts";
import { capByGuards } from "./guards.ts";
import { formatMs, formatRate } from "./messages.ts";
import { stopDecision } from "./stop.ts";
import { MAX_CONCURRENCY, TUNABLES as T } from "./tunables.ts";

/** The API server's one controller; learn() ticks it on all writes since its last tick, at most once a period. */
export interface SharedRate {
  readonly controller: RateController;
  learn(signals: WaveSignals, limits: Limits): RateController;
}

export class AdaptiveWaveSizer implements WaveSizer {
  #spec!: SizerSpec;
  #periodMs = 0;
  #limits!: Limits;
  readonly #cycle = new Cycle();
  readonly controller: RateController;
  readonly #shared: SharedRate | undefined;

  constructor(spec: SizerSpec, shared?: SharedRate) {
    this.#shared = shared;
    this.controller = shared?.controller ?? new RateController();
    this.updateSpec(spec);
  }

  updateSpec(spec: SizerSpec): void {
    this.#spec = spec;
    this.#periodMs = wavePeriodMs(spec);
    this.#cycle.setPeriod(this.#periodMs, waveIntervalMs(spec));
    const { initialSize, minSize, maxSize } = spec.waves;
    const perS = (n: number) => (n * 1_000) / this.#periodMs;
    const targetMs = durationToMs(spec.guards.apiServer.latencyTarget);
    this.#limits = { targetMs, initialRate: perS(clamp(initialSize, minSize, maxSize)), minRate: perS(minSize), maxRate: perS(maxSize), yieldFloor: (minSize * 1_000) / MAX_WAVE_PERIOD_MS };
  }

  /** What the controller has learned, for logs and tests. */
  get state() {
    const c = this.controller;
    return { perSecond: c.rate(this.#limits.initialRate), mode: c.mode, baselineMs: c.baseline.ms, pauseUntil: c.pauseUntil, overheadMs: this.#cycle.overheadMs };
  }

  next(signals: WaveSignals): WaveDecision {
    const c = this.controller;
    const before = c.rate(this.#limits.initialRate);
    if (this.#shared) this.#shared.learn(signals, this.#limits);
    else c.tick(signals, this.#limits);
    // Credit only while the rate rule acts: after a pause, or while holding or cutting for loss or
    // latency, a long cycle is the answers slowing, and bigger waves would only slow the loop more.
    const creditable = (c.mode === Mode.Starting || c.mode === Mode.Steady) && c.action.limitedBy === "Rate";
    const lateMs = this.#cycle.close(signals.now, creditable, c.pauseUntil);
    const decision = this.#stop(signals) ?? this.#decide(signals, lateMs, Math.min(before, c.rate()));
    if (decision.size > 0) this.#cycle.sent(signals.now, decision.size, decision.rateLimit.sendPerSecond ?? decision.rateLimit.perSecond);
    return decision;
  }

  peek(signals: Omit<WaveSignals, "writes">): WaveDecision {
    return this.#stop(signals) ?? this.#decide(signals, 0, 0);
  }

  /** Nothing left, or a pause; the pause says what rate follows it. */
  #stop(signals: Omit<WaveSignals, "writes">): WaveDecision | undefined {
    const c = this.controller;
    const rate = c.rate(this.#limits.initialRate);
    return stopDecision(signals.now, signals.remaining, Math.max(c.pauseUntil, signals.retryAfterUntil ?? 0), this.#rateLimit(rate), `; then ${formatRate(rate)} (${c.action.note})`);
  }

  /** Little's law at the send pace, × startGain: the in-flight cap binds once latency doubles, before the law reacts. */
  #rateLimit(perSecond: number): RateLimit {
    const sendPerSecond = this.#cycle.sendRate(perSecond);
    const latencyMs = this.controller.baseline.ms ?? T.queueAllowance * this.#limits.targetMs;
    return { concurrency: clamp(Math.ceil((sendPerSecond * latencyMs * T.startGain) / 1_000), this.#spec.waves.minSize, MAX_CONCURRENCY), perSecond, sendPerSecond };
  }

  /** R × the period, plus the late credit at the lower of the old and new rate, within [minSize, maxSize], capped by the guards. */
  #decide(signals: Omit<WaveSignals, "writes">, lateMs: number, creditRate: number): WaveDecision {
    const c = this.controller;
    const rate = c.sendRate(this.#limits.initialRate);
    const { minSize, maxSize } = this.#spec.waves;
    const raw = Math.round((rate * this.#periodMs + (c.mode === Mode.Probing ? T.decrease : 1) * creditRate * lateMs) / 1_000);
    const size = clamp(raw, minSize, maxSize);
    const bound = raw >= maxSize ? ", at spec.waves.maxSize" : raw <= minSize ? ", at spec.waves.minSize" : "";
    const waveMs = Math.max(this.#periodMs + lateMs, rate > 0 ? (size / rate) * 1_000 : 0);
    const message = `${formatRate(rate)} writes → ${size} pods per ${formatMs(waveMs)} wave${bound} (${c.action.note})`;
    return { ...capByGuards(this.#spec, signals, { size, limitedBy: c.action.limitedBy, message }), rateLimit: this.#rateLimit(rate), waitMs: 0 };
  }
}
