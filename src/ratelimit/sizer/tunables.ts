// Every number the adaptive sizer was given rather than measured: one frozen object, one reason each.
// The law that uses them is in control.ts.

import { DEFAULT_RETRY_AFTER_MS } from "../retry-after.ts";

export const TUNABLES = Object.freeze({
  /** A loss halves R (TCP's decrease); also the most any tick cuts, a probe wave's rate, and "half way" in every estimate. */
  decrease: 0.5,
  /** Starting doubles R per tick (slow start); no tick grows R more, nor past this × the rate actually answered. */
  startGain: 2,
  /** Starting ends at the first queue: p90 past this × the baseline (HyStart), before the allowance is reached. */
  startTolerance: 1.25,
  /** Gradient2's smoothing: the share of the gradient's step taken per tick, and growth of smoothing × √R. */
  smoothing: 0.2,
  /** Queueing tolerated above the baseline, as a share of latencyTarget (LEDBAT's target delay, scaled by the SLO). */
  queueAllowance: 0.25,
  /** p90 past this share of latencyTarget is always queueing, however high the baseline; yielding starts here. */
  queueCeiling: 0.5,
  /** Unloaded latency is the mean of this many first ticks; as many congested ticks in a row call an early probe. */
  warmupTicks: 5,
  /** How often one wave at `decrease` × R re-measures unloaded latency (BBR's PROBE_RTT, Envoy's minRTT window). */
  probeIntervalMs: 30_000,
  /** After a cut, R climbs back half the gap per tick towards this × the rate the episode began at (CUBIC's plateau). */
  recovery: 0.9,
  /** Others creating fewer pods a second are background (a CronJob), which the gradient handles, not a writer to yield to. */
  othersMinPerSecond: 5,
  /** Others must also create this share of our rate: beside 200/s of ours, 10/s is not whose queue it is. */
  othersMinShare: 0.25,
  /** Most of a wave period the cycle's overhead may take (writes sent up to 2× R), and most late credit a wave gets. */
  cycleShare: 0.5,
} as const);
export type Tunables = typeof TUNABLES;

/** Facts, not choices: the least pause after a loss is APF's first Retry-After. */
export const LOSS_MIN_PAUSE_MS = DEFAULT_RETRY_AFTER_MS;
/** Most writes in flight: above kube-apiserver's default --max-mutating-requests-inflight (200), so the server's own limit binds first. */
export const MAX_CONCURRENCY = 256;
