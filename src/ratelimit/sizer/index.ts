// The wave sizer: how many pods the next wave creates, and at what pace the pacer sends them.
// Its contract (inputs, output, rules in order, guards as caps): docs/architecture.md, "The wave sizer".

import { AdaptiveWaveSizer } from "./adaptive.ts";
import type { SizerSpec, WaveSizer } from "./contract.ts";
import { FixedWaveSizer } from "./fixed.ts";

export * from "./constants.ts";
export { type Candidate, type RateLimit, type SizerSpec, type WaveDecision, type WaveSignals, type WaveSizer, wavePeriodMs } from "./contract.ts";
export { capByGuards, guardCandidates, pickSmallest } from "./guards.ts";
export { AdaptiveWaveSizer, FixedWaveSizer };

/** The sizer for a spec's strategy. */
export function createWaveSizer(spec: SizerSpec): WaveSizer {
  return spec.waves.strategy === "Fixed" ? new FixedWaveSizer(spec) : new AdaptiveWaveSizer(spec);
}
