import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import { pino } from "pino";
import { KubeClient } from "../src/kube/client.ts";
import { kubectl, up } from "../test/cluster/cluster.ts";
import { REPO_ROOT, VERSIONS, paths } from "../test/cluster/layout.ts";
import { BYSTANDER_NAME } from "./bystander.ts";
import { spawnScript } from "./child.ts";
import { SHARED_PRIORITY_LEVEL, classify, classifyReplicaSetController, ensureBystander, pfNames } from "./identities.ts";
import type { WriterIdentities } from "./methods/method.ts";
import { MODES, type Mode, checkCapacity, methodDeadlineMs, selectMethods } from "./modes.ts";
import { deleteNamespace, leftoverNamespaces, removeControllers } from "./namespaces.ts";
import { rolloutsPath } from "./methods/batchrollout.ts";
import { runChart } from "./report/charts.ts";
import { KwokLog } from "./scrape/kwok-log.ts";
import { methodTable, renderMarkdown, targetTable } from "./report/markdown.ts";
import { computeTargets } from "./report/targets.ts";
import type { MethodResult, RunResult } from "./result.ts";
import { runMethod } from "./runner.ts";
import { Sampler } from "./sampler.ts";
import type { BystanderRecord } from "./samples.ts";
import type { BystanderLine } from "./writer-protocol.ts";

// npm run bench -- --mode quick|full [--methods storm,seed-batches,kube-burner,deployment,batchrollout,stressor]
//                  [--n N] [--nodes N]
// Brings up (or reuses) the local control plane of this state directory (BATCHROLLOUT_CLUSTER_DIR,
// BATCHROLLOUT_PORT_OFFSET), runs the methods one after another on it, each from an empty namespace,
// with the bystander running throughout, and writes bench/results/<date>-<mode>.{json,md,svg}.

const USAGE = "usage: npm run bench -- [--mode quick|full] [--methods a,b,...] [--n N] [--nodes N]";
const RESULTS_DIR = join(REPO_ROOT, "bench/results");
/** The bystander's own time limit: every method's deadline plus cleanup, so it always stops by itself. */
const BYSTANDER_SLACK_S = 1_800;
const CRD_ESTABLISHED_TIMEOUT = "60s";
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
    },
  });
  if (!(values.mode in MODES)) throw new Error(`--mode must be quick or full\n${USAGE}`);
  const mode = values.mode as Mode;
  const n = values.n ? Number(values.n) : MODES[mode].n;
  const nodes = values.nodes ? Number(values.nodes) : MODES[mode].nodes;
  if (!Number.isInteger(n) || n < 1 || !Number.isInteger(nodes) || nodes < 1) throw new Error(`--n and --nodes must be positive integers\n${USAGE}`);
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
  const info = await up({ nodes });
  if (methods.some((m) => m.id.startsWith("kube-burner-")) && !existsSync(join(info.binDir, "kube-burner"))) {
    throw new Error(`kube-burner is not in ${info.binDir}: build it with test/cluster/build-binaries.sh`);
  }
  const admin = await KubeClient.fromKubeconfig(info.adminKubeconfig);
  const logger = pino({ level: "warn" }, pino.destination(2));
  kubectl(info.binDir, ["apply", "--server-side", "-f", join(REPO_ROOT, "crds")]);
  kubectl(info.binDir, ["wait", "--for=condition=Established", "crd/batchrollouts.batchrollout.dev", `--timeout=${CRD_ESTABLISHED_TIMEOUT}`]);

  for (const ns of await leftoverNamespaces(admin)) {
    say(`removing namespace ${ns} left by an earlier run`);
    await removeControllers(admin, ns, rolloutsPath(ns));
    await deleteNamespace(admin, ns);
  }

  const bystanderKubeconfig = await ensureBystander(admin, info.binDir);
  const names = await pfNames(admin);
  const writerClient = await KubeClient.fromKubeconfig(info.operatorKubeconfig);
  const writer = await classify(writerClient, names, "/api/v1/pods");
  await writerClient.close();
  const bystanderClient = await KubeClient.fromKubeconfig(bystanderKubeconfig);
  const bystander = await classify(bystanderClient, names, `/api/v1/namespaces/${BYSTANDER_NAME}/configmaps`);
  await bystanderClient.close();
  const replicaSetController = methods.some((m) => m.writerIdentity === "replicaset-controller") ? await classifyReplicaSetController(admin, names) : undefined;
  const sameLevel = bystander.priorityLevel === writer.priorityLevel && bystander.flowSchema !== writer.flowSchema;
  const note = sameLevel
    ? `The bystander shares the writer's priority level (${writer.priorityLevel}) but not its flow schema (${writer.flowSchema}): it competes for the same seats as a separate flow.`
    : `WARNING: the bystander was expected in ${SHARED_PRIORITY_LEVEL} beside the writer, in another flow schema; it is in ${bystander.flowSchema}/${bystander.priorityLevel}.`;
  say(`writer:    ${writer.user} → FlowSchema ${writer.flowSchema}, priority level ${writer.priorityLevel}`);
  say(`bystander: ${bystander.user} → FlowSchema ${bystander.flowSchema}, priority level ${bystander.priorityLevel}`);
  say(`           ${note}`);
  if (replicaSetController) {
    say(`Deployment pods: ${replicaSetController.user} → FlowSchema ${replicaSetController.flowSchema}, priority level ${replicaSetController.priorityLevel}`);
  }
  const identities: WriterIdentities = {
    writer: { flowSchema: writer.flowSchema, priorityLevel: writer.priorityLevel },
    "replicaset-controller": replicaSetController
      ? { flowSchema: replicaSetController.flowSchema, priorityLevel: replicaSetController.priorityLevel }
      : { flowSchema: "", priorityLevel: "" },
  };

  const records: BystanderRecord[] = [];
  const maxS = Math.ceil(methods.reduce((a, m) => a + methodDeadlineMs(m.pods(n) * 2), 0) / 1000) + BYSTANDER_SLACK_S;
  const bystanderProcess = spawnScript<BystanderLine>(
    "bystander-main.ts",
    [`--kubeconfig=${bystanderKubeconfig}`, `--namespace=${BYSTANDER_NAME}`, `--max-s=${maxS}`],
    join(workRoot, "bystander.log"),
    (line) => {
      if (line.type === "request") records.push({ at: line.at, ms: line.ms, op: line.op, code: line.code, ...(line.error ? { error: line.error } : {}) });
    },
  );

  const sampler = new Sampler(admin);
  // What the cluster's earlier runs left in the log is not this run's.
  const kwokLog = new KwokLog(join(paths.logs, "kwok.log"), { fromEnd: true });
  const results: MethodResult[] = [];
  const file = (ext: string) => join(RESULTS_DIR, `${stem}.${ext}`);
  const identitiesOut = { writer, bystander, ...(replicaSetController ? { replicaSetController } : {}), note };
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
    await bystanderProcess.stop();
    await sampler.close();
  }
  const run = save();
  say("");
  say(methodTable(results));
  say("");
  say(targetTable(run.targets));
  say("");
  for (const ext of ["json", "md", "svg"]) say(`wrote ${relative(REPO_ROOT, file(ext))}`);
  say("the control plane keeps running; stop it with: bash scripts/run.sh cluster:down (same BATCHROLLOUT_* variables)");
  await admin.close();
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
