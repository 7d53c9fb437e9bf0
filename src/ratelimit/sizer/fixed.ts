import { lossCount } from "../write-latency.ts";
import { LOSS_MIN_PAUSE_MS, MAX_CONCURRENCY } from "./tunables.ts";
import { type RateLimit, type SizerSpec, type WaveDecision, type WaveSignals, type WaveSizer, clamp, wavePeriodMs } from "./contract.ts";
import { capByGuards } from "./guards.ts";
import { stopDecision } from "./stop.ts";

/**
 * Fixed waves of spec.waves.initialSize, sent at initialSize per wave period. Fixed fixes the pace,
 * not the safety: it still pauses for Retry-After and respects the scheduler, kubelet, IPAM,
 * node-capacity and budget guards, because those protect the cluster and everyone else on it. Users
 * who want none of that set the guards wide open (maxPending, maxStarting, provider None).
 */
export class FixedWaveSizer implements WaveSizer {
  #spec: SizerSpec;
  #pauseUntil = 0;

  constructor(spec: SizerSpec) {
    this.#spec = spec;
  }

  updateSpec(spec: SizerSpec): void {
    this.#spec = spec;
  }

  peek(signals: Omit<WaveSignals, "writes">): WaveDecision {
    return this.next(signals);
  }

  next(signals: WaveSignals): WaveDecision {
    const { now } = signals;
    const size = this.#spec.waves.initialSize;
    const periodMs = wavePeriodMs(this.#spec);
    const rateLimit: RateLimit = { concurrency: clamp(size, 1, MAX_CONCURRENCY), perSecond: size / (periodMs / 1_000) };
    const w = signals.writes;
    this.#pauseUntil = Math.max(this.#pauseUntil, signals.retryAfterUntil ?? 0, w?.retryAfterUntil ?? 0);
    if (w && lossCount(w) > 0) this.#pauseUntil = Math.max(this.#pauseUntil, now + LOSS_MIN_PAUSE_MS);
    const stop = stopDecision(now, signals.remaining, this.#pauseUntil, rateLimit);
    if (stop) return stop;
    const base = { size, limitedBy: "Fixed", message: `fixed waves of ${size} pods (spec.waves.strategy Fixed)` } as const;
    return { ...capByGuards(this.#spec, signals, base), rateLimit, waitMs: 0 };
  }
}
