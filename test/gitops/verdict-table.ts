import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { CAPTURE_DIR, type Verdicts } from "./checker.ts";

// The README's verdict table (section "GitOps and kubectl"): one row per state of a BatchRollout,
// each proven by a capture from the local control plane (test/integration/gitops-health.test.ts).
// `want` is the verdict each tool should give; `today` overrides it where issue 26 says the
// operator is still wrong, so the integration test marks exactly those checks it.fails.

export const ROWS = [
  "new",
  "progressing",
  "updating",
  "waiting-on-guard",
  "paused",
  "stalled-template-rejected",
  "stalled-failure-budget",
  "complete",
  "complete-with-failures-continue",
  "scaling-down",
  "deleting",
] as const;
export type Row = (typeof ROWS)[number];
export const TOOLS = ["kstatus", "argocd", "flux"] as const;
export type Tool = (typeof TOOLS)[number];
export type ToolVerdicts = Record<Tool, string>;

export interface TableRow {
  /** The state, in the README's words. */
  state: string;
  want: ToolVerdicts;
  /** What the tools say on today's captures where that is not `want` (issue 26, the operator's part). */
  today?: Partial<ToolVerdicts>;
}

export const TABLE: Record<Row, TableRow> = {
  new: {
    state: "new (no status yet)",
    // The CRD defaults status to {observedGeneration: 0}: before the operator's first status every
    // tool compares it with metadata.generation and reads in progress.
    want: { kstatus: "InProgress", argocd: "Progressing", flux: "InProgress" },
  },
  progressing: { state: "progressing", want: { kstatus: "InProgress", argocd: "Progressing", flux: "InProgress" } },
  updating: {
    state: "updating (a template change replacing pods)",
    // Ready=False (UpdatingPods) until every pod at or above the partition runs the new template.
    want: { kstatus: "InProgress", argocd: "Progressing", flux: "InProgress" },
  },
  "waiting-on-guard": { state: "waiting on a guard", want: { kstatus: "InProgress", argocd: "Progressing", flux: "InProgress" } },
  paused: { state: "paused", want: { kstatus: "InProgress", argocd: "Suspended", flux: "InProgress" } },
  "stalled-template-rejected": { state: "stalled: template rejected", want: { kstatus: "Failed", argocd: "Degraded", flux: "Failed" } },
  "stalled-failure-budget": { state: "stalled: failure budget", want: { kstatus: "Failed", argocd: "Degraded", flux: "Failed" } },
  complete: { state: "complete", want: { kstatus: "Current", argocd: "Healthy", flux: "Current" } },
  "complete-with-failures-continue": {
    state: "complete with failed pods under Continue",
    // Ready=True, reason CompleteWithFailures, the failed count in its message.
    want: { kstatus: "Current", argocd: "Healthy", flux: "Current" },
  },
  "scaling-down": {
    state: "scaling down (pods still terminating)",
    // Ready=False and Progressing=True (ScalingDown) until the pods above spec.replicas are gone.
    want: { kstatus: "InProgress", argocd: "Progressing", flux: "InProgress" },
  },
  deleting: { state: "deleting", want: { kstatus: "Terminating", argocd: "Progressing", flux: "InProgress" } },
};

/** What each tool says on today's captures. */
export const measured = (row: Row): ToolVerdicts => ({ ...TABLE[row].want, ...TABLE[row].today });

export const captureFile = (row: Row) => join(CAPTURE_DIR, `${row}.yaml`);

interface Captured {
  metadata: { deletionTimestamp?: string };
  status?: { conditions?: { type: string; status: string; reason: string }[] };
}

/** Ready / Progressing / Stalled as the capture shows them: "False ReplicasMissing", ... */
export function conditionsOf(object: Captured): string {
  const conditions = object.status?.conditions;
  if (!conditions?.length) return "none";
  const cell = (type: string) => {
    const c = conditions.find((x) => x.type === type);
    return c ? `${c.status} ${c.reason}` : "–";
  };
  return ["Ready", "Progressing", "Stalled"].map(cell).join(" / ");
}

/** The README's verdict table, from the captures and the tools' verdicts on them. */
export function verdictTableMarkdown(verdicts: Map<Row, Verdicts>): string {
  const lines = [
    "| state | conditions written: Ready / Progressing / Stalled | kstatus (Flux's default) | Argo CD (health.lua) | Flux (healthCheckExprs) |",
    "| --- | --- | --- | --- | --- |",
  ];
  const mark = (row: Row, tool: Tool, got: string) => (TABLE[row].today?.[tool] !== undefined ? `**${got}** (wanted: ${TABLE[row].want[tool]})` : got);
  for (const row of ROWS) {
    const object = parse(readFileSync(captureFile(row), "utf8")) as Captured;
    const v = verdicts.get(row);
    if (!v) throw new Error(`no verdicts for row ${row}`);
    const deleting = object.metadata.deletionTimestamp ? " (deletionTimestamp set)" : "";
    lines.push(
      `| ${TABLE[row].state} | ${conditionsOf(object)}${deleting} | ${mark(row, "kstatus", v.kstatus.status)} | ${mark(row, "argocd", v.argocd.status)} | ${mark(row, "flux", v.flux.status)} |`,
    );
  }
  return lines.join("\n");
}

/** Argo CD's health_test.yaml for the captures: the health this health.lua gives each of them. */
export function healthTestYaml(verdicts: Map<Row, Verdicts>): string {
  const lines = [
    "# Argo CD health_test.yaml form: each capture (testdata/, from the local control plane) and the",
    "# health this health.lua gives it (test/gitops/gitops.test.ts runs it under gopher-lua).",
    "tests:",
  ];
  for (const row of ROWS) {
    const v = verdicts.get(row);
    if (!v) throw new Error(`no verdicts for row ${row}`);
    lines.push("- healthStatus:", `    status: ${v.argocd.status}`, `    message: ${JSON.stringify(v.argocd.message)}`, `  inputPath: testdata/${row}.yaml`);
  }
  return `${lines.join("\n")}\n`;
}

const TABLE_HEADER = "| state | conditions written: Ready / Progressing / Stalled |";

/** The README with its verdict table replaced by `table`. */
export function withVerdictTable(readme: string, table: string): string {
  const start = readme.indexOf(TABLE_HEADER);
  if (start < 0) throw new Error("the README has no verdict table");
  const end = readme.indexOf("\n\n", start);
  return readme.slice(0, start) + table + readme.slice(end);
}
