import { BYSTANDER_P99_TARGET_MS } from "../bystander.ts";
import type { MethodResult, TargetCheck } from "../result.ts";

// BENCHMARK.md's targets, computed from one run's figures.

/** BatchRollout makespan ≤ this × the fastest fixed-QPS setting that kept the bystander's p99 ≤ 1 s. */
export const FRONTIER_MAKESPAN_FACTOR = 1.1;
/** BatchRollout throughput ≥ this × storm's (the control plane's raw capacity on the machine). */
export const STORM_THROUGHPUT_SHARE = 0.8;
/** Operator peak RSS (MB) at up to 10k pods, and at up to 100k pods. */
export const RSS_LIMIT_MB = [
  { upToPods: 10_000, mb: 200 },
  { upToPods: 100_000, mb: 500 },
] as const;
/** Stressor: the rollout's rate must drop within this many seconds of the second writer's start. */
export const STRESSOR_REACTION_LIMIT_S = 10;

const r2 = (x: number) => Math.round(x * 100) / 100;

function check(name: string, ok: boolean | undefined, detail: string, ratio?: number): TargetCheck {
  return { name, detail, ...(ratio === undefined || !Number.isFinite(ratio) ? {} : { ratio: r2(ratio) }), verdict: ok === undefined ? "SKIP" : ok ? "PASS" : "FAIL" };
}

/**
 * The storm measures the control plane's raw capacity. A storm that lost creates (still 429 after the
 * client's retries) is scored on the rate of the pods it did get Running. That favours the storm:
 * the lost creates were the ones APF held back longest, so they would have landed last.
 */
function stormCheck(br: MethodResult | undefined, storm: MethodResult | undefined): TargetCheck {
  const name = "throughput vs storm";
  const ours = br?.figures.throughputPerS;
  const stormRate = storm?.figures.throughputPerS ?? storm?.figures.runningThroughput?.perS;
  if (ours === undefined || !storm || stormRate === undefined) return check(name, undefined, "needs a storm run that got pods Running and a finished BatchRollout run");
  const ran = storm.figures.runningThroughput?.pods;
  const lost = storm.pods - storm.figures.correctness.seen;
  const partial = storm.figures.throughputPerS === undefined && ran !== undefined ? ` (over the ${ran} pods it got Running; ${lost} of its ${storm.pods} creates were lost)` : "";
  const ratio = ours / stormRate;
  return check(name, ratio >= STORM_THROUGHPUT_SHARE,
    `BatchRollout ${ours} pods/s vs storm ${stormRate} pods/s${partial}: ratio ${r2(ratio)} (target ≥ ${STORM_THROUGHPUT_SHARE})`, ratio);
}

export function computeTargets(methods: readonly MethodResult[]): TargetCheck[] {
  const byId = new Map(methods.map((m) => [m.id, m]));
  const br = byId.get("batchrollout");
  const out: TargetCheck[] = [];
  const brMakespan = br?.figures.makespanRunningS;

  const frontier = methods
    .filter((m) => m.id.startsWith("kube-burner-") && m.figures.makespanRunningS !== undefined && (m.figures.bystander.p99Ms ?? Infinity) <= BYSTANDER_P99_TARGET_MS)
    .sort((a, b) => a.figures.makespanRunningS! - b.figures.makespanRunningS!)[0];
  if (!br || brMakespan === undefined || !frontier) {
    out.push(check("makespan vs fixed-QPS frontier", undefined, !br ? "no BatchRollout run" : !frontier ? "no kube-burner setting kept bystander p99 ≤ 1 s (or none ran)" : "BatchRollout did not finish"));
  } else {
    const ratio = brMakespan / frontier.figures.makespanRunningS!;
    out.push(check("makespan vs fixed-QPS frontier", ratio <= FRONTIER_MAKESPAN_FACTOR,
      `BatchRollout ${brMakespan} s vs ${frontier.label} ${frontier.figures.makespanRunningS} s (fastest with bystander p99 ≤ 1 s): ratio ${r2(ratio)} (target ≤ ${FRONTIER_MAKESPAN_FACTOR})`, ratio));
  }

  out.push(stormCheck(br, byId.get("storm")));

  if (br) {
    const b = br.figures.bystander;
    const ok = b.p99Ms !== undefined && b.p99Ms <= BYSTANDER_P99_TARGET_MS && b.errors === 0;
    out.push(check("bystander during BatchRollout", ok,
      `p99 ${b.p99Ms ?? "?"} ms (target ≤ ${BYSTANDER_P99_TARGET_MS}), ${b.errors} errors of ${b.requests} (target 0)`, b.p99Ms === undefined ? undefined : b.p99Ms / BYSTANDER_P99_TARGET_MS));
  } else out.push(check("bystander during BatchRollout", undefined, "no BatchRollout run"));

  for (const other of ["seed-batches", "deployment"]) {
    const m = byId.get(other);
    const theirs = m?.figures.makespanRunningS;
    if (brMakespan === undefined || theirs === undefined) {
      out.push(check(`faster than ${other}`, undefined, `needs finished ${other} and BatchRollout runs`));
      continue;
    }
    const ratio = theirs / brMakespan;
    out.push(check(`faster than ${other}`, ratio > 1, `${m!.label} ${theirs} s / BatchRollout ${brMakespan} s = ${r2(ratio)}× (target > 1)`, ratio));
  }

  const rssRun = br ?? byId.get("stressor");
  const rss = rssRun?.figures.proc.operator?.peakRssMB;
  if (rssRun && rss !== undefined) {
    const limit = RSS_LIMIT_MB.find((l) => rssRun.pods <= l.upToPods);
    if (!limit) out.push(check("operator peak RSS", undefined, `${rss} MB at ${rssRun.pods} pods (no target beyond 100k)`));
    else {
      out.push(check("operator peak RSS", rss <= limit.mb,
        `${rss} MB at ${rssRun.pods} pods (target ≤ ${limit.mb} MB up to ${limit.upToPods.toLocaleString("en-US")} pods)`, rss / limit.mb));
    }
  } else out.push(check("operator peak RSS", undefined, "no operator run"));

  const s = byId.get("stressor")?.stressor;
  if (s) {
    const p99 = s.bystanderDuring.p99Ms;
    const ok = s.cutAfterS !== undefined && s.cutAfterS <= STRESSOR_REACTION_LIMIT_S && p99 !== undefined && p99 <= BYSTANDER_P99_TARGET_MS;
    out.push(check("stressor: rate cut ≤ 10 s, bystander p99 ≤ 1 s", ok,
      `rate ${s.baselineRatePerS}/s before the second writer, ${s.duringRatePerS ?? "?"}/s during; cut after ${s.cutAfterS ?? "never"} s (target ≤ ${STRESSOR_REACTION_LIMIT_S}; the sizer's own first slow-down after ${s.controllerCutAfterS ?? "never"} s); bystander p99 during ${p99 ?? "?"} ms, ${s.bystanderDuring.errors} errors`,
      s.cutAfterS === undefined ? undefined : s.cutAfterS / STRESSOR_REACTION_LIMIT_S));
  }
  return out;
}
