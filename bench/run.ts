import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { REPO_ROOT, VERSIONS, paths } from "../test/cluster/layout.ts";
import { parseLevels, parseOracles } from "./cpu-cap.ts";
import { fileSafe, runLevels } from "./levels.ts";
import { MATRIX_LEVELS, MATRIX_METHODS, MODES, type Mode, checkCapacity, methodDeadlineMs, selectMethods } from "./modes.ts";
import { ORACLE_METHOD_ID } from "./report/matrix.ts";
import { runChart } from "./report/charts.ts";
import { methodTable, renderMarkdown, targetTable } from "./report/markdown.ts";
import { computeTargets } from "./report/targets.ts";
import type { MethodResult, RunResult } from "./result.ts";
import { runMethod } from "./runner.ts";
import { openSession } from "./session.ts";

// npm run bench -- --mode quick|full|matrix [--methods storm,seed-batches,kube-burner,deployment,batchrollout,stressor,oracle]
//                  [--n N] [--nodes N] [--control-plane-cpu LEVELS [--cap-scheduler] [--oracle LEVEL=QPS,...]]
// With --control-plane-cpu (or --mode matrix), levels.ts runs the methods at each control-plane CPU level.
// Brings up (or reuses) the local control plane of this state directory (BATCHROLLOUT_CLUSTER_DIR,
// BATCHROLLOUT_PORT_OFFSET), runs the methods one after another on it, each from an empty namespace,
// with the bystander running throughout, and writes bench/results/<date>-<mode>.{json,md,svg}.

const USAGE = "usage: npm run bench -- [--mode quick|full|matrix] [--methods a,b,...] [--n N] [--nodes N] [--control-plane-cpu 0.5,1,unlimited [--cap-scheduler] [--oracle 0.5=12,...]]";
const RESULTS_DIR = join(REPO_ROOT, "bench/results");
/** The bystander's own time limit: every method's deadline plus cleanup, so it always stops by itself. */
const BYSTANDER_SLACK_S = 1_800;
const CAVEAT = "The control plane, the writers, the bystander and the operator share these cores: absolute times drift with whatever else runs; ratios measured side by side are the figures to read.";

const say = (line: string) => process.stdout.write(`${line}\n`);

function stamp(d: Date): string {
  const pad = (v: number) => String(v).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}-${pad(d.getHours())}${pad(d.getMinutes())}`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      mode: { type: "string", default: "quick" },
      methods: { type: "string" },
      n: { type: "string" },
      nodes: { type: "string" },
      "control-plane-cpu": { type: "string" },
      "cap-scheduler": { type: "boolean", default: false },
      oracle: { type: "string" },
    },
  });
  if (!(values.mode in MODES)) throw new Error(`--mode must be quick, full or matrix\n${USAGE}`);
  const mode = values.mode as Mode;
  const n = values.n ? Number(values.n) : MODES[mode].n;
  const nodes = values.nodes ? Number(values.nodes) : MODES[mode].nodes;
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(nodes) || nodes < 1) throw new Error(`--n and --nodes must be positive integers\n${USAGE}`);
  const cpuLevels = values["control-plane-cpu"] ?? (mode === "matrix" ? MATRIX_LEVELS : undefined);
  if (cpuLevels !== undefined) {
    const names = (values.methods ?? MATRIX_METHODS).split(",").map((x) => x.trim());
    const methods = selectMethods(names.filter((x) => x !== ORACLE_METHOD_ID).join(",") || "none-but-the-oracle");
    checkCapacity(methods, n, nodes);
    const levels = parseLevels(cpuLevels);
    const sized = n !== MODES[mode].n || nodes !== MODES[mode].nodes ? `-n${n}` : "";
    const label = mode === "matrix" && cpuLevels === MATRIX_LEVELS ? `matrix${sized}` : `${mode}${sized}-cpu-${levels.map((l) => fileSafe(l.label)).join("_")}`;
    const stem = `${stamp(new Date())}-${label}`;
    await runLevels({
      mode, label, stem, n, nodes, levels, methods, oracle: names.includes(ORACLE_METHOD_ID), reuse: parseOracles(values.oracle),
      capScheduler: values["cap-scheduler"], workRoot: join(`${paths.state}-runs`, stem), resultsDir: RESULTS_DIR, say,
    });
    return;
  }
  const methods = selectMethods(values.methods);
  checkCapacity(methods, n, nodes);
  const started = new Date();
  const loadAverageAtStart = loadavg();
  const runId = started.getTime().toString(36).slice(-6);
  const subset = values.methods ? `-${methods.length === 1 ? methods[0]!.id : `${methods.length}-methods`}` : "";
  const label = `${mode}${n !== MODES[mode].n || nodes !== MODES[mode].nodes ? `-n${n}` : ""}${subset}`;
  const stem = `${stamp(started)}-${label}`;
  const workRoot = join(paths.state, "bench", stem);
  mkdirSync(workRoot, { recursive: true });

  say(`BatchRollout benchmark: ${mode} mode, N=${n}, ${nodes} nodes, methods ${methods.map((m) => m.id).join(", ")}`);
  say(`state ${paths.state}; logs and generated files in ${workRoot}`);
  const maxS = Math.ceil(methods.reduce((a, m) => a + methodDeadlineMs(m.pods(n) * 2), 0) / 1000) + BYSTANDER_SLACK_S;
  const session = await openSession({ nodes, methods, workRoot, bystanderMaxS: maxS, say });
  const { info, admin, logger, sampler, identities, identitiesOut, kwokLog, records } = session;
  const results: MethodResult[] = [];
  const file = (ext: string) => join(RESULTS_DIR, `${stem}.${ext}`);
  // Written as soon as each method is measured (before its cleanup), so a later failure loses nothing.
  const save = (): RunResult => {
    const run: RunResult = {
      date: started.toISOString(),
      mode: label,
      n,
      nodes,
      runId,
      versions: VERSIONS,
      machine: { cpus: cpus().length, loadAverageAtStart, loadAverage: loadavg(), caveat: CAVEAT },
      identities: identitiesOut,
      methods: results,
      targets: computeTargets(results),
    };
    mkdirSync(RESULTS_DIR, { recursive: true });
    writeFileSync(file("json"), `${JSON.stringify(run, null, 1)}\n`);
    writeFileSync(file("svg"), runChart(`BatchRollout benchmark, ${label}, N=${n}, ${nodes} nodes`, results));
    writeFileSync(file("md"), renderMarkdown(run, `${stem}.svg`));
    return run;
  };
  try {
    for (const method of methods) {
      const deps = { admin, binDir: info.binDir, writerKubeconfig: info.operatorKubeconfig, runId, n, workRoot, logger, sampler, identities, bystander: records, crdInstalled: true, say };
      await runMethod(deps, method, (r) => {
        kwokLog.scan();
        results.push({ ...r, kwokReplayed: kwokLog.replayed(r.namespace) });
        save();
        const f = r.figures;
        say(`  makespan ${f.makespanRunningS ?? "–"} s, ${f.throughputPerS ?? "–"} pods/s, bystander p99 ${f.bystander.p99Ms ?? "–"} ms (${f.bystander.errors} errors), correct: ${f.correctness.ok}`);
      });
    }
  } finally {
    await session.close();
  }
  const run = save();
  say("");
  say(methodTable(results));
  say("");
  say(targetTable(run.targets));
  say("");
  for (const ext of ["json", "md", "svg"]) say(`wrote ${relative(REPO_ROOT, file(ext))}`);
  say("the control plane keeps running; stop it with: bash scripts/run.sh cluster:down (same BATCHROLLOUT_* variables)");
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
