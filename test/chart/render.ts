import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { parseAllDocuments } from "yaml";
import { buildBinaries } from "../cluster/cluster.ts";
import { REPO_ROOT, VERSIONS } from "../cluster/layout.ts";

// Renders the chart with the test bed's own helm (built from Go modules and cached with the control
// plane), at the Kubernetes version the test bed runs, so the chart is checked against what it meets.

export const CHART_DIR = join(REPO_ROOT, "charts/batchrollout");
const execFileAsync = promisify(execFile);

/** A rendered object, as much of it as the tests read. */
export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

let helm: Promise<string> | undefined;
export function helmBinary(): Promise<string> {
  helm ??= buildBinaries().then((dir) => join(dir, "helm"));
  return helm;
}

/** `helm template` with --set pairs and values files; rejects with helm's own message. */
export async function renderChart(opts: { release?: string; namespace?: string; set?: string[]; values?: string[] } = {}): Promise<Manifest[]> {
  const args = ["template", opts.release ?? "br", CHART_DIR, "--namespace", opts.namespace ?? "batchrollout-system",
    "--kube-version", VERSIONS.KUBERNETES_VERSION ?? ""];
  for (const s of opts.set ?? []) args.push("--set", s);
  for (const v of opts.values ?? []) args.push("--values", v);
  const { stdout } = await execFileAsync(await helmBinary(), args, { maxBuffer: 32 * 1024 * 1024 });
  return parseAllDocuments(stdout)
    .map((d) => d.toJS() as Manifest | null)
    .filter((m): m is Manifest => m !== null);
}

export function find(manifests: Manifest[], kind: string, name?: string): Manifest | undefined {
  return manifests.find((m) => m.kind === kind && (name === undefined || m.metadata.name === name));
}
