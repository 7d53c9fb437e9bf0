import type { Logger } from "pino";
import type { BatchRollout } from "../../api/batchrollout.ts";
import type { KubeClient } from "../../kube/client.ts";
import { ApiError, isAlreadyExists, isNotFound, isRetryable, RequestTimeoutError } from "../../kube/errors.ts";
import { PODS, resourcePath } from "../../kube/resources.ts";
import type { WritePacer, WriteResponse } from "../../ratelimit/pacer.ts";
import type { Expectations } from "./expectations.ts";
import { podName } from "./observed.ts";
import type { Plan } from "./plan.ts";
import { buildPod } from "./pod-template.ts";
import { isRefusal, toWriteError, type WriteError } from "./refusal.ts";

// The act step: sends one plan's pod writes through the rollout's pacer. Creates and deletes are
// remembered as expectations before they are sent, so a reconcile that runs before the cache
// catches up counts them as done. 409 AlreadyExists is a create that already happened. The first
// create the API server refuses (refusal.ts) stops the wave's creates that have not gone yet.

/** Attempts per pod write on 429, 5xx or timeouts; each attempt waits for the pacer and its Retry-After gate. */
export const MAX_WRITE_ATTEMPTS = 5;

export interface WaveWriteResult {
  created: number;
  /** Creates answered 409 AlreadyExists: a pod of that name exists, which is what we wanted. */
  existed: number;
  deleted: number;
  /** The first create the API server refused (refusal.ts); the rest of the wave's creates were not sent. */
  rejected?: WriteError;
  /** Creates the API server refused. */
  refused: number;
  /** Writes that failed for now (after retries) or were skipped because of a rejection or shutdown. */
  failed: number;
  /** The first failure that is not a rejection, for the requeue error. */
  firstFailure?: Error;
}

/** What the pacer records of a write's result: status code, Retry-After, APF priority level. */
export function classifyWrite({ error }: { value?: unknown; error?: unknown }): WriteResponse | undefined {
  if (error === undefined) return { status: 201 };
  if (error instanceof RequestTimeoutError) return { timedOut: true };
  if (error instanceof ApiError) {
    const retryAfter = error.headers["retry-after"];
    const priorityLevel = error.headers["x-kubernetes-pf-prioritylevel-uid"];
    return {
      status: error.code,
      ...(retryAfter === undefined ? {} : { retryAfter }),
      ...(typeof priorityLevel === "string" ? { priorityLevel } : {}),
    };
  }
  return undefined;
}

export interface ActOptions {
  client: Pick<KubeClient, "request">;
  pacer: Pick<WritePacer, "schedule">;
  expectations: Expectations;
  key: string;
  rollout: BatchRollout;
  plan: Pick<Plan, "creates" | "deletes">;
  templateHash: string;
  /** UIDs of the pods the plan deletes, so a delete never hits a pod recreated under the same name. */
  podUids: ReadonlyMap<string, string | undefined>;
  signal: AbortSignal;
  logger: Logger;
}

export async function executeWrites(opts: ActOptions): Promise<WaveWriteResult> {
  const { client, pacer, expectations, key, rollout, plan, signal } = opts;
  const namespace = rollout.metadata.namespace ?? "default";
  const collection = resourcePath(PODS, { namespace });
  const outcome: WaveWriteResult = { created: 0, existed: 0, deleted: 0, refused: 0, failed: 0 };
  let stopCreates = false;

  const fail = (err: unknown) => {
    outcome.failed++;
    outcome.firstFailure ??= err instanceof Error ? err : new Error(String(err));
  };

  /** Sends one write through the pacer, retrying what may succeed later. */
  const send = async (write: () => Promise<unknown>, skip: () => boolean, retryable: (err: unknown) => boolean): Promise<"done" | "skipped"> => {
    for (let attempt = 1; ; attempt++) {
      let skipped = false;
      try {
        await pacer.schedule(async () => {
          if (signal.aborted || skip()) {
            skipped = true;
            return;
          }
          await write();
        });
        return skipped ? "skipped" : "done";
      } catch (err) {
        if (!retryable(err) || attempt >= MAX_WRITE_ATTEMPTS || signal.aborted) throw err;
      }
    }
  };

  const deletes = plan.deletes.map(async (name) => {
    expectations.expectDelete(key, name);
    const uid = opts.podUids.get(name);
    try {
      const result = await send(
        () =>
          client.request({
            method: "DELETE",
            path: resourcePath(PODS, { namespace, name }),
            body: { apiVersion: "v1", kind: "DeleteOptions", propagationPolicy: "Background", ...(uid ? { preconditions: { uid } } : {}) },
            retryThrottled: false,
            discardBody: true,
          }),
        () => false,
        isRetryable,
      );
      if (result === "skipped") {
        expectations.observeDelete(key, name);
        outcome.failed++;
      } else {
        outcome.deleted++;
      }
    } catch (err) {
      expectations.observeDelete(key, name);
      // Gone already, or replaced by a pod with another UID (409 precondition): nothing to delete.
      if (isNotFound(err) || (err instanceof ApiError && err.code === 409)) return;
      fail(err);
    }
  });

  const creates = plan.creates.map(async (ordinal) => {
    expectations.expectCreate(key, ordinal);
    try {
      const result = await send(
        () =>
          client.request({
            method: "POST",
            path: collection,
            body: buildPod(rollout, ordinal, opts.templateHash),
            retryThrottled: false,
            discardBody: true,
          }),
        () => stopCreates,
        (err) => isRetryable(err) && !isRefusal(err),
      );
      if (result === "skipped") {
        expectations.observeCreate(key, ordinal);
        outcome.failed++;
      } else {
        outcome.created++;
      }
    } catch (err) {
      if (isAlreadyExists(err)) {
        // Keep the expectation: the cache will show the pod soon.
        outcome.existed++;
        return;
      }
      expectations.observeCreate(key, ordinal);
      if (isRefusal(err)) {
        stopCreates = true;
        outcome.refused++;
        outcome.rejected ??= toWriteError(err, podName(rollout.metadata.name, ordinal));
        return;
      }
      fail(err);
    }
  });

  await Promise.all([...deletes, ...creates]);
  return outcome;
}
