import { BYSTANDER_P99_TARGET_MS } from "./bystander.ts";

// The oracle: the fastest fixed rate (kube-burner, qps = burst) that keeps the bystander's p99 within
// its SLO with no errors, on one control plane. Found by doubling from a start rate until a probe is
// unsafe (or halving until one is safe), then bisecting (geometrically) between the fastest safe and
// the slowest unsafe rate until they are within the precision. The oracle is the fastest rate a probe
// showed safe, so the true limit lies in [oracle, oracle × (1 + precision)).

export const ORACLE_SEARCH = {
  /** First probe (creates/s): between the slowest and the fastest oracles seen on our machines. */
  startQps: 16,
  /** Below this a level is hopeless: the bystander misses its SLO at a trickle. */
  minQps: 1,
  /** Above this kube-burner is a storm; the search stops there and says so. */
  maxQps: 1_024,
  /** The issue's ±15 %: stop once the slowest unsafe rate is within 15 % of the fastest safe one. */
  precision: 0.15,
  /** A probe writes for about this long, so the bystander's p99 rests on ~300 requests (10/s). */
  probeWriteS: 30,
  /** Fewest pods in a probe: a slow rate still makes a window of its own. */
  probeMinPods: 200,
  /** No level takes more probes than this (noise can make a bracket wander). */
  maxProbes: 10,
} as const;

export interface ProbeFigures {
  makespanS?: number;
  p99Ms?: number;
  errors: number;
  requests: number;
  /** Every pod created and Running, no error, no deadline. */
  complete: boolean;
}

export interface Probe extends ProbeFigures {
  qps: number;
  pods: number;
  /** Capped at N, so it wrote for less than probeWriteS: fewer bystander requests, a kinder p99. */
  short?: boolean;
  safe: boolean;
  /** Why it was unsafe, in words. */
  why?: string;
}

export type SearchStep = { done: false; qps: number } | { done: true; oracle?: number; reason: string };

export function probeVerdict(f: ProbeFigures): { safe: boolean; why?: string } {
  if (!f.complete) return { safe: false, why: "did not get every pod Running" };
  if (f.requests === 0 || f.p99Ms === undefined) return { safe: false, why: "no bystander requests in the window" };
  if (f.errors > 0) return { safe: false, why: `${f.errors} bystander errors` };
  if (f.p99Ms > BYSTANDER_P99_TARGET_MS) return { safe: false, why: `bystander p99 ${f.p99Ms} ms > ${BYSTANDER_P99_TARGET_MS}` };
  return { safe: true };
}

/** Whether a probe at `qps` is cut short by N (see Probe.short). */
export function probeIsShort(qps: number, n: number, s = ORACLE_SEARCH): boolean {
  return Math.round(qps * s.probeWriteS) > n;
}

/** Pods for a probe at `qps`: about probeWriteS seconds of writing, at least probeMinPods, at most n. */
export function probePods(qps: number, n: number, s = ORACLE_SEARCH): number {
  return Math.min(n, Math.max(s.probeMinPods, Math.round(qps * s.probeWriteS)));
}

/**
 * The bracket so far: the slowest unsafe rate, and the fastest safe rate below it. A safe probe above an
 * unsafe one (noise) is not trusted: the oracle must be a rate that was shown safe below every failure.
 */
export function bracket(probes: readonly Probe[]): { lo?: number; hi?: number } {
  const unsafe = probes.filter((p) => !p.safe).map((p) => p.qps);
  const hi = unsafe.length ? Math.min(...unsafe) : undefined;
  const safe = probes.filter((p) => p.safe && (hi === undefined || p.qps < hi)).map((p) => p.qps);
  return { ...(safe.length ? { lo: Math.max(...safe) } : {}), ...(hi !== undefined ? { hi } : {}) };
}

export function nextProbe(probes: readonly Probe[], s = ORACLE_SEARCH): SearchStep {
  if (probes.length === 0) return { done: false, qps: s.startQps };
  const { lo, hi } = bracket(probes);
  const tried = new Set(probes.map((p) => p.qps));
  const stop = (reason: string): SearchStep => ({ done: true, ...(lo !== undefined ? { oracle: lo } : {}), reason });
  if (probes.length >= s.maxProbes) return stop(`probe budget (${s.maxProbes}) spent; bracket ${lo ?? "–"}..${hi ?? "–"}`);
  if (hi === undefined) {
    if (lo! >= s.maxQps) return stop(`safe at the search's ceiling of ${s.maxQps}/s`);
    return { done: false, qps: Math.min(s.maxQps, lo! * 2) };
  }
  if (lo === undefined) {
    if (hi <= s.minQps) return stop(`unsafe even at ${s.minQps}/s`);
    return { done: false, qps: Math.max(s.minQps, Math.floor(hi / 2)) };
  }
  if (hi <= lo * (1 + s.precision) || hi - lo <= 1) return stop(`safe at ${lo}/s, unsafe at ${hi}/s: within ${Math.round(s.precision * 100)} %`);
  let mid = Math.round(Math.sqrt(lo * hi));
  if (mid <= lo) mid = lo + 1;
  if (mid >= hi) mid = hi - 1;
  if (tried.has(mid)) return stop(`bracket ${lo}..${hi} cannot be split further`);
  return { done: false, qps: mid };
}
