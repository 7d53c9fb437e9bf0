import type { BatchRolloutSpec, BatchRolloutStatus, Condition } from "../api/batchrollout.ts";

// What `kubectl batchrollout` prints, as pure functions of the objects it read: the demo's live
// progress line, the wave history from Events, and the last wave explained signal by signal.

export interface RolloutView {
  metadata: { name: string; namespace?: string; generation?: number; creationTimestamp?: string; deletionTimestamp?: string };
  spec: Pick<BatchRolloutSpec, "replicas"> & Partial<Pick<BatchRolloutSpec, "paused" | "guards">>;
  status?: BatchRolloutStatus;
}

export interface EventView {
  reason: string;
  note?: string;
  eventTime?: string;
  series?: { lastObservedTime?: string };
  regarding?: { uid?: string; name?: string };
}

/** Width of the pod counts, so columns stay put from the first line to the last (up to 99,999). */
export const COUNT_WIDTH = 5;
/** Width of the elapsed seconds, as the demo has always printed them. */
export const SECONDS_WIDTH = 4;
/** Wave history lines shown: the last waves are the ones a person asks about. */
export const RECENT_WAVE_LINES = 10;
/** Events that start a wave, with the wave's size and bound in their note. */
export const WAVE_EVENT_REASONS = ["WaveStarted", "ScaledDown", "DeletingPods"] as const;

const pad = (n: number | undefined) => String(n ?? 0).padStart(COUNT_WIDTH);

export function conditionOf(r: RolloutView, type: string): Condition | undefined {
  return r.status?.conditions?.find((c) => c.type === type);
}

/** Ready=True for the spec as it is now, as kstatus reads it. */
export function isReady(r: RolloutView): boolean {
  return r.status?.observedGeneration === r.metadata.generation && conditionOf(r, "Ready")?.status === "True";
}

/** The demo's progress line: elapsed seconds, pod counts and the current wave with its reason. */
export function progressLine(r: RolloutView, elapsedMs: number): string {
  const s = r.status;
  const wave = s?.wave;
  const secs = (elapsedMs / 1000).toFixed(0).padStart(SECONDS_WIDTH);
  return (
    `${secs}s  created ${pad(s?.replicas)}/${r.spec.replicas}  running ${pad(s?.runningReplicas)}  ready ${pad(s?.readyReplicas)}` +
    // Only while pods run another template than the current one: an update, or OnDelete's leftovers.
    (s !== undefined && s.updatedReplicas !== s.replicas ? `  updated ${pad(s.updatedReplicas)} (${pad(s.updatedReadyReplicas)} ready)` : "") +
    `  wave ${wave?.number ?? 0} (${wave?.size ?? 0} pods, limited by ${wave?.limitedBy ?? "-"})` +
    (wave?.message ? `: ${wave.message}` : "")
  );
}

/** One line for the rollout's state: Ready, Stalled with its reason, or what Progressing says. */
export function stateLine(r: RolloutView): string {
  if (r.metadata.deletionTimestamp) return `being deleted: ${conditionOf(r, "Progressing")?.message ?? "waiting for the operator"}`;
  if (!r.status?.conditions?.length || r.status.observedGeneration !== r.metadata.generation) {
    return `waiting for the operator to observe generation ${r.metadata.generation ?? "?"}`;
  }
  const stalled = conditionOf(r, "Stalled");
  if (stalled?.status === "True") return `Stalled (${stalled.reason}): ${stalled.message}`;
  const ready = conditionOf(r, "Ready");
  if (ready?.status === "True") return `Ready: ${ready.message}`;
  const progressing = conditionOf(r, "Progressing");
  return `${progressing?.reason ?? "Progressing"}: ${progressing?.message ?? ready?.message ?? ""}`;
}

const eventTime = (e: EventView) => e.series?.lastObservedTime ?? e.eventTime ?? "";

/** The rollout's waves, oldest first, from the Events the operator recorded about it. */
export function recentWaves(events: readonly EventView[], uid: string | undefined, limit = RECENT_WAVE_LINES): string[] {
  const waves = events
    .filter((e) => (WAVE_EVENT_REASONS as readonly string[]).includes(e.reason) && (uid === undefined || e.regarding?.uid === uid))
    .sort((a, b) => eventTime(a).localeCompare(eventTime(b)));
  const shown = waves.slice(-limit).map((e) => `  ${eventTime(e).slice(11, 19) || "--:--:--"}  ${e.note ?? e.reason}`);
  if (waves.length > shown.length) shown.unshift(`  (${waves.length - shown.length} earlier waves not shown)`);
  return shown;
}

/** What a person can do about each bound: the field or the cluster resource behind it. */
export const WHAT_TO_DO: Record<string, string> = {
  Rate: "nothing: the sizer grows the rate while write latency stays under the target",
  Latency: "the API server is queueing our writes; raise spec.guards.apiServer.latencyTarget only if its other clients can take it",
  ApiServer: "the API server answered 429 (APF): the sizer waits its Retry-After; give the operator's FlowSchema more shares to go faster",
  Yielding: "someone else is launching pods: the rollout yields until they stop or the queue drains",
  Scheduler: "pods wait for the scheduler: raise spec.guards.scheduler.maxPending, or find why pods are unschedulable",
  Kubelet: "nodes start pods slower than they are created: raise spec.guards.kubelet.maxStarting for slow image pulls",
  IPAM: "pod IPs are short: lower spec.guards.ipam.reserve or add IP space or nodes",
  NodeCapacity: "no free pod slots on eligible nodes: add nodes or relax the template's node selection",
  Budget: "other rollouts share the cluster's write budget: raise spec.priority to take a larger share",
  Remaining: "nothing: fewer pods were left than the wave could take",
  MinInterval: "waiting spec.waves.minInterval between wave starts",
  Paused: "spec.paused is true: kubectl batchrollout resume NAME",
  MaxUnavailable: "an update waits for replaced pods to become Ready: raise spec.updateStrategy.maxUnavailable to replace more at once",
  FailurePolicy: "more pods failed than spec.failurePolicy.maxFailedPods: inspect and delete them, or raise the budget",
  Deleting: "the rollout is being deleted; its pods go in waves",
  TemplateRejected: "the API server refused the pod template: fix the field the message names",
  CreateRefused: "the API server refused to create pods (quota, Pod Security, webhook): fix that; creation resumes by itself",
  Fixed: "spec.waves.strategy is Fixed: every wave is spec.waves.initialSize",
  None: "nothing to do: every pod exists",
};

/** Each signal's last reading, in words, as status.signals carries them. */
export function signalLines(r: RolloutView): string[] {
  const sig = r.status?.signals;
  const guards = r.spec.guards;
  const lines: string[] = [];
  const api = sig?.apiServer;
  if (api) {
    const parts = [
      api.writeLatencyP90Ms !== undefined ? `write latency p90 ${Math.round(api.writeLatencyP90Ms)} ms (target ${guards?.apiServer?.latencyTarget ?? "?"})` : "no write latency sampled yet",
      `${api.throttled ?? 0} answers 429`,
      api.priorityLevel ? `APF level ${api.priorityLevel}${api.flowSchema ? ` via FlowSchema ${api.flowSchema}` : ""}` : undefined,
      api.inQueue !== undefined ? `${api.inQueue} requests queued there` : undefined,
      api.metrics && api.metrics !== "Ok" ? `metrics scrape ${api.metrics}` : undefined,
    ];
    lines.push(`  API server: ${parts.filter(Boolean).join(", ")}${api.message ? `; ${api.message}` : ""}`);
  }
  const sched = sig?.scheduler;
  if (sched) {
    const max = guards?.scheduler ? ` (max ${guards.scheduler.maxPending}, scope ${guards.scheduler.scope})` : "";
    const detail = [sched.unschedulable ? `${sched.unschedulable} unschedulable` : "", sched.gated ? `${sched.gated} gated` : "", sched.notYetTried ? `${sched.notYetTried} not yet tried` : ""].filter(Boolean).join(", ");
    lines.push(`  scheduler: ${sched.pending} pods wait to be scheduled${max}${detail ? `: ${detail}` : ""}${sched.message ? `; ${sched.message}` : ""}`);
  }
  const kubelet = sig?.kubelet;
  if (kubelet) lines.push(`  kubelets: ${kubelet.starting} pods bound to nodes and not yet running (max ${guards?.kubelet?.maxStarting ?? "?"})`);
  const ipam = sig?.ipam;
  if (ipam) {
    const free = ipam.free !== undefined && ipam.capacity !== undefined ? `${ipam.free} of ${ipam.capacity} pod IPs free` : "pod IPs not counted";
    const slots = ipam.nodeSlots !== undefined ? `, ${ipam.nodeSlots} free pod slots on eligible nodes` : "";
    lines.push(`  pod IPs (${ipam.provider}): ${free}${slots} (reserve ${guards?.ipam?.reserve ?? "?"})${ipam.message ? `; ${ipam.message}` : ""}`);
  }
  return lines.length > 0 ? lines : ["  no signal read yet"];
}

/** A wave event's note: "wave 6: creating 54 pods (ordinals ...), limited by Rate". */
const WAVE_NOTE = /^wave (\d+): (creating|deleting) (\d+) pods.*limited by (\w+)/;

export interface LastWave {
  number: number;
  verb: string;
  size: number;
  limitedBy: string;
  at: string;
}

/** The last wave that wrote pods, from its Event: status.wave moves on to the wait after it. */
export function lastWave(events: readonly EventView[], uid: string | undefined): LastWave | undefined {
  const waves = events
    .filter((e) => (WAVE_EVENT_REASONS as readonly string[]).includes(e.reason) && (uid === undefined || e.regarding?.uid === uid))
    .sort((a, b) => eventTime(a).localeCompare(eventTime(b)));
  for (const e of waves.reverse()) {
    const m = WAVE_NOTE.exec(e.note ?? "");
    if (m) return { number: Number(m[1]), verb: m[2]!, size: Number(m[3]), limitedBy: m[4]!, at: eventTime(e) };
  }
  return undefined;
}

/** `explain-wave`: the last wave's size, what bound it, each signal's reading, what to do. */
export function explainWave(r: RolloutView, events: readonly EventView[], uid: string | undefined): string[] {
  const wave = r.status?.wave;
  const name = `${r.metadata.namespace ?? ""}/${r.metadata.name}`;
  const last = lastWave(events, uid);
  if (!last && (!wave || wave.number === 0)) return [`${name}: no wave yet (${stateLine(r)})`];
  const lines: string[] = [];
  if (last) {
    lines.push(`${name}: wave ${last.number} at ${last.at.slice(11, 19)}, ${last.verb} ${last.size} pods, bound by ${last.limitedBy}`);
    const todo = WHAT_TO_DO[last.limitedBy];
    if (todo) lines.push(`  what bound it: ${todo}`);
  }
  if (wave?.nextTime) {
    lines.push(`now: waiting spec.waves.minInterval; the next wave may start at ${wave.nextTime.slice(11, 19)}`);
  } else if (wave) {
    lines.push(`now: ${wave.limitedBy}${wave.message ? `: ${wave.message}` : ""}`);
    const todo = WHAT_TO_DO[wave.limitedBy];
    if (todo && wave.limitedBy !== last?.limitedBy) lines.push(`  what to do: ${todo}`);
  }
  lines.push("signals at the last reading:", ...signalLines(r));
  lines.push(`state: ${stateLine(r)}`);
  return lines;
}
