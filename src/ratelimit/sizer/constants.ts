// The numbers that shape the wave sizer, each with the reason for its value. The rules that use them
// are in docs/architecture.md, "The wave sizer".

// ---- loss (rule 1) ----

/** AIMD's multiplicative decrease on a loss: TCP's halving. */
export const LOSS_DECREASE_FACTOR = 0.5;
/** Least pause after a loss without a Retry-After (timeouts, 5xx): APF's own first Retry-After is 1 s. */
export const LOSS_MIN_PAUSE_MS = 1_000;

// ---- the latency gradient (rules 3 and 5) ----

/**
 * Gradient tolerance in slow start: p90 up to this multiple of the baseline counts as no queueing,
 * so the exponential ramp stops at the first queue. It also bounds how far one probe may lower the baseline.
 */
export const GRADIENT_TOLERANCE = 1.25;
/**
 * Queueing delay the gradient tolerates out of slow start, above the baseline, as a share of
 * spec.guards.apiServer.latencyTarget: p90 up to baseline + this × target counts as no queueing
 * (LEDBAT's fixed target delay, scaled by the SLO). The SLO says how much waiting callers accept;
 * the baseline is waiting they get anyway; reading total latency against the SLO left a slow server
 * almost no room for our own queue.
 */
export const QUEUEING_ALLOWANCE_SHARE = 0.25;
/**
 * Most queueing the gradient tolerates, as a share of latencyTarget, however high the baseline: p90
 * above it always counts as queueing. Someone else's load raises what a probe measures, and is not a
 * new normal to match. The price: a server whose unloaded p90 is above this share of the target settles
 * where the gradient's √R term balances its cut, R = 1/(1 − g)² (36/s at 0.6 × the target); raising
 * latencyTarget is how a user says such latency is normal.
 */
export const QUEUEING_CEILING_SHARE = 0.5;
/**
 * Weight of the gradient's step while the smoothed p90 is above QUEUEING_CEILING_SHARE of the target:
 * the whole step, R = g·R + √R, where below the ceiling only GRADIENT_SMOOTHING of it is taken. Below
 * the ceiling the queue may be noise or our own and easing off is enough; above it, nothing the
 * baseline says makes the queue tolerable, and a smoothed step comes down too slowly beside a second
 * writer (bench/HISTORY.md, 2026-11-23 07:01). Where the ceiling is what the gradient tolerates, the
 * √R term keeps a p90 just over it from cutting at all (g·R + √R ≥ R while g ≥ 1 − 1/√R); with a lower
 * baseline, crossing the ceiling cuts at once by at least 1 − tolerated/ceiling (40 % at a 50 ms baseline).
 */
export const OVER_CEILING_GRADIENT_WEIGHT = 1;
/**
 * Floor of the gradient: one tick cuts R by at most GRADIENT_SMOOTHING × (1 − GRADIENT_MIN) below the
 * queueing ceiling, and to no less than GRADIENT_MIN·R + √R past it.
 */
export const GRADIENT_MIN = 0.5;
/** Weight of the new estimate in R = (1 − w)·R + w·(g·R + √R): Gradient2's smoothing, so noise moves R little. */
export const GRADIENT_SMOOTHING = 0.2;
/**
 * Weight of the newest tick in the short-term latency the gradient compares with the baseline
 * (Gradient2's "short RTT"). 0.5 halves a lone outlier's pull, yet a 4× latency step still drives the
 * gradient to its floor on the first tick.
 */
export const SHORT_LATENCY_ALPHA = 0.5;

// ---- the baseline (unloaded latency) ----

/** Latency ticks averaged into the first baseline; until then the gradient may hold but not cut. */
export const BASELINE_WARMUP_SAMPLES = 5;
/**
 * Most a warm-up tick may weigh, as a multiple of the mean so far: the point where slow start's
 * gradient hits its floor, so beyond doubt queueing (a plain mean let slow start's own queue pass for
 * the unloaded latency and double again into overload). ±50 % noise stays below it.
 */
export const WARMUP_SAMPLE_CAP = GRADIENT_TOLERANCE / GRADIENT_MIN;
/**
 * How often the baseline is re-probed: one wave at PROBE_RATE_FACTOR of the rate, whose p90 is the
 * unloaded latency of the moment. Costs ~2 % of throughput at a 1 s period; without it a creeping
 * baseline would blind the gradient (BBR probes min RTT every 10 s for the same reason).
 */
export const BASELINE_PROBE_INTERVAL_MS = 30_000;
/**
 * Probe early when the gradient has read "queueing" this many ticks in a row: either we are the cause
 * (the probe shows low latency and the baseline stands) or the baseline is too low and would shrink
 * the rate towards the floor (the probe shows the latency persists and the baseline rises).
 */
export const PROBE_AFTER_CONGESTED_TICKS = 10;
/** Least time between two probes, early ones included. */
export const PROBE_MIN_SPACING_MS = 10_000;
/** Rate of a probe wave relative to R: low enough to let queues drain for one period. */
export const PROBE_RATE_FACTOR = 0.5;
/** Weight of a probe's p90 in the baseline: one noisy probe moves it half way, not all the way (and down by at most 1/1.25). */
export const PROBE_BASELINE_WEIGHT = 0.5;
/**
 * Probe early once the smoothed p90 has been above QUEUEING_CEILING_SHARE of the target this many
 * ticks in a row: there the √R term can keep the gradient from cutting at all, so whether the
 * unloaded latency itself has risen must be known soon.
 */
export const PROBE_AFTER_OVER_CEILING_TICKS = 3;

// ---- yielding to others launching pods (rule 2) ----

/**
 * Least write rate while the sizer yields to another writer's load. It yields when the smoothed p90
 * is past QUEUEING_CEILING_SHARE of the target while others create pods at OTHERS_CREATING_MIN_PER_S
 * or more, and at OTHERS_CREATING_MIN_SHARE of our rate or more (WaveSignals.othersCreating): the
 * queue is then theirs as much as ours, and a bulk launch is the one that can wait. Without this lower
 * floor, minSize per period and the √R equilibrium held the rollout at a rate that alone kept the
 * bystander's p99 over 1 s. The others' creates decide, not a half-rate probe: a probe cannot tell
 * another writer from the status writes of our own starting pods (bench/HISTORY.md, 2026-12-04 04:16).
 */
export const YIELD_MIN_WRITE_RATE_PER_S = 2;
/**
 * A yield ends early once the smoothed p90 is below this share of the target: the queue it yielded
 * to has drained (a yield begins above QUEUEING_CEILING_SHARE, over three times higher), and quick
 * recovery may climb back rather than additive growth take over a minute to end the yield.
 */
export const YIELD_DRAINED_SHARE = 0.15;
/**
 * Pods a second that others must create before the sizer counts them as a writer beside it: less
 * is background (a CronJob, a Deployment scaling by a few replicas), which the gradient handles.
 */
export const OTHERS_CREATING_MIN_PER_S = 5;
/**
 * Others' creates must also reach this share of our own rate to be a writer we yield to: beside a
 * rollout writing 200/s, a 10/s writer is not whose queue it is.
 */
export const OTHERS_CREATING_MIN_SHARE = 0.25;

// ---- the latency ceiling, holds and growth (rules 3, 6 and 7) ----

/** Most the latency ceiling cuts in one tick, as for loss. */
export const LATENCY_CEILING_MIN_FACTOR = 0.5;
/** Hold (no growth) once p90 reaches this fraction of latencyTarget, rather than saw against the ceiling. */
export const LATENCY_TARGET_HEADROOM = 0.8;
/** Slow start growth per tick before the first congestion signal: reach a 40× larger rate in ~5 waves. */
export const SLOW_START_FACTOR = 2;
/**
 * Consecutive latency-congested ticks that end slow start (the first only holds). One noisy tick must
 * not cost the exponential ramp (HyStart++, RFC 9406, likewise re-checks a delay signal before
 * leaving slow start); loss and the latency ceiling still end it at once.
 */
export const SLOW_START_EXIT_TICKS = 2;
/** Largest growth of R in one tick, whatever the path (the swing bound upwards). */
export const MAX_GROWTH_PER_TICK = 2;
/**
 * After a loss or a latency episode, climb quickly back to this fraction of the rate it began at
 * (CUBIC's idea): the cause is often someone else's burst, and √R steps would take minutes.
 */
export const RECOVERY_TARGET_FRACTION = 0.9;
/** Share of the gap to the recovery target closed per tick: ~8 ticks from 0.45 to 0.85 of the old rate. */
export const RECOVERY_GAIN = 0.25;
/**
 * CUBIC's fast convergence (RFC 9438 §4.7), with our decrease factor: a congestion episode that begins
 * below the rate the previous one began at means someone else now uses part of the server, so the
 * rate recovery climbs back towards is this fraction of the new episode's rate, not the rate itself.
 */
export const FAST_CONVERGENCE_FACTOR = (1 + LOSS_DECREASE_FACTOR) / 2;
/**
 * Growth is frozen when a guard held the last wave below this share of what the rate allowed, or fewer
 * than this share of its writes were seen: the server then told us nothing about a higher rate
 * (Gradient2's app-limited test).
 */
export const APP_LIMITED_FRACTION = 0.5;

// ---- the wave period and its cycle ----

/** Shortest wave period: waves are R × period, so a 0 s minInterval still gets waves of a second's writes. */
export const MIN_WAVE_PERIOD_MS = 1_000;
/**
 * Longest wave period: a wave's writes are paced over at most this long whatever minInterval says,
 * so a long interval (up to 24h) neither keeps a wave, and the deletion of its rollout, in flight for
 * hours nor sizes deletes on an hours-long period. Waves still start minInterval apart.
 */
export const MAX_WAVE_PERIOD_MS = 10_000;
/**
 * Most of a wave period the cycle overhead may take: the writes are then sent at up to
 * 1 / (1 − this) times R. Beyond it the cycle simply runs long (the server is slow, and self-clocking
 * by concurrency is what should act, not a faster pace).
 */
export const MAX_CYCLE_OVERHEAD_SHARE = 0.5;
/** Weight of a new measurement in the cycle overhead estimate: half, so one odd cycle moves it half way. */
export const CYCLE_OVERHEAD_ALPHA = 0.5;
/**
 * A wave that waited for minInterval shows no overhead beyond the allowance it had, so the allowance
 * shrinks by this factor and is measured again when the cycle next runs long.
 */
export const CYCLE_OVERHEAD_DECAY = 0.9;
/** A cycle within this much of the period waited for minInterval rather than ran long. */
export const CYCLE_PERIOD_SLACK_MS = 50;
/**
 * A wave decided later than one period after the previous one (its slowest answers, the reconcile)
 * also carries what the rate allowed in the extra time, up to this share of the period. The rate the
 * sizer chose is then the rate sent, not R × period / cycle: the overhead estimate only ever catches
 * up with a cycle that already ran long. See AdaptiveWaveSizer's #lateMs for when a late wave earns nothing.
 */
export const MAX_LATE_WAVE_CREDIT_SHARE = 0.5;

// ---- concurrency ----

/** Write latency assumed before any is measured, for the first concurrency. */
export const INITIAL_LATENCY_ESTIMATE_MS = 100;
/**
 * Concurrency = R × baseline × this. 2× leaves room for slow start's 1.25 tolerance and noise, so
 * concurrency binds only when latency doubles, which is exactly when sending less at once helps. Out
 * of slow start the gradient tolerates baseline + QUEUEING_ALLOWANCE_SHARE × target, more than 2× a
 * baseline under a fifth of the target: there the in-flight cap binds first (self-clocking).
 */
export const CONCURRENCY_HEADROOM = 2;
/** Fewest writes in flight we ever allow: latency of one slow write must not stall a wave. */
export const MIN_CONCURRENCY = 4;
/** Most writes in flight: kube-apiserver's default --max-mutating-requests-inflight is 200. */
export const MAX_CONCURRENCY = 256;
