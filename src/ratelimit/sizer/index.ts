// The wave sizer: how many pods the next wave creates, and at what pace the pacer sends them.
// Its contract (inputs, output, modes, guards as caps): the README's "Pace" section.

import { AdaptiveWaveSizer, type SharedRate } from "./adaptive.ts";
import type { SizerSpec, WaveSizer } from "./contract.ts";
import { FixedWaveSizer } from "./fixed.ts";

export { type Candidate, type RateLimit, type SizerSpec, type WaveDecision, type WaveSignals, type WaveSizer, MAX_WAVE_PERIOD_MS, MIN_WAVE_PERIOD_MS, wavePeriodMs } from "./contract.ts";
export { type Limits, Mode, RateController, transition } from "./control.ts";
export { capByGuards, guardCandidates, pickSmallest } from "./guards.ts";
export { LOSS_MIN_PAUSE_MS, MAX_CONCURRENCY, TUNABLES } from "./tunables.ts";
export { AdaptiveWaveSizer, FixedWaveSizer, type SharedRate };

/** The sizer for a spec's strategy; Adaptive ones share the API server's rate when given it. */
export function createWaveSizer(spec: SizerSpec, shared?: SharedRate): WaveSizer {
  return spec.waves.strategy === "Fixed" ? new FixedWaveSizer(spec) : new AdaptiveWaveSizer(spec, shared);
}
