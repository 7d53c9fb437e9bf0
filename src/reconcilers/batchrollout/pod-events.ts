import type { InformerHandlers } from "../../controllers/informer.ts";
import type { RateLimitingQueue } from "../../controllers/workqueue.ts";
import { LABEL_ORDINAL } from "../../api/batchrollout.ts";
import type { Expectations } from "./expectations.ts";
import { parseOrdinal } from "./observed.ts";
import { type CachedPod, rolloutKeyOf } from "./pod-cache.ts";

/**
 * Pod events are gathered this long before the reconcile they bring about. A 10,000-pod rollout sees
 * ~40,000 of them (created, bound, Running, Ready), and every reconcile reads all its pods (~5 ms per
 * 10,000), so one reconcile per event ran back to back and kept half a core busy after the last
 * create, on the machine kwok needed to mark the pods Running. Waves are timed by requeueAfter, not
 * by pod events, so only status and repairs (a pod deleted by hand) wait this long.
 */
export const POD_EVENT_BATCH_MS = 200;

/**
 * Handlers for the pod informer: note what the cache now shows against our expectations at once,
 * and enqueue the owning rollout after POD_EVENT_BATCH_MS (a burst schedules it once: the earlier
 * time wins in the queue).
 */
export function podEventHandlers(queue: Pick<RateLimitingQueue, "addAfter">, expectations: Expectations): InformerHandlers<CachedPod> {
  const onPod = (pod: CachedPod, gone: boolean) => {
    const key = rolloutKeyOf(pod);
    if (!key) return;
    const ordinal = parseOrdinal(pod.metadata.labels?.[LABEL_ORDINAL]);
    if (ordinal !== undefined) expectations.observeCreate(key, ordinal);
    if (gone || pod.metadata.deletionTimestamp) expectations.observeDelete(key, pod.metadata.name);
    queue.addAfter(key, POD_EVENT_BATCH_MS);
  };
  return { onAdd: (p) => onPod(p, false), onUpdate: (_, p) => onPod(p, false), onDelete: (p) => onPod(p, true) };
}
