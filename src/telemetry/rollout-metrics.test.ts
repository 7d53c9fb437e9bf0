import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import type { BatchRolloutStatus } from "../api/batchrollout.ts";
import { RolloutMetrics } from "./rollout-metrics.ts";

const status = (limitedBy: "Rate" | "Scheduler", size: number): BatchRolloutStatus => ({
  replicas: 10,
  updatedReplicas: 10,
  updatedReadyReplicas: 6,
  scheduledReplicas: 8,
  runningReplicas: 7,
  readyReplicas: 6,
  succeededReplicas: 0,
  failedReplicas: 1,
  wave: { number: 3, size, limitedBy },
  signals: { apiServer: { writeLatencyP90Ms: 250 }, scheduler: { pending: 42 } },
});

const decision = { waveStarted: true, limitedBy: "Rate" as const, size: 50, rateLimit: { concurrency: 8, perSecond: 50 }, throttled: 2 };

describe("RolloutMetrics", () => {
  it("records the wave, its bound, the pods and the signals per rollout", async () => {
    const registry = new Registry();
    const m = new RolloutMetrics(registry);
    m.observe({ namespace: "a", name: "x" }, decision, status("Rate", 50));
    m.observe({ namespace: "b", name: "y" }, { ...decision, limitedBy: "Scheduler" }, status("Scheduler", 0));
    const text = await registry.metrics();
    expect(text).toContain('batchrollout_wave_size{namespace="a",name="x"} 50');
    expect(text).toContain('batchrollout_waves_total{namespace="a",name="x",limited_by="Rate"} 1');
    expect(text).toContain('batchrollout_pods{namespace="a",name="x",state="running"} 7');
    expect(text).toContain('batchrollout_signal_write_latency_p90_seconds{namespace="a",name="x"} 0.25');
    expect(text).toContain('batchrollout_signal_scheduler_pending{namespace="a",name="x"} 42');
    expect(text).toContain('batchrollout_signal_throttled_total{namespace="a",name="x"} 2');
    // One rollout's bound does not clear another's.
    expect(text).toContain('batchrollout_wave_limited_by{namespace="a",name="x",limited_by="Rate"} 1');
    expect(text).toContain('batchrollout_wave_limited_by{namespace="b",name="y",limited_by="Scheduler"} 1');
    expect(text).toContain('batchrollout_wave_limited_by{namespace="b",name="y",limited_by="Rate"} 0');
  });

  it("drops a forgotten rollout's series", async () => {
    const registry = new Registry();
    const m = new RolloutMetrics(registry);
    m.observe({ namespace: "a", name: "x" }, decision, status("Rate", 50));
    m.forget({ namespace: "a", name: "x" });
    const text = await registry.metrics();
    expect(text).not.toContain('batchrollout_wave_size{namespace="a"');
    expect(text).not.toContain('batchrollout_wave_limited_by{namespace="a"');
  });
});
