import { LABEL_ORDINAL } from "../../src/api/batchrollout.ts";
import { startRollout } from "./batchrollout.ts";
import type { Method, StressorTimeline } from "./method.ts";
import { startOwnWriter } from "./own-writer.ts";

// BatchRollout under a second writer: once the rollout has created a quarter of its pods, another
// tenant starts creating pods at a steady rate in another namespace with the same identity (so the
// same APF flow). What matters is how fast the rollout's own creation rate falls, and what the
// bystander sees meanwhile. The second writer is steady, like kube-burner or a controller with a QPS
// limit: a storm with no limit at all hurts the bystander by itself, whatever the rollout does.

/** The rollout must last long enough to show a before and an after: at least this many pods. */
export const STRESSOR_MIN_ROLLOUT_PODS = 3_000;
/** The second writer starts when the rollout has created this share of its pods. */
export const STRESSOR_TRIGGER_FRACTION = 0.25;
/** The second writer's pods, as a share of the rollout's. */
export const STRESSOR_WRITER_SHARE = 0.5;
/**
 * The second writer's rate (creates/s): kube-burner's qps=50 setting. On our 2-core test bed that
 * alone keeps the bystander within its SLO, and with a rollout at full pace on top it does not, so
 * the rollout has to make room.
 */
export const STRESSOR_WRITER_QPS = 50;
const TRIGGER_POLL_MS = 200;

export function stressorRolloutPods(n: number): number {
  return Math.max(n, STRESSOR_MIN_ROLLOUT_PODS);
}

export const stressor: Method = {
  id: "stressor",
  label: `BatchRollout + a ${STRESSOR_WRITER_QPS}/s writer mid-run`,
  writerIdentity: "writer",
  pods: stressorRolloutPods,
  identityOf: (pod) => pod.metadata.labels[LABEL_ORDINAL] ?? pod.metadata.name,
  async run(ctx) {
    const rolloutPods = stressorRolloutPods(ctx.n);
    const tenantPods = Math.ceil(rolloutPods * STRESSOR_WRITER_SHARE);
    const tenantTracker = await ctx.openNamespace("tenant");
    const operator = await startRollout(ctx, rolloutPods, "stressor");
    const timeline: StressorTimeline = { startedAt: 0, tracker: tenantTracker, pods: tenantPods };
    let stopTenant: (() => Promise<void>) | undefined;
    let stopped = false;
    const trigger = async () => {
      while (!stopped && ctx.tracker.counts().created < rolloutPods * STRESSOR_TRIGGER_FRACTION) await ctx.tracker.changedOrAfter(TRIGGER_POLL_MS);
      if (stopped) return;
      timeline.startedAt = Date.now();
      const writer = startOwnWriter(ctx, { namespace: tenantTracker.namespace, method: "stressor-writer", count: tenantPods, prefix: "tenant", qps: STRESSOR_WRITER_QPS, logName: "stressor-writer" });
      ctx.addProcess("stressor-writer", writer.pid);
      stopTenant = writer.stop;
      timeline.outcome = await writer.done;
      timeline.doneAt = Date.now();
    };
    const triggered = trigger();
    return {
      stressor: timeline,
      stop: async () => {
        stopped = true;
        await stopTenant?.();
        await triggered;
        await operator.stop();
      },
      notes: [
        `rollout of ${rolloutPods} pods; at ${STRESSOR_TRIGGER_FRACTION * 100} % created, a second writer creates ${tenantPods} pods at ${STRESSOR_WRITER_QPS}/s in ${tenantTracker.namespace} with the same identity`,
      ],
    };
  },
};
