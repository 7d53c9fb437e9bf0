import { describe, expect, it } from "vitest";
import { explainWave, lastWave, progressLine, stateLine, recentWaves, type EventView, type RolloutView } from "./render.ts";

const rollout = (status: RolloutView["status"], extra: Partial<RolloutView["metadata"]> = {}): RolloutView => ({
  metadata: { name: "fleet", namespace: "sims", generation: 1, ...extra },
  spec: { replicas: 3000, guards: { apiServer: { latencyTarget: "1s" }, scheduler: { maxPending: 500, scope: "Rollout" }, kubelet: { maxStarting: 500 }, ipam: { provider: "Auto", reserve: "5%" } } },
  status,
});
const counts = { replicas: 1868, updatedReplicas: 1868, updatedReadyReplicas: 1025, scheduledReplicas: 1868, runningReplicas: 1025, readyReplicas: 1025, succeededReplicas: 0, failedReplicas: 0 };
const wave = (n: number, note: string, time: string): EventView => ({ reason: "WaveStarted", note: `wave ${n}: ${note}`, eventTime: time, regarding: { uid: "u1" } });

describe("kubectl batchrollout's output", () => {
  it("prints the demo's progress line", () => {
    const r = rollout({ ...counts, observedGeneration: 1, wave: { number: 21, size: 75, limitedBy: "Latency", message: "75/s writes" } });
    expect(progressLine(r, 22_000)).toBe("  22s  created  1868/3000  running  1025  ready  1025  wave 21 (75 pods, limited by Latency): 75/s writes");
    const updating = rollout({ ...counts, updatedReplicas: 900, updatedReadyReplicas: 850, observedGeneration: 2, wave: { number: 30, size: 40, limitedBy: "MaxUnavailable" } });
    expect(progressLine(updating, 5_000)).toBe("   5s  created  1868/3000  running  1025  ready  1025  updated   900 (  850 ready)  wave 30 (40 pods, limited by MaxUnavailable)");
    expect(progressLine(rollout(undefined), 0)).toBe("   0s  created     0/3000  running     0  ready     0  wave 0 (0 pods, limited by -)");
  });

  it("lists the rollout's waves oldest first, the last ten, from its own Events", () => {
    const events = [wave(2, "creating 50 pods (ordinals 50-99), limited by Rate", "2026-12-07T01:00:02Z"), wave(1, "creating 50 pods (ordinals 0-49), limited by Rate", "2026-12-07T01:00:01Z")];
    const other = { ...wave(9, "creating 1 pods", "2026-12-07T01:00:03Z"), regarding: { uid: "u2" } };
    expect(recentWaves([...events, other], "u1")).toEqual(["  01:00:01  wave 1: creating 50 pods (ordinals 0-49), limited by Rate", "  01:00:02  wave 2: creating 50 pods (ordinals 50-99), limited by Rate"]);
    const many = Array.from({ length: 12 }, (_, i) => wave(i + 1, "creating 1 pods, limited by Rate", `2026-12-07T01:00:${String(10 + i)}Z`));
    expect(recentWaves(many, "u1")[0]).toBe("  (2 earlier waves not shown)");
  });

  it("explains the last wave from its Event, not from the wait that followed it", () => {
    const r = rollout({ ...counts, observedGeneration: 1, wave: { number: 4, size: 0, limitedBy: "MinInterval", message: "next wave in 0.4 s" }, signals: { scheduler: { pending: 12 } } });
    const events = [wave(4, "creating 120 pods (ordinals 1-120), limited by Scheduler", "2026-12-07T01:00:04Z")];
    expect(lastWave(events, "u1")).toMatchObject({ number: 4, size: 120, limitedBy: "Scheduler", verb: "creating" });
    const lines = explainWave(r, events, "u1");
    expect(lines[0]).toBe("sims/fleet: wave 4 at 01:00:04, creating 120 pods, bound by Scheduler");
    expect(lines).toContain("now: MinInterval: next wave in 0.4 s");
    // What the operator writes now: the last wave's bound stays, the wait is wave.nextTime.
    const waiting = rollout({ ...counts, observedGeneration: 1, wave: { number: 4, size: 120, limitedBy: "Scheduler", nextTime: "2026-12-07T01:00:05.000Z" } });
    expect(explainWave(waiting, events, "u1")).toContain("now: waiting spec.waves.minInterval; the next wave may start at 01:00:05");
    expect(lines.join("\n")).toContain("scheduler: 12 pods wait to be scheduled (max 500, scope Rollout)");
    expect(lines.join("\n")).toContain("raise spec.guards.scheduler.maxPending");
  });

  it("says what the operator has not written yet, and a stall with its reason", () => {
    expect(stateLine(rollout(undefined))).toBe("waiting for the operator to observe generation 1");
    const stalled = rollout({ ...counts, observedGeneration: 1, conditions: [{ type: "Stalled", status: "True", reason: "TemplateRejected", message: "fix it", lastTransitionTime: "" }] });
    expect(stateLine(stalled)).toBe("Stalled (TemplateRejected): fix it");
    expect(explainWave(rollout(undefined), [], undefined)).toEqual(["sims/fleet: no wave yet (waiting for the operator to observe generation 1)"]);
  });
});
