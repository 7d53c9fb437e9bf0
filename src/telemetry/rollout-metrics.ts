import { Counter, Gauge, type Registry } from "prom-client";
import { LimitedBy } from "../api/batchrollout.ts";
import type { BatchRolloutStatus } from "../api/batchrollout.ts";
import type { RateLimit } from "../ratelimit/sizer/index.ts";

// The batchrollout_* series: what each rollout decided and what it saw. Labelled by rollout so a
// dashboard can put one rollout's wave sizes beside the signals that shaped them.

type RolloutLabels = "namespace" | "name";

export class RolloutMetrics {
  readonly waveSize: Gauge<RolloutLabels>;
  readonly waves: Counter<RolloutLabels | "limited_by">;
  readonly limitedBy: Gauge<RolloutLabels | "limited_by">;
  readonly writeRate: Gauge<RolloutLabels>;
  readonly writeConcurrency: Gauge<RolloutLabels>;
  readonly pods: Gauge<RolloutLabels | "state">;
  readonly writeLatencyP90: Gauge<RolloutLabels>;
  readonly throttled: Counter<RolloutLabels>;
  readonly schedulerPending: Gauge<RolloutLabels>;
  readonly ipFree: Gauge<RolloutLabels>;

  constructor(registry: Registry) {
    const registers = [registry];
    const rollout = ["namespace", "name"] as const;
    this.waveSize = new Gauge({ name: "batchrollout_wave_size", help: "Pods the current wave creates or deletes.", labelNames: rollout, registers });
    this.waves = new Counter({ name: "batchrollout_waves_total", help: "Waves started, by the bound that sized them.", labelNames: [...rollout, "limited_by"], registers });
    this.limitedBy = new Gauge({ name: "batchrollout_wave_limited_by", help: "1 for the bound that sized the current wave, 0 for the others.", labelNames: [...rollout, "limited_by"], registers });
    this.writeRate = new Gauge({ name: "batchrollout_write_rate_per_second", help: "Pod writes per second the sizer allows.", labelNames: rollout, registers });
    this.writeConcurrency = new Gauge({ name: "batchrollout_write_concurrency", help: "Pod writes in flight the sizer allows.", labelNames: rollout, registers });
    this.pods = new Gauge({ name: "batchrollout_pods", help: "Pods of the rollout by state.", labelNames: [...rollout, "state"], registers });
    this.writeLatencyP90 = new Gauge({ name: "batchrollout_signal_write_latency_p90_seconds", help: "p90 latency of the rollout's pod writes in the last tick.", labelNames: rollout, registers });
    this.throttled = new Counter({ name: "batchrollout_signal_throttled_total", help: "429 responses to the rollout's pod writes.", labelNames: rollout, registers });
    this.schedulerPending = new Gauge({ name: "batchrollout_signal_scheduler_pending", help: "Pods waiting for the scheduler, in the rollout's guard scope.", labelNames: rollout, registers });
    this.ipFree = new Gauge({ name: "batchrollout_signal_ip_free", help: "Free pod IPs reported by the rollout's IPAM provider.", labelNames: rollout, registers });
  }

  /** Records one reconcile's decision and the status it produced. */
  observe(
    rollout: { namespace: string; name: string },
    decision: { waveStarted: boolean; limitedBy: LimitedBy; size: number; rateLimit: RateLimit; throttled: number },
    status: BatchRolloutStatus,
  ): void {
    const labels = { namespace: rollout.namespace, name: rollout.name };
    this.waveSize.set(labels, status.wave?.size ?? 0);
    if (decision.waveStarted) this.waves.inc({ ...labels, limited_by: decision.limitedBy });
    const current = status.wave?.limitedBy ?? decision.limitedBy;
    for (const bound of LimitedBy.options) this.limitedBy.set({ ...labels, limited_by: bound }, bound === current ? 1 : 0);
    this.writeRate.set(labels, decision.rateLimit.perSecond);
    this.writeConcurrency.set(labels, decision.rateLimit.concurrency);
    if (decision.throttled > 0) this.throttled.inc(labels, decision.throttled);
    const counts: Record<string, number> = {
      existing: status.replicas,
      scheduled: status.scheduledReplicas,
      running: status.runningReplicas,
      ready: status.readyReplicas,
      failed: status.failedReplicas,
    };
    for (const [state, value] of Object.entries(counts)) this.pods.set({ ...labels, state }, value);
    const p90 = status.signals?.apiServer?.writeLatencyP90Ms;
    if (p90 !== undefined) this.writeLatencyP90.set(labels, p90 / 1000);
    const pending = status.signals?.scheduler?.pending;
    if (pending !== undefined) this.schedulerPending.set(labels, pending);
    const free = status.signals?.ipam?.free;
    if (free !== undefined) this.ipFree.set(labels, free);
  }

  /** Drops a deleted rollout's series. */
  forget(rollout: { namespace: string; name: string }): void {
    const labels = { namespace: rollout.namespace, name: rollout.name };
    for (const metric of [this.waveSize, this.writeRate, this.writeConcurrency, this.writeLatencyP90, this.throttled, this.schedulerPending, this.ipFree]) {
      metric.remove(labels);
    }
    for (const bound of LimitedBy.options) this.limitedBy.remove({ ...labels, limited_by: bound });
  }
}
