// The control law: one write rate R (writes/s) per API server, moved once per tick from what the
// writes since the last tick met. Its base is Netflix's Gradient2: g = tolerated / p90, clamped to
// [decrease, 1], and R' = (1 − s)·R + s·(g·R + √R), so the same step eases off under queueing and
// grows by s·√R without it. Gradient2 fits a rate over a request/response API better than BBR, whose
// delivery-rate model needs a bottleneck that drains at a steady rate (APF queues and etcd batches do
// not), and better than Vegas, whose α/β packets of queue mean nothing to a latency SLO. Its blind
// spot, a baseline that creeps up with its own queue, is closed as Envoy's adaptive concurrency
// closes it: unloaded latency is re-measured now and then at reduced rate (baseline.ts). Around it:
// TCP's halving on loss, slow start until the first queue, CUBIC's recovery to the rate an episode
// began at (and fast convergence), and yielding to others' launches.

import { lossCount, type WriteTick } from "../write-latency.ts";
import { Baseline } from "./baseline.ts";
import { clamp } from "./contract.ts";
import { describeLosses, formatMs, formatRate } from "./messages.ts";
import { LOSS_MIN_PAUSE_MS, TUNABLES as T } from "./tunables.ts";

export const Mode = { Starting: "Starting", Steady: "Steady", BackingOff: "BackingOff", Recovering: "Recovering", Yielding: "Yielding", Paused: "Paused", Probing: "Probing" } as const;
export type Mode = (typeof Mode)[keyof typeof Mode];

/**
 * One tick, reduced to what decides the mode. paused: a loss, or inside a Retry-After; queueing: g < 1
 * or p90 past the target; congestedTicks: queueing ticks in a row once the baseline is warm;
 * othersWriting: others launch pods at othersMinPerSecond or more (and, to begin a yield, at
 * othersMinShare of R); recovered: R is back at `recovery` × the rate the last episode began at.
 */
export interface Facts { paused: boolean; queueing: boolean; overTarget: boolean; overCeiling: boolean; congestedTicks: number; othersWriting: boolean; recovered: boolean; probeDue: boolean }

/**
 * The one transition function. Starting doubles; BackingOff cuts; Recovering climbs back towards the
 * episode's rate; Steady grows by smoothing × √R; Yielding backs off beside another writer's launch;
 * Paused waits out a loss or Retry-After; Probing sends one wave at reduced rate.
 */
export function transition(mode: Mode, f: Facts): Mode {
  if (f.paused) return Mode.Paused;
  if (mode === Mode.Yielding && f.othersWriting) return f.recovered ? Mode.Steady : Mode.Yielding;
  if (f.othersWriting && f.overCeiling) return Mode.Yielding;
  if (mode === Mode.Starting) return f.overTarget || f.congestedTicks >= 2 ? Mode.BackingOff : Mode.Starting;
  const mayProbe = mode === Mode.Steady || mode === Mode.BackingOff || mode === Mode.Recovering;
  if (mayProbe && f.probeDue && !f.overTarget) return Mode.Probing;
  if (f.queueing) return Mode.BackingOff;
  return f.recovered ? Mode.Steady : Mode.Recovering;
}

/** The paced rollouts' bounds in writes/s (yieldFloor: minSize waves over the longest period) and latency target. */
export interface Limits { targetMs: number; initialRate: number; minRate: number; maxRate: number; yieldFloor: number }

/** A tick's input: the writes answered since the last tick, the Retry-After gate, others' launches. */
export interface TickInput { now: number; writes?: WriteTick; retryAfterUntil?: number; othersCreating?: number }

export interface Action { limitedBy: "Rate" | "ApiServer" | "Latency" | "Yielding"; note: string }

export class RateController {
  readonly baseline = new Baseline();
  #rate: number | undefined;
  #mode: Mode = Mode.Starting;
  #pauseUntil = 0;
  #lossEpochEnd = -Infinity;
  /** The rate the last congestion episode began at (less after fast convergence): recovery's goal. */
  #episodeRate: number | undefined;
  #congested = 0;
  /** Gradient2's short-term latency: p90 moved half way per tick, so one outlier pulls half as far. */
  #shortMs: number | undefined;
  #lastTickAt: number | undefined;
  #action: Action = { limitedBy: "Rate", note: "starting at spec.waves.initialSize" };

  get mode(): Mode { return this.#mode; }
  get action(): Action { return this.#action; }
  get pauseUntil(): number { return this.#pauseUntil; }
  /** R, or `initial` before the first tick. */
  rate(initial = 0): number { return this.#rate ?? initial; }
  /** The rate waves go out at: a probe's at `decrease` × R. */
  sendRate(initial = 0): number { return this.rate(initial) * (this.#mode === Mode.Probing ? T.decrease : 1); }

  tick(input: TickInput, limits: Limits): void {
    const { now, writes: w } = input;
    const prev = (this.#rate ??= clamp(limits.initialRate, limits.minRate, limits.maxRate));
    const elapsed = this.#lastTickAt === undefined ? 0 : now - this.#lastTickAt;
    this.#lastTickAt = now;
    // What was answered, not what was decided: a wave a guard held back, or a pause, shows here.
    const achieved = w && elapsed > 0 ? (w.count * 1_000) / elapsed : 0;
    const losses = w ? lossCount(w) : 0;
    this.#pauseUntil = Math.max(this.#pauseUntil, input.retryAfterUntil ?? 0, w?.retryAfterUntil ?? 0, losses > 0 ? now + LOSS_MIN_PAUSE_MS : 0);
    // A loss tick's latency is the queue the pause drains; a probe tick's is the baseline's.
    const p90 = losses === 0 ? w?.p90 : undefined;
    const latencyTick = p90 !== undefined && this.#mode !== Mode.Probing;
    if (latencyTick) this.#shortMs = this.#shortMs === undefined ? p90 : this.#shortMs + T.decrease * (p90 - this.#shortMs);
    const short = latencyTick ? this.#shortMs : undefined;
    const tolerated = this.baseline.tolerated(this.#mode === Mode.Starting, limits.targetMs);
    const g = short !== undefined && tolerated !== undefined ? clamp(tolerated / short, T.decrease, 1) : 1;
    // Until the baseline is warm a queue only holds the rate: it may be the baseline that is wrong.
    if (latencyTick) this.#congested = g < 1 && this.baseline.warm ? this.#congested + 1 : 0;
    const others = input.othersCreating ?? 0;
    const overTarget = p90 !== undefined && p90 > limits.targetMs;
    const overCeiling = short !== undefined && short > T.queueCeiling * limits.targetMs;
    const othersWriting = others >= T.othersMinPerSecond && (this.#mode === Mode.Yielding || others >= T.othersMinShare * prev);
    const recovered = this.#episodeRate === undefined || prev >= T.recovery * this.#episodeRate;
    const f: Facts = { paused: losses > 0 || now < this.#pauseUntil, queueing: g < 1 || overTarget, overTarget, overCeiling, congestedTicks: this.#congested, othersWriting, recovered, probeDue: this.baseline.probeDue(now, this.#congested) };
    const from = this.#mode;
    if (from === Mode.Probing) this.baseline.probed(now, p90);
    this.#mode = transition(from, f);
    const shown = short ?? p90;
    const lat = shown === undefined ? "" : `p90 ${formatMs(shown)}${this.baseline.ms === undefined ? "" : `, baseline ${formatMs(this.baseline.ms)}`}`;
    let next = this.#law(from, f, { prev, g, w, losses, now, others, lat, targetMs: limits.targetMs, appLimited: achieved < T.decrease * prev });
    if (latencyTick && !overTarget) this.baseline.warmUp(p90);
    // No tick grows R more than startGain, nor past startGain × what was answered; none cuts more than a loss.
    if (next > prev) next = Math.min(next, T.startGain * prev, Math.max(prev, T.startGain * achieved));
    const floor = this.#mode === Mode.Yielding ? Math.min(limits.minRate, limits.yieldFloor) : limits.minRate;
    this.#rate = clamp(Math.max(next, T.decrease * prev), floor, limits.maxRate);
  }

  #law(from: Mode, f: Facts, t: { prev: number; g: number; w: WriteTick | undefined; losses: number; now: number; others: number; lat: string; targetMs: number; appLimited: boolean }): number {
    const { prev, w, lat } = t;
    const act = (limitedBy: Action["limitedBy"], note: string, rate: number): number => ((this.#action = { limitedBy, note }), rate);
    const mode = this.#mode;
    const yielding = mode === Mode.Yielding;
    // A new congestion episode: CUBIC's W_max, which Recovering climbs back towards.
    if (from !== mode && (yielding || (mode === Mode.BackingOff && (from === Mode.Starting || from === Mode.Steady || from === Mode.Recovering)))) this.#remember(prev);
    const p99Over = (w?.p99 ?? 0) > t.targetMs;
    if (mode === Mode.Paused) {
      if (!w || t.losses === 0) return act("ApiServer", "the API server asked us to wait", prev);
      if (t.now < this.#lossEpochEnd) return act("ApiServer", `API server still rejecting (${describeLosses(w)}); rate already halved for this episode`, prev);
      // Writes sent before the pause may still fail after it: they belong to this episode.
      this.#lossEpochEnd = this.#pauseUntil + Math.max(LOSS_MIN_PAUSE_MS, w.p99 ?? 0);
      this.#remember(prev);
      return act("ApiServer", `API server rejected ${describeLosses(w)}: rate halved from ${formatRate(prev)}`, T.decrease * prev);
    }
    if (mode === Mode.Probing) return act("Rate", `re-measuring unloaded write latency at ${T.decrease}× rate for one wave`, prev);
    if (mode === Mode.Starting && !w?.count) return act("Rate", "starting at spec.waves.initialSize", prev);
    if (yielding && from !== mode) return act("Yielding", `others create pods at ${formatRate(t.others)} and write latency ${lat} is past ${T.queueCeiling}× the target: yielding to them`, T.decrease * prev);
    // Gradient2's step: past the ceiling all of it, below it smoothed, and beside others we yield to, without √R.
    const step = t.g * prev + (yielding && f.overCeiling ? 0 : Math.sqrt(prev));
    if (f.overTarget) {
      const p90 = w?.p90 ?? 0;
      const cut = Math.max(T.decrease, Math.min(t.targetMs / p90, f.overCeiling ? step / prev : 1));
      return act("Latency", `write latency p90 ${formatMs(p90)} is above spec.guards.apiServer.latencyTarget ${formatMs(t.targetMs)}`, cut * prev);
    }
    if (from === Mode.Probing) return act("Rate", `baseline re-measured: ${lat || "no latency"} at ${T.decrease}× rate`, prev);
    // Starting holds on its first queue (HyStart, confirmed by a second tick), and so does any mode until the baseline is warm.
    if (t.g < 1 && (!this.baseline.warm || mode === Mode.Starting)) return act("Latency", `write latency ${lat}: holding to see whether it is queueing`, prev);
    if (t.g < 1) {
      const weight = f.overCeiling ? 1 : T.smoothing;
      const why = `${f.overCeiling ? `queueing past ${T.queueCeiling}× the target, cutting` : "queueing, easing off"}${yielding ? ` (yielding: others create pods at ${formatRate(t.others)})` : ""}`;
      return act(yielding && f.overCeiling ? "Yielding" : "Latency", `write latency ${lat}: ${why}`, Math.min(prev, (1 - weight) * prev + weight * step));
    }
    if (p99Over) return act("Latency", `write latency p99 ${formatMs(w?.p99 ?? 0)} is above the ${formatMs(t.targetMs)} target: holding`, prev);
    if (t.appLimited) return act("Rate", "holding: the last wave did not use the rate", prev);
    if (mode === Mode.Starting) return act("Rate", `ramping up ×${T.startGain} per wave, ${lat}`, T.startGain * prev);
    const grown = prev + T.smoothing * Math.sqrt(prev);
    if (yielding) return act("Yielding", `yielding to others creating pods at ${formatRate(t.others)}, growing slowly, ${lat}`, grown);
    if (mode !== Mode.Recovering) return act("Rate", `growing, ${lat}`, grown);
    const goal = T.recovery * (this.#episodeRate ?? 0);
    return act("Rate", `recovering towards ${formatRate(goal)}, ${lat}`, Math.max(grown, prev + T.decrease * (goal - prev)));
  }

  /** An episode begins: remember its rate, or less when it begins below the last one's (CUBIC's fast convergence). */
  #remember(rate: number): void {
    const last = this.#episodeRate;
    this.#episodeRate = last !== undefined && rate < last ? ((1 + T.decrease) / 2) * rate : rate;
  }
}
