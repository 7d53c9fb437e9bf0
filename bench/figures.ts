import type { PodStamps } from "./pod-tracker.ts";
import { postPodBuckets, type ApfIdentity, type ApiServerWindow } from "./sampler.ts";
import type { BystanderRecord, Sample, WriterRecord } from "./samples.ts";
import { quantileOfIncrease, sumBy, sumOf } from "./scrape/prometheus-text.ts";

// The figures of one method, computed after the fact from the pod stamps, the per-second samples, the
// bystander's and the writer's raw records, and the first and last kube-apiserver scrapes.

const MS_PER_S = 1_000;
/** Flow schemas listed per method in the "who wrote" breakdown. */
const TOP_FLOWS = 4;
/** Stressor: the rollout's rate before the second writer is its mean over this many seconds. */
export const STRESSOR_BASELINE_S = 5;
/** Stressor: the rate counts as cut when its mean over STRESSOR_CUT_WINDOW_S falls to this share of the baseline. */
export const STRESSOR_CUT_FRACTION = 0.7;
export const STRESSOR_CUT_WINDOW_S = 2;

export interface ProcWindow {
  cpuS: number;
  peakRssMB: number;
}

export interface Correctness {
  expected: number;
  /** Distinct pods (UIDs) ever seen. */
  seen: number;
  existing: number;
  /** Pods sharing a name or ordinal with another. */
  duplicates: number;
  notRunningAtEnd: number;
  ok: boolean;
}

export interface Figures {
  makespanRunningS?: number;
  makespanScheduledS?: number;
  /** Method start → first pod seen (tool start-up, controller reaction). */
  leadInS?: number;
  /** N over makespan → Running; only when all N pods ran. */
  throughputPerS?: number;
  /**
   * The pods that reached Running over first pod seen → the last of them Running. Equals throughputPerS
   * when all N ran. For a method that lost creates (the storm, when APF's Retry-After outlasts the client's
   * retries) it is the rate of what it did create, which is the faster part: the lost creates would have
   * been the last to land.
   */
  runningThroughput?: { pods: number; perS: number };
  peakRunningPerS: number;
  bystander: { requests: number; p50Ms?: number; p99Ms?: number; errors: number };
  /** 429s our own writer clients saw (storm, seed batches), with the Retry-After values. */
  clientThrottled?: number;
  retryAfterS: Record<string, number>;
  /** The operator's own rest_client_requests_total{code="429"} increase. */
  operatorThrottled?: number;
  /** APF rejections for the writer's flow schema and priority level (exact), and for the whole shared level. */
  apfRejectedWriter: number;
  apfRejectedLevel: number;
  /** Most requests waiting in the shared priority level's queues in any second. */
  maxInQueueLevel: number;
  postPodsP99Ms: { client?: number; apiServer?: number };
  maxSchedulerPending?: number;
  maxUnscheduled: number;
  proc: Record<string, ProcWindow>;
  maxOperatorEventLoopLagMs?: number;
  /** Requests dispatched by APF during the method, by flow schema / priority level, largest first. */
  dispatched: { flowSchema: string; priorityLevel: string; requests: number }[];
  correctness: Correctness;
}

export interface StressorFigures {
  triggerS: number;
  stormDoneS?: number;
  baselineRatePerS: number;
  duringRatePerS?: number;
  /** Seconds from the second writer's start to the rollout's creation rate falling below the cut fraction. */
  cutAfterS?: number;
  /**
   * Seconds from the second writer's start to the rollout's own sustained slow-down (controllerReaction).
   * The creation rate can fall much sooner without any decision: the rollout's writes then simply wait
   * in the same APF queues.
   */
  controllerCutAfterS?: number;
  controllerCutReason?: string;
  bystanderDuring: { requests: number; p99Ms?: number; errors: number };
  stormThrottled: number;
}

function quantile(sorted: readonly number[], q: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

export function bystanderStats(records: readonly BystanderRecord[]): Figures["bystander"] {
  const ms = records.map((r) => r.ms).sort((a, b) => a - b);
  return { requests: records.length, p50Ms: quantile(ms, 0.5), p99Ms: quantile(ms, 0.99), errors: records.filter((r) => r.error !== undefined).length };
}

/** Pods per 1-s bin of a stamp, bins counted from `origin`. */
export function perSecond(stamps: readonly (number | undefined)[], origin: number): number[] {
  const bins: number[] = [];
  for (const at of stamps) {
    if (at === undefined) continue;
    const i = Math.max(0, Math.floor((at - origin) / MS_PER_S));
    while (bins.length <= i) bins.push(0);
    bins[i]!++;
  }
  return bins;
}

/** Sorted instants, for counting how many fall at or before a moment by binary search. */
class Instants {
  readonly #sorted: number[];
  constructor(values: Iterable<number | undefined>) {
    this.#sorted = [...values].filter((v): v is number => v !== undefined).sort((a, b) => a - b);
  }
  atOrBefore(at: number): number {
    let lo = 0;
    let hi = this.#sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.#sorted[mid]! <= at) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

export type PodCountsAt = (at: number) => { created: number; scheduled: number; running: number; unscheduled: number };

/**
 * Pods seen, bound and Running by a moment, and seen but neither bound nor deleted, from the watch's
 * stamps: sorted once, then O(log n) per moment (a 100,000-pod run has thousands of samples).
 */
export function podCounter(stamps: readonly PodStamps[]): PodCountsAt {
  const seen = new Instants(stamps.map((p) => p.seenAt));
  const scheduled = new Instants(stamps.map((p) => p.scheduledAt));
  const running = new Instants(stamps.map((p) => p.runningAt));
  const goneUnbound = new Instants(stamps.map((p) => (p.deletedAt !== undefined && (p.scheduledAt === undefined || p.scheduledAt > p.deletedAt) ? p.deletedAt : undefined)));
  return (at) => {
    const created = seen.atOrBefore(at);
    const bound = scheduled.atOrBefore(at);
    return { created, scheduled: bound, running: running.atOrBefore(at), unscheduled: Math.max(0, created - bound - goneUnbound.atOrBefore(at)) };
  };
}

/** Fills each sample's pod counts exactly from the stamps, and its bystander percentiles. */
export function enrichSamples(samples: Sample[], stamps: readonly PodStamps[], bystander: readonly BystanderRecord[]): void {
  const countsAt = podCounter(stamps);
  const records = [...bystander].sort((a, b) => a.at - b.at);
  let first = 0;
  for (const s of samples) {
    s.pods = countsAt(s.at);
    // Samples are in time order, so one pass over the sorted records finds each second's requests.
    while (first < records.length && records[first]!.at <= s.at - MS_PER_S) first++;
    let end = first;
    while (end < records.length && records[end]!.at <= s.at) end++;
    if (end > first) {
      const b = bystanderStats(records.slice(first, end));
      s.bystander = { requests: b.requests, errors: b.errors, ...(b.p50Ms === undefined ? {} : { p50Ms: b.p50Ms }), ...(b.p99Ms === undefined ? {} : { p99Ms: b.p99Ms }) };
    }
  }
}

/** Smallest and largest of many values (Math.min(...values) overflows the stack at 100,000 pods). */
function extremes(values: Iterable<number | undefined>): { min?: number; max?: number; count: number } {
  let min: number | undefined;
  let max: number | undefined;
  let count = 0;
  for (const v of values) {
    if (v === undefined) continue;
    count++;
    if (min === undefined || v < min) min = v;
    if (max === undefined || v > max) max = v;
  }
  return { ...(min === undefined ? {} : { min }), ...(max === undefined ? {} : { max }), count };
}

const throughput = (pods: number, ms: number) => Math.round((pods / (ms / MS_PER_S)) * 10) / 10;

export function runningThroughput(firstSeenAt: number | undefined, runningAts: readonly (number | undefined)[]): Figures["runningThroughput"] {
  const running = extremes(runningAts);
  if (firstSeenAt === undefined || running.max === undefined || running.max <= firstSeenAt) return undefined;
  return { pods: running.count, perS: throughput(running.count, running.max - firstSeenAt) };
}

/** The same figure from the saved per-second samples, for runs saved before it existed (1 s resolution). */
export function runningThroughputFromSamples(samples: readonly Sample[], firstSeenAt: number | undefined): Figures["runningThroughput"] {
  let pods = 0;
  let lastAt: number | undefined;
  for (const s of samples) {
    const running = s.pods?.running ?? 0;
    if (running > pods) [pods, lastAt] = [running, s.at];
  }
  if (firstSeenAt === undefined || lastAt === undefined || lastAt <= firstSeenAt) return undefined;
  return { pods, perS: throughput(pods, lastAt - firstSeenAt) };
}

export function correctness(stamps: readonly PodStamps[], expected: number, notRunningAtEnd: number): Correctness {
  const identities = new Map<string, number>();
  for (const p of stamps) identities.set(p.identity, (identities.get(p.identity) ?? 0) + 1);
  let duplicates = 0;
  for (const count of identities.values()) duplicates += count - 1;
  const existing = stamps.filter((p) => p.deletedAt === undefined).length;
  return {
    expected,
    seen: stamps.length,
    existing,
    duplicates,
    notRunningAtEnd,
    ok: stamps.length === expected && existing === expected && duplicates === 0 && notRunningAtEnd === 0,
  };
}

function procWindow(samples: readonly Sample[], start: Record<string, { cpuS: number; rssMB: number }>, end: Record<string, { cpuS: number; rssMB: number; peakRssMB?: number }>): Record<string, ProcWindow> {
  const out: Record<string, ProcWindow> = {};
  const names = new Set([...Object.keys(end), ...samples.flatMap((s) => Object.keys(s.proc))]);
  for (const name of names) {
    const series = samples.map((s) => s.proc[name]).filter((v): v is { cpuS: number; rssMB: number } => v !== undefined);
    const last = end[name] ?? series[series.length - 1];
    const first = start[name] ?? series[0];
    if (!last) continue;
    const peak = Math.max(last.rssMB, end[name]?.peakRssMB ?? 0, ...series.map((v) => v.rssMB));
    // A process started inside the window (operator, writer) counts all of its CPU.
    out[name] = { cpuS: Math.round((last.cpuS - (first && start[name] ? first.cpuS : 0)) * 10) / 10, peakRssMB: Math.round(peak) };
  }
  return out;
}

export interface FigureInputs {
  expected: number;
  startedAt: number;
  endedAt: number;
  stamps: readonly PodStamps[];
  notRunningAtEnd: number;
  samples: readonly Sample[];
  writerResponses: readonly WriterRecord[];
  bystander: readonly BystanderRecord[];
  apiServer: ApiServerWindow;
  /** Flow schema and priority level of the method's pod writes. */
  writer: ApfIdentity;
  procStart: Record<string, { cpuS: number; rssMB: number }>;
  procEnd: Record<string, { cpuS: number; rssMB: number; peakRssMB?: number }>;
}

export function computeFigures(x: FigureInputs): Figures {
  const first = extremes(x.stamps.map((p) => p.seenAt)).min;
  const allOf = (key: "runningAt" | "scheduledAt") => {
    const e = extremes(x.stamps.map((p) => p[key]));
    return e.count >= x.expected ? e.max : undefined;
  };
  const running = allOf("runningAt");
  const scheduled = allOf("scheduledAt");
  const seconds = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? undefined : Math.round((b - a) / 10) / 100);
  const makespanRunningS = seconds(first, running);
  const ran = runningThroughput(first, x.stamps.map((p) => p.runningAt));

  const posts = x.writerResponses.filter((r) => r.method === "POST");
  const throttled = posts.filter((r) => r.code === 429);
  const retryAfterS: Record<string, number> = {};
  for (const r of throttled) {
    const key = r.retryAfter === undefined ? "none" : String(r.retryAfter);
    retryAfterS[key] = (retryAfterS[key] ?? 0) + 1;
  }
  const clientP99 = quantile(posts.map((r) => r.ms).sort((a, b) => a - b), 0.99);
  const apiP99 = x.apiServer.first && x.apiServer.last ? quantileOfIncrease(0.99, postPodBuckets(x.apiServer.first), postPodBuckets(x.apiServer.last)) : undefined;

  const apf = x.samples.map((s) => s.apf).filter((a) => a !== undefined);
  const sched = x.samples.map((s) => s.scheduler?.pending).filter((v): v is number => v !== undefined);
  const ops = x.samples.map((s) => s.operator).filter((o) => o !== undefined);
  const lag = ops.map((o) => o.eventLoopLagMaxMs).filter((v): v is number => v !== undefined);

  const dispatched: Figures["dispatched"] = [];
  if (x.apiServer.first && x.apiServer.last) {
    const by = (samples: typeof x.apiServer.first) => sumBy(samples ?? [], "apiserver_flowcontrol_dispatched_requests_total", ["flow_schema", "priority_level"]);
    const before = by(x.apiServer.first);
    for (const [key, value] of by(x.apiServer.last)) {
      const [flowSchema = "", priorityLevel = ""] = key.split("|");
      const requests = value - (before.get(key) ?? 0);
      if (requests > 0) dispatched.push({ flowSchema, priorityLevel, requests });
    }
    dispatched.sort((a, b) => b.requests - a.requests).splice(TOP_FLOWS);
  }

  // Exact over the window: the last full scrape minus the first.
  const rejectedIn = (samples: typeof x.apiServer.first) =>
    sumOf(samples ?? [], "apiserver_flowcontrol_rejected_requests_total", { flow_schema: x.writer.flowSchema, priority_level: x.writer.priorityLevel });
  const writerRejected = Math.max(0, rejectedIn(x.apiServer.last) - rejectedIn(x.apiServer.first));
  const windowed = x.bystander.filter((r) => r.at >= x.startedAt && r.at <= x.endedAt);
  const unscheduledSeries = x.samples.map((s) => s.pods?.unscheduled ?? 0);
  return {
    ...(makespanRunningS === undefined ? {} : { makespanRunningS, throughputPerS: throughput(x.expected, makespanRunningS * MS_PER_S) }),
    ...(ran === undefined ? {} : { runningThroughput: ran }),
    ...(seconds(first, scheduled) === undefined ? {} : { makespanScheduledS: seconds(first, scheduled) }),
    ...(first === undefined ? {} : { leadInS: seconds(x.startedAt, first) }),
    peakRunningPerS: first === undefined ? 0 : (extremes(perSecond(x.stamps.map((p) => p.runningAt), first)).max ?? 0),
    bystander: bystanderStats(windowed),
    ...(posts.length > 0 ? { clientThrottled: throttled.length } : {}),
    retryAfterS,
    ...(ops.length > 0 ? { operatorThrottled: ops.reduce((a, o) => a + o.throttled, 0) } : {}),
    apfRejectedWriter: writerRejected,
    apfRejectedLevel: apf.reduce((a, s) => a + s.workloadLowRejected, 0),
    maxInQueueLevel: Math.max(0, ...apf.map((s) => s.workloadLowWaiting)),
    postPodsP99Ms: {
      ...(clientP99 === undefined ? {} : { client: clientP99 }),
      ...(apiP99 === undefined ? {} : { apiServer: Math.round(apiP99 * MS_PER_S) }),
    },
    ...(sched.length > 0 ? { maxSchedulerPending: Math.max(...sched) } : {}),
    maxUnscheduled: Math.max(0, ...unscheduledSeries),
    proc: procWindow(x.samples, x.procStart, x.procEnd),
    ...(lag.length > 0 ? { maxOperatorEventLoopLagMs: Math.max(...lag) } : {}),
    dispatched,
    correctness: correctness(x.stamps, x.expected, x.notRunningAtEnd),
  };
}

/** The wave bound that means the sizer paused for the API server's Retry-After. */
const RETRY_AFTER_BOUND = "ApiServer";

/**
 * The sizer's own reaction to a second writer: the first wave decided after the trigger that starts a
 * sustained cut (it and the wave after it at most STRESSOR_CUT_FRACTION of the last wave before the
 * trigger), or a pause for Retry-After. One small wave is not enough: the sizer's periodic baseline
 * probe sends a single wave at half rate. A wave merely bounded by Latency does not count either: the
 * rollout may have been latency-bound before the second writer appeared. Read from the rollout's status.
 */
export function controllerReaction(samples: readonly Sample[], triggerAt: number): { afterS: number; reason: string } | undefined {
  const waves: { at: number; wave: number; size: number; limitedBy: string }[] = [];
  for (const s of samples) {
    const r = s.rollout;
    if (r && (waves.length === 0 || waves[waves.length - 1]!.wave !== r.wave)) waves.push({ at: s.at, wave: r.wave, size: r.waveSize, limitedBy: r.limitedBy });
  }
  const before = waves.filter((w) => w.at <= triggerAt).pop();
  if (!before) return undefined;
  const cut = (w: { size: number } | undefined) => w !== undefined && w.size <= STRESSOR_CUT_FRACTION * before.size;
  for (let i = 0; i < waves.length; i++) {
    const w = waves[i]!;
    if (w.at <= triggerAt) continue;
    const next = waves[i + 1];
    if (w.limitedBy === RETRY_AFTER_BOUND || (cut(w) && (next === undefined || cut(next)))) {
      return { afterS: Math.round((w.at - triggerAt) / 100) / 10, reason: `wave ${w.wave}: ${w.size} pods (was ${before.size}), limited by ${w.limitedBy}` };
    }
  }
  return undefined;
}

export function stressorFigures(opts: {
  startedAt: number;
  samples: readonly Sample[];
  rolloutStamps: readonly PodStamps[];
  triggerAt: number;
  stormDoneAt?: number;
  bystander: readonly BystanderRecord[];
  stormWriter: readonly WriterRecord[];
}): StressorFigures {
  const rate = perSecond(opts.rolloutStamps.map((p) => p.seenAt), opts.startedAt);
  const triggerS = (opts.triggerAt - opts.startedAt) / MS_PER_S;
  const triggerBin = Math.floor(triggerS);
  // The first whole second after the trigger: the bin holding the trigger is partly "before".
  const firstAfter = Math.ceil(triggerS);
  const mean = (from: number, to: number) => {
    const bins = rate.slice(Math.max(0, from), Math.max(0, to));
    return bins.length ? bins.reduce((a, b) => a + b, 0) / bins.length : 0;
  };
  const baselineRatePerS = mean(triggerBin - STRESSOR_BASELINE_S, triggerBin);
  let cutAfterS: number | undefined;
  for (let s = firstAfter; s + STRESSOR_CUT_WINDOW_S <= rate.length; s++) {
    if (mean(s, s + STRESSOR_CUT_WINDOW_S) <= STRESSOR_CUT_FRACTION * baselineRatePerS) {
      cutAfterS = s - triggerS;
      break;
    }
  }
  const doneS = opts.stormDoneAt === undefined ? undefined : (opts.stormDoneAt - opts.startedAt) / MS_PER_S;
  const during = opts.bystander.filter((r) => r.at >= opts.triggerAt && r.at <= (opts.stormDoneAt ?? Infinity));
  const b = bystanderStats(during);
  const controller = controllerReaction(opts.samples, opts.triggerAt);
  return {
    triggerS: Math.round(triggerS * 10) / 10,
    ...(doneS === undefined ? {} : { stormDoneS: Math.round(doneS * 10) / 10, duringRatePerS: Math.round(mean(triggerBin, Math.ceil(doneS)) * 10) / 10 }),
    baselineRatePerS: Math.round(baselineRatePerS * 10) / 10,
    ...(cutAfterS === undefined ? {} : { cutAfterS: Math.round(cutAfterS * 10) / 10 }),
    ...(controller ? { controllerCutAfterS: controller.afterS, controllerCutReason: controller.reason } : {}),
    bystanderDuring: { requests: b.requests, errors: b.errors, ...(b.p99Ms === undefined ? {} : { p99Ms: b.p99Ms }) },
    stormThrottled: opts.stormWriter.filter((r) => r.code === 429).length,
  };
}
