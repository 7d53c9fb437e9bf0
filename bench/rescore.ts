import { readFileSync, writeFileSync } from "node:fs";
import { basename } from "node:path";
import { controllerReaction, runningThroughputFromSamples } from "./figures.ts";
import { runChart } from "./report/charts.ts";
import { renderMarkdown } from "./report/markdown.ts";
import { computeTargets } from "./report/targets.ts";
import type { RunResult } from "./result.ts";

// ./scripts/node bench/rescore.ts bench/results/<run>.json
// Recomputes what depends only on the saved per-second samples (the targets, the stressor's controller
// reaction, the running throughput of runs saved before that figure existed) and re-renders the .md and
// .svg beside the .json, so a change to a definition or to the report does not need another run of the
// benchmark.

const MS_PER_S = 1_000;

function main(): void {
  const file = process.argv[2];
  if (!file?.endsWith(".json")) throw new Error("usage: bench/rescore.ts bench/results/<run>.json");
  const run = JSON.parse(readFileSync(file, "utf8")) as RunResult;
  for (const m of run.methods) {
    if (!m.figures.runningThroughput && m.figures.leadInS !== undefined) {
      const ran = runningThroughputFromSamples(m.samples, m.startedAt + m.figures.leadInS * MS_PER_S);
      // The samples may stop before the last pod ran: then the figure cannot be read from them.
      const c = m.figures.correctness;
      if (ran && ran.pods === c.seen - c.notRunningAtEnd) m.figures.runningThroughput = ran;
    }
    const s = m.stressor;
    if (!s) continue;
    const reaction = controllerReaction(m.samples, m.startedAt + s.triggerS * MS_PER_S);
    delete s.controllerCutAfterS;
    delete s.controllerCutReason;
    if (reaction) Object.assign(s, { controllerCutAfterS: reaction.afterS, controllerCutReason: reaction.reason });
  }
  run.targets = computeTargets(run.methods);
  const stem = file.slice(0, -".json".length);
  writeFileSync(file, `${JSON.stringify(run, null, 1)}\n`);
  writeFileSync(`${stem}.svg`, runChart(`BatchRollout benchmark, ${run.mode}, N=${run.n}, ${run.nodes} nodes`, run.methods));
  writeFileSync(`${stem}.md`, renderMarkdown(run, `${basename(stem)}.svg`));
  console.log(`rescored ${file}`);
}

main();
