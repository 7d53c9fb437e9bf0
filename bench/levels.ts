import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join, relative } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { down } from "../test/cluster/cluster.ts";
import { REPO_ROOT, VERSIONS, paths } from "../test/cluster/layout.ts";
import { runningProcess } from "../test/cluster/processes.ts";
import { BYSTANDER_P99_TARGET_MS } from "./bystander.ts";
import { CFS_PERIOD_US, CpuCap, type CpuLevel, type CpuStat, quotaUs } from "./cpu-cap.ts";
import { bystanderStats } from "./figures.ts";
import { SHARED_PRIORITY_LEVEL } from "./identities.ts";
import { kubeBurner } from "./methods/kube-burner.ts";
import type { Method } from "./methods/method.ts";
import { methodDeadlineMs } from "./modes.ts";
import { OPERATOR_ENTRY } from "./operator-process.ts";
import { type Probe, nextProbe, probeIsShort, probePods, probeVerdict } from "./oracle-search.ts";
import { matrixChart } from "./report/matrix-charts.ts";
import { ORACLE_METHOD_ID, type LevelResult, type MatrixResult, bestSingleRate, levelTable, levelTargets, renderMatrixMarkdown } from "./report/matrix.ts";
import type { MethodResult } from "./result.ts";
import { type RunnerDeps, runMethod } from "./runner.ts";
import { type Session, openSession } from "./session.ts";

// The control-plane speed axis (issue 28): for each CPU level, a fresh cluster whose kube-apiserver
// and etcd (and, with --cap-scheduler, kube-scheduler) run in a cpu cgroup capped at that level; the
// bystander alone for a window; the oracle search (or a reused oracle) and its confirmation at N; then
// the selected methods. The storm runs once, at the unlimited level. Results after every method.

/** The bystander alone is measured this long at each level before any writer starts. */
export const BASELINE_WINDOW_S = 30;
/** Generous bystander lifetime per level: it is stopped when the level ends anyway. */
const BYSTANDER_LEVEL_MAX_S = 6 * 3_600;
const CAVEAT = "The control plane, the writers, the bystander and the operator share these cores, and other work ran on the machine: absolute times drift; ratios measured side by side at one level are the figures to read.";

export interface LevelsOptions {
  mode: string;
  label: string;
  stem: string;
  n: number;
  nodes: number;
  levels: CpuLevel[];
  methods: Method[];
  /** Whether the oracle (search, or reused rate, and its run at N) is among the methods. */
  oracle: boolean;
  reuse: Map<string, number>;
  capScheduler: boolean;
  workRoot: string;
  resultsDir: string;
  say: (line: string) => void;
}

export function machineModel(): string {
  try {
    const m = /^Model name:\s*(.+)$/m.exec(execFileSync("lscpu", { encoding: "utf8" }));
    if (m) return m[1]!.trim();
  } catch {
    /* no lscpu: fall back to /proc/cpuinfo */
  }
  return /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? "unknown";
}

function diff(a: CpuStat, b: CpuStat): CpuStat {
  return { nrPeriods: b.nrPeriods - a.nrPeriods, nrThrottled: b.nrThrottled - a.nrThrottled, throttledS: Math.round((b.throttledS - a.throttledS) * 100) / 100 };
}

/** A level's label as part of a file name ("unlimited@10" → "unlimited-10"). */
export const fileSafe = (label: string) => label.replace(/[^\w.-]/g, "-");

let activeCap: CpuCap | undefined;
function releaseCap(): void {
  const problems = activeCap?.teardown() ?? [];
  for (const p of problems) process.stderr.write(`cgroup teardown: ${p}\n`);
  activeCap = undefined;
}

export async function runLevels(o: LevelsOptions): Promise<void> {
  const { say } = o;
  if (paths.state === join(REPO_ROOT, ".cluster")) throw new Error("the control-plane CPU axis resets its cluster per level: set BATCHROLLOUT_CLUSTER_DIR (and BATCHROLLOUT_PORT_OFFSET) to a cluster of its own");
  process.once("SIGINT", () => {
    releaseCap();
    process.exit(130);
  });
  process.once("exit", releaseCap);
  const started = new Date();
  const capped = ["kube-apiserver", "etcd", ...(o.capScheduler ? ["kube-scheduler"] : [])];
  const runIdBase = started.getTime().toString(36).slice(-5);
  const file = (ext: string) => join(o.resultsDir, `${o.stem}.${ext}`);
  const cores = cpus().length;
  const run: MatrixResult = {
    date: started.toISOString(),
    mode: o.label,
    n: o.n,
    nodes: o.nodes,
    runId: runIdBase,
    versions: VERSIONS,
    machine: { model: machineModel(), cores, cpus: cores, loadAverageAtStart: loadavg(), loadAverage: loadavg(), caveat: CAVEAT },
    identities: { writer: { user: "?", flowSchema: "?", priorityLevel: "?" }, bystander: { user: "?", flowSchema: "?", priorityLevel: "?" }, note: "" },
    capped,
    levels: [],
  };
  const save = () => {
    run.machine.loadAverage = loadavg();
    run.bestSingleRate = bestSingleRate(run.levels.map((l) => ({ level: l.level.label, ...(l.search?.oracle !== undefined ? { oracle: l.search.oracle } : {}) })));
    mkdirSync(o.resultsDir, { recursive: true });
    writeFileSync(file("json"), `${JSON.stringify(run, null, 1)}\n`);
    writeFileSync(file("svg"), matrixChart(`BatchRollout benchmark, ${o.label}, N=${o.n}, ${o.nodes} nodes`, run.levels, cores));
    writeFileSync(file("md"), renderMatrixMarkdown(run, `${o.stem}.svg`));
  };

  say(`BatchRollout benchmark: ${o.label}, N=${o.n}, ${o.nodes} nodes, levels ${o.levels.map((l) => l.label).join(", ")}, capping ${capped.join(", ")}`);
  say(`methods ${[...(o.oracle ? [ORACLE_METHOD_ID] : []), ...o.methods.map((m) => m.id)].join(", ")}; state ${paths.state}; logs in ${o.workRoot}`);
  for (const [i, level] of o.levels.entries()) {
    const levelStarted = Date.now();
    const lr: LevelResult = {
      level,
      cgroup: { path: "", quotaUs: quotaUs(level.cpus), periodUs: CFS_PERIOD_US, processes: {} },
      startedAt: levelStarted,
      loadAverageAtStart: loadavg(),
      methods: [],
      throttled: {},
      targets: [],
      notes: [],
    };
    lr.notes.push(`operator: ${OPERATOR_ENTRY}`);
    run.levels.push(lr);
    say(`\n━━ level ${level.label}${level.cpus !== undefined ? " CPU" : ""} (${i + 1}/${o.levels.length}): fresh cluster`);
    const workRoot = join(o.workRoot, `cpu-${fileSafe(level.label)}`);
    mkdirSync(workRoot, { recursive: true });
    await down();
    let session: Session | undefined;
    let levelStat: CpuStat | undefined;
    try {
      const all = o.oracle ? [...o.methods, kubeBurner(1)] : o.methods;
      session = await openSession({ nodes: o.nodes, methods: all, workRoot, bystanderMaxS: BYSTANDER_LEVEL_MAX_S, say });
      run.identities = session.identitiesOut;
      if (level.shares !== undefined) {
        await setLevelShares(session, level.shares);
        lr.notes.push(`APF: ${SHARED_PRIORITY_LEVEL}'s nominalConcurrencyShares set to ${level.shares} (default ${DEFAULT_SHARES}), autoupdate-spec off`);
        say(`APF: ${SHARED_PRIORITY_LEVEL} nominalConcurrencyShares → ${level.shares}`);
      }
      const cap = new CpuCap(level);
      activeCap = cap;
      cap.create();
      for (const name of capped) {
        const pid = runningProcess(name);
        if (pid === undefined) throw new Error(`${name} is not running`);
        lr.cgroup.processes[name] = pid;
      }
      cap.add(Object.values(lr.cgroup.processes));
      lr.cgroup.path = cap.path;
      say(`capped ${capped.join(", ")} in ${cap.path}: quota ${lr.cgroup.quotaUs} µs per ${CFS_PERIOD_US} µs; members ${cap.members().join(" ")}`);
      levelStat = cap.stat();
      const fromStart = levelStat;

      say(`bystander alone for ${BASELINE_WINDOW_S} s`);
      const t0 = Date.now();
      await sleep(BASELINE_WINDOW_S * 1_000);
      const b = bystanderStats(session.records.filter((r) => r.at >= t0 && r.at <= Date.now()));
      const degenerate = b.p99Ms === undefined || b.p99Ms > BYSTANDER_P99_TARGET_MS || b.errors > 0;
      lr.baseline = { windowS: BASELINE_WINDOW_S, requests: b.requests, errors: b.errors, degenerate, ...(b.p50Ms !== undefined ? { p50Ms: b.p50Ms } : {}), ...(b.p99Ms !== undefined ? { p99Ms: b.p99Ms } : {}) };
      say(`  bystander alone: p99 ${b.p99Ms ?? "–"} ms, ${b.errors} errors of ${b.requests}${degenerate ? ": DEGENERATE level, no method runs here" : ""}`);
      save();
      if (degenerate) {
        lr.notes.push(`degenerate: the bystander alone missed its SLO (p99 ≤ ${BYSTANDER_P99_TARGET_MS} ms, 0 errors); no method ran`);
        continue;
      }

      const s = session;
      const deps = (n: number, suffix: string): RunnerDeps => ({
        admin: s.admin, binDir: s.info.binDir, writerKubeconfig: s.info.operatorKubeconfig, runId: `${runIdBase}${i}${suffix}`, n, workRoot, logger: s.logger,
        sampler: s.sampler, identities: s.identities, bystander: s.records, crdInstalled: true, say,
      });
      const measure = async (method: Method, n: number, keep: boolean): Promise<MethodResult> => {
        const before = cap.stat();
        let measured: MethodResult | undefined;
        await runMethod(deps(n, ""), method, (r) => {
          s.kwokLog.scan();
          measured = { ...r, kwokReplayed: s.kwokLog.replayed(r.namespace) };
          lr.throttled[method.id] = diff(before, cap.stat());
          if (keep) lr.methods.push(measured);
          lr.throttled.level = diff(fromStart, cap.stat());
          lr.targets = levelTargets(lr);
          save();
          const f = r.figures;
          say(`  makespan ${f.makespanRunningS ?? "–"} s, ${f.throughputPerS ?? "–"} pods/s, bystander p99 ${f.bystander.p99Ms ?? "–"} ms (${f.bystander.errors} errors), throttled ${lr.throttled[method.id]!.nrThrottled}× ${lr.throttled[method.id]!.throttledS} s`);
        });
        return measured!;
      };

      const methods = o.methods.filter((m) => {
        if (m.id !== "storm" || level.cpus === undefined) return true;
        lr.notes.push("the storm runs once, at the unlimited level");
        return false;
      });
      const [first, rest] = methods[0]?.id === "storm" ? [[methods[0]], methods.slice(1)] : [[], methods];
      for (const m of first) await measure(m, o.n, true);
      if (o.oracle) await oracle(lr, o, measure, say);
      for (const m of rest) await measure(m, o.n, true);
      lr.targets = levelTargets(lr);
    } catch (err) {
      lr.error = err instanceof Error ? err.message : String(err);
      say(`  level ${level.label} failed: ${lr.error}`);
    } finally {
      lr.endedAt = Date.now();
      if (activeCap && levelStat) lr.throttled.level = diff(levelStat, activeCap.stat());
      releaseCap();
      await session?.close();
      save();
      say(`level ${level.label} took ${Math.round((Date.now() - levelStarted) / 60_000)} min`);
    }
  }
  say("");
  for (const l of run.levels) say(`${l.level.label}: oracle ${l.search?.oracle ?? "–"}/s\n${levelTable(l)}\n`);
  for (const ext of ["json", "md", "svg"]) say(`wrote ${relative(REPO_ROOT, file(ext))}`);
  say("the last level's cluster keeps running; stop it with: bash scripts/run.sh cluster:down (same BATCHROLLOUT_* variables)");
}

/** kube-apiserver's suggested nominalConcurrencyShares for workload-low. */
const DEFAULT_SHARES = 100;
/** Without this annotation set to "false", kube-apiserver puts its suggested spec back. */
const AUTOUPDATE_ANNOTATION = "apf.kubernetes.io/autoupdate-spec";

/** The second knob: fewer (or more) seats for the writer's and the bystander's priority level. */
async function setLevelShares(s: Session, shares: number): Promise<void> {
  await s.admin.patch(`/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations/${SHARED_PRIORITY_LEVEL}`, {
    metadata: { annotations: { [AUTOUPDATE_ANNOTATION]: "false" } },
    spec: { limited: { nominalConcurrencyShares: shares } },
  });
}

type Measure = (method: Method, n: number, keep: boolean) => Promise<MethodResult>;

/** The oracle at one level: searched (or reused from --oracle), then one run at N at that rate. */
async function oracle(lr: LevelResult, o: LevelsOptions, measure: Measure, say: (line: string) => void): Promise<void> {
  const reused = o.reuse.get(lr.level.label);
  if (reused !== undefined) {
    say(`oracle at ${lr.level.label}: reusing ${reused}/s from --oracle (a previous run on this machine); no search`);
    lr.search = { reused: true, probes: [], oracle: reused, reason: "given with --oracle" };
  } else {
    lr.search = { reused: false, probes: [], reason: "searching" };
    for (;;) {
      const step = nextProbe(lr.search.probes);
      if (step.done) {
        lr.search.reason = step.reason;
        if (step.oracle !== undefined) lr.search.oracle = step.oracle;
        break;
      }
      const pods = probePods(step.qps, o.n);
      const id = `probe${lr.search.probes.length + 1}-qps${step.qps}`;
      say(`oracle search at ${lr.level.label}: probe ${lr.search.probes.length + 1}, qps ${step.qps}, ${pods} pods`);
      const r = await measure({ ...kubeBurner(step.qps), id }, pods, false);
      const f = r.figures;
      const figures = {
        ...(f.makespanRunningS !== undefined ? { makespanS: f.makespanRunningS } : {}),
        ...(f.bystander.p99Ms !== undefined ? { p99Ms: f.bystander.p99Ms } : {}),
        errors: f.bystander.errors,
        requests: f.bystander.requests,
        complete: f.correctness.ok && !r.timedOut && r.error === undefined,
      };
      const v = probeVerdict(figures);
      const probe: Probe & { throttled?: CpuStat } = { qps: step.qps, pods, ...(probeIsShort(step.qps, o.n) ? { short: true } : {}), ...figures, ...v, ...(lr.throttled[id] ? { throttled: lr.throttled[id] } : {}) };
      delete lr.throttled[id];
      lr.search.probes.push(probe);
      say(`  → ${v.safe ? "safe" : `unsafe (${v.why})`}`);
    }
    say(`oracle at ${lr.level.label}: ${lr.search.oracle ?? "none"} (${lr.search.reason})`);
  }
  const q = lr.search.oracle;
  if (q === undefined) {
    lr.notes.push("no oracle: no fixed rate down to the search's floor kept the bystander within its SLO");
    return;
  }
  const confirm: Method = { ...kubeBurner(q), id: ORACLE_METHOD_ID, label: `oracle: kube-burner qps=burst=${q}` };
  say(`oracle at ${lr.level.label}: confirming ${q}/s at N=${o.n} (deadline ${Math.round(methodDeadlineMs(o.n) / 1000)} s)`);
  const r = await measure(confirm, o.n, true);
  const v = probeVerdict({ errors: r.figures.bystander.errors, requests: r.figures.bystander.requests, complete: r.figures.correctness.ok && !r.timedOut, ...(r.figures.bystander.p99Ms !== undefined ? { p99Ms: r.figures.bystander.p99Ms } : {}) });
  lr.notes.push(`oracle ${q}/s at N=${o.n}: ${v.safe ? "confirmed safe" : `NOT confirmed (${v.why}); the probes' smaller N was kinder`}`);
}
