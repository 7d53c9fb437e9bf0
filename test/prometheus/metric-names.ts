import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { REPO_ROOT } from "../cluster/layout.ts";

// Metric names that the chart's dashboard and alert rules query, so a test can hold them against
// what a running operator serves: a renamed metric must not leave a blank panel or a silent alert.

const KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset", "inf", "nan"]);

/** The metric names one PromQL expression reads (not functions, label names, keywords or values). */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // label values and strings
    .replace(/\{[^}]*\}/g, " ") // matchers
    .replace(/\[[^\]]*\]/g, " ") // ranges
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " "); // grouping labels
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w:$])([a-zA-Z_:][\w:]*)\s*(\()?/g)) {
    const [, name, call] = m;
    if (!name || call || KEYWORDS.has(name.toLowerCase()) || /^\d/.test(name)) continue;
    names.add(name);
  }
  return [...names];
}

/** Every PromQL expression of the Grafana dashboard: panel targets and variable queries. */
export function dashboardExpressions(file = join(REPO_ROOT, "charts/batchrollout/files/grafana-dashboard.json")): string[] {
  const dashboard = JSON.parse(readFileSync(file, "utf8")) as {
    panels: { targets?: { expr: string }[] }[];
    templating: { list: { type: string; query: unknown }[] };
  };
  const fromPanels = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  const fromVariables = dashboard.templating.list
    .filter((v) => v.type === "query")
    .map((v) => (v.query as { query: string }).query.replace(/^label_values\((.*),\s*\w+\)$/, "$1"));
  return [...fromPanels, ...fromVariables].map((e) => e.replaceAll("$__rate_interval", "5m"));
}

/** Every expression of the chart's alert rules. */
export function ruleExpressions(file = join(REPO_ROOT, "charts/batchrollout/files/prometheus-rules.yaml")): string[] {
  const rules = parse(readFileSync(file, "utf8")) as { groups: { rules: { expr: string }[] }[] };
  return rules.groups.flatMap((g) => g.rules.map((r) => r.expr));
}

/** The metric families a /metrics page declares (# TYPE lines: present even before a first sample). */
export function exposedNames(text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] ?? ""));
}
