import { LABEL_ORDINAL } from "../../src/api/batchrollout.ts";
import { startRollout } from "./batchrollout.ts";
import type { Method, StressorTimeline } from "./method.ts";
import { startOwnWriter } from "./own-writer.ts";

// BatchRollout under a second writer: once the rollout has created a quarter of its pods, a storm of
// creates starts in another namespace with the same identity (so the same APF flow). What matters is
// how fast the rollout's own creation rate falls, and what the bystander sees meanwhile.

/** The rollout must last long enough to show a before and an after: at least this many pods. */
export const STRESSOR_MIN_ROLLOUT_PODS = 3_000;
/** The second writer starts when the rollout has created this share of its pods. */
export const STRESSOR_TRIGGER_FRACTION = 0.25;
/** The second writer's pods, as a share of the rollout's. */
export const STRESSOR_STORM_SHARE = 0.5;
const TRIGGER_POLL_MS = 200;

export function stressorRolloutPods(n: number): number {
  return Math.max(n, STRESSOR_MIN_ROLLOUT_PODS);
}

export const stressor: Method = {
  id: "stressor",
  label: "BatchRollout + storm mid-run",
  writerIdentity: "writer",
  pods: stressorRolloutPods,
  identityOf: (pod) => pod.metadata.labels[LABEL_ORDINAL] ?? pod.metadata.name,
  async run(ctx) {
    const rolloutPods = stressorRolloutPods(ctx.n);
    const stormPods = Math.ceil(rolloutPods * STRESSOR_STORM_SHARE);
    const stormTracker = await ctx.openNamespace("storm");
    const operator = await startRollout(ctx, rolloutPods, "stressor");
    const timeline: StressorTimeline = { startedAt: 0, tracker: stormTracker, pods: stormPods };
    let stopStorm: (() => Promise<void>) | undefined;
    let stopped = false;
    const trigger = async () => {
      while (!stopped && ctx.tracker.counts().created < rolloutPods * STRESSOR_TRIGGER_FRACTION) await ctx.tracker.changedOrAfter(TRIGGER_POLL_MS);
      if (stopped) return;
      timeline.startedAt = Date.now();
      const writer = startOwnWriter(ctx, { namespace: stormTracker.namespace, method: "stressor-storm", count: stormPods, prefix: "storm", logName: "stressor-writer" });
      ctx.addProcess("stressor-writer", writer.pid);
      stopStorm = writer.stop;
      timeline.outcome = await writer.done;
      timeline.doneAt = Date.now();
    };
    const triggered = trigger();
    return {
      stressor: timeline,
      stop: async () => {
        stopped = true;
        await stopStorm?.();
        await triggered;
        await operator.stop();
      },
      notes: [
        `rollout of ${rolloutPods} pods; at ${STRESSOR_TRIGGER_FRACTION * 100} % created, a storm of ${stormPods} creates starts in ${stormTracker.namespace} with the same identity`,
      ],
    };
  },
};
