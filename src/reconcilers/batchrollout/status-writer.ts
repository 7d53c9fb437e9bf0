import type { BatchRollout, BatchRolloutStatus } from "../../api/batchrollout.ts";
import type { KubeClient } from "../../kube/client.ts";
import { isNotFound } from "../../kube/errors.ts";
import { resourcePath } from "../../kube/resources.ts";
import { BATCHROLLOUTS } from "./resource.ts";
import type { RolloutState } from "./rollout-state.ts";
import { materialChange, statusChanged } from "./status.ts";

// The one path by which a rollout's status reaches the API server, and the one place that batches
// progress. A patch is sent only when status changed; a change that only reports progress (pod
// counts, signal readings, messages) waits until STATUS_PROGRESS_INTERVAL_MS after the last patch.

/**
 * Least time between two status patches that only report progress. Every pod event triggers a
 * reconcile, so without it a rollout of 10,000 pods would patch its status tens of times a second,
 * in the same APF flow as its pod creates. Changes of wave, condition or generation go at once.
 */
export const STATUS_PROGRESS_INTERVAL_MS = 1_000;

type Target = Pick<BatchRollout, "metadata">;

export class StatusWriter {
  readonly #client: Pick<KubeClient, "request">;
  readonly #now: () => number;
  /** Whether this replica still holds its Lease, asked as each patch is sent; absent without leader election. */
  readonly #fence: (() => boolean) | undefined;

  constructor(client: Pick<KubeClient, "request">, now: () => number, fence?: () => boolean) {
    this.#client = client;
    this.#now = now;
    this.#fence = fence;
  }

  /**
   * A new wave's status, sent beside its writes rather than after them: under load the patch waits
   * in the same APF queue as the creates, and sent after them it would hold the next wave back by
   * its latency. A failure is not lost: settle() then finds the status still unwritten.
   */
  async begin(rollout: Target & Pick<BatchRollout, "status">, state: RolloutState, status: BatchRolloutStatus, onError: (err: unknown) => void): Promise<void> {
    try {
      if (await this.patch(rollout, state.written ?? rollout.status, status)) state.patchedAt = this.#now();
      state.written = status;
    } catch (err) {
      onError(err);
    }
  }

  /**
   * The reconcile's final status: written when it changed, unless it only reports progress and a
   * patch went out less than STATUS_PROGRESS_INTERVAL_MS ago. Then nothing is written and the
   * answer says when a reconcile should look again (a pod event may come first).
   */
  async settle(rollout: Target & Pick<BatchRollout, "status">, state: RolloutState, status: BatchRolloutStatus): Promise<{ againInMs?: number }> {
    const stored = state.written ?? rollout.status;
    const sincePatch = this.#now() - (state.patchedAt ?? -Infinity);
    if (!materialChange(stored, status) && sincePatch < STATUS_PROGRESS_INTERVAL_MS && statusChanged(stored, status)) {
      return { againInMs: STATUS_PROGRESS_INTERVAL_MS - sincePatch };
    }
    if (await this.patch(rollout, stored, status)) state.patchedAt = this.#now();
    state.written = status;
    return {};
  }

  /** Patches /status when it differs from `stored`; says whether it sent a patch. */
  async patch(rollout: Target, stored: BatchRolloutStatus | undefined, status: BatchRolloutStatus): Promise<boolean> {
    if (!statusChanged(stored, status)) return false;
    const { name, namespace } = rollout.metadata;
    try {
      await this.#client.request({
        method: "PATCH",
        path: resourcePath(BATCHROLLOUTS, { namespace, name, subresource: "status" }),
        body: { status },
        contentType: "application/merge-patch+json",
        // A replica that lost its Lease must not overwrite its successor's status with its own view.
        ...(this.#fence ? { fence: this.#fence } : {}),
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    return true;
  }
}
