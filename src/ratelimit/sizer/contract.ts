// What a wave sizer reads and answers, and the wave period both strategies pace a wave over.
// The contract in words: docs/architecture.md, "The wave sizer".

import type { BatchRolloutSpec, LimitedBy } from "../../api/batchrollout.ts";
import { durationToMs } from "../../api/duration.ts";
import type { IpHeadroom } from "../ipam/index.ts";
import type { WriteTick } from "../write-latency.ts";

/** Shortest wave period: a 0 s minInterval still gets waves of a second's writes. */
export const MIN_WAVE_PERIOD_MS = 1_000;
/** Longest wave period: a long minInterval (up to 24h) spaces the waves' starts, not their writes. */
export const MAX_WAVE_PERIOD_MS = 10_000;

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
  /**
   * Pods still to create or delete. Only whether any are left matters here: the planner bounds the
   * last wave by what actually fits (and labels it Remaining).
   */
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

/** One term of the wave's minimum: a size and the bound it stands for. */
export interface Candidate {
  size: number;
  limitedBy: LimitedBy;
  message: string;
}

/** How long a wave's writes are paced over: minInterval, within [MIN_WAVE_PERIOD_MS, MAX_WAVE_PERIOD_MS]. */
export function wavePeriodMs(spec: SizerSpec): number {
  return clamp(durationToMs(spec.waves.minInterval), MIN_WAVE_PERIOD_MS, MAX_WAVE_PERIOD_MS);
}

/** Time between two wave starts when nothing runs long: minInterval, at least MIN_WAVE_PERIOD_MS. */
export function waveIntervalMs(spec: SizerSpec): number {
  return Math.max(MIN_WAVE_PERIOD_MS, durationToMs(spec.waves.minInterval));
}

export function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
