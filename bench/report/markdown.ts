import { STRESSOR_CUT_FRACTION } from "../figures.ts";
import type { MethodResult, RunResult, TargetCheck } from "../result.ts";

// The Markdown report: one row per method, the targets, and the facts a reader needs to trust them.

const dash = "–";
const num = (v: number | undefined, unit = "") => (v === undefined ? dash : `${v}${unit}`);
const loads = (l: readonly number[]) => l.map((v) => v.toFixed(1)).join(" / ");

function pair(a: number | undefined, b: number | undefined): string {
  return a === undefined && b === undefined ? dash : `${a ?? dash} / ${b ?? dash}`;
}

function throttled(m: MethodResult): string {
  const f = m.figures;
  const parts = [];
  if (f.clientThrottled !== undefined) parts.push(`${f.clientThrottled} client`);
  if (f.operatorThrottled !== undefined) parts.push(`${f.operatorThrottled} operator`);
  parts.push(`${f.apfRejectedWriter} APF`);
  const ra = Object.entries(f.retryAfterS).map(([k, v]) => `${k}s×${v}`).join(" ");
  return parts.join(", ") + (ra ? ` (Retry-After ${ra})` : "");
}

function correctness(m: MethodResult): string {
  const c = m.figures.correctness;
  if (c.ok) return `✔ ${c.existing}`;
  const why = [];
  if (c.seen !== c.expected) why.push(`${c.seen}/${c.expected} created`);
  if (c.existing !== c.seen) why.push(`${c.seen - c.existing} deleted`);
  if (c.duplicates > 0) why.push(`${c.duplicates} duplicates`);
  if (c.notRunningAtEnd > 0) why.push(`${c.notRunningAtEnd} not Running`);
  if (m.timedOut) why.push("timed out");
  return `✘ ${why.join(", ")}`;
}

/** N / makespan; for a method that did not get all N Running, the rate of those it did, marked with how many. */
function podsPerS(f: MethodResult["figures"]): string {
  if (f.throughputPerS !== undefined) return String(f.throughputPerS);
  return f.runningThroughput ? `(${f.runningThroughput.perS} over ${f.runningThroughput.pods})` : dash;
}

export function methodTable(methods: readonly MethodResult[]): string {
  const header = [
    "method", "pods", "makespan → Running (s)", "→ Scheduled (s)", "lead-in (s)", "pods/s", "peak pods/s",
    "bystander p50 / p99 (ms)", "bystander errors", "writer 429s", "POST pods p99 client / apiserver (ms)",
    "max sched. pending", "operator CPU s / peak RSS MB", "apiserver peak RSS MB", "etcd peak RSS MB", "pods kwok played twice", "correct",
  ];
  const rows = methods.map((m) => {
    const f = m.figures;
    const op = f.proc.operator;
    return [
      m.label, String(m.pods), num(f.makespanRunningS), num(f.makespanScheduledS), num(f.leadInS), podsPerS(f), String(f.peakRunningPerS),
      pair(f.bystander.p50Ms, f.bystander.p99Ms), `${f.bystander.errors}/${f.bystander.requests}`, throttled(m),
      pair(f.postPodsP99Ms.client, f.postPodsP99Ms.apiServer),
      `${f.maxSchedulerPending ?? dash} (watch ${f.maxUnscheduled})`,
      op ? `${op.cpuS} / ${op.peakRssMB}` : dash,
      num(f.proc["kube-apiserver"]?.peakRssMB), num(f.proc.etcd?.peakRssMB), num(m.kwokReplayed), correctness(m),
    ];
  });
  return [`| ${header.join(" | ")} |`, `|${header.map(() => " --- ").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
}

export function targetTable(targets: readonly TargetCheck[]): string {
  return [
    "| target | verdict | ratio | measured |",
    "| --- | --- | --- | --- |",
    ...targets.map((t) => `| ${t.name} | **${t.verdict}** | ${t.ratio ?? dash} | ${t.detail} |`),
  ].join("\n");
}

export function renderMarkdown(run: RunResult, chartFile: string): string {
  const cpuTable = [
    "| method | kube-apiserver CPU s | etcd CPU s | kube-controller-manager CPU s | kube-scheduler CPU s | kwok CPU s | operator CPU s | max operator event-loop lag (ms) |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ...run.methods.map((m) => {
      const p = m.figures.proc;
      return `| ${m.label} | ${num(p["kube-apiserver"]?.cpuS)} | ${num(p.etcd?.cpuS)} | ${num(p["kube-controller-manager"]?.cpuS)} | ${num(p["kube-scheduler"]?.cpuS)} | ${num(p.kwok?.cpuS)} | ${num(p.operator?.cpuS)} | ${num(m.figures.maxOperatorEventLoopLagMs)} |`;
    }),
  ].join("\n");
  const flows = run.methods
    .map((m) => `- ${m.label}: ${m.figures.dispatched.map((d) => `${d.flowSchema}/${d.priorityLevel} ${d.requests}`).join(", ") || dash}`)
    .join("\n");
  const stress = run.methods.filter((m) => m.stressor).map((m) => {
    const s = m.stressor!;
    return `- ${m.label}: second writer started at ${s.triggerS} s${s.stormDoneS === undefined ? "" : `, its creates answered by ${s.stormDoneS} s`}; ` +
      `rollout creation rate ${s.baselineRatePerS}/s before, ${s.duringRatePerS ?? dash}/s during; rate below ${STRESSOR_CUT_FRACTION * 100} % after ${s.cutAfterS ?? "never"} s; ` +
      `the sizer's own first slow-down after ${s.controllerCutAfterS ?? "never"} s${s.controllerCutReason ? ` (${s.controllerCutReason})` : ""}; ` +
      `bystander p99 during ${s.bystanderDuring.p99Ms ?? dash} ms, ${s.bystanderDuring.errors} errors of ${s.bystanderDuring.requests}; the second writer saw ${s.stormThrottled} 429s`;
  });
  return [
    `# BatchRollout benchmark, ${run.mode} mode (${run.date})`,
    "",
    `N = ${run.n} pods on ${run.nodes} kwok nodes; Kubernetes ${run.versions.KUBERNETES_VERSION ?? "?"}, etcd ${run.versions.ETCD_VERSION ?? "?"}, kwok ${run.versions.KWOK_VERSION ?? "?"}, kube-burner ${run.versions.KUBE_BURNER_VERSION ?? "?"}.`,
    `Machine: ${run.machine.cpus} cores, load average ${run.machine.loadAverageAtStart ? `before the cluster came up ${loads(run.machine.loadAverageAtStart)}, ` : ""}at the end ${loads(run.machine.loadAverage)}. ${run.machine.caveat}`,
    "",
    `Writer: ${run.identities.writer.user} → FlowSchema ${run.identities.writer.flowSchema}, priority level ${run.identities.writer.priorityLevel}.`,
    `Bystander: ${run.identities.bystander.user} → FlowSchema ${run.identities.bystander.flowSchema}, priority level ${run.identities.bystander.priorityLevel}. ${run.identities.note}`,
    run.identities.replicaSetController
      ? `Deployment pods are written by ${run.identities.replicaSetController.user} → FlowSchema ${run.identities.replicaSetController.flowSchema}, priority level ${run.identities.replicaSetController.priorityLevel}.`
      : "",
    "",
    "## Methods",
    "",
    methodTable(run.methods),
    "",
    "Makespan runs from the first pod seen by the watch to the last pod Running; lead-in is method start → first pod. " +
      "Writer 429s: client = 429 responses our own writer saw (KubeClient.onResponse), operator = its rest_client_requests_total{code=\"429\"}, " +
      "APF = kube-apiserver's apiserver_flowcontrol_rejected_requests_total for the writer's flow schema and priority level. " +
      "Max sched. pending is kube-scheduler's scheduler_pending_pods (all queues), with the unscheduled pods counted from the watch beside it.",
    "",
    "Pods kwok played twice: distinct pods of the method whose pod-ready patch kwok (the test bed's kubelet) sent again from a stale copy and had refused with a 409, read from its log; each follows a cut or relisted watch, and delays Running.",
    "",
    "## Targets",
    "",
    targetTable(run.targets),
    "",
    ...(stress.length ? ["## Stressor", "", ...stress, ""] : []),
    "## CPU",
    "",
    cpuTable,
    "",
    "## Requests dispatched by APF during each method (flow schema / priority level)",
    "",
    flows,
    "",
    `![pods Running and bystander p99 over time](${chartFile})`,
    "",
  ].join("\n");
}
