import { describe, expect, it } from "vitest";
import { BatchRolloutSpec, FINALIZER, LABEL_ORDINAL, LABEL_TEMPLATE_HASH } from "../../api/batchrollout.ts";
import type { BatchRolloutStatus, Condition } from "../../api/batchrollout.ts";
import { EventReason, StallReason } from "./conditions.ts";
import { parseOrdinal, toObservedPod } from "./observed.ts";
import { slimPod } from "./pod-cache.ts";
import type { ObservedPod } from "./observed.ts";
import { MAX_DELETION_WAVE_INTERVAL_MS, MAX_RANGES_IN_MESSAGE, ZERO_CAPACITY_REQUEUE_MS, describeOrdinals, heldByRefusal, plan } from "./plan.ts";
import type { PlanInput, SizerDecision } from "./plan.ts";
import { census } from "./census.ts";
import { describeRefusal } from "./refusal.ts";

const NAME = "sim";
const NOW = Date.parse("2025-01-01T00:00:10.000Z");
const HASH = "h2";
const template = { spec: { containers: [{ name: "sim", image: "busybox" }] } };

function spec(fields: Record<string, unknown> = {}): BatchRolloutSpec {
  return BatchRolloutSpec.parse({ replicas: 10, template, ...fields });
}

function pod(ordinal: number, fields: Partial<ObservedPod> = {}): ObservedPod {
  return {
    name: `${NAME}-${ordinal}`,
    ordinal,
    phase: "Running",
    scheduled: true,
    ready: true,
    deleting: false,
    templateHash: HASH,
    ...fields,
  };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

function pods(from: number, to: number, fields: Partial<ObservedPod> = {}): ObservedPod[] {
  return range(from, to).map((ordinal) => pod(ordinal, fields));
}

/** A wave that started `agoMs` before NOW. */
function waveStatus(number: number, agoMs: number, fields: Partial<NonNullable<BatchRolloutStatus["wave"]>> = {}) {
  return { number, size: 5, limitedBy: "Rate" as const, startTime: new Date(NOW - agoMs).toISOString(), ...fields };
}

function status(fields: Partial<BatchRolloutStatus> = {}): BatchRolloutStatus {
  return {
    replicas: 0,
    updatedReplicas: 0,
    updatedReadyReplicas: 0,
    scheduledReplicas: 0,
    runningReplicas: 0,
    readyReplicas: 0,
    succeededReplicas: 0,
    failedReplicas: 0,
    ...fields,
  };
}

function stalled(reason: string, generation: number, message = "stored message"): Condition {
  return { type: "Stalled", status: "True", reason, message, observedGeneration: generation, lastTransitionTime: "2025-01-01T00:00:00Z" };
}

interface Options {
  spec?: Record<string, unknown>;
  status?: BatchRolloutStatus;
  generation?: number;
  deletionTimestamp?: string;
  finalizers?: string[];
  pods?: ObservedPod[];
  creates?: number[];
  deletes?: string[];
  decision?: Partial<SizerDecision>;
  createHold?: PlanInput["createHold"];
  now?: number;
}

function input(options: Options = {}): PlanInput {
  const metadata: PlanInput["rollout"]["metadata"] = {
    name: NAME,
    namespace: "ns",
    generation: options.generation ?? 1,
    finalizers: options.finalizers ?? [FINALIZER],
  };
  if (options.deletionTimestamp !== undefined) metadata.deletionTimestamp = options.deletionTimestamp;
  const expectations = { creates: new Set(options.creates ?? []), deletes: new Set(options.deletes ?? []) };
  const rolloutSpec = spec(options.spec);
  const result: PlanInput = {
    rollout: { metadata, spec: rolloutSpec },
    pods: census({
      name: NAME,
      desired: options.deletionTimestamp === undefined ? rolloutSpec.replicas : 0,
      pods: options.pods ?? [],
      expectations,
      templateHash: HASH,
      ...(rolloutSpec.updateStrategy.type === "RollingRecreate" ? { partition: rolloutSpec.updateStrategy.partition } : {}),
    }),
    expectations,
    decision: { size: 5, limitedBy: "Rate", ...options.decision },
    templateHash: HASH,
    now: options.now ?? NOW,
  };
  if (options.status !== undefined) result.rollout.status = options.status;
  if (options.createHold !== undefined) result.createHold = options.createHold;
  return result;
}

const names = (ordinals: number[]) => ordinals.map((o) => `${NAME}-${o}`);

describe("plan: creating", () => {
  it("starts the first wave on an empty rollout, lowest ordinals first", () => {
    const result = plan(input({ decision: { size: 4, limitedBy: "Scheduler", message: "480 of 500 pending" } }));
    expect(result.creates).toEqual([0, 1, 2, 3]);
    expect(result.deletes).toEqual([]);
    expect(result.waveStarted).toBe(true);
    expect(result.wave).toEqual({
      number: 1,
      size: 4,
      limitedBy: "Scheduler",
      message: "480 of 500 pending",
      startTime: new Date(NOW).toISOString(),
    });
    expect(result.requeueAfterMs).toBeUndefined();
    expect(result.events).toEqual([
      { type: "Normal", reason: EventReason.WaveStarted, message: "wave 1: creating 4 pods (ordinals 0-3), limited by Scheduler" },
    ]);
  });

  it("records limitedBy Remaining when the last pods fit in the wave", () => {
    const result = plan(input({ spec: { replicas: 3 }, decision: { size: 50 } }));
    expect(result.creates).toEqual([0, 1, 2]);
    expect(result.wave).toMatchObject({ number: 1, size: 3, limitedBy: "Remaining", message: "the last 3 pods" });
  });

  it("continues from where the previous wave stopped", () => {
    const result = plan(input({ pods: pods(0, 5), status: status({ wave: waveStatus(1, 2_000) }) }));
    expect(result.creates).toEqual([5, 6, 7, 8, 9]);
    expect(result.wave).toMatchObject({ number: 2, size: 5, limitedBy: "Rate" });
  });

  it("fills holes lowest first and describes them as ranges", () => {
    const present = [0, 1, 3, 5].map((o) => pod(o));
    const result = plan(input({ pods: present, decision: { size: 4 } }));
    expect(result.creates).toEqual([2, 4, 6, 7]);
    expect(result.events[0]?.message).toContain("ordinals 2, 4, 6-7");
  });

  it("recreates pods deleted or evicted by someone else", () => {
    const survivors = pods(0, 10).filter((p) => p.ordinal !== 4 && p.ordinal !== 7);
    const result = plan(input({ pods: survivors, status: status({ wave: waveStatus(2, 60_000, { limitedBy: "None", size: 0 }) }) }));
    expect(result.creates).toEqual([4, 7]);
    expect(result.wave).toMatchObject({ number: 3, size: 2, limitedBy: "Remaining" });
  });

  it("does not recreate an ordinal whose pod is still terminating (the name is taken)", () => {
    const result = plan(input({ pods: [...pods(0, 4), pod(4, { deleting: true }), ...pods(5, 10)] }));
    expect(result.creates).toEqual([]);
    expect(result.progress).toMatchObject({ present: 9, missing: 0 });
  });

  it("ignores pods whose name is not <name>-<ordinal>", () => {
    const stray = { ...pod(0), name: "someone-else-0" };
    const result = plan(input({ spec: { replicas: 1 }, pods: [stray] }));
    expect(result.creates).toEqual([0]);
  });

  it("does nothing when every pod exists, and says so", () => {
    const result = plan(input({ pods: pods(0, 10), status: status({ wave: waveStatus(2, 500) }) }));
    expect(result).toMatchObject({ creates: [], deletes: [], waveStarted: false, events: [] });
    expect(result.wave).toEqual({ number: 2, size: 0, limitedBy: "None", message: "all 10 pods exist", startTime: waveStatus(2, 500).startTime });
    expect(result.requeueAfterMs).toBeUndefined();
  });

  it("uses the Fixed size the caller passes", () => {
    const result = plan(input({ spec: { waves: { strategy: "Fixed", initialSize: 3 } }, decision: { size: 3, limitedBy: "Fixed" } }));
    expect(result.creates).toEqual([0, 1, 2]);
    expect(result.wave.limitedBy).toBe("Fixed");
  });
});

describe("plan: scaling down", () => {
  it("deletes pods above replicas, highest ordinal first, bounded by the wave", () => {
    const result = plan(input({ spec: { replicas: 3 }, pods: pods(0, 10), decision: { size: 4 } }));
    expect(result.deletes).toEqual(names([9, 8, 7, 6]));
    expect(result.creates).toEqual([]);
    expect(result.wave).toMatchObject({ number: 1, size: 4, limitedBy: "Rate" });
    expect(result.events).toEqual([
      { type: "Normal", reason: EventReason.ScaledDown, message: "wave 1: deleting 4 pods above spec.replicas=3 (ordinals 9-6), limited by Rate" },
    ]);
  });

  it("finishes with Remaining when the rest fits", () => {
    const result = plan(input({ spec: { replicas: 3 }, pods: pods(0, 6), decision: { size: 10 } }));
    expect(result.deletes).toEqual(names([5, 4, 3]));
    expect(result.wave.limitedBy).toBe("Remaining");
  });

  it("scales to zero", () => {
    const result = plan(input({ spec: { replicas: 0 }, pods: pods(0, 3), decision: { size: 10 } }));
    expect(result.deletes).toEqual(names([2, 1, 0]));
  });

  it("keeps deleting at the floor size while a placement guard holds creates at zero", () => {
    const result = plan(input({ spec: { replicas: 0, waves: { minSize: 2 } }, pods: pods(0, 10), decision: { size: 0, limitedBy: "IPAM" } }));
    expect(result.deletes).toEqual(names([9, 8]));
    expect(result.requeueAfterMs).toBeUndefined();
  });

  it("keeps deleting while the kubelet guard holds creates at zero: deletes relieve it", () => {
    const result = plan(input({ spec: { replicas: 0, waves: { minSize: 3 } }, pods: pods(0, 10, { phase: "Pending", ready: false }), decision: { size: 0, limitedBy: "Kubelet" } }));
    expect(result.deletes).toEqual(names([9, 8, 7]));
  });

  it("holds deletes too while the API server guard is at zero, and looks again after Retry-After", () => {
    const result = plan(
      input({ spec: { replicas: 0 }, pods: pods(0, 10), decision: { size: 0, limitedBy: "ApiServer", message: "429 from the API server", waitMs: 4_000 } }),
    );
    expect(result.deletes).toEqual([]);
    expect(result.requeueAfterMs).toBe(4_000);
    expect(result.blocker).toEqual({ reason: "WaitingForCapacity", message: "waiting for ApiServer: 429 from the API server", stalled: false });
    expect(result.wave).toMatchObject({ size: 0, limitedBy: "ApiServer" });
  });

  it("deletes extras first and creates missing ordinals with what is left of the wave", () => {
    const result = plan(input({ spec: { replicas: 5 }, pods: pods(1, 8), decision: { size: 4 } }));
    expect(result.deletes).toEqual(names([7, 6, 5]));
    expect(result.creates).toEqual([0]);
    expect(result.events[0]).toMatchObject({ reason: EventReason.WaveStarted, message: expect.stringContaining("and deleting 3 (ordinals 7-5)") });
  });

  it("leaves pods of an older template alone under updateStrategy OnDelete", () => {
    const result = plan(input({ spec: { updateStrategy: { type: "OnDelete" } }, pods: pods(0, 10, { templateHash: "h1" }) }));
    expect(result.deletes).toEqual([]);
    expect(result.creates).toEqual([]);
  });
});

describe("plan: expectations (a lagging cache)", () => {
  it("counts in-flight creates as created: no double create; the next wave takes the ordinals after them", () => {
    const result = plan(input({ pods: pods(0, 2), creates: [2, 3, 4], status: status({ wave: waveStatus(1, 60_000) }) }));
    expect(result.creates).toEqual([5, 6, 7, 8, 9]);
    expect(result.wave).toMatchObject({ number: 2, size: 5 });
    expect(result.progress).toMatchObject({ creating: 3, missing: 5 });
  });

  it("does not wait for the cache to show the last wave when everything else is in flight", () => {
    const result = plan(input({ spec: { replicas: 5 }, pods: pods(0, 2), creates: [2, 3, 4], status: status({ wave: waveStatus(1, 60_000) }) }));
    expect(result.creates).toEqual([]);
    expect(result.waveStarted).toBe(false);
    expect(result.wave).toEqual(waveStatus(1, 60_000));
    expect(result.requeueAfterMs).toBeUndefined();
  });

  it("once the cache shows them, the next wave starts after them", () => {
    const result = plan(input({ pods: pods(0, 5), status: status({ wave: waveStatus(1, 60_000) }) }));
    expect(result.creates).toEqual([5, 6, 7, 8, 9]);
  });

  it("counts in-flight deletes as gone: no double delete", () => {
    const result = plan(input({ spec: { replicas: 8 }, pods: pods(0, 10), deletes: names([9, 8]) }));
    expect(result.deletes).toEqual([]);
    expect(result.waveStarted).toBe(false);
  });

  it("does not delete a pod twice even when no other write is in flight", () => {
    const result = plan(input({ spec: { replicas: 8 }, pods: [...pods(0, 9), pod(9, { deleting: true })] }));
    expect(result.deletes).toEqual(names([8]));
  });
});

describe("plan: minInterval", () => {
  it("waits for the rest of spec.waves.minInterval and says so", () => {
    const result = plan(input({ pods: pods(0, 5), spec: { waves: { minInterval: "1s" } }, status: status({ wave: waveStatus(1, 300) }) }));
    expect(result.creates).toEqual([]);
    expect(result.requeueAfterMs).toBe(700);
    // The last wave's bound stays visible; the wait is when the next may start.
    expect(result.wave).toEqual({ ...waveStatus(1, 300), nextTime: new Date(NOW + 700).toISOString() });
    expect(result.events).toEqual([]);
  });

  it("starts the next wave once the interval has passed", () => {
    const result = plan(input({ pods: pods(0, 5), spec: { waves: { minInterval: "1s" } }, status: status({ wave: waveStatus(1, 1_000) }) }));
    expect(result.creates).toEqual([5, 6, 7, 8, 9]);
  });

  it("waits at most one interval when the last start is in the future (clock skew)", () => {
    const result = plan(input({ pods: pods(0, 5), spec: { waves: { minInterval: "2s" } }, status: status({ wave: waveStatus(1, -60_000) }) }));
    expect(result.requeueAfterMs).toBe(2_000);
  });

  it("applies to deletes too", () => {
    const result = plan(input({ spec: { replicas: 0, waves: { minInterval: "5s" } }, pods: pods(0, 3), status: status({ wave: waveStatus(1, 1_000) }) }));
    expect(result.deletes).toEqual([]);
    expect(result.requeueAfterMs).toBe(4_000);
  });
});

describe("plan: paused", () => {
  it("creates and deletes nothing and records Paused", () => {
    const result = plan(input({ spec: { paused: true, replicas: 3 }, pods: [pod(0), pod(7)], status: status({ wave: waveStatus(1, 60_000) }) }));
    expect(result.creates).toEqual([]);
    expect(result.deletes).toEqual([]);
    expect(result.blocker).toEqual({ reason: "Paused", message: "spec.paused is true", stalled: false });
    expect(result.wave).toMatchObject({ number: 1, size: 0, limitedBy: "Paused" });
    expect(result.events).toEqual([{ type: "Normal", reason: EventReason.Paused, message: expect.stringContaining("spec.paused is false") }]);
  });

  it("emits the Paused event only when the pause begins", () => {
    const result = plan(input({ spec: { paused: true }, status: status({ wave: waveStatus(1, 60_000, { limitedBy: "Paused", size: 0 }) }) }));
    expect(result.events).toEqual([]);
  });

  it("resumes where it stopped", () => {
    const result = plan(input({ pods: pods(0, 5), status: status({ wave: waveStatus(1, 60_000, { limitedBy: "Paused", size: 0 }) }) }));
    expect(result.creates).toEqual([5, 6, 7, 8, 9]);
    expect(result.wave.number).toBe(2);
  });
});

describe("plan: failed pods", () => {
  const failed = (ordinals: number[]) => ordinals.map((o) => pod(o, { phase: "Failed", ready: false }));

  it("keeps failed pods and does not replace them while under the budget", () => {
    const result = plan(input({ pods: [...pods(0, 3), ...failed([3, 4])], spec: { failurePolicy: { maxFailedPods: 2 } } }));
    expect(result.creates).toEqual([5, 6, 7, 8, 9]);
    expect(result.deletes).toEqual([]);
    expect(result.blocker).toBeUndefined();
    expect(result.progress.failed).toBe(2);
  });

  it("stops creating once more than maxFailedPods failed, with action Pause", () => {
    const result = plan(input({ pods: [...pods(0, 2), ...failed([2, 3, 4])], spec: { failurePolicy: { maxFailedPods: 2, action: "Pause" } } }));
    expect(result.creates).toEqual([]);
    expect(result.blocker).toMatchObject({ reason: StallReason.FailureBudgetExceeded, stalled: true });
    expect(result.blocker?.message).toContain("3 pods failed, more than spec.failurePolicy.maxFailedPods (2)");
    expect(result.wave).toMatchObject({ size: 0, limitedBy: "FailurePolicy" });
    expect(result.events).toEqual([{ type: "Warning", reason: EventReason.FailurePolicy, message: result.blocker?.message }]);
  });

  it("warns about the exceeded budget once, not on every reconcile", () => {
    const result = plan(
      input({
        pods: [...pods(0, 2), ...failed([2, 3, 4])],
        spec: { failurePolicy: { maxFailedPods: 2 } },
        status: status({ failedReplicas: 3, conditions: [stalled(StallReason.FailureBudgetExceeded, 1)] }),
      }),
    );
    expect(result.events).toEqual([]);
    expect(result.blocker?.reason).toBe(StallReason.FailureBudgetExceeded);
  });

  it("still scales down while creation is stopped by the budget", () => {
    const result = plan(input({ pods: [...failed([0, 1, 2]), ...pods(3, 6)], spec: { replicas: 4, failurePolicy: { maxFailedPods: 1 } } }));
    expect(result.deletes).toEqual(names([5, 4]));
    expect(result.creates).toEqual([]);
    expect(result.blocker?.reason).toBe(StallReason.FailureBudgetExceeded);
  });

  it("keeps creating with action Continue and warns once when the budget is crossed", () => {
    const over = { pods: [...pods(0, 2), ...failed([2, 3, 4])], spec: { failurePolicy: { maxFailedPods: 2, action: "Continue" } } };
    const first = plan(input({ ...over, status: status({ failedReplicas: 2 }) }));
    expect(first.creates).toEqual([5, 6, 7, 8, 9]);
    expect(first.blocker).toBeUndefined();
    expect(first.events.map((e) => [e.type, e.reason])).toEqual([
      ["Warning", EventReason.FailurePolicy],
      ["Normal", EventReason.WaveStarted],
    ]);
    expect(first.events[0]?.message).toContain("continuing (action Continue)");
    const later = plan(input({ ...over, status: status({ failedReplicas: 3 }) }));
    expect(later.events.map((e) => e.reason)).toEqual([EventReason.WaveStarted]);
  });
});

describe("plan: creates refused by the API server", () => {
  const rejection = { code: 422, reason: "Invalid", message: 'Pod "sim-5" is invalid: spec.containers[0].image: Required value', podName: "sim-5", field: "spec.containers[0].image" };
  const message = describeRefusal(rejection, "batchrollout.dev/");
  const held = { reason: StallReason.TemplateRejected, message, probe: false, retryInMs: 4_000 } as const;

  it("holds creation with the API server's message, and looks again when the next probe is due", () => {
    const result = plan(input({ pods: pods(0, 5), createHold: held }));
    expect(result.creates).toEqual([]);
    expect(result.blocker).toEqual({ reason: StallReason.TemplateRejected, message, stalled: true });
    expect(message).toBe(
      'the API server refused to create pod sim-5 (422 Invalid): Pod "sim-5" is invalid: spec.containers[0].image: Required value; fix spec.template.spec.containers[0].image to resume',
    );
    expect(result.wave).toMatchObject({ size: 0, limitedBy: "TemplateRejected" });
    expect(result.requeueAfterMs).toBe(4_000);
    expect(result.events).toEqual([{ type: "Warning", reason: EventReason.TemplateRejected, message }]);
  });

  it("stays held without a new event while status already says so for this generation", () => {
    const result = plan(input({ pods: pods(0, 5), generation: 4, createHold: held, status: status({ conditions: [stalled(StallReason.TemplateRejected, 4, message)] }) }));
    expect(result.creates).toEqual([]);
    expect(result.blocker).toEqual({ reason: StallReason.TemplateRejected, message, stalled: true });
    expect(result.events).toEqual([]);
  });

  it("creates again with no hold (a new generation ends it: refusal.ts)", () => {
    const result = plan(input({ pods: pods(0, 5), generation: 5, status: status({ conditions: [stalled(StallReason.TemplateRejected, 4)] }) }));
    expect(result.creates).toEqual([5, 6, 7, 8, 9]);
    expect(result.blocker).toBeUndefined();
  });

  it("warns again when the new generation is refused too", () => {
    const result = plan(input({ generation: 5, createHold: held, status: status({ conditions: [stalled(StallReason.TemplateRejected, 4)] }) }));
    expect(result.events.map((e) => e.reason)).toEqual([EventReason.TemplateRejected]);
  });

  it("sends one create, the lowest missing ordinal, when a probe is due, and stays Stalled meanwhile", () => {
    const quota = { reason: StallReason.CreateRefused, message: "exceeded quota: pods", probe: true, retryInMs: 0 } as const;
    const result = plan(input({ pods: pods(0, 5), createHold: quota }));
    expect(result.creates).toEqual([5]);
    expect(result.wave).toMatchObject({ size: 1, limitedBy: "CreateRefused" });
    expect(result.wave.message).toContain("exceeded quota: pods");
    expect(result.blocker).toMatchObject({ reason: StallReason.CreateRefused, stalled: true });
    expect(result.events.map((e) => e.reason)).toEqual([EventReason.CreateRefused, EventReason.WaveStarted]);
  });

  it("does not probe while the failure budget stops creation", () => {
    const failed = pods(0, 3, { phase: "Failed", ready: false });
    const result = plan(input({ spec: { failurePolicy: { maxFailedPods: 1 } }, pods: failed, createHold: { ...held, probe: true, retryInMs: 0 } }));
    expect(result.creates).toEqual([]);
  });

  it("a wave cut short by a refusal is bounded by it, in the same status as Stalled, its created pods still in flight or not", () => {
    const quota = { reason: StallReason.CreateRefused, message: "exceeded quota: pods", probe: false, retryInMs: 1_000 } as const;
    const observation = input({ pods: pods(0, 5) });
    const planned = plan(observation);
    expect(planned.wave.limitedBy).not.toBe("CreateRefused");
    const inFlight = heldByRefusal(observation, planned, quota, true);
    expect(inFlight.wave).toMatchObject({ size: planned.wave.size, limitedBy: "CreateRefused", message: "exceeded quota: pods" });
    expect(inFlight.blocker).toMatchObject({ reason: StallReason.CreateRefused, stalled: true });
    expect(heldByRefusal(observation, planned, quota, false).wave).toMatchObject({ size: 0, limitedBy: "CreateRefused" });
  });

  it("does not stop deletes", () => {
    const result = plan(input({ spec: { replicas: 2 }, pods: pods(0, 4), createHold: held }));
    expect(result.deletes).toEqual(names([3, 2]));
  });
});

describe("plan: no capacity", () => {
  it("is a stall when the scheduler guard is full of unschedulable pods of this rollout", () => {
    const waiting = pods(0, 3, { phase: "Pending", scheduled: false, ready: false, unschedulableMessage: "0/3 nodes are available: 3 Insufficient cpu." });
    const result = plan(input({ pods: waiting, decision: { size: 0, limitedBy: "Scheduler" } }));
    expect(result.creates).toEqual([]);
    expect(result.blocker).toEqual({ reason: StallReason.PodsUnschedulable, message: "3 pods unschedulable: 0/3 nodes are available: 3 Insufficient cpu.", stalled: true });
    expect(result.requeueAfterMs).toBe(ZERO_CAPACITY_REQUEUE_MS);
    expect(result.events.map((e) => e.reason)).toEqual([EventReason.PodsUnschedulable]);
  });

  it("looks again after ZERO_CAPACITY_REQUEUE_MS when the sizer gives no wait (waitMs 0)", () => {
    const result = plan(input({ decision: { size: 0, limitedBy: "Budget", waitMs: 0 } }));
    expect(result.requeueAfterMs).toBe(ZERO_CAPACITY_REQUEUE_MS);
  });

  it("is a wait, not a stall, while nodes have not started the pods they were given", () => {
    const message = "500 pods bound to nodes but not yet Running (spec.guards.kubelet.maxStarting 500): waiting for their nodes to start them";
    const result = plan(input({ pods: pods(0, 3, { phase: "Pending", ready: false }), decision: { size: 0, limitedBy: "Kubelet", message } }));
    expect(result.creates).toEqual([]);
    expect(result.blocker).toEqual({ reason: "WaitingForCapacity", message: `waiting for Kubelet: ${message}`, stalled: false });
    expect(result.events).toEqual([]);
  });

  it("is a wait when the scheduler is merely busy", () => {
    const result = plan(input({ pods: pods(0, 3, { phase: "Pending", scheduled: false, ready: false }), decision: { size: 0, limitedBy: "Scheduler", message: "500 pending" } }));
    expect(result.blocker).toEqual({ reason: "WaitingForCapacity", message: "waiting for Scheduler: 500 pending", stalled: false });
    expect(result.wave).toMatchObject({ size: 0, limitedBy: "Scheduler", message: "waiting for Scheduler: 500 pending" });
    expect(result.events).toEqual([]);
  });

  it.each([
    ["IPAM", StallReason.InsufficientPodIPs],
    ["NodeCapacity", StallReason.InsufficientNodeCapacity],
  ] as const)("is a stall when %s allows no pod", (limitedBy, reason) => {
    const result = plan(input({ decision: { size: 0, limitedBy, message: "0 free" } }));
    expect(result.blocker).toMatchObject({ reason, stalled: true });
    expect(result.blocker?.message).toContain("0 free");
  });
});

describe("plan: finalizer and deletion", () => {
  const deletionTimestamp = "2025-01-01T00:00:05Z";

  it("adds the finalizer to a live rollout that lacks it, and only then", () => {
    expect(plan(input({ finalizers: [] })).addFinalizer).toBe(true);
    expect(plan(input({ finalizers: ["other", FINALIZER] })).addFinalizer).toBe(false);
  });

  it("deletes every pod in paced waves, highest ordinal first", () => {
    const result = plan(input({ deletionTimestamp, pods: pods(0, 10), decision: { size: 4 } }));
    expect(result.deletes).toEqual(names([9, 8, 7, 6]));
    expect(result.creates).toEqual([]);
    expect(result.addFinalizer).toBe(false);
    expect(result.removeFinalizer).toBe(false);
    expect(result.wave).toMatchObject({ number: 1, size: 4, limitedBy: "Deleting", message: "deleting 4 of 10 pods, wave bounded by Rate" });
    expect(result.events).toEqual([{ type: "Normal", reason: EventReason.DeletingPods, message: "wave 1: deleting 4 pods (ordinals 9-6)" }]);
  });

  it("deletes even while paused", () => {
    const result = plan(input({ deletionTimestamp, spec: { paused: true }, pods: pods(0, 2) }));
    expect(result.deletes).toEqual(names([1, 0]));
  });

  it("paces deletion waves by minInterval; deletes in flight are not sent again", () => {
    expect(plan(input({ deletionTimestamp, pods: pods(0, 6), deletes: names([5, 4]) })).deletes).toEqual(names([3, 2, 1, 0]));
    const early = plan(input({ deletionTimestamp, pods: pods(0, 6), status: status({ wave: waveStatus(3, 200) }) }));
    expect(early.deletes).toEqual([]);
    expect(early.requeueAfterMs).toBe(800);
  });

  it("is not held by a long minInterval: deletion waves wait at most MAX_DELETION_WAVE_INTERVAL_MS", () => {
    const spec = { waves: { minInterval: "24h" } };
    const early = plan(input({ deletionTimestamp, spec, pods: pods(0, 6), status: status({ wave: waveStatus(3, 200) }) }));
    expect(early.deletes).toEqual([]);
    expect(early.requeueAfterMs).toBe(MAX_DELETION_WAVE_INTERVAL_MS - 200);
    expect(early.wave.nextTime).toBe(new Date(NOW + MAX_DELETION_WAVE_INTERVAL_MS - 200).toISOString());
    const due = plan(input({ deletionTimestamp, spec, pods: pods(0, 6), status: status({ wave: waveStatus(3, MAX_DELETION_WAVE_INTERVAL_MS) }) }));
    expect(due.deletes).toEqual(names([5, 4, 3, 2, 1]));
    // A scale-down keeps the user's pace.
    const scaleDown = plan(input({ spec: { ...spec, replicas: 0 }, pods: pods(0, 6), status: status({ wave: waveStatus(3, MAX_DELETION_WAVE_INTERVAL_MS) }) }));
    expect(scaleDown.deletes).toEqual([]);
  });

  it("keeps the finalizer while a delete is in flight", () => {
    const result = plan(input({ deletionTimestamp, pods: [pod(0, { deleting: true })], deletes: names([1]) }));
    expect(result.removeFinalizer).toBe(false);
    expect(result.deletes).toEqual([]);
  });

  it("removes the finalizer when only terminating pods remain", () => {
    const result = plan(input({ deletionTimestamp, pods: pods(0, 3, { deleting: true }), status: status({ wave: waveStatus(3, 200) }) }));
    expect(result.removeFinalizer).toBe(true);
    expect(result.deletes).toEqual([]);
    expect(result.wave).toMatchObject({ number: 3, size: 0, limitedBy: "Deleting", message: "all pods deleted" });
  });

  it("removes the finalizer when no pod is left", () => {
    expect(plan(input({ deletionTimestamp })).removeFinalizer).toBe(true);
  });

  it("does nothing for a rollout being deleted without our finalizer", () => {
    const result = plan(input({ deletionTimestamp, finalizers: ["other"], pods: pods(0, 3) }));
    expect(result).toMatchObject({ creates: [], deletes: [], addFinalizer: false, removeFinalizer: false, events: [] });
  });
});

describe("describeOrdinals", () => {
  it.each([
    [[], ""],
    [[4], "4"],
    [[0, 1, 2, 3], "0-3"],
    [[9, 8, 7], "9-7"],
    [[1, 3, 4, 5, 9], "1, 3-5, 9"],
  ])("%j → %s", (ordinals, text) => {
    expect(describeOrdinals(ordinals)).toBe(text);
  });

  it(`spells out at most ${MAX_RANGES_IN_MESSAGE} ranges`, () => {
    expect(describeOrdinals([0, 2, 4, 6, 8, 10, 12, 13])).toBe("0, 2, 4, 6, 8 and 3 more");
  });
});

describe("toObservedPod", () => {
  const base = {
    metadata: { name: "sim-3", labels: { [LABEL_ORDINAL]: "3", [LABEL_TEMPLATE_HASH]: "h2" } },
    spec: { nodeName: "" },
    status: { phase: "Running", conditions: [{ type: "Ready", status: "True" }, { type: "PodScheduled", status: "True" }] },
  };

  it("projects a running pod", () => {
    expect(toObservedPod(base)).toEqual({ name: "sim-3", ordinal: 3, phase: "Running", scheduled: true, ready: true, deleting: false, templateHash: "h2" });
  });

  it("reads scheduling from nodeName when the condition is missing", () => {
    expect(toObservedPod({ ...base, spec: { nodeName: "n1" }, status: { phase: "Pending" } })).toMatchObject({ scheduled: true, ready: false });
  });

  it("keeps the scheduler's message for an unschedulable pod", () => {
    const pod = toObservedPod({
      ...base,
      status: { phase: "Pending", conditions: [{ type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/3 nodes are available" }] },
    });
    expect(pod).toMatchObject({ scheduled: false, unschedulableMessage: "0/3 nodes are available" });
  });

  it("marks a pod with a deletionTimestamp (Date or string) as deleting", () => {
    expect(toObservedPod({ ...base, metadata: { ...base.metadata, deletionTimestamp: new Date() } })?.deleting).toBe(true);
    expect(toObservedPod({ ...base, metadata: { ...base.metadata, deletionTimestamp: "2025-01-01T00:00:00Z" } })?.deleting).toBe(true);
  });

  it("treats a pod without a phase as Pending and an unknown phase as Unknown", () => {
    expect(toObservedPod({ metadata: base.metadata })?.phase).toBe("Pending");
    expect(toObservedPod({ ...base, status: { phase: "Weird" } })?.phase).toBe("Unknown");
  });

  it.each([undefined, "", "-1", "01", "+1", "1.0", "x", "99999999999999999"])("ignores a pod with ordinal label %j", (label) => {
    const labels: Record<string, string> = label === undefined ? {} : { [LABEL_ORDINAL]: label };
    expect(toObservedPod({ ...base, metadata: { name: "sim-1", labels } })).toBeUndefined();
  });

  it("reads the pod cache's slim pods", () => {
    const raw = { ...base, metadata: { ...base.metadata, namespace: "ns", managedFields: [{}] } };
    expect(toObservedPod(slimPod(raw))).toEqual(toObservedPod(base));
  });

  it("parses canonical ordinals only", () => {
    expect(parseOrdinal("0")).toBe(0);
    expect(parseOrdinal("999999")).toBe(999_999);
    expect(parseOrdinal("007")).toBeUndefined();
  });
});
