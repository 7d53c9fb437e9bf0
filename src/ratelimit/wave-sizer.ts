// The wave sizer: how many pods the next wave creates, and at what pace the pacer sends them.
//
// Adaptive control variable: R, the write rate in writes/s. A wave is R × the wave period (plus what
// a late cycle left unsent, MAX_LATE_WAVE_CREDIT_SHARE), so a wave takes about one period to send; concurrency is derived from R by Little's law with headroom, so
// when the server slows the in-flight cap binds at once (self-clocking) before the controller reacts.
// Each call (one per wave decision) applies the first rule that matches:
//   1. loss (429, 5xx, timeout, dropped connection): R ×= 0.5 once per congestion episode, pause until
//      the largest Retry-After (at least LOSS_MIN_PAUSE_MS), leave slow start (AIMD, DESIGN);
//   2. the smoothed p90 past QUEUEING_CEILING_SHARE of the target while others launch pods beside us:
//      R ×= GRADIENT_MIN and yield to them (YIELD_MIN_WRITE_RATE_PER_S);
//   3. p90 above spec.guards.apiServer.latencyTarget, a hard ceiling: R ×= max(0.5, target/p90), or
//      the gradient's whole step (rule 5) if that cuts more;
//   4. the tick that follows a baseline probe only re-anchors the baseline;
//   5. the latency gradient (DESIGN, Gradient2): g = clamp(tolerated/short, 0.5, 1) with
//      tolerated = min(baseline + 0.25·target, 0.5·target), where short is our p90 lightly smoothed
//      over ticks and target is latencyTarget: the SLO bounds the queueing delay callers accept on
//      top of the unloaded latency (LEDBAT's form), and no baseline lifts tolerated past 0.5·target.
//      Slow start tolerates only 1.25·baseline (DESIGN's tolerance), so it stops at the first queue;
//      g < 1 → R = 0.8·R + 0.2·(g·R + √R), never growing; with short above 0.5·target, the whole
//      step R = g·R + √R (the ceiling is a bound, not a point to ease towards);
//   6. p90 within LATENCY_TARGET_HEADROOM of the target, p99 above it (the API call SLO is a p99), or
//      the last wave did not use the rate (a guard held it back, so the server told us nothing about
//      more): hold;
//   7. grow: slow start ×2 until the first congestion signal, then R + 0.2·√R (DESIGN's formula at
//      g = 1), sped up towards 0.9 × the rate the last loss or latency episode began at (CUBIC's quick
//      return). An episode that begins below the last one's rate remembers less than its own rate
//      (CUBIC's fast convergence), so a writer that arrived since keeps the share it took.
// Changes to R are bounded to ×2 up and ×0.5 down per tick, and R stays in [minSize, maxSize]/period,
// except while the sizer yields to another writer launching pods beside it (YIELD_MIN_WRITE_RATE_PER_S):
// down to a lower floor, with minSize waves sent over longer.
// A wave's cycle is longer than the time its writes take to send: the slowest answers, the status
// patch and the next reconcile follow before the next wave starts. That overhead is measured from
// the spacing of wave decisions and the wave's writes are sent faster to make room for it, so the
// average rate over a cycle is R, not R·period/(period + overhead).
// The baseline is the unloaded p90: the mean of the first samples (each capped at slow start's
// floor point, 2.5× the mean so far: slow start's own queue must not pass for the unloaded latency
// and let it double again into overload), then only re-measured, every
// BASELINE_PROBE_INTERVAL_MS (sooner after PROBE_AFTER_CONGESTED_TICKS of "queueing"), by sending one
// wave at half rate (BBR's PROBE_RTT). Loaded ticks never feed it: an EMA over them follows our own
// queueing upwards, and one fed only by "uncongested" ticks keeps the low noise and drops the high,
// sinking until all load reads as queueing (both seen in simulation).
// Finally
//   wave = min(clamp(R·period + credit, minSize, maxSize), maxPending − pending, maxStarting − starting,
//              ipFree − reserve, nodeSlots, budget, remaining)
// with the winning term recorded as limitedBy; guards may take the wave to 0, minSize never lifts it.

import type { BatchRolloutSpec, LimitedBy } from "../api/batchrollout.ts";
import { durationToMs } from "../api/duration.ts";
import type { IpHeadroom } from "./ipam/index.ts";
import { reserveCount } from "./ipam/reserve.ts";
import { type WriteTick, lossCount } from "./write-latency.ts";

/** AIMD's multiplicative decrease on a loss: TCP's halving, and DESIGN's. */
export const LOSS_DECREASE_FACTOR = 0.5;
/** Least pause after a loss without a Retry-After (timeouts, 5xx): APF's own first Retry-After is 1 s. */
export const LOSS_MIN_PAUSE_MS = 1_000;
/**
 * Gradient tolerance in slow start: p90 up to this multiple of the baseline counts as no queueing
 * (DESIGN). It also bounds how far one probe may lower the baseline.
 */
export const GRADIENT_TOLERANCE = 1.25;
/**
 * Queueing delay the gradient tolerates out of slow start, above the baseline, as a share of
 * spec.guards.apiServer.latencyTarget: p90 up to baseline + this × target counts as no queueing
 * (LEDBAT's fixed target delay, scaled by the SLO). The SLO says how much waiting callers accept;
 * the baseline is waiting they get anyway. An earlier form, max(1.25 × baseline, 0.3 × target),
 * read total latency against the SLO: on a busy 2-core test bed whose half-rate probes measured
 * 227–278 ms it left 50–70 ms for our own queue, held the rate near 66/s at p90 ~300 ms, and a fixed
 * 100/s finished 1.28× sooner with the bystander's p99 no worse (619 against 587 ms). Kube-apiserver
 * never queued our writes in APF meanwhile (workload-low waiting 0 in every sample): the latency is
 * execution under CPU contention, which everyone shares, so the SLO share is the right yardstick.
 */
export const QUEUEING_ALLOWANCE_SHARE = 0.25;
/**
 * Most queueing the gradient tolerates, as a share of latencyTarget, however high the baseline: p90
 * above it always counts as queueing. A probe that finds latency high at half rate raises the
 * baseline, and beside a second writer (or a backlog behind the API server) it climbed from 165 to
 * 706 ms in a full-mode stressor run: the gradient then tolerated p90 880 ms, the rate grew back
 * beside the 50/s writer, and the bystander's p99 reached 1.25 s. Someone else's load is not a new
 * normal to match. The price: a server whose unloaded p90 is above this share of the target settles
 * where the gradient's √R term balances its cut, R = 1/(1 − g)² (36/s at 0.6 × the target); raising
 * latencyTarget is how a user says such latency is normal.
 */
export const QUEUEING_CEILING_SHARE = 0.5;
/**
 * Weight of the gradient's step while the smoothed p90 is above QUEUEING_CEILING_SHARE of the target:
 * the whole step, R = g·R + √R, where below the ceiling only GRADIENT_SMOOTHING of it is taken. Below
 * the ceiling the queue may be noise or our own and easing off is enough; above it, nothing the
 * baseline says makes the queue tolerable. With the smoothed step a full-mode stressor run (dc83ce9)
 * took ~25 s to come down from 110/s to 60/s beside a 50/s writer, p90 600–950 ms meanwhile, and the
 * bystander's p99 while both wrote was 1,063 ms. Where the ceiling is what the gradient tolerates
 * (baseline ≥ (QUEUEING_CEILING_SHARE − QUEUEING_ALLOWANCE_SHARE) × target), the √R term keeps a p90
 * just over it from cutting at all (g·R + √R ≥ R while g ≥ 1 − 1/√R); with a lower baseline, crossing
 * the ceiling cuts at once by at least 1 − tolerated/ceiling (40 % at a 50 ms baseline).
 */
export const OVER_CEILING_GRADIENT_WEIGHT = 1;
/**
 * Floor of the gradient (DESIGN): one tick cuts R by at most GRADIENT_SMOOTHING × (1 − GRADIENT_MIN)
 * below the queueing ceiling, and to no less than GRADIENT_MIN·R + √R past it.
 */
export const GRADIENT_MIN = 0.5;
/** Weight of the new estimate in R = (1 − w)·R + w·(g·R + √R) (DESIGN's 0.2). */
export const GRADIENT_SMOOTHING = 0.2;
/**
 * Weight of the newest tick in the short-term latency the gradient compares with the baseline
 * (Gradient2's "short RTT"). 0.5 halves a lone outlier's pull, yet a 4× latency step still drives the
 * gradient to its floor on the first tick.
 */
export const SHORT_LATENCY_ALPHA = 0.5;
/** Latency ticks averaged into the first baseline; until then the gradient may hold but not cut. */
export const BASELINE_WARMUP_SAMPLES = 5;
/**
 * Most a warm-up tick may weigh, as a multiple of the mean so far: the point where slow start's
 * gradient hits its floor, so beyond doubt queueing (in full mode slow start's own queue took a plain
 * mean from 75 to 307 ms, and slow start doubled again to 200/s into a 2.2 s p90). ±50 % noise stays
 * below it.
 */
export const WARMUP_SAMPLE_CAP = GRADIENT_TOLERANCE / GRADIENT_MIN;
/**
 * How often the baseline is re-probed ("re-probe the baseline now and then", DESIGN): one wave at
 * PROBE_RATE_FACTOR of the rate, whose p90 is the unloaded latency of the moment. Costs ~2 % of
 * throughput at a 1 s period; without it a creeping baseline would blind the gradient (BBR probes
 * min RTT every 10 s for the same reason).
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
 * unloaded latency itself has risen must be known soon. (It was added when a probe also decided
 * whether to yield, which others' pod creates decide now: a 50/s second writer overloaded the
 * server within ~10 s of starting.)
 */
export const PROBE_AFTER_OVER_CEILING_TICKS = 3;
/**
 * Least write rate while the sizer yields to another writer's load. It yields when the smoothed p90
 * is past QUEUEING_CEILING_SHARE of the target while others create pods at OTHERS_CREATING_MIN_PER_S
 * or more, and at OTHERS_CREATING_MIN_SHARE of our rate or more (WaveSignals.othersCreating): the
 * queue is then theirs as much as ours, and a bulk launch is the one that can wait. The yield cuts
 * the rate by GRADIENT_MIN at once; after that the rate's floor is this instead of minSize per
 * period (waves keep minSize pods and are sent over longer than a period), a cut past the ceiling
 * drops the gradient's √R term, no probes are sent, and growth is additive only. It ends once the
 * others stop (their rate under OTHERS_CREATING_MIN_PER_S; quick recovery then climbs back), the
 * queue has drained (YIELD_DRAINED_SHARE), or additive growth is back at RECOVERY_TARGET_FRACTION of
 * the rate the episode began at. Before yielding existed, the minSize floor and the √R equilibrium,
 * R = 1/(1 − g)², held the rollout at 10–13/s beside a 50/s writer, and that alone kept the
 * bystander's p99 over 1 s in 25 of 93 seconds (2026-12-03 10:15).
 * Why the others' creates and not a probe: the sizer first inferred someone else's queue from a
 * half-rate probe whose p90 hardly fell. That test cannot tell another writer from the load our own
 * pods cause (the kubelets' status writes as they start), so it yielded twice with no second writer
 * (full run 2026-12-04 04:16); and beside a real 50/s writer its probes read 178 and 361 ms, under
 * the ceiling, so the yield began 54 s after the writer did and the bystander's p99 reached 1,048 ms.
 */
export const YIELD_MIN_WRITE_RATE_PER_S = 2;
/**
 * A yield ends early once the smoothed p90 is below this share of the target: the queue it yielded
 * to has drained (a yield begins above QUEUEING_CEILING_SHARE, over three times higher), and quick
 * recovery may climb back. Beside a second writer still running, the yielding rollout's writes read
 * 290–480 ms (full-mode stressor, 2026-12-04 01:32); once the queue had drained, 17–110 ms, yet
 * additive growth took another 80 s to end the yield (2026-12-04 03:01).
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
/** Weight of a new measurement in the cycle overhead estimate. */
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
 * up with a cycle that already ran long (1 s waves cycled in 1.075 s median in the 07:12 full run).
 * See #lateMs for when a late wave earns nothing.
 */
export const MAX_LATE_WAVE_CREDIT_SHARE = 0.5;
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

export interface RateLimit {
  /** Writes in flight at once (bottleneck maxConcurrent). */
  concurrency: number;
  /** The average write rate R: writes per second over a wave's whole cycle. */
  perSecond: number;
  /**
   * Writes started per second within a wave (bottleneck minTime = 1000 / sendPerSecond); above
   * perSecond by as much as the cycle's overhead needs. Absent: perSecond.
   */
  sendPerSecond?: number;
}

/** What the lead observed since the previous decision. Absent guards do not cap. */
export interface WaveSignals {
  now: number;
  /** Pods still to create. */
  remaining: number;
  /** WriteLatencyWindow.tick(now): the writes since the previous call. */
  writes?: WriteTick;
  /** RetryAfterGate.notBefore, shared with the pacer. */
  retryAfterUntil?: number;
  /** Pods waiting for the scheduler, counted in spec.guards.scheduler.scope. */
  pending?: number;
  /**
   * This rollout's pods the scheduler has tried and found no node for. More pods from the same
   * template would not fit either, so they stop new waves until the scheduler places them.
   */
  unschedulable?: { count: number; message?: string };
  /**
   * This rollout's pods bound to a node but not yet Running, and its creates in flight (the cache
   * has not shown them yet, and they will need starting too). Nodes that start pods slower than we
   * create them gain nothing from more pods, and every pod waiting to start adds status writes to
   * the API server the nodes' own updates queue behind.
   */
  starting?: number;
  /** IP headroom from the selected provider; the reserve comes from spec.guards.ipam.reserve. */
  ipam?: IpHeadroom;
  /** Free pod slots on eligible nodes. */
  nodeSlots?: number;
  /** Pods this rollout may create this wave under a cluster-wide budget; set only while other rollouts of this operator write too. */
  budget?: number;
  /**
   * Pods per second created by others (not by any rollout of this operator) in the operator's scope,
   * over the last few seconds (SchedulerSignal.othersCreating): a writer whose load shares our queue.
   */
  othersCreating?: number;
}

export interface WaveDecision {
  size: number;
  limitedBy: LimitedBy;
  /** Why, in words a person can act on (status.wave.message). */
  message: string;
  rateLimit: RateLimit;
  /** > 0 while the API server asked us to wait; call again after this long. */
  waitMs: number;
}

export type SizerSpec = Pick<BatchRolloutSpec, "waves" | "guards">;

export interface WaveSizer {
  /** Call once per wave decision, with the writes observed since the previous call. */
  next(signals: WaveSignals): WaveDecision;
  /**
   * The decision at the current rate, for a reconcile that cannot start a wave (minInterval):
   * guards and Retry-After are read afresh, but nothing is learned, so reconciles between two
   * waves neither move the rate nor use up the writes the next decision should weigh.
   */
  peek(signals: Omit<WaveSignals, "writes">): WaveDecision;
  /** Takes a new spec generation without losing what was learned about the cluster. */
  updateSpec(spec: SizerSpec): void;
}

interface Candidate {
  size: number;
  limitedBy: LimitedBy;
  message: string;
}

export function wavePeriodMs(spec: SizerSpec): number {
  return clamp(durationToMs(spec.waves.minInterval), MIN_WAVE_PERIOD_MS, MAX_WAVE_PERIOD_MS);
}

/** Time between two wave starts when nothing runs long: minInterval, at least MIN_WAVE_PERIOD_MS. */
function waveIntervalMs(spec: SizerSpec): number {
  return Math.max(MIN_WAVE_PERIOD_MS, durationToMs(spec.waves.minInterval));
}

function formatMs(ms: number): string {
  return ms >= 1_000 ? `${(ms / 1_000).toFixed(ms >= 10_000 ? 0 : 1)} s` : `${Math.round(ms)} ms`;
}

function formatRate(perSecond: number): string {
  return perSecond >= 10 ? `${Math.round(perSecond)}/s` : `${perSecond.toFixed(1)}/s`;
}

/** Time a late wave is credited for, and at what rate. */
interface Credit {
  ms: number;
  perSecond: number;
}
const NO_CREDIT: Credit = { ms: 0, perSecond: 0 };

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

/**
 * The guard terms, in the order that wins ties: the cluster's own limits first, then the budget,
 * then what is left to do. A tie with the rate term goes to the guard (it is the reason to act on).
 */
export function guardCandidates(spec: SizerSpec, signals: WaveSignals): Candidate[] {
  const out: Candidate[] = [];
  const { maxPending, scope } = spec.guards.scheduler;
  const unschedulable = signals.unschedulable;
  if (unschedulable && unschedulable.count > 0) {
    out.push({
      size: 0,
      limitedBy: "Scheduler",
      message: `${unschedulable.count} pods unschedulable${unschedulable.message ? `: ${unschedulable.message}` : ""}`,
    });
  }
  if (signals.pending !== undefined) {
    const room = Math.max(0, maxPending - signals.pending);
    out.push({
      size: room,
      limitedBy: "Scheduler",
      message:
        room === 0
          ? `${signals.pending} pods pending for the scheduler (max ${maxPending}, scope ${scope}): waiting for it to catch up`
          : `${signals.pending} pods pending for the scheduler (max ${maxPending}, scope ${scope}): room for ${room} more`,
    });
  }
  if (signals.starting !== undefined) {
    const { maxStarting } = spec.guards.kubelet;
    const room = Math.max(0, maxStarting - signals.starting);
    out.push({
      size: room,
      limitedBy: "Kubelet",
      message:
        room === 0
          ? `${signals.starting} pods bound to nodes but not yet Running (spec.guards.kubelet.maxStarting ${maxStarting}): waiting for their nodes to start them (check the pods' events for image pulls or network setup)`
          : `${signals.starting} pods bound to nodes but not yet Running (spec.guards.kubelet.maxStarting ${maxStarting}): room for ${room} more`,
    });
  }
  const ipam = signals.ipam;
  if (ipam?.overflow && ipam.overflow.openNodes > 0 && spec.guards.ipam.provider !== "None") {
    // The scheduler has shown it puts pods where there is no address, and those nodes take more.
    out.push({ size: 0, limitedBy: "IPAM", message: `${ipam.overflow.message}; no pod is created while ${ipam.overflow.openNodes} of those nodes have free pod slots` });
  }
  if (ipam && ipam.free !== undefined && spec.guards.ipam.provider !== "None") {
    const reserve = reserveCount(spec.guards.ipam.reserve, ipam.capacity, ipam.free);
    const room = Math.max(0, ipam.free - reserve);
    out.push({
      size: room,
      limitedBy: "IPAM",
      message: `${ipam.free} pod IPs free (${ipam.provider}), ${reserve} kept in reserve (spec.guards.ipam.reserve ${spec.guards.ipam.reserve}): room for ${room}`,
    });
  }
  if (signals.nodeSlots !== undefined) {
    const room = Math.max(0, signals.nodeSlots);
    out.push({
      size: room,
      limitedBy: "NodeCapacity",
      message:
        room === 0
          ? "no free pod slots on nodes the template can use (check nodeSelector, tolerations, cordoned or NotReady nodes, allocatable pods)"
          : `${room} free pod slots on nodes the template can use`,
    });
  }
  if (signals.budget !== undefined) {
    const room = Math.max(0, signals.budget);
    out.push({ size: room, limitedBy: "Budget", message: `the cluster-wide write budget leaves ${room} pods for this rollout this wave` });
  }
  const remaining = Math.max(0, signals.remaining);
  out.push({ size: remaining, limitedBy: "Remaining", message: `${remaining} pods left to create or delete` });
  return out;
}

/** The smallest of the guards and the base term; earlier candidates win ties. */
export function pickSmallest(guards: readonly Candidate[], base: Candidate): Candidate {
  let best = base;
  for (let i = guards.length - 1; i >= 0; i--) {
    const c = guards[i];
    if (c && c.size <= best.size) best = c;
  }
  return best;
}

function pauseDecision(now: number, pauseUntil: number, rateLimit: RateLimit, note: string): WaveDecision {
  const waitMs = pauseUntil - now;
  return {
    size: 0,
    limitedBy: "ApiServer",
    message: `the API server asked us to wait (Retry-After): ${formatMs(waitMs)} left${note}`,
    rateLimit,
    waitMs,
  };
}

function doneDecision(rateLimit: RateLimit): WaveDecision {
  return { size: 0, limitedBy: "None", message: "all pods created", rateLimit, waitMs: 0 };
}

/** Loss counts of a tick, as a person reads them. */
function describeLosses(w: WriteTick): string {
  const parts: string[] = [];
  if (w.throttled) parts.push(`${w.throttled}×429`);
  if (w.serverErrors) parts.push(`${w.serverErrors}×5xx`);
  if (w.timeouts) parts.push(`${w.timeouts} timeouts`);
  if (w.networkErrors) parts.push(`${w.networkErrors} dropped connections`);
  return parts.join(", ");
}

interface RateAction {
  limitedBy: "Rate" | "ApiServer" | "Latency";
  note: string;
}

/** Adaptive waves: AIMD on loss, a latency gradient on our own p90, a hard latency ceiling. See the file header. */
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
  /** The rate when the last congestion episode (loss, or a latency cut) began: recovery climbs back towards it. */
  #lossRate: number | undefined;
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
  #action: RateAction = { limitedBy: "Rate", note: "starting at spec.waves.initialSize" };

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
      lossRate: this.#lossRate,
      probing: this.#probe === "sending",
      overheadMs: this.#overheadMs,
      yielding: this.#yield !== undefined,
    };
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
    if (last.size === 0 || this.#pauseUntil > last.at || this.#action.limitedBy !== "Rate") return 0;
    // A wave of minSize paced below minSize per period (yielding) is meant to take longer.
    return clamp(now - last.at - Math.max(this.#intervalMs, last.sendMs), 0, MAX_LATE_WAVE_CREDIT_SHARE * this.#periodMs);
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
    if (signals.remaining <= 0) return doneDecision(this.#rateLimit(1));
    if (now < this.#pauseUntil) {
      return pauseDecision(now, this.#pauseUntil, this.#rateLimit(1), `; then ${formatRate(this.#rate)} (${this.#action.note})`);
    }
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
    const { now } = signals;
    this.#pauseUntil = Math.max(this.#pauseUntil, signals.retryAfterUntil ?? 0);
    if (signals.remaining <= 0) return doneDecision(this.#rateLimit(1));
    if (now < this.#pauseUntil) {
      return pauseDecision(now, this.#pauseUntil, this.#rateLimit(1), `; then ${formatRate(this.#rate)} (${this.#action.note})`);
    }
    const { rateSize: _, ...decision } = this.#decide(signals, NO_CREDIT);
    return decision;
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
    const chosen = pickSmallest(guardCandidates(this.#spec, signals), base);
    return { ...chosen, rateLimit: this.#rateLimit(factor), waitMs: 0, rateSize };
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
        this.#action = { limitedBy: "ApiServer", note: `API server rejected ${describeLosses(w)}: rate halved from ${formatRate(previous)}` };
      } else {
        this.#action = { limitedBy: "ApiServer", note: `API server still rejecting (${describeLosses(w)}); rate already halved for this episode` };
      }
    } else if (yieldsNow) {
      this.#beginLatencyEpisode(previous);
      this.#yield = { untilRate: RECOVERY_TARGET_FRACTION * Math.max(this.#lossRate ?? previous, previous) };
      this.#rate = previous * GRADIENT_MIN;
      this.#slowStart = false;
      this.#action = {
        limitedBy: "Latency",
        note: `others create pods at ${formatRate(others)} and write latency ${latencyNote} is past ${QUEUEING_CEILING_SHARE}× the target: yielding to them`,
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
      };
    } else if (measuringProbe) {
      if (p90 !== undefined && baseline !== undefined) {
        // Upwards a probe is trusted (latency that stays high at half rate is not ours), though what the
        // gradient tolerates stays under QUEUEING_CEILING_SHARE of the target; downwards one
        // lucky probe may lower the baseline by at most 1/GRADIENT_TOLERANCE, or it would read all load as queueing.
        const sample = Math.max(p90, baseline / GRADIENT_TOLERANCE);
        this.#baselineMs = baseline + PROBE_BASELINE_WEIGHT * (sample - baseline);
      }
      this.#action = { limitedBy: "Rate", note: `baseline re-measured: p90 ${p90 === undefined ? "unknown" : formatMs(p90)} at ${PROBE_RATE_FACTOR}× rate` };
    } else if (gradient < 1 && (!warm || (this.#slowStart && this.#congestedTicks < SLOW_START_EXIT_TICKS))) {
      this.#beginLatencyEpisode(previous);
      this.#action = { limitedBy: "Latency", note: `write latency ${latencyNote}: holding to see whether it is queueing` };
    } else if (gradient < 1) {
      const weight = overCeiling ? OVER_CEILING_GRADIENT_WEIGHT : GRADIENT_SMOOTHING;
      const eased = (1 - weight) * previous + weight * gradientRate;
      this.#beginLatencyEpisode(previous);
      this.#rate = Math.min(previous, eased);
      this.#slowStart = false;
      this.#action = {
        limitedBy: "Latency",
        note: `write latency ${latencyNote}: ${
          overCeiling
            ? `queueing past ${QUEUEING_CEILING_SHARE}× the target, cutting${this.#yield ? ` (yielding: others create pods at ${formatRate(others)})` : ""}`
            : "queueing, easing off"
        }`,
      };
    } else if (p90 !== undefined && p90 >= LATENCY_TARGET_HEADROOM * this.#latencyTargetMs) {
      this.#action = { limitedBy: "Latency", note: `write latency p90 ${formatMs(p90)} is near the ${this.#spec.guards.apiServer.latencyTarget} target: holding` };
    } else if (w?.p99 !== undefined && w.p99 > this.#latencyTargetMs) {
      // Kubernetes' API call SLO is a p99: while our own slowest writes break it, more load would too.
      this.#action = { limitedBy: "Latency", note: `write latency p99 ${formatMs(w.p99)} is above the ${this.#spec.guards.apiServer.latencyTarget} target: holding` };
    } else if (appLimited) {
      this.#action = { limitedBy: "Rate", note: "holding: the last wave did not use the rate" };
    } else if (this.#slowStart) {
      this.#latencyEpisode = false;
      this.#rate = previous * SLOW_START_FACTOR;
      this.#action = { limitedBy: "Rate", note: `ramping up ×${SLOW_START_FACTOR} per wave${latencyNote ? `, ${latencyNote}` : ""}` };
    } else {
      this.#latencyEpisode = false;
      let grown = previous + GRADIENT_SMOOTHING * Math.sqrt(previous);
      // Recovery assumes the server's room came back; beside someone else's load only slow growth finds out.
      const recoveryTarget = this.#yield ? 0 : (this.#lossRate ?? 0) * RECOVERY_TARGET_FRACTION;
      if (previous < recoveryTarget) grown = Math.max(grown, previous + (recoveryTarget - previous) * RECOVERY_GAIN);
      this.#rate = grown;
      const mode = this.#yield
        ? `yielding to others creating pods at ${formatRate(others)} until back at ${formatRate(this.#yieldEndRate(this.#yield))}, growing slowly`
        : previous < recoveryTarget
          ? this.#yieldEndedNow
            ? `${this.#yieldEndedNow}, recovering`
            : "recovering"
          : "probing";
      this.#action = { limitedBy: "Rate", note: `${mode}${latencyNote ? `, ${latencyNote}` : ""}` };
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
    // allowance: one more doubling from there overshot into p90 1.3 s and the scheduler guard.
    const tolerated = this.#slowStart ? GRADIENT_TOLERANCE * baseline : baseline + QUEUEING_ALLOWANCE_SHARE * target;
    return Math.min(tolerated, QUEUEING_CEILING_SHARE * target);
  }

  /** Queueing began: remember the rate it began at, which recovery climbs back towards as after a loss. */
  #beginLatencyEpisode(rate: number): void {
    if (this.#latencyEpisode) return;
    this.#latencyEpisode = true;
    this.#rememberEpisodeRate(rate);
  }

  #rememberEpisodeRate(rate: number): void {
    const last = this.#lossRate;
    this.#lossRate = last !== undefined && rate < last ? rate * FAST_CONVERGENCE_FACTOR : rate;
  }

  #warmUpBaseline(p90: number): void {
    this.#baselineSamples += 1;
    const current = this.#baselineMs;
    this.#baselineMs = current === undefined ? p90 : current + (Math.min(p90, WARMUP_SAMPLE_CAP * current) - current) / this.#baselineSamples;
  }
}

/**
 * Fixed waves of spec.waves.initialSize, sent at initialSize per wave period. Fixed fixes the pace,
 * not the safety: it still pauses for Retry-After and respects the scheduler, kubelet, IPAM,
 * node-capacity and budget guards and what remains, because those protect the cluster and everyone
 * else on it. Users who want none of that set the guards wide open (maxPending, maxStarting, provider None).
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
    const rateLimit: RateLimit = { concurrency: clamp(size, MIN_CONCURRENCY, MAX_CONCURRENCY), perSecond: size / (periodMs / 1_000) };
    const w = signals.writes;
    this.#pauseUntil = Math.max(this.#pauseUntil, signals.retryAfterUntil ?? 0, w?.retryAfterUntil ?? 0);
    if (w && lossCount(w) > 0) this.#pauseUntil = Math.max(this.#pauseUntil, now + LOSS_MIN_PAUSE_MS);
    if (signals.remaining <= 0) return doneDecision(rateLimit);
    if (now < this.#pauseUntil) return pauseDecision(now, this.#pauseUntil, rateLimit, "");
    const base: Candidate = { size, limitedBy: "Fixed", message: `fixed waves of ${size} pods (spec.waves.strategy Fixed)` };
    return { ...pickSmallest(guardCandidates(this.#spec, signals), base), rateLimit, waitMs: 0 };
  }
}

/** The sizer for a spec's strategy. */
export function createWaveSizer(spec: SizerSpec): WaveSizer {
  return spec.waves.strategy === "Fixed" ? new FixedWaveSizer(spec) : new AdaptiveWaveSizer(spec);
}
