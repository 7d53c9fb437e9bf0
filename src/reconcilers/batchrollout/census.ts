import type { ObservedPod } from "./observed.ts";
import { podName } from "./observed.ts";

// The one count of a rollout's pods against its spec, taken once per reconcile: the planner, the
// status and the sizer's inputs all read it, so they can never disagree about what exists.

/**
 * Writes sent to the API server whose result the informer's cache does not show yet: a snapshot
 * of the Expectations store (expectations.ts, `pending(key)`).
 */
export interface PendingWrites {
  /** Ordinals whose create is in flight. */
  creates: ReadonlySet<number>;
  /** Names of pods whose delete is in flight. */
  deletes: ReadonlySet<string>;
}

/** Where the pods stand against the spec. */
export interface Progress {
  desired: number;
  /** Desired ordinals with a pod that is not being deleted. */
  present: number;
  /** Desired ordinals with no pod at all and no create in flight: what a wave may create. */
  missing: number;
  /** Desired ordinals whose create is in flight and not yet seen. */
  creating: number;
  /** Desired ordinals whose pod is Ready or Succeeded. */
  complete: number;
  /** Pods with ordinal >= replicas that are not being deleted (including those with a delete in flight). */
  extra: number;
  /** Pods with ordinal >= replicas on their way out (deletionTimestamp set): a scale-down not done yet. */
  terminating: number;
  failed: number;
  /** Desired ordinals whose pod failed (kept, never replaced). */
  failedDesired: number;
  unschedulable: number;
  /** The scheduler's message for the lowest unschedulable ordinal. */
  unschedulableMessage?: string;
  /** Desired ordinals whose live pod runs the current template. */
  updated: number;
  /**
   * Desired ordinals at or above the partition whose live pod runs an older template (a delete of
   * ours may be in flight), under RollingRecreate: the update is not done while any is left.
   */
  outdated: number;
  /**
   * Desired ordinals not available: no pod (missing or its create in flight), the pod terminating
   * or its delete in flight, or not Ready (Succeeded counts as available). What maxUnavailable bounds.
   */
  unavailable: number;
  /** Live pods on the current template that failed: what the failure budget judges under RollingRecreate. */
  failedUpdated: number;
}

/** status counts: every pod of ours that is not being deleted, whatever its ordinal. */
export interface PodCounts {
  replicas: number;
  updatedReplicas: number;
  updatedReadyReplicas: number;
  scheduledReplicas: number;
  runningReplicas: number;
  readyReplicas: number;
  succeededReplicas: number;
  failedReplicas: number;
}

export interface PodCensus {
  progress: Progress;
  counts: PodCounts;
  /** Ordinals a wave may create, lowest first. */
  missing: number[];
  /** Pods a wave may delete (ordinal >= desired, not terminating, no delete in flight), highest first. */
  extras: ObservedPod[];
  /** Our pods that are not terminating, any ordinal. */
  live: ObservedPod[];
  /**
   * Pods an update may replace (RollingRecreate): desired ordinals at or above the partition, on an
   * older template, not terminating and no delete of ours in flight; lowest ordinal first.
   */
  outdated: ObservedPod[];
  /**
   * The template hash most desired, live pods not on the current template carry, or the current
   * template's hash once none is left (StatefulSet's currentRevision).
   */
  currentTemplateHash: string;
  /** Pods bound to a node whose kubelet has not started them (phase Pending), not terminating. */
  starting: number;
  /** UIDs of our pods by name, so a delete never hits a pod recreated under the same name. */
  uids: ReadonlyMap<string, string | undefined>;
}

export interface CensusInput {
  /** The rollout's name: pods named anything but `<name>-<ordinal>` are someone else's. */
  name: string;
  /** spec.replicas, or 0 while the rollout is being deleted. */
  desired: number;
  pods: readonly ObservedPod[];
  expectations: PendingWrites;
  /** Hash of the current spec.template, as pods carry it in their template-hash label. */
  templateHash: string;
  /** spec.updateStrategy.partition when the type is RollingRecreate; absent under OnDelete (nothing is replaced). */
  partition?: number;
  uids?: ReadonlyMap<string, string | undefined>;
}

const NO_UIDS: ReadonlyMap<string, string | undefined> = new Map();

export function census(input: CensusInput): PodCensus {
  const { name, desired, expectations } = input;
  const byOrdinal = new Map<number, ObservedPod>();
  for (const pod of input.pods) if (pod.name === podName(name, pod.ordinal)) byOrdinal.set(pod.ordinal, pod);

  const missing: number[] = [];
  let present = 0;
  let creating = 0;
  let complete = 0;
  let failedDesired = 0;
  let updated = 0;
  let unavailable = 0;
  const outdated: ObservedPod[] = [];
  let outdatedCount = 0;
  const oldHashes = new Map<string, number>();
  const partition = input.partition;
  for (let ordinal = 0; ordinal < desired; ordinal++) {
    const pod = byOrdinal.get(ordinal);
    if (pod === undefined) {
      if (expectations.creates.has(ordinal)) creating++;
      else missing.push(ordinal);
      unavailable++;
      continue;
    }
    if (pod.deleting) {
      unavailable++;
      continue;
    }
    present++;
    const done = pod.ready || pod.phase === "Succeeded";
    if (done) complete++;
    else if (pod.phase === "Failed") failedDesired++;
    const leaving = expectations.deletes.has(pod.name);
    if (!done || leaving) unavailable++;
    if (pod.templateHash === input.templateHash) {
      updated++;
      continue;
    }
    if (pod.templateHash !== undefined) oldHashes.set(pod.templateHash, (oldHashes.get(pod.templateHash) ?? 0) + 1);
    if (partition !== undefined && ordinal >= partition) {
      outdatedCount++;
      if (!leaving) outdated.push(pod);
    }
  }

  const counts: PodCounts = { replicas: 0, updatedReplicas: 0, updatedReadyReplicas: 0, scheduledReplicas: 0, runningReplicas: 0, readyReplicas: 0, succeededReplicas: 0, failedReplicas: 0 };
  const extras: ObservedPod[] = [];
  const live: ObservedPod[] = [];
  let extra = 0;
  let terminating = 0;
  let unschedulable = 0;
  let starting = 0;
  let failedUpdated = 0;
  // The lowest ordinal's message, so the text does not depend on the cache's iteration order.
  let lowestUnschedulable: ObservedPod | undefined;
  for (const pod of byOrdinal.values()) {
    if (pod.deleting) {
      if (pod.ordinal >= desired) terminating++;
      continue;
    }
    live.push(pod);
    counts.replicas++;
    if (pod.templateHash === input.templateHash) {
      counts.updatedReplicas++;
      if (pod.ready) counts.updatedReadyReplicas++;
      if (pod.phase === "Failed") failedUpdated++;
    }
    if (pod.scheduled) counts.scheduledReplicas++;
    if (pod.phase === "Running") counts.runningReplicas++;
    if (pod.ready) counts.readyReplicas++;
    if (pod.phase === "Succeeded") counts.succeededReplicas++;
    if (pod.phase === "Failed") counts.failedReplicas++;
    if (pod.scheduled && pod.phase === "Pending") starting++;
    if (pod.ordinal >= desired) {
      extra++;
      if (!expectations.deletes.has(pod.name)) extras.push(pod);
    }
    if (pod.unschedulableMessage !== undefined) {
      unschedulable++;
      if (lowestUnschedulable === undefined || pod.ordinal < lowestUnschedulable.ordinal) lowestUnschedulable = pod;
    }
  }
  extras.sort((a, b) => b.ordinal - a.ordinal);
  const progress: Progress = {
    desired,
    present,
    missing: missing.length,
    creating,
    complete,
    extra,
    terminating,
    failed: counts.failedReplicas,
    failedDesired,
    unschedulable,
    updated,
    outdated: outdatedCount,
    unavailable,
    failedUpdated,
  };
  if (lowestUnschedulable?.unschedulableMessage !== undefined) progress.unschedulableMessage = lowestUnschedulable.unschedulableMessage;
  const currentTemplateHash = mostCommon(oldHashes) ?? input.templateHash;
  return { progress, counts, missing, extras, live, outdated, currentTemplateHash, starting, uids: input.uids ?? NO_UIDS };
}

/** The key with the highest count; on a tie the smallest key, so status does not flap with the cache's order. */
function mostCommon(counts: ReadonlyMap<string, number>): string | undefined {
  let best: string | undefined;
  let bestCount = 0;
  for (const [key, count] of counts) {
    if (count > bestCount || (count === bestCount && best !== undefined && key < best)) {
      best = key;
      bestCount = count;
    }
  }
  return best;
}

/**
 * Writes a wave could still make: creates of missing ordinals, deletes of extra pods, and for each
 * pod an update replaces, its delete and the create of its ordinal again.
 */
export function remainingWrites(pods: PodCensus): number {
  return pods.missing.length + pods.extras.length + 2 * pods.outdated.length;
}
