import { LABEL_NAME } from "../../api/batchrollout.ts";
import { BatchRolloutStatus } from "../../api/batchrollout.ts";
import type { Condition } from "../../api/batchrollout.ts";
import {
  ConditionStatus,
  ConditionType,
  NotStalledReason,
  ProgressingReason,
  ReadyReason,
  StallReason,
} from "./conditions.ts";
import type { Progress } from "./census.ts";
import type { Observation, Plan } from "./plan.ts";

// The one place a BatchRollout's status is computed (as Argo Rollouts' sync.go does): counts from
// the observed pods, the wave and the reasons from the plan, conditions from both. The reconciler
// patches /status with the result only when statusChanged says it differs from what is stored.

type ConditionFields = Pick<Condition, "status" | "reason" | "message">;

/** "2024-05-01T10:00:00Z": metav1.Time's form, whole seconds. */
export function conditionTime(now: number): string {
  return new Date(Math.floor(now / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

export function selectorFor(rolloutName: string): string {
  return `${LABEL_NAME}=${rolloutName}`;
}

/**
 * Every desired pod is done and nothing above spec.replicas is left, terminating or not. A failed
 * pod is done too (kept, never replaced) unless the failure budget stalled the rollout, so a
 * rollout within its budget (or under action Continue) settles instead of waiting forever; the
 * Ready message counts the failures.
 */
function isReady(progress: Progress, deleting: boolean, stalled: boolean): boolean {
  return (
    !deleting &&
    !stalled &&
    progress.complete + progress.failedDesired === progress.desired &&
    progress.extra === 0 &&
    progress.terminating === 0 &&
    progress.outdated === 0
  );
}

/** "2990/3000 pods on template 5f2c9a1b0e, 10 at or above ordinal 0 still on older ones" */
function updateNote(progress: Progress, templateHash: string, partition: number): string {
  return `${progress.updated}/${progress.desired} pods on template ${templateHash}, ${progress.outdated} at or above ordinal ${partition} still on older ones`;
}

function notes(progress: Progress): string {
  const parts: string[] = [];
  if (progress.failed > 0) parts.push(`${progress.failed} failed`);
  if (progress.unschedulable > 0) parts.push(`${progress.unschedulable} unschedulable: ${progress.unschedulableMessage ?? ""}`);
  return parts.length === 0 ? "" : ` (${parts.join("; ")})`;
}

function readyCondition(progress: Progress, deleting: boolean, stalled: boolean, update: string): ConditionFields {
  const { desired, present, complete, extra, terminating, failedDesired } = progress;
  if (deleting) return { status: ConditionStatus.False, reason: ReadyReason.Deleting, message: "the rollout is being deleted" };
  if (isReady(progress, deleting, stalled)) {
    if (complete < desired) {
      return {
        status: ConditionStatus.True,
        reason: ReadyReason.CompleteWithFailures,
        message: `${complete}/${desired} pods ready or succeeded, ${failedDesired} failed and kept (within spec.failurePolicy)`,
      };
    }
    return { status: ConditionStatus.True, reason: ReadyReason.AllReplicasReady, message: `${complete}/${desired} pods ready or succeeded` };
  }
  // Replacements leave ordinals missing or not Ready for a while: the update is what goes on.
  if (progress.outdated > 0) return { status: ConditionStatus.False, reason: ReadyReason.UpdatingPods, message: update };
  if (present < desired) {
    return { status: ConditionStatus.False, reason: ReadyReason.ReplicasMissing, message: `${present}/${desired} pods exist${notes(progress)}` };
  }
  if (complete < desired) {
    return {
      status: ConditionStatus.False,
      reason: ReadyReason.ReplicasNotReady,
      message: `${complete}/${desired} pods ready or succeeded${notes(progress)}`,
    };
  }
  return { status: ConditionStatus.False, reason: ReadyReason.ScalingDown, message: `${extra + terminating} pods above spec.replicas=${desired} remain (${terminating} terminating)` };
}

function progressingCondition(progress: Progress, plan: Plan, deleting: boolean, update: string): ConditionFields {
  const { blocker } = plan;
  if (deleting) {
    return { status: ConditionStatus.True, reason: ProgressingReason.Deleting, message: "deleting pods before the rollout goes" };
  }
  if (blocker !== undefined && (blocker.stalled || blocker.reason === ProgressingReason.Paused)) {
    return { status: ConditionStatus.False, reason: blocker.reason, message: blocker.message };
  }
  if (isReady(progress, deleting, false)) {
    const failed = progress.failedDesired > 0 ? `, ${progress.failedDesired} failed and kept` : "";
    return { status: ConditionStatus.False, reason: ProgressingReason.Complete, message: `all ${progress.desired} pods ready or succeeded${failed}` };
  }
  if (blocker !== undefined) return { status: ConditionStatus.True, reason: blocker.reason, message: blocker.message };
  if (progress.outdated > 0) {
    return { status: ConditionStatus.True, reason: ProgressingReason.UpdatingPods, message: `${update}; wave ${plan.wave.number} limited by ${plan.wave.limitedBy}` };
  }
  if (progress.missing + progress.creating > 0) {
    return {
      status: ConditionStatus.True,
      reason: ProgressingReason.CreatingPods,
      message: `${progress.present}/${progress.desired} pods exist; wave ${plan.wave.number} limited by ${plan.wave.limitedBy}`,
    };
  }
  if (progress.extra > 0 || progress.terminating > 0) {
    return {
      status: ConditionStatus.True,
      reason: ProgressingReason.ScalingDown,
      message: `${progress.extra} pods above spec.replicas=${progress.desired} to delete, ${progress.terminating} terminating`,
    };
  }
  // Every pod exists; what is not ready yet either will be, or failed and is kept (no more work).
  if (progress.complete + progress.failed >= progress.desired) {
    return { status: ConditionStatus.False, reason: ProgressingReason.Complete, message: `all pods created; ${progress.complete} ready or succeeded, ${progress.failed} failed` };
  }
  return { status: ConditionStatus.True, reason: ProgressingReason.WaitingForReady, message: `${progress.complete}/${progress.desired} pods ready or succeeded${notes(progress)}` };
}

function stalledCondition(plan: Plan): ConditionFields {
  const { blocker } = plan;
  if (blocker?.stalled) return { status: ConditionStatus.True, reason: blocker.reason, message: blocker.message };
  return { status: ConditionStatus.False, reason: NotStalledReason, message: "" };
}

/** A condition stamped with the generation; lastTransitionTime moves only when status changes. */
function stamp(type: string, fields: ConditionFields, previous: readonly Condition[], generation: number, now: number): Condition {
  const before = previous.find((c) => c.type === type);
  const lastTransitionTime = before !== undefined && before.status === fields.status ? before.lastTransitionTime : conditionTime(now);
  return { type, ...fields, observedGeneration: generation, lastTransitionTime };
}

/** Status from what was observed (its pod census: the same counts the plan used) and the plan. */
export function computeStatus(input: Observation, plan: Plan, now: number): BatchRolloutStatus {
  const { rollout } = input;
  const generation = rollout.metadata.generation ?? 0;
  const deleting = rollout.metadata.deletionTimestamp !== undefined;
  const previous = rollout.status?.conditions ?? [];
  const update = updateNote(plan.progress, input.templateHash, rollout.spec.updateStrategy.partition);
  const status: BatchRolloutStatus = {
    observedGeneration: generation,
    ...input.pods.counts,
    selector: selectorFor(rollout.metadata.name),
    updateTemplateHash: input.templateHash,
    currentTemplateHash: input.pods.currentTemplateHash,
    wave: plan.wave,
    conditions: [
      stamp(ConditionType.Ready, readyCondition(plan.progress, deleting, plan.blocker?.stalled === true, update), previous, generation, now),
      stamp(ConditionType.Progressing, progressingCondition(plan.progress, plan, deleting, update), previous, generation, now),
      stamp(ConditionType.Stalled, stalledCondition(plan), previous, generation, now),
    ],
  };
  if (input.signals !== undefined) status.signals = input.signals;
  return status;
}

/**
 * Status of a rollout whose spec the operator cannot use: Stalled with the validation message,
 * counts and wave kept from the previous status (nothing was written).
 */
export function invalidSpecStatus(
  rollout: { metadata: { name: string; generation?: number }; status?: BatchRolloutStatus },
  message: string,
  now: number,
): BatchRolloutStatus {
  const generation = rollout.metadata.generation ?? 0;
  const previous = rollout.status?.conditions ?? [];
  const stalled = { status: ConditionStatus.True, reason: StallReason.InvalidSpec, message };
  const waiting = { status: ConditionStatus.False, reason: StallReason.InvalidSpec, message };
  return {
    ...BatchRolloutStatus.parse(rollout.status ?? {}),
    observedGeneration: generation,
    selector: selectorFor(rollout.metadata.name),
    conditions: [
      stamp(ConditionType.Ready, waiting, previous, generation, now),
      stamp(ConditionType.Progressing, waiting, previous, generation, now),
      stamp(ConditionType.Stalled, stalled, previous, generation, now),
    ],
  };
}

/** JSON equality, insensitive to key order; absent and undefined are the same (JSON drops both). */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((item, i) => sameJson(item, b[i]));
  }
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(left), ...Object.keys(right)]);
  for (const key of keys) if (!sameJson(left[key], right[key])) return false;
  return true;
}

/** Whether /status needs a patch: any difference at all, except the order of keys. */
export function statusChanged(previous: BatchRolloutStatus | undefined, next: BatchRolloutStatus): boolean {
  return !sameJson(previous, next);
}

/**
 * Whether a changed status also changed what someone acts on: the generation observed, failures,
 * the selector, which wave runs and what holds it, and each condition's status and reason. Pod
 * counts, signal readings and messages alone are progress, which the reconciler may batch.
 */
export function materialChange(previous: BatchRolloutStatus | undefined, next: BatchRolloutStatus): boolean {
  return !sameJson(materialView(previous), materialView(next));
}

function materialView(status: BatchRolloutStatus | undefined) {
  if (status === undefined) return undefined;
  const { wave } = status;
  return {
    observedGeneration: status.observedGeneration,
    failedReplicas: status.failedReplicas,
    selector: status.selector,
    wave: wave && { number: wave.number, startTime: wave.startTime, limitedBy: wave.limitedBy },
    conditions: status.conditions?.map(({ type, status: value, reason }) => ({ type, status: value, reason })),
  };
}

