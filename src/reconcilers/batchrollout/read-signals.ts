import type { BatchRollout, SignalsStatus } from "../../api/batchrollout.ts";
import type { RetryAfterGate } from "../../ratelimit/retry-after.ts";
import type { ApfMetrics, ApiServerSignal } from "../../ratelimit/signals/apiserver.ts";
import type { IpamSignals } from "../../ratelimit/signals/ipam.ts";
import type { OthersCreatingSignal } from "../../ratelimit/signals/others-creating.ts";
import type { SchedulerSignal } from "../../ratelimit/signals/scheduler.ts";
import type { WaveSignals } from "../../ratelimit/sizer/index.ts";
import { apiServerSignals } from "../../ratelimit/write-latency.ts";
import { remainingWrites, type PodCensus } from "./census.ts";
import type { RolloutState } from "./rollout-state.ts";

// The signals of one reconcile, read once from their owners' caches: what the sizer weighs for the
// next wave, and what status says of each. Nothing here writes or starts a watch.

/** Cluster-wide signal sources; one that is absent does not bound waves. */
export interface SignalSources {
  /** The cluster's Retry-After, shared by every rollout: a 429 to one slows them all. */
  gate: Pick<RetryAfterGate, "notBefore" | "lastRetryAfterMs">;
  apiServer?: Pick<ApiServerSignal, "snapshot">;
  scheduler?: Pick<SchedulerSignal, "pending">;
  /** Pods/s created by writers that are not rollouts of this operator. */
  othersCreating?: Pick<OthersCreatingSignal, "perSecond">;
  ipam?: Pick<IpamSignals, "read" | "counts">;
}

export interface SignalReadings {
  sizer: WaveSignals;
  status: SignalsStatus;
}

export interface SignalRequest {
  key: string;
  rollout: BatchRollout;
  pods: PodCensus;
  /** Creates in flight, not yet in the cache. */
  creating: number;
  now: number;
  /** A reconcile that may start a wave: the writes since the last decision are weighed (and reset). */
  deciding: boolean;
  signal: AbortSignal;
}

/**
 * Everything the sizer weighs for this rollout's next wave: its own writes, the shared
 * Retry-After, the scheduler's backlog and its own unschedulable pods, how fast others create
 * pods, its pods waiting for their nodes to start them, and IP headroom and node slots (only while
 * it has pods to create). The cluster budget is granted separately (reconciler.ts), as a scope.
 */
export async function readSignals(sources: SignalSources, state: RolloutState, req: SignalRequest): Promise<SignalReadings> {
  const { rollout, pods, now } = req;
  const { spec } = rollout;
  const sizer: WaveSignals = { now, remaining: remainingWrites(pods), retryAfterUntil: sources.gate.notBefore };
  if (req.deciding) {
    sizer.writes = state.window.tick(now);
    state.lastTick = sizer.writes;
    state.throttled += sizer.writes.throttled;
  }
  const apf = sources.apiServer?.snapshot();
  const status: SignalsStatus = {
    apiServer: {
      ...apiServerSignals(state.lastTick, {
        ...(apf?.flowSchema ? { flowSchema: apf.flowSchema } : {}),
        ...(apf?.priorityLevel ? { priorityLevel: apf.priorityLevel } : {}),
        throttledTotal: state.throttled,
        ...(sources.gate.lastRetryAfterMs === undefined ? {} : { retryAfterMs: sources.gate.lastRetryAfterMs }),
      }),
      ...apfMetricsStatus(apf?.metrics),
    },
  };

  const waiting = sources.scheduler?.pending(spec.guards.scheduler.scope, req.key);
  const othersCreating = sources.othersCreating?.perSecond();
  if (othersCreating !== undefined) sizer.othersCreating = othersCreating;
  const { unschedulable, unschedulableMessage } = pods.progress;
  sizer.unschedulable = { count: unschedulable, ...(unschedulableMessage ? { message: unschedulableMessage } : {}) };
  if (waiting) {
    sizer.pending = waiting.pending;
    status.scheduler = {
      pending: waiting.pending,
      unschedulable: waiting.unschedulable,
      gated: waiting.gated,
      notYetTried: waiting.notYetTried,
      ...(waiting.firstUnschedulableMessage ? { message: waiting.firstUnschedulableMessage } : {}),
    };
  }

  // Creates in flight count too: the cache has not shown them yet, and a wave sized without them
  // overshoots maxStarting whenever the watch lags the writes.
  sizer.starting = pods.starting + req.creating;
  status.kubelet = { starting: sizer.starting };

  if (sources.ipam && pods.missing.length > 0 && !spec.paused) {
    const ipam = sources.ipam;
    const ip = await ipam.read({ provider: spec.guards.ipam.provider, template: spec.template, metricsURL: spec.guards.ipam.metricsURL }, req.signal);
    // Headroom counts the pods the IPAM cache holds (bound, not finished). This rollout's other
    // live pods (not yet bound, or bound but not yet seen by that cache) and its creates in flight
    // will take an address and a slot too, so they come off before the next wave is sized.
    const namespace = rollout.metadata.namespace ?? "";
    const uncounted = pods.live.filter((p) => p.phase !== "Succeeded" && p.phase !== "Failed" && !ipam.counts(namespace, p.name)).length;
    const claimed = uncounted + req.creating;
    sizer.nodeSlots = Math.max(0, ip.nodeSlots - claimed);
    if (ip.headroom) {
      sizer.ipam = ip.headroom.free === undefined ? ip.headroom : { ...ip.headroom, free: Math.max(0, ip.headroom.free - claimed) };
    }
    status.ipam = {
      provider: ip.choice.provider,
      nodeSlots: ip.nodeSlots,
      ...(ip.headroom?.free === undefined ? {} : { free: ip.headroom.free }),
      ...(ip.headroom?.capacity === undefined ? {} : { capacity: ip.headroom.capacity }),
      ...(ip.headroom?.message ? { message: ip.headroom.message } : {}),
    };
  }
  return { sizer, status };
}

/** What status says of the kube-apiserver /metrics guardrail. */
function apfMetricsStatus(metrics: ApfMetrics | undefined): NonNullable<SignalsStatus["apiServer"]> {
  if (!metrics) return {};
  return {
    metrics: metrics.state,
    ...(metrics.inQueue === undefined ? {} : { inQueue: metrics.inQueue }),
    ...(metrics.waitP99Ms === undefined ? {} : { waitP99Ms: Math.round(metrics.waitP99Ms) }),
    ...(metrics.rejected === undefined ? {} : { rejected: metrics.rejected }),
    ...(metrics.state === "Forbidden" ? { message: "kube-apiserver /metrics is forbidden: client-side signals only" } : {}),
  };
}
