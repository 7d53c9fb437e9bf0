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
}

/** status counts: every pod of ours that is not being deleted, whatever its ordinal. */
export interface PodCounts {
  replicas: number;
  updatedReplicas: number;
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
  for (let ordinal = 0; ordinal < desired; ordinal++) {
    const pod = byOrdinal.get(ordinal);
    if (pod === undefined) {
      if (expectations.creates.has(ordinal)) creating++;
      else missing.push(ordinal);
    } else if (!pod.deleting) {
      present++;
      if (pod.ready || pod.phase === "Succeeded") complete++;
      else if (pod.phase === "Failed") failedDesired++;
    }
  }

  const counts: PodCounts = { replicas: 0, updatedReplicas: 0, scheduledReplicas: 0, runningReplicas: 0, readyReplicas: 0, succeededReplicas: 0, failedReplicas: 0 };
  const extras: ObservedPod[] = [];
  const live: ObservedPod[] = [];
  let extra = 0;
  let terminating = 0;
  let unschedulable = 0;
  let starting = 0;
  // The lowest ordinal's message, so the text does not depend on the cache's iteration order.
  let lowestUnschedulable: ObservedPod | undefined;
  for (const pod of byOrdinal.values()) {
    if (pod.deleting) {
      if (pod.ordinal >= desired) terminating++;
      continue;
    }
    live.push(pod);
    counts.replicas++;
    if (pod.templateHash === input.templateHash) counts.updatedReplicas++;
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
  };
  if (lowestUnschedulable?.unschedulableMessage !== undefined) progress.unschedulableMessage = lowestUnschedulable.unschedulableMessage;
  return { progress, counts, missing, extras, live, starting, uids: input.uids ?? NO_UIDS };
}

/** Writes a wave could still make: creates of missing ordinals and deletes of extra pods. */
export function remainingWrites(pods: PodCensus): number {
  return pods.missing.length + pods.extras.length;
}
