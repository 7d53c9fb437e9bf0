import { LABEL_ORDINAL, LABEL_TEMPLATE_HASH } from "../../api/batchrollout.ts";

// The planner's view of a pod: the few facts it decides on, taken from the informer's cache once
// per reconcile. Pod objects are not validated with zod (the API server already did, and a
// 10,000-pod parse per reconcile buys nothing), so this is a plain projection.

export const POD_PHASES = ["Pending", "Running", "Succeeded", "Failed", "Unknown"] as const;
export type PodPhase = (typeof POD_PHASES)[number];

export interface ObservedPod {
  name: string;
  ordinal: number;
  phase: PodPhase;
  /** Bound to a node: PodScheduled=True, or spec.nodeName set (kwok and static binding skip the condition). */
  scheduled: boolean;
  /** The pod's Ready condition is True. */
  ready: boolean;
  /** metadata.deletionTimestamp is set: the pod is on its way out and no longer counts. */
  deleting: boolean;
  /** The batchrollout.dev/template-hash label; undefined on a pod that lacks it. */
  templateHash: string | undefined;
  /** The scheduler's message while PodScheduled=False with reason Unschedulable. */
  unschedulableMessage?: string;
}

/** The parts of a core/v1 Pod read here; a V1Pod from @kubernetes/client-node fits, and so does plain JSON. */
export interface PodLike {
  metadata?: {
    name?: string;
    labels?: Record<string, string> | undefined;
    deletionTimestamp?: Date | string | null | undefined;
  };
  spec?: { nodeName?: string | undefined } | undefined;
  status?:
    | {
        phase?: string | undefined;
        conditions?: readonly { type: string; status: string; reason?: string | undefined; message?: string | undefined }[] | undefined;
      }
    | undefined;
}

/** Canonical decimal only: "007" or "+7" would name a different pod than `<name>-7`. */
const ORDINAL_PATTERN = /^(0|[1-9][0-9]{0,15})$/;

export function parseOrdinal(text: string | undefined): number | undefined {
  if (text === undefined || !ORDINAL_PATTERN.test(text)) return undefined;
  const ordinal = Number(text);
  return Number.isSafeInteger(ordinal) ? ordinal : undefined;
}

/** The deterministic pod name for an ordinal; a create that already happened answers 409. */
export function podName(rolloutName: string, ordinal: number): string {
  return `${rolloutName}-${ordinal}`;
}

const UNSCHEDULABLE = "Unschedulable";

function toPhase(phase: string | undefined): PodPhase {
  // A pod the API server just accepted may not have a phase yet: it is pending.
  if (phase === undefined || phase === "") return "Pending";
  return (POD_PHASES as readonly string[]).includes(phase) ? (phase as PodPhase) : "Unknown";
}

/** The planner's view of a pod, or undefined for a pod without a valid ordinal label (not one we manage). */
export function toObservedPod(pod: PodLike): ObservedPod | undefined {
  const name = pod.metadata?.name;
  const ordinal = parseOrdinal(pod.metadata?.labels?.[LABEL_ORDINAL]);
  if (name === undefined || ordinal === undefined) return undefined;
  const conditions = pod.status?.conditions ?? [];
  const condition = (type: string) => conditions.find((c) => c.type === type);
  const podScheduled = condition("PodScheduled");
  const phase = toPhase(pod.status?.phase);
  const observed: ObservedPod = {
    name,
    ordinal,
    phase,
    scheduled: podScheduled?.status === "True" || Boolean(pod.spec?.nodeName),
    ready: condition("Ready")?.status === "True",
    deleting: pod.metadata?.deletionTimestamp != null,
    templateHash: pod.metadata?.labels?.[LABEL_TEMPLATE_HASH],
  };
  if (!observed.scheduled && podScheduled?.status === "False" && podScheduled.reason === UNSCHEDULABLE) {
    observed.unschedulableMessage = podScheduled.message ?? UNSCHEDULABLE;
  }
  return observed;
}
