import { describe, expect, it } from "vitest";
import { BatchRolloutSpec, BatchRolloutStatus, FINALIZER } from "../../api/batchrollout.ts";
import type { Condition } from "../../api/batchrollout.ts";
import { ConditionType, NotStalledReason, ProgressingReason, ReadyReason, StallReason } from "./conditions.ts";
import type { ObservedPod } from "./observed.ts";
import { plan } from "./plan.ts";
import type { PlanInput, SizerDecision } from "./plan.ts";
import { census } from "./census.ts";
import { describeRefusal } from "./refusal.ts";
import { computeStatus, conditionTime, materialChange, selectorFor, statusChanged } from "./status.ts";

const NAME = "sim";
const NOW = Date.parse("2025-01-01T00:10:00.250Z");
const EARLIER = "2025-01-01T00:00:00Z";
const HASH = "h2";
const template = { spec: { containers: [{ name: "sim", image: "busybox" }] } };

function pod(ordinal: number, fields: Partial<ObservedPod> = {}): ObservedPod {
  return { name: `${NAME}-${ordinal}`, ordinal, phase: "Running", scheduled: true, ready: true, deleting: false, templateHash: HASH, ...fields };
}

function pods(from: number, to: number, fields: Partial<ObservedPod> = {}): ObservedPod[] {
  return Array.from({ length: to - from }, (_, i) => pod(from + i, fields));
}

interface Options {
  spec?: Record<string, unknown>;
  pods?: ObservedPod[];
  conditions?: Condition[];
  failedBefore?: number;
  generation?: number;
  deletionTimestamp?: string;
  decision?: Partial<SizerDecision>;
  creates?: number[];
  createHold?: PlanInput["createHold"];
  signals?: PlanInput["signals"];
}

function input(options: Options = {}): PlanInput {
  const metadata: PlanInput["rollout"]["metadata"] = { name: NAME, generation: options.generation ?? 2, finalizers: [FINALIZER] };
  if (options.deletionTimestamp !== undefined) metadata.deletionTimestamp = options.deletionTimestamp;
  const expectations = { creates: new Set(options.creates ?? []), deletes: new Set<string>() };
  const rolloutSpec = BatchRolloutSpec.parse({ replicas: 4, template, ...options.spec });
  const result: PlanInput = {
    rollout: {
      metadata,
      spec: rolloutSpec,
      status: BatchRolloutStatus.parse({ failedReplicas: options.failedBefore ?? 0, conditions: options.conditions }),
    },
    pods: census({
      name: NAME,
      desired: options.deletionTimestamp === undefined ? rolloutSpec.replicas : 0,
      pods: options.pods ?? [],
      expectations,
      templateHash: HASH,
      ...(rolloutSpec.updateStrategy.type === "RollingRecreate" ? { partition: rolloutSpec.updateStrategy.partition } : {}),
    }),
    expectations,
    decision: { size: 10, limitedBy: "Rate", ...options.decision },
    templateHash: HASH,
    now: NOW,
  };
  if (options.createHold !== undefined) result.createHold = options.createHold;
  if (options.signals !== undefined) result.signals = options.signals;
  return result;
}

function statusOf(options: Options = {}) {
  const given = input(options);
  return computeStatus(given, plan(given), NOW);
}

function condition(status: BatchRolloutStatus, type: string): Condition {
  const found = status.conditions?.find((c) => c.type === type);
  if (found === undefined) throw new Error(`no ${type} condition`);
  return found;
}

const summary = (status: BatchRolloutStatus) =>
  Object.fromEntries((status.conditions ?? []).map((c) => [c.type, `${c.status}/${c.reason}`]));

describe("computeStatus: counts and fields", () => {
  it("counts pods that exist and are not being deleted", () => {
    const status = statusOf({
      pods: [
        pod(0),
        pod(1, { ready: false }),
        pod(2, { phase: "Pending", scheduled: false, ready: false }),
        pod(3, { phase: "Succeeded", ready: false, templateHash: "h1" }),
        pod(4, { phase: "Failed", ready: false, templateHash: undefined }),
        pod(5, { deleting: true }),
        { ...pod(6), name: "not-ours-6" },
      ],
      spec: { replicas: 6 },
    });
    expect(status).toMatchObject({
      replicas: 5,
      updatedReplicas: 3,
      scheduledReplicas: 4,
      runningReplicas: 2,
      readyReplicas: 1,
      succeededReplicas: 1,
      failedReplicas: 1,
    });
  });

  it("carries the selector, observedGeneration, the wave and the signals", () => {
    const signals = { scheduler: { pending: 3 }, ipam: { provider: "NodePodCIDR", free: 500 } };
    const status = statusOf({ generation: 7, signals });
    expect(status.selector).toBe("batchrollout.dev/name=sim");
    expect(selectorFor("x")).toBe("batchrollout.dev/name=x");
    expect(status.observedGeneration).toBe(7);
    expect(status.wave).toMatchObject({ number: 1, size: 4, limitedBy: "Remaining" });
    expect(status.signals).toEqual(signals);
  });

  it("is a valid BatchRolloutStatus, and stays the same through a parse", () => {
    const status = statusOf({ pods: pods(0, 2) });
    expect(BatchRolloutStatus.parse(status)).toEqual(status);
  });

  it("stamps every condition with the generation, in a fixed order", () => {
    const status = statusOf({ generation: 9 });
    expect(status.conditions?.map((c) => [c.type, c.observedGeneration])).toEqual([
      ["Ready", 9],
      ["Progressing", 9],
      ["Stalled", 9],
    ]);
  });
});

describe("computeStatus: conditions", () => {
  it("a new rollout is creating pods", () => {
    const status = statusOf();
    expect(summary(status)).toEqual({ Ready: "False/ReplicasMissing", Progressing: "True/CreatingPods", Stalled: `False/${NotStalledReason}` });
    expect(condition(status, "Ready").message).toBe("0/4 pods exist");
    expect(condition(status, "Progressing").message).toBe("0/4 pods exist; wave 1 limited by Remaining");
    expect(condition(status, "Stalled").message).toBe("");
  });

  it("counts in-flight creates as work in progress", () => {
    const status = statusOf({ pods: pods(0, 2), creates: [2, 3] });
    expect(summary(status)).toMatchObject({ Ready: "False/ReplicasMissing", Progressing: "True/CreatingPods" });
  });

  it("waits for readiness once every pod exists", () => {
    const status = statusOf({ pods: [...pods(0, 3), pod(3, { ready: false, phase: "Pending", unschedulableMessage: "no nodes" , scheduled: false })] });
    expect(summary(status)).toMatchObject({ Ready: "False/ReplicasNotReady", Progressing: "True/WaitingForReady" });
    expect(condition(status, "Ready").message).toBe("3/4 pods ready or succeeded (1 unschedulable: no nodes)");
  });

  it("is Ready when every desired ordinal is Ready or Succeeded", () => {
    const status = statusOf({ pods: [...pods(0, 3), pod(3, { phase: "Succeeded", ready: false })] });
    expect(summary(status)).toEqual({
      Ready: `True/${ReadyReason.AllReplicasReady}`,
      Progressing: `False/${ProgressingReason.Complete}`,
      Stalled: `False/${NotStalledReason}`,
    });
    expect(condition(status, "Ready").message).toBe("4/4 pods ready or succeeded");
  });

  it("is not Ready while pods above replicas remain", () => {
    const status = statusOf({ pods: pods(0, 6) });
    expect(summary(status)).toMatchObject({ Ready: "False/ScalingDown", Progressing: "True/ScalingDown" });
    expect(condition(status, "Ready").message).toBe("2 pods above spec.replicas=4 remain (0 terminating)");
  });

  it("is not Ready while pods above replicas are still terminating (a scale-down not done yet)", () => {
    const status = statusOf({ pods: [...pods(0, 4), pod(4, { deleting: true }), pod(5, { deleting: true })] });
    expect(summary(status)).toMatchObject({ Ready: "False/ScalingDown", Progressing: "True/ScalingDown" });
    expect(condition(status, "Ready").message).toBe("2 pods above spec.replicas=4 remain (2 terminating)");
    expect(condition(status, "Progressing").message).toBe("0 pods above spec.replicas=4 to delete, 2 terminating");
    expect(status.replicas).toBe(4);
  });

  it("settles Ready under failurePolicy.action Continue when the only pods not ready failed, counting them", () => {
    const status = statusOf({ spec: { failurePolicy: { action: "Continue" } }, pods: [...pods(0, 3), pod(3, { phase: "Failed", ready: false })] });
    expect(summary(status)).toEqual({ Ready: "True/CompleteWithFailures", Progressing: "False/Complete", Stalled: `False/${NotStalledReason}` });
    expect(condition(status, "Ready").message).toBe("3/4 pods ready or succeeded, 1 failed and kept (within spec.failurePolicy)");
  });

  // Issue 26: a rollout whose only unready pods failed within the budget is done; it must settle
  // (kstatus Current, Argo CD Healthy), not read in progress forever.
  it("settles Ready when the only pods not ready failed within the failure budget (and are kept)", () => {
    const status = statusOf({ pods: [...pods(0, 3), pod(3, { phase: "Failed", ready: false })] });
    expect(summary(status)).toEqual({ Ready: "True/CompleteWithFailures", Progressing: "False/Complete", Stalled: `False/${NotStalledReason}` });
    expect(condition(status, "Ready").message).toBe("3/4 pods ready or succeeded, 1 failed and kept (within spec.failurePolicy)");
  });

  it("is not Ready when the failed pods exhausted the budget under action Pause (Stalled)", () => {
    const status = statusOf({ spec: { failurePolicy: { maxFailedPods: 0 } }, pods: [...pods(0, 3), pod(3, { phase: "Failed", ready: false })] });
    expect(summary(status)).toMatchObject({ Ready: "False/ReplicasNotReady", Stalled: `True/${StallReason.FailureBudgetExceeded}` });
  });

  it("says Paused", () => {
    const status = statusOf({ spec: { paused: true }, pods: pods(0, 1) });
    expect(summary(status)).toMatchObject({ Ready: "False/ReplicasMissing", Progressing: "False/Paused", Stalled: `False/${NotStalledReason}` });
    expect(status.wave?.limitedBy).toBe("Paused");
  });

  it("is Stalled with FailureBudgetExceeded over the budget with action Pause", () => {
    const status = statusOf({ spec: { failurePolicy: { maxFailedPods: 0 } }, pods: [pod(0, { phase: "Failed", ready: false })] });
    expect(summary(status)).toMatchObject({ Progressing: `False/${StallReason.FailureBudgetExceeded}`, Stalled: `True/${StallReason.FailureBudgetExceeded}` });
    expect(condition(status, "Stalled").message).toContain("1 pods failed");
    expect(status.wave?.limitedBy).toBe("FailurePolicy");
  });

  it("is Stalled with CreateRefused and the API server's message while a quota refuses creates", () => {
    const message = describeRefusal({ code: 403, reason: "Forbidden", message: "exceeded quota: pods=10" }, "batchrollout.dev/");
    const status = statusOf({ createHold: { reason: StallReason.CreateRefused, message, probe: false, retryInMs: 1_000 } });
    expect(condition(status, "Stalled")).toMatchObject({ status: "True", reason: StallReason.CreateRefused, observedGeneration: 2 });
    expect(condition(status, "Stalled").message).toContain("exceeded quota: pods=10");
    expect(status.wave?.limitedBy).toBe("CreateRefused");
  });

  it("is Stalled with TemplateRejected while the API server refuses the pods as invalid", () => {
    const message = describeRefusal({ code: 422, reason: "Invalid", message: "spec.containers[0].name: Invalid value" }, "batchrollout.dev/");
    const status = statusOf({ createHold: { reason: StallReason.TemplateRejected, message, probe: false, retryInMs: 1_000 } });
    expect(condition(status, "Stalled")).toMatchObject({ status: "True", reason: StallReason.TemplateRejected, message });
  });

  it("is Stalled with PodsUnschedulable when the scheduler guard holds on unschedulable pods", () => {
    const stuck = pods(0, 2, { phase: "Pending", scheduled: false, ready: false, unschedulableMessage: "0/1 nodes are available" });
    const status = statusOf({ pods: stuck, decision: { size: 0, limitedBy: "Scheduler" } });
    expect(condition(status, "Stalled")).toMatchObject({ status: "True", reason: StallReason.PodsUnschedulable, message: "2 pods unschedulable: 0/1 nodes are available" });
  });

  it("is Progressing (waiting), not Stalled, while a guard merely waits", () => {
    const status = statusOf({ decision: { size: 0, limitedBy: "ApiServer", message: "Retry-After 2s" } });
    expect(summary(status)).toMatchObject({ Progressing: "True/WaitingForCapacity", Stalled: `False/${NotStalledReason}` });
    expect(condition(status, "Progressing").message).toBe("waiting for ApiServer: Retry-After 2s");
  });

  it("while the rollout is deleted: not Ready, Progressing Deleting", () => {
    const status = statusOf({ deletionTimestamp: EARLIER, pods: pods(0, 2) });
    expect(summary(status)).toEqual({ Ready: "False/Deleting", Progressing: "True/Deleting", Stalled: `False/${NotStalledReason}` });
    expect(status.wave?.limitedBy).toBe("Deleting");
  });

  it("a new generation clears a TemplateRejected stall (the hold ends with it: refusal.ts)", () => {
    const rejected: Condition = { type: "Stalled", status: "True", reason: StallReason.TemplateRejected, message: "refused", observedGeneration: 2, lastTransitionTime: EARLIER };
    const createHold = { reason: StallReason.TemplateRejected, message: "refused", probe: false, retryInMs: 1_000 } as const;
    expect(condition(statusOf({ generation: 2, conditions: [rejected], createHold }), "Stalled").status).toBe("True");
    const next = statusOf({ generation: 3, conditions: [rejected] });
    expect(condition(next, "Stalled")).toMatchObject({ status: "False", reason: NotStalledReason, observedGeneration: 3 });
    expect(condition(next, "Progressing")).toMatchObject({ status: "True", reason: ProgressingReason.CreatingPods });
  });
});

describe("computeStatus: lastTransitionTime", () => {
  const previous = (type: string, status: "True" | "False", reason: string): Condition => ({
    type,
    status,
    reason,
    message: "old",
    observedGeneration: 1,
    lastTransitionTime: EARLIER,
  });

  it("is now (whole seconds) for a condition seen for the first time", () => {
    const status = statusOf();
    expect(conditionTime(NOW)).toBe("2025-01-01T00:10:00Z");
    for (const c of status.conditions ?? []) expect(c.lastTransitionTime).toBe("2025-01-01T00:10:00Z");
  });

  it("is kept when the status did not change, even if reason and message did", () => {
    const status = statusOf({
      pods: pods(0, 2),
      conditions: [previous("Ready", "False", ReadyReason.ReplicasNotReady), previous("Progressing", "True", ProgressingReason.WaitingForReady)],
    });
    expect(condition(status, ConditionType.Ready)).toMatchObject({ reason: ReadyReason.ReplicasMissing, lastTransitionTime: EARLIER });
    expect(condition(status, ConditionType.Progressing)).toMatchObject({ reason: ProgressingReason.CreatingPods, lastTransitionTime: EARLIER });
  });

  it("moves when the status flips", () => {
    const status = statusOf({
      pods: pods(0, 4),
      conditions: [previous("Ready", "False", ReadyReason.ReplicasNotReady), previous("Stalled", "False", NotStalledReason)],
    });
    expect(condition(status, ConditionType.Ready)).toMatchObject({ status: "True", lastTransitionTime: "2025-01-01T00:10:00Z" });
    expect(condition(status, ConditionType.Stalled).lastTransitionTime).toBe(EARLIER);
  });
});

describe("statusChanged", () => {
  const base = statusOf({ pods: pods(0, 2) });

  it("is false for the same status", () => {
    expect(statusChanged(base, structuredClone(base))).toBe(false);
  });

  it("ignores the order of keys", () => {
    const shuffled = reverseKeys(base) as BatchRolloutStatus;
    expect(Object.keys(shuffled)).toEqual(Object.keys(base).reverse());
    expect(statusChanged(base, shuffled)).toBe(false);
  });

  it("treats an undefined field as absent, as JSON does", () => {
    expect(statusChanged(base, { ...base, signals: undefined })).toBe(false);
  });

  it("sees a changed count, wave, condition message or a new field", () => {
    expect(statusChanged(base, { ...base, readyReplicas: base.readyReplicas + 1 })).toBe(true);
    expect(statusChanged(base, { ...base, wave: { number: 9, size: 0, limitedBy: "None" } })).toBe(true);
    const conditions = (base.conditions ?? []).map((c, i) => (i === 0 ? { ...c, message: "different" } : c));
    expect(statusChanged(base, { ...base, conditions })).toBe(true);
    expect(statusChanged(base, { ...base, signals: { scheduler: { pending: 1 } } })).toBe(true);
  });

  it("sees a change in the order of conditions", () => {
    expect(statusChanged(base, { ...base, conditions: [...(base.conditions ?? [])].reverse() })).toBe(true);
  });

  it("is true when there was no status", () => {
    expect(statusChanged(undefined, base)).toBe(true);
  });

  it("is false on a second reconcile of the same world (no patch loop)", () => {
    const first = input({ pods: pods(0, 4) });
    const firstStatus = computeStatus(first, plan(first), NOW);
    const second: PlanInput = { ...first, rollout: { ...first.rollout, status: firstStatus } };
    expect(statusChanged(firstStatus, computeStatus(second, plan(second), NOW + 60_000))).toBe(false);
  });
});

describe("materialChange", () => {
  const base = statusOf({ pods: pods(0, 2) });

  it("is false for progress only: pod counts, signal readings, messages", () => {
    expect(materialChange(base, { ...base, readyReplicas: base.readyReplicas + 1, runningReplicas: 7 })).toBe(false);
    expect(materialChange(base, { ...base, signals: { scheduler: { pending: 1 } } })).toBe(false);
    const conditions = (base.conditions ?? []).map((c) => ({ ...c, message: "1 of 2 pods ready" }));
    expect(materialChange(base, { ...base, conditions })).toBe(false);
    expect(materialChange(base, { ...base, wave: { ...(base.wave ?? { number: 0, limitedBy: "None" }), size: 3, message: "other words" } })).toBe(false);
  });

  it("is true for what someone acts on: wave, what holds it, conditions, generation, failures", () => {
    const wave = base.wave ?? { number: 0, size: 0, limitedBy: "None" as const };
    expect(materialChange(base, { ...base, wave: { ...wave, number: wave.number + 1 } })).toBe(true);
    expect(materialChange(base, { ...base, wave: { ...wave, limitedBy: "MinInterval" } })).toBe(true);
    expect(materialChange(base, { ...base, wave: { ...wave, startTime: EARLIER } })).toBe(true);
    const flipped = (base.conditions ?? []).map((c, i) => (i === 0 ? { ...c, status: c.status === "True" ? ("False" as const) : ("True" as const) } : c));
    expect(materialChange(base, { ...base, conditions: flipped })).toBe(true);
    expect(materialChange(base, { ...base, observedGeneration: (base.observedGeneration ?? 0) + 1 })).toBe(true);
    expect(materialChange(base, { ...base, failedReplicas: base.failedReplicas + 1 })).toBe(true);
    expect(materialChange(undefined, base)).toBe(true);
  });
});

/** The same value with every object's keys in reverse order. */
function reverseKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reverseKeys);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(Object.entries(value).reverse().map(([key, child]) => [key, reverseKeys(child)]));
}
