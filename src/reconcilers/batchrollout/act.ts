import type { Logger } from "pino";
import type { BatchRollout } from "../../api/batchrollout.ts";
import type { KubeClient, RequestOptions } from "../../kube/client.ts";
import { ApiError, isAlreadyExists, isNotFound, isRetryable, RequestTimeoutError } from "../../kube/errors.ts";
import { FencedError } from "../../kube/fence.ts";
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
  /** Whether this replica may still write (its Lease is fresh): asked as the pacer releases each write, and again as it is sent (its fence). */
  mayWrite?: () => boolean;
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
          if (signal.aborted || skip() || opts.mayWrite?.() === false) {
            skipped = true;
            return;
          }
          await write();
        });
        return skipped ? "skipped" : "done";
      } catch (err) {
        // The Lease went stale while the write waited for a connection: as if skipped here.
        if (err instanceof FencedError) return "skipped";
        if (!retryable(err) || attempt >= MAX_WRITE_ATTEMPTS || signal.aborted) throw err;
      }
    }
  };

  /**
   * One pod write: its expectation is set before it is sent and dropped unless the write happened.
   * `handled` sorts an error answer: "keep" (it happened after all), "drop" (nothing to do), or
   * undefined (a failure, reported to the controller for a backoff).
   */
  const writePod = async (w: {
    request: RequestOptions;
    expect(): void;
    drop(): void;
    written(): void;
    skip: () => boolean;
    retryable: (err: unknown) => boolean;
    handled: (err: unknown) => "keep" | "drop" | undefined;
  }): Promise<void> => {
    w.expect();
    try {
      const request = opts.mayWrite ? { ...w.request, fence: opts.mayWrite } : w.request;
      const result = await send(() => client.request(request), w.skip, w.retryable);
      if (result === "done") return w.written();
      w.drop();
      outcome.failed++;
    } catch (err) {
      const handled = w.handled(err);
      if (handled === "keep") return;
      w.drop();
      if (handled === undefined) fail(err);
    }
  };

  const deletes = plan.deletes.map((name) => {
    const uid = opts.podUids.get(name);
    return writePod({
      request: {
        method: "DELETE",
        path: resourcePath(PODS, { namespace, name }),
        body: { apiVersion: "v1", kind: "DeleteOptions", propagationPolicy: "Background", ...(uid ? { preconditions: { uid } } : {}) },
        retryThrottled: false,
        discardBody: true,
      },
      expect: () => expectations.expectDelete(key, name),
      drop: () => expectations.observeDelete(key, name),
      written: () => void outcome.deleted++,
      skip: () => false,
      retryable: isRetryable,
      // Gone already, or replaced by a pod with another UID (409 precondition): nothing to delete.
      handled: (err) => (isNotFound(err) || (err instanceof ApiError && err.code === 409) ? "drop" : undefined),
    });
  });

  const creates = plan.creates.map((ordinal) =>
    writePod({
      request: { method: "POST", path: collection, body: buildPod(rollout, ordinal, opts.templateHash), retryThrottled: false, discardBody: true },
      expect: () => expectations.expectCreate(key, ordinal),
      drop: () => expectations.observeCreate(key, ordinal),
      written: () => void outcome.created++,
      skip: () => stopCreates,
      retryable: (err) => isRetryable(err) && !isRefusal(err),
      handled: (err) => {
        // The pod exists, which is what we wanted; the cache will show it soon.
        if (isAlreadyExists(err)) {
          outcome.existed++;
          return "keep";
        }
        if (!isRefusal(err)) return undefined;
        stopCreates = true;
        outcome.refused++;
        outcome.rejected ??= toWriteError(err, podName(rollout.metadata.name, ordinal));
        return "drop";
      },
    }),
  );

  await Promise.all([...deletes, ...creates]);
  return outcome;
}
