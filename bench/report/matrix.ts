import { BYSTANDER_P99_TARGET_MS } from "../bystander.ts";
import type { CpuLevel, CpuStat } from "../cpu-cap.ts";
import type { Probe } from "../oracle-search.ts";
import type { MethodResult, RunResult, TargetCheck } from "../result.ts";
import { STRESSOR_REACTION_LIMIT_S } from "./targets.ts";

// The control-plane speed axis: the shape of bench/results/<date>-matrix.json, each level's targets
// (issue 28), the ratios to each level's oracle, the best single fixed rate across the levels, and the
// Markdown tables.

/** BatchRollout's makespan at each level must be at most this × the oracle's (issue 28). */
export const ORACLE_MAKESPAN_FACTOR = 1.0;
/** "Within this × the oracle at every level" is what no single fixed rate is expected to manage. */
export const SINGLE_RATE_TOLERANCE = 1.1;
/** The method id of the oracle's confirmation run at the matrix's N. */
export const ORACLE_METHOD_ID = "oracle";

export interface BaselineWindow {
  windowS: number;
  requests: number;
  p50Ms?: number;
  p99Ms?: number;
  errors: number;
  /** The bystander missed its SLO with no writer at all: the level says nothing about writers. */
  degenerate: boolean;
}

export interface OracleSearchResult {
  /** Taken from --oracle (a previous run on this machine) instead of searched. */
  reused: boolean;
  probes: (Probe & { throttled?: CpuStat })[];
  oracle?: number;
  reason: string;
}

export interface LevelResult {
  level: CpuLevel;
  cgroup: { path: string; quotaUs: number; periodUs: number; processes: Record<string, number> };
  startedAt: number;
  endedAt?: number;
  loadAverageAtStart: number[];
  baseline?: BaselineWindow;
  search?: OracleSearchResult;
  methods: MethodResult[];
  /** cpu.stat increase over each method (and the whole level): proof that the cap bites. */
  throttled: Record<string, CpuStat>;
  targets: TargetCheck[];
  notes: string[];
  error?: string;
}

export interface MatrixResult extends Omit<RunResult, "methods" | "targets" | "machine"> {
  machine: RunResult["machine"] & { model: string; cores: number };
  capped: string[];
  levels: LevelResult[];
  bestSingleRate?: SingleRate;
}

const dash = "–";
const r2 = (x: number) => Math.round(x * 100) / 100;

function check(name: string, ok: boolean | undefined, detail: string, ratio?: number): TargetCheck {
  return { name, detail, ...(ratio === undefined || !Number.isFinite(ratio) ? {} : { ratio: r2(ratio) }), verdict: ok === undefined ? "SKIP" : ok ? "PASS" : "FAIL" };
}

export function oracleRun(level: LevelResult): MethodResult | undefined {
  return level.methods.find((m) => m.id === ORACLE_METHOD_ID);
}

/** A method's makespan over the oracle's confirmation run's, at the same level. */
export function ratioToOracle(m: MethodResult, level: LevelResult): number | undefined {
  const o = oracleRun(level)?.figures.makespanRunningS;
  const mine = m.figures.makespanRunningS;
  return o === undefined || mine === undefined || m.pods !== oracleRun(level)!.pods ? undefined : r2(mine / o);
}

/** Issue 28's targets at one level. */
export function levelTargets(level: LevelResult): TargetCheck[] {
  const out: TargetCheck[] = [];
  const br = level.methods.find((m) => m.id === "batchrollout");
  const oracle = oracleRun(level);
  const oracleOk = oracle && oracle.figures.makespanRunningS !== undefined && (oracle.figures.bystander.p99Ms ?? Infinity) <= BYSTANDER_P99_TARGET_MS && oracle.figures.bystander.errors === 0;
  if (!br) out.push(check("BatchRollout vs oracle", undefined, "no BatchRollout run"));
  else {
    const ratio = ratioToOracle(br, level);
    const b = br.figures.bystander;
    const bystanderOk = b.p99Ms !== undefined && b.p99Ms <= BYSTANDER_P99_TARGET_MS && b.errors === 0;
    const detail = `makespan ${br.figures.makespanRunningS ?? "–"} s vs oracle ${oracle?.figures.makespanRunningS ?? "–"} s (${oracle?.label ?? "no oracle run"}${oracle && !oracleOk ? ", which itself missed the SLO at N" : ""}); bystander p99 ${b.p99Ms ?? "?"} ms, ${b.errors} errors`;
    out.push(check(`BatchRollout makespan ≤ ${ORACLE_MAKESPAN_FACTOR}× oracle, bystander p99 ≤ 1 s, 0 errors`, ratio === undefined ? undefined : ratio <= ORACLE_MAKESPAN_FACTOR && bystanderOk, detail, ratio));
  }
  const s = level.methods.find((m) => m.id === "stressor")?.stressor;
  if (s) {
    const p99 = s.bystanderDuring.p99Ms;
    const ok = s.cutAfterS !== undefined && s.cutAfterS <= STRESSOR_REACTION_LIMIT_S && p99 !== undefined && p99 <= BYSTANDER_P99_TARGET_MS && s.bystanderDuring.errors === 0;
    out.push(check(`stressor: cut ≤ ${STRESSOR_REACTION_LIMIT_S} s, bystander p99 ≤ 1 s while it writes`, ok,
      `cut after ${s.cutAfterS ?? "never"} s (the sizer's own slow-down after ${s.controllerCutAfterS ?? "never"} s); bystander p99 during ${p99 ?? "?"} ms, ${s.bystanderDuring.errors} errors`,
      s.cutAfterS === undefined ? undefined : s.cutAfterS / STRESSOR_REACTION_LIMIT_S));
  }
  return out;
}

export interface SingleRate {
  qps: number;
  /** Per level: the oracle there, and this rate's makespan ratio to it (≈ oracle / qps), or unsafe. */
  perLevel: { level: string; oracle: number; ratio?: number; unsafe: boolean }[];
  worstRatio?: number;
  withinTolerance: boolean;
}

/**
 * The best single fixed rate across the levels: among the levels' oracles, the one with the smallest
 * worst-case ratio, where a rate above a level's oracle is unsafe there (the bystander's SLO). At a
 * fixed rate the makespan is about N / rate, so its ratio to the oracle's is estimated as oracle / rate.
 */
export function bestSingleRate(oracles: readonly { level: string; oracle?: number }[]): SingleRate | undefined {
  const known = oracles.filter((o): o is { level: string; oracle: number } => o.oracle !== undefined);
  if (known.length === 0) return undefined;
  const candidates = [...new Set(known.map((o) => o.oracle))].map((qps): SingleRate => {
    const perLevel = known.map((o) => (qps > o.oracle ? { level: o.level, oracle: o.oracle, unsafe: true } : { level: o.level, oracle: o.oracle, ratio: r2(o.oracle / qps), unsafe: false }));
    const unsafe = perLevel.some((p) => p.unsafe);
    const worstRatio = unsafe ? undefined : Math.max(...perLevel.map((p) => p.ratio!));
    return { qps, perLevel, ...(worstRatio !== undefined ? { worstRatio } : {}), withinTolerance: worstRatio !== undefined && worstRatio <= SINGLE_RATE_TOLERANCE };
  });
  return candidates.filter((c) => c.worstRatio !== undefined).sort((a, b) => a.worstRatio! - b.worstRatio!)[0];
}

function apf429(m: MethodResult): string {
  const f = m.figures;
  const own = (f.clientThrottled ?? 0) + (f.operatorThrottled ?? 0);
  return own > 0 ? `${f.apfRejectedWriter} (client ${own})` : String(f.apfRejectedWriter);
}

function verdictOf(m: MethodResult, targets: readonly TargetCheck[]): string {
  const t = m.id === "batchrollout" ? targets.find((x) => x.name.startsWith("BatchRollout")) : m.id === "stressor" ? targets.find((x) => x.name.startsWith("stressor")) : undefined;
  return t ? `**${t.verdict}**` : dash;
}

export function levelTable(level: LevelResult): string {
  const header = ["method", "pods", "makespan (s)", "pods/s", "bystander p99 (ms)", "bystander errors", "writer 429s (APF)", "throttled (s)", "ratio to oracle", "target"];
  const rows = level.methods.map((m) => {
    const f = m.figures;
    const t = level.throttled[m.id];
    return [m.label, String(m.pods), m.error ? "failed" : (f.makespanRunningS ?? (m.timedOut ? "timed out" : dash)), f.throughputPerS ?? (f.runningThroughput ? `(${f.runningThroughput.perS})` : dash),
      f.bystander.p99Ms ?? dash, `${f.bystander.errors}/${f.bystander.requests}`, apf429(m), t ? r2(t.throttledS) : dash,
      ratioToOracle(m, level) ?? dash, verdictOf(m, level.targets)].map(String);
  });
  return [`| ${header.join(" | ")} |`, `|${header.map(() => " --- ").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

export function probeTable(search: OracleSearchResult): string {
  return [
    "| probe | qps | pods | makespan (s) | bystander p99 (ms) | errors | throttled (s) | verdict |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ...search.probes.map((p, i) => `| ${i + 1} | ${p.qps} | ${p.pods} | ${p.makespanS ?? dash} | ${p.p99Ms ?? dash} | ${p.errors}/${p.requests} | ${p.throttled ? r2(p.throttled.throttledS) : dash} | ${p.safe ? "safe" : `unsafe: ${p.why ?? "?"}`}${p.short ? " (short: capped at N)" : ""} |`),
  ].join("\n");
}

function levelSection(level: LevelResult): string[] {
  const b = level.baseline;
  const s = level.search;
  const stress = level.methods.find((m) => m.stressor)?.stressor;
  return [
    `## Control plane at ${level.level.label}${level.level.cpus !== undefined ? " CPU" : ""}`,
    "",
    `cgroup \`${level.cgroup.path}\`: cpu.cfs_quota_us ${level.cgroup.quotaUs} / cpu.cfs_period_us ${level.cgroup.periodUs}; capped ${Object.entries(level.cgroup.processes).map(([k, v]) => `${k} (pid ${v})`).join(", ")}. Load average at the level's start ${level.loadAverageAtStart.map((v) => v.toFixed(1)).join(" / ")}.`,
    "",
    b ? `Bystander alone (no writer) for ${b.windowS} s: p50 ${b.p50Ms ?? dash} ms, p99 ${b.p99Ms ?? dash} ms, ${b.errors} errors of ${b.requests}${b.degenerate ? " — **degenerate level**: the bystander misses its SLO with no writer" : ""}.` : "No baseline window.",
    "",
    s ? `Oracle: ${s.oracle !== undefined ? `**${s.oracle} creates/s**` : "none found"} (${s.reused ? "reused from --oracle" : s.reason}).` : "No oracle search at this level.",
    "",
    ...(s && s.probes.length ? [probeTable(s), ""] : []),
    ...(level.methods.length ? [levelTable(level), ""] : []),
    ...(stress ? [`Stressor: the second writer started at ${stress.triggerS} s; the rollout's creation rate fell below 70 % of its ${stress.baselineRatePerS}/s after ${stress.cutAfterS ?? "never"} s (the sizer's own first slow-down after ${stress.controllerCutAfterS ?? "never"} s${stress.controllerCutReason ? `: ${stress.controllerCutReason}` : ""}).`, ""] : []),
    ...(level.targets.length ? ["| target | verdict | ratio | measured |", "| --- | --- | --- | --- |", ...level.targets.map((t) => `| ${t.name} | **${t.verdict}** | ${t.ratio ?? dash} | ${t.detail} |`), ""] : []),
    ...level.notes.map((n) => `- ${n}`),
    ...level.methods.filter((x) => x.error).map((x) => `- ${x.label} failed: ${x.error}`),
    ...(level.error ? [`- **error**: ${level.error}`] : []),
    "",
  ];
}

export function singleRateSection(best: SingleRate | undefined, levels: readonly LevelResult[]): string[] {
  if (!best) return ["## Best single fixed rate", "", "No level has an oracle yet.", ""];
  const header = levels.map((l) => l.level.label);
  const cell = (label: string) => {
    const p = best.perLevel.find((x) => x.level === label);
    return !p ? dash : p.unsafe ? "unsafe" : `${p.ratio}× (oracle ${p.oracle}/s)`;
  };
  return [
    "## Best single fixed rate across all levels",
    "",
    `${best.qps} creates/s is the fastest rate that is safe at every level with an oracle. Its makespan over each level's oracle (estimated as oracle rate / ${best.qps}, since a fixed rate's makespan is about N / rate):`,
    "",
    `| rate | ${header.join(" | ")} | within ${SINGLE_RATE_TOLERANCE}× everywhere |`,
    `| --- |${header.map(() => " --- ").join("|")}| --- |`,
    `| ${best.qps}/s | ${header.map(cell).join(" | ")} | ${best.withinTolerance ? "yes" : "no"} |`,
    "",
  ];
}

export function renderMatrixMarkdown(run: MatrixResult, chartFile: string): string {
  const m = run.machine;
  return [
    `# BatchRollout benchmark, ${run.mode} (${run.date})`,
    "",
    `N = ${run.n} pods on ${run.nodes} kwok nodes; Kubernetes ${run.versions.KUBERNETES_VERSION ?? "?"}, etcd ${run.versions.ETCD_VERSION ?? "?"}, kwok ${run.versions.KWOK_VERSION ?? "?"}, kube-burner ${run.versions.KUBE_BURNER_VERSION ?? "?"}.`,
    `Machine: ${m.model}, ${m.cores} cores; load average before the first level ${m.loadAverageAtStart?.map((v) => v.toFixed(1)).join(" / ") ?? "?"}, at the end ${m.loadAverage.map((v) => v.toFixed(1)).join(" / ")}. ${m.caveat}`,
    `Capped: ${run.capped.join(", ")} (cgroup v1 cpu controller). Each level runs on a fresh cluster. Writer: ${run.identities.writer.flowSchema}/${run.identities.writer.priorityLevel}; bystander: ${run.identities.bystander.flowSchema}/${run.identities.bystander.priorityLevel}.`,
    "",
    ...run.levels.flatMap(levelSection),
    ...singleRateSection(run.bestSingleRate, run.levels),
    `![makespan and bystander p99 against control-plane CPU](${chartFile})`,
    "",
  ].join("\n");
}
