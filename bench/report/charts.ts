import type { MethodResult } from "../result.ts";
import { BYSTANDER_P99_TARGET_MS } from "../bystander.ts";
import { type Panel, renderChart } from "./chart.ts";

// The run's chart: pods Running over time per method and the bystander's p99 per second; the stressor
// scenario, which runs longer and has two writers, gets its own pair of panels.

const X_LABEL = "seconds since the method started";
const SLO = { y: BYSTANDER_P99_TARGET_MS, label: "1 s SLO" };
const isProduct = (m: MethodResult) => m.id === "batchrollout" || m.id === "stressor";

function p99Points(m: MethodResult): [number, number][] {
  return m.samples.filter((s) => s.bystander?.p99Ms !== undefined).map((s): [number, number] => [s.t, s.bystander!.p99Ms!]);
}

export function runChart(title: string, methods: readonly MethodResult[]): string {
  const compared = methods.filter((m) => !m.stressor);
  const panels: Panel[] = [];
  if (compared.length > 0) {
    panels.push(
      { title: "Pods Running", xLabel: X_LABEL, yLabel: "pods", series: compared.map((m) => ({ label: m.label, emphasis: isProduct(m), points: m.samples.map((s): [number, number] => [s.t, s.pods?.running ?? 0]) })) },
      { title: "Bystander p99 latency per second", xLabel: X_LABEL, yLabel: "ms", reference: SLO, series: compared.map((m) => ({ label: m.label, emphasis: isProduct(m), points: p99Points(m) })) },
    );
  }
  for (const m of methods.filter((x) => x.stressor)) {
    const markers = [{ x: m.stressor!.triggerS, label: "second writer starts" }];
    panels.push(
      {
        title: `Stressor: ${m.label}`,
        xLabel: X_LABEL,
        yLabel: "pods",
        markers,
        series: [
          { label: "stressor: BatchRollout pods Running", emphasis: true, points: m.samples.map((s): [number, number] => [s.t, s.pods?.running ?? 0]) },
          { label: "stressor: second writer's pods created", points: m.samples.map((s): [number, number] => [s.t, s.secondWriterPods?.created ?? 0]) },
        ],
      },
      { title: "Stressor: bystander p99 latency per second", xLabel: X_LABEL, yLabel: "ms", reference: SLO, markers, series: [{ label: "stressor: bystander p99", points: p99Points(m) }] },
    );
  }
  return renderChart(title, panels);
}
