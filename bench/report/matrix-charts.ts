import { BYSTANDER_P99_TARGET_MS } from "../bystander.ts";
import { type Panel, type Series, renderChart } from "./chart.ts";
import { ORACLE_METHOD_ID, type LevelResult } from "./matrix.ts";

// The matrix's two charts: makespan against control-plane CPU per method, with the oracle (the fastest
// fixed rate that kept the bystander within its SLO) drawn dashed as the frontier; and the bystander's
// p99 against CPU, with the bystander alone (no writer) beside the methods.

const X_LABEL = "control-plane CPU (cores; unlimited at the machine's core count; a level with APF shares s at CPU × s/100)";
/** kube-apiserver's default nominalConcurrencyShares for workload-low: a level's shares scale its x by shares / this. */
const DEFAULT_SHARES = 100;
/** BatchRollout with defaults is drawn in the emphasis colour; the stressor (BatchRollout beside a second writer) in its own. */
const isProduct = (id: string) => id === "batchrollout";

/** Where a level sits on the x axis: its CPUs (the machine's cores when unlimited), scaled by its APF shares if set. */
export function levelX(level: LevelResult, cores: number): number {
  return (level.level.cpus ?? cores) * (level.level.shares ?? DEFAULT_SHARES) / DEFAULT_SHARES;
}

function byMethod(levels: readonly LevelResult[], cores: number, value: (l: LevelResult, id: string) => number | undefined): Series[] {
  const ids = [...new Set(levels.flatMap((l) => l.methods.map((m) => m.id)))];
  const sorted = [...levels].sort((a, b) => levelX(a, cores) - levelX(b, cores));
  return ids.map((id) => {
    const label = id === ORACLE_METHOD_ID ? "oracle (fastest safe fixed rate)" : (levels.flatMap((l) => l.methods).find((m) => m.id === id)?.label ?? id).replace(/ qps=burst=\d+/, "");
    const points = sorted.flatMap((l): [number, number][] => {
      const v = value(l, id);
      return v === undefined ? [] : [[levelX(l, cores), v]];
    });
    return { label, points, dots: true, emphasis: isProduct(id), dashed: id === ORACLE_METHOD_ID };
  });
}

export function matrixChart(title: string, levels: readonly LevelResult[], cores: number): string {
  const method = (l: LevelResult, id: string) => l.methods.find((m) => m.id === id);
  const makespan: Panel = {
    title: "Makespan against control-plane CPU",
    xLabel: X_LABEL,
    yLabel: "makespan to all Running (s)",
    series: byMethod(levels, cores, (l, id) => method(l, id)?.figures.makespanRunningS),
  };
  const alone: Series = {
    label: "bystander alone (no writer)",
    dots: true,
    dashed: true,
    points: [...levels].sort((a, b) => levelX(a, cores) - levelX(b, cores)).flatMap((l): [number, number][] => (l.baseline?.p99Ms === undefined ? [] : [[levelX(l, cores), l.baseline.p99Ms]])),
  };
  const p99: Panel = {
    title: "Bystander p99 against control-plane CPU",
    xLabel: X_LABEL,
    yLabel: "bystander p99 over the method (ms)",
    reference: { y: BYSTANDER_P99_TARGET_MS, label: "1 s SLO" },
    series: [...byMethod(levels, cores, (l, id) => method(l, id)?.figures.bystander.p99Ms), alone],
  };
  return renderChart(title, [makespan, p99]);
}
