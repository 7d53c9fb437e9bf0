// Condition types, condition reasons and event reasons of a BatchRollout, in one place (as Argo
// Rollouts keeps its conditions.go). Reasons are CamelCase, as metav1.Condition requires, and
// stable: tools and people match on them.

/**
 * Ready, Progressing and Stalled. kstatus (kubectl wait, Flux, Argo CD's generic health) reads Ready
 * and Stalled together with observedGeneration; Progressing follows the Deployment convention.
 */
export const ConditionType = {
  Ready: "Ready",
  Progressing: "Progressing",
  Stalled: "Stalled",
} as const;
export type ConditionType = (typeof ConditionType)[keyof typeof ConditionType];

export const ConditionStatus = { True: "True", False: "False", Unknown: "Unknown" } as const;
export type ConditionStatus = (typeof ConditionStatus)[keyof typeof ConditionStatus];

/** Why the rollout cannot move on by itself: Stalled=True carries one of these. */
export const StallReason = {
  /** More pods failed than spec.failurePolicy.maxFailedPods, and the action is Pause. */
  FailureBudgetExceeded: "FailureBudgetExceeded",
  /** The API server refused a pod from the current spec as invalid (400, 422). */
  TemplateRejected: "TemplateRejected",
  /** The API server refused to create pods for another cause: a quota, Pod Security, an admission webhook. */
  CreateRefused: "CreateRefused",
  /** Pods of this rollout cannot be scheduled and nothing the operator does will change that. */
  PodsUnschedulable: "PodsUnschedulable",
  /** No pod IPs are left beyond spec.guards.ipam.reserve. */
  InsufficientPodIPs: "InsufficientPodIPs",
  /** No eligible node has a free pod slot. */
  InsufficientNodeCapacity: "InsufficientNodeCapacity",
  /** The spec breaks a rule the API server did not enforce (e.g. a CRD older than the operator). */
  InvalidSpec: "InvalidSpec",
} as const;
export type StallReason = (typeof StallReason)[keyof typeof StallReason];

/** Why no wave is being written right now while work remains, when it is not a stall. */
export const HoldReason = {
  Paused: "Paused",
  /** A guard (API server, scheduler backlog, shared budget) allows no pod this round. */
  WaitingForCapacity: "WaitingForCapacity",
} as const;
export type HoldReason = (typeof HoldReason)[keyof typeof HoldReason];

export const ReadyReason = {
  AllReplicasReady: "AllReplicasReady",
  /** Every pod is done, and those that failed are kept, within spec.failurePolicy. */
  CompleteWithFailures: "CompleteWithFailures",
  ReplicasMissing: "ReplicasMissing",
  ReplicasNotReady: "ReplicasNotReady",
  ScalingDown: "ScalingDown",
  Deleting: "Deleting",
  /** Pods at or above the partition still run an older template (spec.updateStrategy RollingRecreate). */
  UpdatingPods: "UpdatingPods",
} as const;

export const ProgressingReason = {
  CreatingPods: "CreatingPods",
  /** Replacing pods on an older template in waves. */
  UpdatingPods: "UpdatingPods",
  ScalingDown: "ScalingDown",
  Deleting: "Deleting",
  WaitingForCapacity: HoldReason.WaitingForCapacity,
  WaitingForReady: "WaitingForReady",
  Complete: "Complete",
  Paused: HoldReason.Paused,
} as const;

export const NotStalledReason = "NotStalled";

export const EventType = { Normal: "Normal", Warning: "Warning" } as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

export const EventReason = {
  /** A wave that creates pods (and possibly deletes some) started. */
  WaveStarted: "WaveStarted",
  /** A wave deleting pods above spec.replicas started. */
  ScaledDown: "ScaledDown",
  /** A wave deleting pods of a rollout being deleted started. */
  DeletingPods: "DeletingPods",
  Paused: "Paused",
  FailurePolicy: "FailurePolicy",
  TemplateRejected: "TemplateRejected",
  CreateRefused: "CreateRefused",
  PodsUnschedulable: "PodsUnschedulable",
  /** Pod IPs or node slots ran out. */
  InsufficientCapacity: "InsufficientCapacity",
  /** A wave's writes are done. */
  WaveFinished: "WaveFinished",
  /** Pod writes failed after retries; the wave is retried with backoff. */
  WriteFailed: "WriteFailed",
  InvalidSpec: "InvalidSpec",
} as const;
export type EventReason = (typeof EventReason)[keyof typeof EventReason];
