import { ApiError } from "../../kube/errors.ts";
import { StallReason } from "./conditions.ts";

// Creates the API server refused: a quota, Pod Security, an admission webhook's denial or timeout,
// an invalid pod. The same create fails again until the cause changes, so a refusal stops the wave
// at once (act.ts) and holds creation here: a single create probes after a backoff that doubles up
// to a minute, and at once when the spec changes or the namespace's ResourceQuotas do. Kubernetes'
// ReplicaSet controller learned the same (slowStartBatch stops a batch at its first error).

/** First probe after a refusal: a webhook that failed once costs a second. */
export const REFUSAL_FIRST_RETRY_MS = 1_000;
/** Probes at most this far apart: a refusal nobody fixes costs one refused create a minute. */
export const REFUSAL_MAX_RETRY_MS = 60_000;

/** A create the API server refused; `field` is the first field its Status names, when it does. */
export interface WriteError {
  code: number;
  reason: string;
  message: string;
  podName?: string;
  field?: string;
}

/**
 * Whether an error answering a create is a refusal: every answer but success, 409 AlreadyExists
 * (the pod is there) and 429 (APF's own pacing, with Retry-After); of 5xx answers only an admission
 * webhook's failure, since other 5xx are the server's trouble and a load signal.
 */
export function isRefusal(err: unknown): err is ApiError {
  if (!(err instanceof ApiError)) return false;
  if (err.code === 409 || err.code === 429) return false;
  if (err.code >= 500) return /webhook/i.test(err.serverMessage);
  return err.code >= 400;
}

export function toWriteError(err: ApiError, podName: string): WriteError {
  const field = err.status?.details?.causes?.find((c) => c.field)?.field;
  return { code: err.code, reason: err.reason, message: err.serverMessage, podName, ...(field ? { field } : {}) };
}

export type RefusalReason = typeof StallReason.TemplateRejected | typeof StallReason.CreateRefused;

/** 400 and 422 judge the pod as built from the spec; anything else is the cluster's policy or state. */
export function refusalReason(error: Pick<WriteError, "code">): RefusalReason {
  return error.code === 400 || error.code === 422 ? StallReason.TemplateRejected : StallReason.CreateRefused;
}

/**
 * The rollout field a person should change for an invalid pod: the pod's name and the operator's
 * name label come from metadata.name, everything else from spec.template.
 */
export function faultyField(error: Pick<WriteError, "field" | "message">, labelPrefix: string): string {
  const field = error.field ?? "";
  if (field === "metadata.name" || (field.startsWith("metadata.labels") && error.message.includes(labelPrefix))) return "metadata.name";
  if (field.startsWith("metadata.") || field.startsWith("spec.")) return `spec.template.${field}`;
  return "spec.template";
}

/** What status says of a refusal: the API server's words, then what to do about them. */
export function describeRefusal(error: WriteError, labelPrefix: string): string {
  const pod = error.podName === undefined ? "a pod" : `pod ${error.podName}`;
  const said = `the API server refused to create ${pod} (${error.code} ${error.reason}): ${error.message}`;
  if (refusalReason(error) === StallReason.TemplateRejected) return `${said}; fix ${faultyField(error, labelPrefix)} to resume`;
  return `${said}; creation resumes by itself once the API server accepts a create (one is tried at most every ${REFUSAL_MAX_RETRY_MS / 1_000} s, and at once when the namespace's ResourceQuotas change)`;
}

/** What the planner needs of a refusal (plan.ts): hold creation, or let one create probe. */
export interface CreateHold {
  reason: RefusalReason;
  message: string;
  /** One create may go now, to learn whether the cause is gone. */
  probe: boolean;
  /** Until the next probe, when probe is false. */
  retryInMs: number;
}

interface Held {
  reason: RefusalReason;
  message: string;
  generation: number;
  /** The namespace's ResourceQuotas (quotas.ts fingerprint) when the create was refused. */
  quotas: string;
  /** Consecutive refused waves and probes. */
  attempts: number;
  refusedAt: number;
  retryAt: number;
}

/** One rollout's refusal backoff; pure but for its own state, with time passed in. */
export class RefusalBackoff {
  #held: Held | undefined;

  /** A wave met a refusal: hold creation, the next probe twice as far off as the last. */
  refused(error: WriteError, labelPrefix: string, at: { now: number; generation: number; quotas: string }): void {
    const attempts = (this.#held?.attempts ?? 0) + 1;
    const wait = Math.min(REFUSAL_MAX_RETRY_MS, REFUSAL_FIRST_RETRY_MS * 2 ** (attempts - 1));
    this.#held = {
      reason: refusalReason(error),
      message: describeRefusal(error, labelPrefix),
      generation: at.generation,
      quotas: at.quotas,
      attempts,
      refusedAt: at.now,
      retryAt: at.now + wait,
    };
  }

  /**
   * Carries a refusal over from status (a new leader, a restart): the Stalled condition of this
   * generation. It probes at once: one create answers whether the cause is still there.
   */
  restore(reason: RefusalReason, message: string, at: { now: number; generation: number; quotas: string }): void {
    this.#held = { reason, message, generation: at.generation, quotas: at.quotas, attempts: 0, refusedAt: at.now, retryAt: at.now };
  }

  /** A create went through: the cause is gone. */
  accepted(): void {
    this.#held = undefined;
  }

  /** The hold for this reconcile, if any. A new generation ends it; a quota change makes a probe due. */
  hold(at: { now: number; generation: number; quotas: string }): CreateHold | undefined {
    const held = this.#held;
    if (held === undefined) return undefined;
    if (held.generation !== at.generation) {
      this.#held = undefined;
      return undefined;
    }
    if (held.quotas !== at.quotas) {
      // At most one probe per REFUSAL_FIRST_RETRY_MS however often quotas change.
      held.retryAt = Math.min(held.retryAt, held.refusedAt + REFUSAL_FIRST_RETRY_MS);
      held.quotas = at.quotas;
    }
    const retryInMs = Math.max(0, held.retryAt - at.now);
    return { reason: held.reason, message: held.message, probe: retryInMs === 0, retryInMs };
  }
}
