import { FINALIZER } from "../../api/batchrollout.ts";
import type { BatchRollout, BatchRolloutSpec, LimitedBy, SignalsStatus, WaveStatus } from "../../api/batchrollout.ts";
import { durationToMs } from "../../api/duration.ts";
import { ConditionStatus, ConditionType, EventReason, EventType, HoldReason, StallReason } from "./conditions.ts";
import type { PendingWrites, PodCensus, Progress } from "./census.ts";
import type { CreateHold } from "./refusal.ts";
import { MAX_RANGES_IN_MESSAGE, describeOrdinals, waveEvent, waveMessage } from "./wave-events.ts";
import { chooseReplacements, replacementBudget, unavailableMessage, type Replacements } from "./update.ts";

/*
 * The planner: a pure function from what the reconciler observed to what it should write next.
 * No I/O, no clock (time comes in as `now`, ms since the epoch), no randomness: the same input
 * always gives the same plan, so every rule below has a unit test with plain objects.
 *
 * Pods
 *   A rollout owns pods named `<name>-<ordinal>` for ordinals 0..replicas-1, labelled with the
 *   ordinal. A pod whose name is not `<name>-<its ordinal label>` is not ours and is ignored.
 *   A desired ordinal with no pod (never created, or deleted or evicted by someone else) is created;
 *   the lowest missing ordinal goes first. A pod being deleted (deletionTimestamp set, or a delete of
 *   ours in flight) still holds its name, so its ordinal is not recreated until it is gone.
 *   Pods with ordinal >= replicas are deleted, highest ordinal first.
 *
 * Waves
 *   Writes go out in waves. The wave size comes from the sizer (`decision`, which for the Fixed
 *   strategy is initialSize); creates and deletes of one wave share it, deletes first, since they
 *   free what creates need. A new wave starts only when
 *     - the previous wave's writes have been answered (the reconcile that sent them waits for
 *       them, so waves never overlap), though the informer's cache may not show them yet. Waiting
 *       for the cache too would put its lag (seconds under load) between every two waves; instead
 *       in-flight creates count as created and in-flight deletes as gone (expectations), which is
 *       what stops a double create or a double delete, and the next wave takes the ordinals after;
 *     - spec.waves.minInterval has passed since status.wave.startTime (while the rollout is being
 *       deleted, at most MAX_DELETION_WAVE_INTERVAL_MS); otherwise the plan asks to be requeued
 *       after the rest of the interval and records when in wave.nextTime, keeping the last wave's
 *       limitedBy and message (what bounded it stays visible between waves). A startTime in the
 *       future (clock skew between leaders) waits at most one interval.
 *   Guards that protect pod placement (Scheduler, Kubelet, IPAM, NodeCapacity) bound creates only: deleting
 *   pods relieves them, so deletes never drop below the floor size (waves.minSize, or initialSize
 *   for Fixed). Guards on the API server (ApiServer, Latency, Rate, Budget) bound deletes as well.
 *   A wave of size 0 with work left asks to be requeued after the sizer's waitMs, or
 *   ZERO_CAPACITY_REQUEUE_MS, because the signal that reopens it (free IPs, a drained API server
 *   queue) need not produce an event for this rollout.
 *
 * Stops (checked in this order; each keeps the wave number and records size 0)
 *   - spec.paused: no create and no delete; limitedBy Paused; a Paused event when it starts.
 *   - creates refused: the API server refused a create (`createHold`, see refusal.ts): as invalid
 *     (TemplateRejected) or for a quota, policy or webhook (CreateRefused). Creation holds; when the
 *     hold says a probe is due, one create is sent (a wave of one, limitedBy the refusal), else the
 *     plan asks to be requeued at the next probe. Stalled carries the API server's message. Deletes
 *     (scale down) go on.
 *   - failure budget: failed pods are kept for inspection and never replaced. When more than
 *     failurePolicy.maxFailedPods have failed and the action is Pause, creation stops (limitedBy
 *     FailurePolicy, Stalled reason FailureBudgetExceeded); with Continue it goes on, and a
 *     FailurePolicy warning is emitted once when the budget is crossed.
 *   - no capacity: the sizer allows no pod. IPAM and NodeCapacity at zero are stalls
 *     (InsufficientPodIPs, InsufficientNodeCapacity); Scheduler at zero is a stall
 *     (PodsUnschedulable) when pods of this rollout are unschedulable, otherwise a wait for the
 *     backlog to drain (WaitingForCapacity), as are Kubelet and the API server guards.
 *
 * Template changes
 *   New pods use the current template (and carry its hash). Under spec.updateStrategy RollingRecreate
 *   a wave also replaces pods on an older template (update.ts): after scale-down deletes and
 *   creates, within the same size, and never while a stop above holds creation (paused, refused,
 *   failure budget), since a deleted pod could then not come back. Under OnDelete existing pods
 *   are left alone.
 *
 * Deletion (metadata.deletionTimestamp set)
 *   While our finalizer is present, every pod is deleted in waves paced as above, highest ordinal
 *   first, whether or not the rollout is paused (a paused rollout would otherwise hold its namespace
 *   forever). The finalizer is released once no pod is left that is not already terminating and no
 *   write is in flight. A live rollout without the finalizer gets it (act adds it before any create).
 *
 * Events are emitted on transitions only (a wave starts, a stop begins), never once per reconcile.
 */

/** How long to wait before looking again when the sizer allows no pod and gave no Retry-After. */
export const ZERO_CAPACITY_REQUEUE_MS = 5_000;

/** Longest gap between two deletion waves of a rollout being deleted, whatever spec.waves.minInterval says. */
export const MAX_DELETION_WAVE_INTERVAL_MS = 1_000;

export { MAX_RANGES_IN_MESSAGE, describeOrdinals };

/** Guards that protect pod placement: they bound creates, not the deletes that relieve them. */
const PLACEMENT_GUARDS: ReadonlySet<LimitedBy> = new Set<LimitedBy>(["Scheduler", "Kubelet", "IPAM", "NodeCapacity"]);

/** What the wave sizer allows for the next wave, and why (a WaveDecision from src/ratelimit fits). */
export interface SizerDecision {
  size: number;
  limitedBy: LimitedBy;
  message?: string;
  /** When size is 0: how long until the bound may lift (a Retry-After, say); 0 or absent if unknown. */
  waitMs?: number;
}

/** What one reconcile observed, counted once (census.ts); the status reads the same object. */
export interface Observation {
  rollout: Pick<BatchRollout, "metadata" | "spec" | "status">;
  pods: PodCensus;
  expectations: PendingWrites;
  /** Hash of the current spec.template, as pods carry it in their template-hash label. */
  templateHash: string;
  /** Signal readings, passed through to status. */
  signals?: SignalsStatus;
  now: number;
}

export interface PlanInput extends Observation {
  decision: SizerDecision;
  /** Creates the API server refused: hold creation, or probe with one create. */
  createHold?: CreateHold;
}

export interface PlanEvent {
  type: EventType;
  reason: EventReason;
  message: string;
}

/** Why work that remains is not being written. */
export interface Blocker {
  reason: StallReason | HoldReason;
  message: string;
  /** The rollout cannot move on by itself (Stalled=True), as opposed to waiting. */
  stalled: boolean;
}

export interface Plan {
  /** Ordinals to create, lowest first. */
  creates: number[];
  /** Names of pods to delete: those above spec.replicas highest ordinal first, then the old pods an update replaces. */
  deletes: string[];
  /** How many of `deletes` (the last ones) are replacements of old pods by an update. */
  replaced: number;
  requeueAfterMs?: number;
  addFinalizer: boolean;
  removeFinalizer: boolean;
  /** A new wave starts with this plan's writes (wave.number was incremented). */
  waveStarted: boolean;
  /** The wave to record in status. */
  wave: WaveStatus;
  blocker?: Blocker;
  progress: Progress;
  events: PlanEvent[];
}

/** The smallest wave: what deletes may always use while a placement guard holds creates back. */
export function floorWaveSize(spec: BatchRolloutSpec): number {
  return spec.waves.strategy === "Fixed" ? spec.waves.initialSize : spec.waves.minSize;
}

function deleteBudget(decision: SizerDecision, spec: BatchRolloutSpec): number {
  return PLACEMENT_GUARDS.has(decision.limitedBy) ? Math.max(decision.size, floorWaveSize(spec)) : decision.size;
}

function previousStall(input: Pick<Observation, "rollout">): { reason: string; generation: number | undefined } | undefined {
  const stalled = input.rollout.status?.conditions?.find((c) => c.type === ConditionType.Stalled);
  if (stalled?.status !== ConditionStatus.True) return undefined;
  return { reason: stalled.reason, generation: stalled.observedGeneration };
}

const STALL_EVENT: Readonly<Record<StallReason, EventReason>> = {
  FailureBudgetExceeded: EventReason.FailurePolicy,
  TemplateRejected: EventReason.TemplateRejected,
  CreateRefused: EventReason.CreateRefused,
  PodsUnschedulable: EventReason.PodsUnschedulable,
  InsufficientPodIPs: EventReason.InsufficientCapacity,
  InsufficientNodeCapacity: EventReason.InsufficientCapacity,
  InvalidSpec: EventReason.InvalidSpec,
};

function isStallReason(reason: string): reason is StallReason {
  return Object.hasOwn(STALL_EVENT, reason);
}

/** The create stop that applies, if any: refused creates first, then the failure budget. */
function creationStop(input: PlanInput, progress: Progress): Blocker | undefined {
  const hold = input.createHold;
  if (hold !== undefined) return { reason: hold.reason, message: hold.message, stalled: true };
  return failureStop(input, progress);
}

/**
 * Under RollingRecreate the budget judges the current template: failed pods of an older one are
 * replaced by the update (a rollback must be able to replace the pods of a broken template).
 */
function failureStop(input: PlanInput, progress: Progress): Blocker | undefined {
  const { failurePolicy, updateStrategy } = input.rollout.spec;
  const { maxFailedPods, action } = failurePolicy;
  const rolling = updateStrategy.type === "RollingRecreate";
  const failed = rolling ? progress.failedUpdated : progress.failed;
  if (failed <= maxFailedPods || action !== "Pause") return undefined;
  if (rolling && progress.outdated > 0) {
    return {
      reason: StallReason.FailureBudgetExceeded,
      message: `${failed} pods on the current template failed, more than spec.failurePolicy.maxFailedPods (${maxFailedPods}); the update is paused and no further old pods are deleted (${progress.outdated} left on older templates). Failed pods are kept for inspection: fix the template (a rollback is another update), delete them or raise the budget to resume`,
      stalled: true,
    };
  }
  return {
    reason: StallReason.FailureBudgetExceeded,
    message: `${failed} pods failed, more than spec.failurePolicy.maxFailedPods (${maxFailedPods}); creation is paused. Failed pods are kept for inspection: delete them or raise the budget to resume`,
    stalled: true,
  };
}

function capacityStop(decision: SizerDecision, progress: Progress): Blocker {
  const why = decision.message === undefined ? "" : `: ${decision.message}`;
  // The sizer's message already names the numbers and what to check; ours is the fallback.
  if (decision.limitedBy === "IPAM") {
    return { reason: StallReason.InsufficientPodIPs, message: decision.message ?? "no pod IPs left beyond spec.guards.ipam.reserve", stalled: true };
  }
  if (decision.limitedBy === "NodeCapacity") {
    return { reason: StallReason.InsufficientNodeCapacity, message: decision.message ?? "no free pod slots on eligible nodes", stalled: true };
  }
  if (decision.limitedBy === "Scheduler" && progress.unschedulable > 0) {
    return {
      reason: StallReason.PodsUnschedulable,
      message: `${progress.unschedulable} pods unschedulable: ${progress.unschedulableMessage ?? "no node fits them"}`,
      stalled: true,
    };
  }
  return { reason: HoldReason.WaitingForCapacity, message: `waiting for ${decision.limitedBy}${why}`, stalled: false };
}

const STOP_LIMITED_BY: Readonly<Partial<Record<Blocker["reason"], LimitedBy>>> = {
  TemplateRejected: "TemplateRejected",
  CreateRefused: "CreateRefused",
  FailureBudgetExceeded: "FailurePolicy",
  Paused: "Paused",
};

export type WaveGate = { open: true } | { open: false; waitMs: number };

/**
 * Whether spec.waves.minInterval allows a new wave now (see "Waves" above). The reconciler asks
 * too: only a reconcile that may start a wave is a wave decision for the sizer.
 */
export function waveGate(rollout: Pick<BatchRollout, "metadata" | "spec" | "status">, now: number): WaveGate {
  const startTime = rollout.status?.wave?.startTime;
  const started = startTime === undefined ? Number.NaN : Date.parse(startTime);
  if (Number.isNaN(started)) return { open: true };
  const minInterval = durationToMs(rollout.spec.waves.minInterval);
  // Deleting the rollout is not held hostage by a slow creation pace: the sizer still paces the deletes.
  const interval = rollout.metadata.deletionTimestamp === undefined ? minInterval : Math.min(minInterval, MAX_DELETION_WAVE_INTERVAL_MS);
  const elapsed = now - started;
  if (elapsed >= interval) return { open: true };
  return { open: false, waitMs: Math.min(interval, interval - elapsed) };
}

function minRequeue(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

export function plan(input: PlanInput): Plan {
  const { rollout, expectations } = input;
  const deleting = rollout.metadata.deletionTimestamp !== undefined;
  const { progress, missing, extras } = input.pods;
  const { desired } = progress;
  const previous: WaveStatus = rollout.status?.wave ?? { number: 0, size: 0, limitedBy: "None" };
  const hasFinalizer = (rollout.metadata.finalizers ?? []).includes(FINALIZER);
  const inFlight = expectations.creates.size > 0 || expectations.deletes.size > 0;

  const result: Plan = {
    creates: [],
    deletes: [],
    replaced: 0,
    addFinalizer: !deleting && !hasFinalizer,
    removeFinalizer: false,
    waveStarted: false,
    wave: previous,
    progress,
    events: [],
  };
  /** No wave this round: keep the wave's number and start, say why nothing moves. */
  const idle = (limitedBy: LimitedBy, message: string | undefined) => {
    const { nextTime: _waited, ...last } = previous;
    result.wave = { ...last, size: 0, limitedBy };
    if (message === undefined) delete result.wave.message;
    else result.wave.message = message;
  };

  if (deleting) {
    if (!hasFinalizer) return result; // not ours to hold: owner references let the garbage collector finish
    if (extras.length === 0) {
      result.removeFinalizer = !inFlight;
      idle("Deleting", inFlight ? "waiting for the last deletes to be observed" : "all pods deleted");
      return result;
    }
  } else if (rollout.spec.paused) {
    idle("Paused", "spec.paused is true: no pod is created or deleted");
    result.blocker = { reason: HoldReason.Paused, message: "spec.paused is true", stalled: false };
    if (previous.limitedBy !== "Paused") {
      result.events.push({ type: EventType.Normal, reason: EventReason.Paused, message: "Paused: no pod is created or deleted until spec.paused is false" });
    }
    return result;
  }

  const { decision } = input;
  const stop = deleting ? undefined : creationStop(input, progress);
  const hold = deleting ? undefined : input.createHold;
  // A refusal's probe: one create, unless the failure budget stops creation as well.
  const probing = hold?.probe === true && failureStop(input, progress) === undefined;
  const canCreate = (stop === undefined || probing) && missing.length > 0;
  const createBudget = canCreate ? Math.max(0, probing ? Math.min(1, decision.size) : decision.size) : 0;
  const removeBudget = extras.length > 0 ? Math.max(0, deleteBudget(decision, rollout.spec)) : 0;
  // Old pods are replaced only while creation may go on: a deleted pod must be able to come back.
  const canReplace = !deleting && stop === undefined && input.pods.outdated.length > 0;
  const heldByCapacity = (canCreate && createBudget === 0) || (extras.length > 0 && removeBudget === 0) || (canReplace && decision.size <= 0);
  result.blocker = stop ?? (heldByCapacity ? capacityStop(decision, progress) : undefined);
  if (heldByCapacity) result.requeueAfterMs = decision.waitMs !== undefined && decision.waitMs > 0 ? decision.waitMs : ZERO_CAPACITY_REQUEUE_MS;
  if (hold !== undefined && !hold.probe && missing.length > 0) result.requeueAfterMs = minRequeue(result.requeueAfterMs, hold.retryInMs);
  if (result.blocker === undefined) delete result.blocker;
  emitStopEvents(input, progress, result, stop);

  const deletes = extras.slice(0, removeBudget);
  const creates = missing.slice(0, Math.max(0, createBudget - deletes.length));
  const replacing: Replacements | undefined = canReplace
    ? chooseReplacements({ spec: rollout.spec, pods: input.pods, budget: replacementBudget(decision.size, deletes.length + creates.length) })
    : undefined;
  const replaces = replacing?.pods ?? [];
  if (deletes.length + creates.length + replaces.length === 0) {
    if (inFlight) return result; // the wave in flight is still the current one
    if (result.blocker !== undefined) {
      const limitedBy = STOP_LIMITED_BY[result.blocker.reason] ?? decision.limitedBy;
      idle(limitedBy, result.blocker.message);
    } else if (replacing?.boundByUnavailable === true) {
      // Pod events (a pod turning Ready) bring the next reconcile: no requeue needed.
      idle("MaxUnavailable", unavailableMessage(replacing, desired));
    } else {
      idle("None", desired === 0 ? "no pods wanted" : `all ${desired} pods exist`);
    }
    return result;
  }

  const gate = waveGate(rollout, input.now);
  if (!gate.open) {
    result.requeueAfterMs = minRequeue(result.requeueAfterMs, gate.waitMs);
    result.wave = { ...previous, nextTime: new Date(input.now + gate.waitMs).toISOString() };
    return result;
  }

  const size = creates.length + deletes.length + replaces.length;
  const outdated = input.pods.outdated.length;
  const everythingFits = creates.length === (canCreate ? missing.length : 0) && deletes.length === extras.length && replaces.length === (canReplace ? outdated : 0);
  const limitedBy: LimitedBy = deleting
    ? "Deleting"
    : probing && creates.length > 0
      ? (STOP_LIMITED_BY[hold.reason] ?? decision.limitedBy)
      : everythingFits && size < decision.size
        ? "Remaining"
        : replacing?.boundByUnavailable === true
          ? "MaxUnavailable"
          : decision.limitedBy;
  const number = previous.number + 1;
  result.creates = creates;
  result.deletes = [...deletes, ...replaces].map((pod) => pod.name);
  result.replaced = replaces.length;
  result.waveStarted = true;
  result.wave = {
    number,
    size,
    limitedBy,
    message:
      probing && creates.length > 0
        ? `one create, to see whether the API server still refuses: ${hold.message}`
        : limitedBy === "MaxUnavailable" && replacing !== undefined
          ? unavailableMessage(replacing, desired)
          : waveMessage(limitedBy, decision, size, deleting ? extras.length : missing.length + extras.length + 2 * (canReplace ? outdated : 0)),
    startTime: new Date(input.now).toISOString(),
  };
  result.events.push(waveEvent(number, creates, deletes.map((pod) => pod.name), replaces, deleting, desired, limitedBy));
  return result;
}

/**
 * The plan once its wave met a refusal (act.ts stopped the wave's creates there): creation now
 * holds, so the status of this very reconcile says so, with a warning if the stall is new. The
 * writes that went out stay as planned; `inFlight` says whether any is still to be observed.
 */
export function heldByRefusal(input: Pick<Observation, "rollout">, planned: Plan, hold: CreateHold, inFlight: boolean): Plan {
  const blocker: Blocker = { reason: hold.reason, message: hold.message, stalled: true };
  const result: Plan = { ...planned, blocker, events: [], requeueAfterMs: hold.retryInMs };
  // The refusal cut this wave short, so it is what bounded it, as Stalled says in the same status;
  // with nothing of it left in flight the wave records the hold (size 0).
  const wave = { ...planned.wave, limitedBy: STOP_LIMITED_BY[hold.reason] ?? planned.wave.limitedBy, message: hold.message };
  result.wave = inFlight ? wave : { ...wave, size: 0 };
  emitStopEvents(input, planned.progress, result, blocker);
  return result;
}

/**
 * A warning when a stall begins (or persists into a new generation, since the user changed
 * something and it did not help), and, with failure action Continue where nothing stops, one
 * warning when the failure budget is crossed.
 */
function emitStopEvents(input: Pick<Observation, "rollout">, progress: Progress, result: Plan, stop: Blocker | undefined): void {
  const { blocker } = result;
  if (blocker?.stalled && isStallReason(blocker.reason)) {
    const before = previousStall(input);
    if (before?.reason !== blocker.reason || before.generation !== (input.rollout.metadata.generation ?? 0)) {
      result.events.push({ type: EventType.Warning, reason: STALL_EVENT[blocker.reason], message: blocker.message });
    }
  }
  if (input.rollout.metadata.deletionTimestamp !== undefined || stop !== undefined) return;
  const { maxFailedPods, action } = input.rollout.spec.failurePolicy;
  const before = input.rollout.status?.failedReplicas ?? 0;
  if (action === "Continue" && progress.failed > maxFailedPods && before <= maxFailedPods) {
    result.events.push({
      type: EventType.Warning,
      reason: EventReason.FailurePolicy,
      message: `${progress.failed} pods failed, more than spec.failurePolicy.maxFailedPods (${maxFailedPods}); continuing (action Continue)`,
    });
  }
}

