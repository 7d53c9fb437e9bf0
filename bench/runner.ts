import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { KubeClient } from "../src/kube/client.ts";
import { recordedProcesses, runningProcess } from "../test/cluster/processes.ts";
import { computeFigures, enrichSamples, podCounter, stressorFigures } from "./figures.ts";
import type { Method, MethodContext, Running, WriterIdentities, WriterOutcome } from "./methods/method.ts";
import { rolloutsPath } from "./methods/batchrollout.ts";
import { methodDeadlineMs } from "./modes.ts";
import { createNamespace, deleteNamespace, removeControllers } from "./namespaces.ts";
import { PodTracker } from "./pod-tracker.ts";
import type { MethodResult } from "./result.ts";
import { SHARED_PRIORITY_LEVEL } from "./identities.ts";
import type { Sampler } from "./sampler.ts";
import type { BystanderRecord, WriterRecord } from "./samples.ts";
import { readProcUsage } from "./scrape/proc.ts";

// Runs one method from an empty namespace to all pods Running (or its deadline), then removes every
// trace of it and waits until the cluster is quiet again, so the next method starts on equal terms.

/** After a method's namespace is gone, this long without our load lets queues and caches settle. */
export const SETTLE_MS = 5_000;
/** Tries at removing a method's namespaces before the run stops (its results are already saved). */
const CLEANUP_ATTEMPTS = 2;
/** How often completion is re-checked when no pod event arrives. */
const DONE_POLL_MS = 500;
const BYTES_PER_MB = 1_000_000;

export interface RunnerDeps {
  admin: KubeClient;
  binDir: string;
  writerKubeconfig: string;
  runId: string;
  n: number;
  workRoot: string;
  logger: Logger;
  sampler: Sampler;
  identities: WriterIdentities;
  /** The bystander's records so far (appended to by its process). */
  bystander: readonly BystanderRecord[];
  /** Whether the BatchRollout CRD is installed (its rollouts must be cleared on teardown). */
  crdInstalled: boolean;
  say: (line: string) => void;
}

type ProcReading = Record<string, { cpuS: number; rssMB: number; peakRssMB?: number }>;

function readAll(pids: Map<string, number>, withPeak: ReadonlySet<string>): ProcReading {
  const out: ProcReading = {};
  for (const [name, pid] of pids) {
    const u = readProcUsage(pid);
    if (!u) continue;
    const mb = (b: number) => Math.round((b / BYTES_PER_MB) * 10) / 10;
    out[name] = { cpuS: u.cpuSeconds, rssMB: mb(u.rssBytes), ...(withPeak.has(name) ? { peakRssMB: mb(u.peakRssBytes) } : {}) };
  }
  return out;
}

function clusterPids(): Map<string, number> {
  const out = new Map<string, number>();
  for (const name of recordedProcesses().keys()) {
    const pid = runningProcess(name);
    if (pid !== undefined) out.set(name, pid);
  }
  return out;
}

/** Measures one method; `onMeasured` gets the result before the (slow, fallible) cleanup starts. */
export async function runMethod(deps: RunnerDeps, method: Method, onMeasured: (r: MethodResult) => void): Promise<MethodResult> {
  const { admin, sampler, say } = deps;
  const expected = method.pods(deps.n);
  const namespace = `bench-${method.id}-${deps.runId}`;
  const workDir = join(deps.workRoot, method.id);
  mkdirSync(workDir, { recursive: true });
  await createNamespace(admin, namespace, deps.runId);
  const tracker = new PodTracker({ client: admin, namespace, logger: deps.logger, ...(method.identityOf ? { identityOf: method.identityOf } : {}), ...(method.trackSelector ? { labelSelector: method.trackSelector } : {}) });
  await tracker.start();
  const extra: PodTracker[] = [];
  const pids = clusterPids();
  const owned = new Set<string>();
  let startedAt: number | undefined;
  let procStart: ProcReading = {};
  const writer: WriterRecord[] = [];

  const ctx: MethodContext = {
    n: deps.n,
    namespace,
    runId: deps.runId,
    admin,
    writerKubeconfig: deps.writerKubeconfig,
    binDir: deps.binDir,
    workDir,
    logger: deps.logger,
    tracker,
    markStart: () => {
      startedAt = Date.now();
      procStart = readAll(pids, owned);
      sampler.begin({ trackers: [tracker], writer: deps.identities[method.writerIdentity], sharedLevel: SHARED_PRIORITY_LEVEL, pids: () => pids }, startedAt);
    },
    writerResponse: (r) => {
      writer.push(r);
      sampler.writerResponse(r);
    },
    addProcess: (name, pid) => {
      pids.set(name, pid);
      owned.add(name);
    },
    watchOperatorMetrics: (url) => sampler.watchOperator(url),
    watchRollout: (path) => sampler.watchRollout(path),
    openNamespace: async (suffix) => {
      const ns = `${namespace.slice(0, 50)}-${suffix}`;
      await createNamespace(admin, ns, deps.runId);
      const t = new PodTracker({ client: admin, namespace: ns, logger: deps.logger });
      await t.start();
      extra.push(t);
      return t;
    },
  };

  say(`▶ ${method.label}: ${expected} pods in ${namespace}`);
  let running: Running | undefined;
  let timedOut = false;
  let writes: WriterOutcome | undefined;
  let endedAt: number;
  let procEnd: ProcReading;
  let sampled: Awaited<ReturnType<Sampler["end"]>>;
  let notRunningAtEnd: number;
  let error: string | undefined;
  try {
    running = await method.run(ctx);
    if (startedAt === undefined) throw new Error(`${method.id} never started writing`);
    void running.writesDone?.then((o) => (writes = o));
    const deadline = startedAt + methodDeadlineMs(expected + (running.stressor?.pods ?? 0));
    let lastReport = 0;
    for (;;) {
      const c = tracker.counts();
      const allRunning = c.running >= expected;
      // Our own writer gave up on some creates: done once everything it did create runs.
      const writerFinished = writes !== undefined && c.created === c.running;
      const s = running.stressor;
      const stormFinished = !s || (s.doneAt !== undefined && s.tracker.counts().running >= s.tracker.counts().created);
      if ((allRunning || writerFinished) && stormFinished) break;
      if (Date.now() > deadline) {
        timedOut = true;
        say(`  deadline passed: ${c.running}/${expected} Running`);
        break;
      }
      if (Date.now() - lastReport >= 5_000) {
        lastReport = Date.now();
        say(`  ${Math.round((Date.now() - startedAt) / 1000)} s: created ${c.created}, scheduled ${c.scheduled}, running ${c.running}/${expected}`);
      }
      await tracker.changedOrAfter(DONE_POLL_MS);
    }
  } catch (err) {
    // One broken method must not cost the others: record why, clean up, go on.
    error = err instanceof Error ? err.message : String(err);
    say(`  failed: ${error}`);
  } finally {
    endedAt = Date.now();
    procEnd = readAll(pids, owned);
    // A method that failed before its clock started has no samples (the sampler never began).
    sampled = startedAt === undefined ? { samples: [], apiServer: {}, writer: [] } : await sampler.end();
    notRunningAtEnd = tracker.notRunningNow().length;
    await running?.stop();
  }

  const stamps = tracker.stamps();
  const start = startedAt ?? endedAt;
  const bystander = deps.bystander.filter((r) => r.at >= start && r.at <= endedAt);
  enrichSamples(sampled.samples, stamps, bystander);
  const secondWriter = running?.stressor?.tracker.stamps();
  if (secondWriter) {
    const countsAt = podCounter(secondWriter);
    for (const sample of sampled.samples) {
      const c = countsAt(sample.at);
      sample.secondWriterPods = { created: c.created, running: c.running };
    }
  }
  const figures = computeFigures({
    expected,
    startedAt: start,
    endedAt,
    stamps,
    notRunningAtEnd,
    samples: sampled.samples,
    writerResponses: writer,
    bystander,
    apiServer: sampled.apiServer,
    writer: deps.identities[method.writerIdentity],
    procStart,
    procEnd,
  });
  const s = running?.stressor;
  const result: MethodResult = {
    id: method.id,
    label: method.label,
    namespace,
    pods: expected,
    startedAt: start,
    endedAt,
    timedOut,
    ...(error ? { error } : {}),
    ...(writes ? { writer: writes } : {}),
    notes: running?.notes ?? [],
    figures,
    ...(s && s.startedAt > 0
      ? { stressor: stressorFigures({ startedAt: start, samples: sampled.samples, rolloutStamps: stamps, triggerAt: s.startedAt, ...(s.doneAt ? { stormDoneAt: s.doneAt } : {}), bystander, stormWriter: writer }) }
      : {}),
    samples: sampled.samples,
  };

  say(`  done in ${Math.round((endedAt - start) / 1000)} s`);
  onMeasured(result);
  say("  cleaning up");
  tracker.stop();
  for (const t of extra) t.stop();
  for (const ns of [namespace, ...extra.map((t) => t.namespace)]) {
    // The next method may only start once these pods are gone; a failure here is retried once.
    for (let attempt = 1; ; attempt++) {
      try {
        await removeControllers(admin, ns, deps.crdInstalled ? rolloutsPath(ns) : undefined);
        await deleteNamespace(admin, ns, say);
        break;
      } catch (err) {
        if (attempt >= CLEANUP_ATTEMPTS) throw err;
        say(`  cleanup of ${ns} failed (${err instanceof Error ? err.message : String(err)}); retrying`);
      }
    }
  }
  await sleep(SETTLE_MS);
  return result;
}
