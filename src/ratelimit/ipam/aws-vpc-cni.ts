// AWS VPC CNI headroom from ipamd's Prometheus metrics (one scrape per node, port 61678 /metrics,
// or the cni-metrics-helper). Only the arithmetic lives here; the lead does the HTTP.

import type { IpHeadroom } from "./index.ts";

/** Gauge: addresses ipamd holds on the node's ENIs (secondary IPs or /28 prefixes, expanded). */
export const AWSCNI_TOTAL_METRIC = "awscni_total_ip_addresses";
/** Gauge: of those, addresses assigned to pods. */
export const AWSCNI_ASSIGNED_METRIC = "awscni_assigned_ip_addresses";

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;
const LABEL = /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?/y;

function unescapeLabel(value: string): string {
  return value.replace(/\\(["\\n])/g, (_, c: string) => (c === "n" ? "\n" : c));
}

function parseValue(text: string): number {
  switch (text) {
    case "+Inf":
      return Infinity;
    case "-Inf":
      return -Infinity;
    case "NaN":
      return NaN;
    default:
      return Number(text);
  }
}

/**
 * Samples of a Prometheus text exposition (format 0.0.4): `name{label="v",...} value [timestamp]`,
 * comment and blank lines skipped. Lines that do not parse are skipped, not fatal: a scrape with one
 * odd line still tells us the two gauges we need.
 */
export function parsePrometheusText(text: string): PromSample[] {
  const samples: PromSample[] = [];
  for (const rawLine of text.split("\n")) {
    const line = rawLine.trim();
    if (!line || line.startsWith("#")) continue;
    const nameMatch = METRIC_NAME.exec(line);
    if (!nameMatch) continue;
    const name = nameMatch[0];
    let rest = line.slice(name.length);
    const labels: Record<string, string> = {};
    if (rest.startsWith("{")) {
      const close = findLabelsEnd(rest);
      if (close < 0) continue;
      const body = rest.slice(1, close);
      LABEL.lastIndex = 0;
      let match: RegExpExecArray | null;
      while (LABEL.lastIndex < body.length && (match = LABEL.exec(body)) !== null) {
        labels[match[1] ?? ""] = unescapeLabel(match[2] ?? "");
      }
      if (body.slice(LABEL.lastIndex).trim()) continue; // a label set we could not read whole
      rest = rest.slice(close + 1);
    }
    const valueText = rest.trim().split(/\s+/)[0];
    if (!valueText) continue;
    const value = parseValue(valueText);
    if (Number.isNaN(value) && valueText !== "NaN") continue;
    samples.push({ name, labels, value });
  }
  return samples;
}

/** Index of the `}` closing the label set, skipping braces inside quoted values; -1 when unclosed. */
function findLabelsEnd(text: string): number {
  let quoted = false;
  for (let i = 1; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === "\\") i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === "}") return i;
  }
  return -1;
}

function sumOf(samples: readonly PromSample[], name: string): number | undefined {
  const values = samples.filter((s) => s.name === name && Number.isFinite(s.value)).map((s) => s.value);
  return values.length ? values.reduce((a, b) => a + b, 0) : undefined;
}

export interface AwsVpcCniScrape {
  /** Which node or endpoint the text came from, for messages. */
  source: string;
  text: string;
}

export interface AwsVpcCniHeadroom extends IpHeadroom {
  provider: "AwsVpcCni";
  perSource: Array<{ source: string; total?: number; assigned?: number; free?: number }>;
}

/**
 * Free addresses = Σ over scrapes of (awscni_total_ip_addresses − awscni_assigned_ip_addresses), each
 * gauge summed over its samples. Conservative: ipamd attaches more ENIs or prefixes on demand up to the
 * instance type's limit, so the addresses already held are a floor of what the node can give.
 * A scrape missing either gauge is named in the message and adds nothing.
 */
export function awsVpcCniHeadroom(scrapes: readonly AwsVpcCniScrape[]): AwsVpcCniHeadroom {
  const perSource: AwsVpcCniHeadroom["perSource"] = [];
  let free = 0;
  let capacity = 0;
  const missing: string[] = [];
  for (const { source, text } of scrapes) {
    const samples = parsePrometheusText(text);
    const total = sumOf(samples, AWSCNI_TOTAL_METRIC);
    const assigned = sumOf(samples, AWSCNI_ASSIGNED_METRIC);
    if (total === undefined || assigned === undefined) {
      missing.push(source);
      perSource.push({ source, total, assigned });
      continue;
    }
    const sourceFree = Math.max(0, total - assigned);
    free += sourceFree;
    capacity += total;
    perSource.push({ source, total, assigned, free: sourceFree });
  }
  const missingNote = missing.length ? `; ${AWSCNI_TOTAL_METRIC}/${AWSCNI_ASSIGNED_METRIC} missing from ${missing.join(", ")}` : "";
  const known = perSource.length - missing.length;
  if (known === 0) return { provider: "AwsVpcCni", free: undefined, message: `no usable ipamd metrics; IP headroom unknown${missingNote}`, perSource };
  return { provider: "AwsVpcCni", free, capacity, message: `${free} pod IPs free on ${known} node(s) per ipamd${missingNote}`, perSource };
}
