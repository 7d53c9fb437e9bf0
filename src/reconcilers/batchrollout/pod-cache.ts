import { KIND, LABEL_NAME, LABEL_ORDINAL, LABEL_TEMPLATE_HASH } from "../../api/batchrollout.ts";
import type { ObjectWithMeta } from "../../controllers/informer.ts";
import { InternPool } from "../../controllers/intern-pool.ts";

// What the pod cache keeps of each pod. At 100,000 pods the full objects would cost gigabytes;
// the reconciler and the status read only these fields (toObservedPod, rolloutKeyOf, the delete
// preconditions' uid). Every cached pod has the same shape, so V8 keeps them in one hidden class.

/** The labels the operator sets and reads back; the template's own labels are not kept. */
export const CACHED_POD_LABELS = [LABEL_NAME, LABEL_ORDINAL, LABEL_TEMPLATE_HASH] as const;
/** The conditions toObservedPod reads; Initialized, ContainersReady and the like are dropped. */
export const CACHED_POD_CONDITIONS: ReadonlySet<string> = new Set(["PodScheduled", "Ready"]);

/** Namespaces, node names, owner references, template hashes, conditions: shared by many pods. */
const shared = new InternPool();

export interface CachedPod {
  metadata: {
    name: string;
    namespace: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    deletionTimestamp?: string;
    /** The controller reference only; shared (frozen) by every pod of the same owner. */
    ownerReferences?: readonly OwnerReference[];
  };
  spec: { nodeName?: string };
  status: {
    phase?: string;
    /** Shared (frozen) by every pod in the same state. */
    conditions?: readonly { type: string; status: string; reason?: string; message?: string }[];
  };
}

export interface OwnerReference {
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
}

/** Index name: pods by the BatchRollout that controls them ("<namespace>/<name>"). */
export const BY_ROLLOUT = "byRollout";

interface RawPod extends ObjectWithMeta {
  metadata?: Omit<CachedPod["metadata"], "ownerReferences"> & { managedFields?: unknown; ownerReferences?: OwnerReference[] };
  spec?: CachedPod["spec"];
  status?: CachedPod["status"];
}

function ourLabels(labels: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!labels) return undefined;
  const kept: Record<string, string> = {};
  for (const key of CACHED_POD_LABELS) {
    const value = labels[key];
    // The ordinal is the pod's own; the rollout name and template hash are shared.
    if (value !== undefined) kept[key] = key === LABEL_ORDINAL ? value : shared.intern(value);
  }
  return kept;
}

type Condition = NonNullable<CachedPod["status"]["conditions"]>[number];

/**
 * PodScheduled and Ready, with a message only where status shows it (PodScheduled not True). Pods
 * go through a handful of such states, so the list is shared by every pod in the same one.
 */
function readConditions(conditions: readonly Condition[] | undefined): readonly Condition[] | undefined {
  if (!conditions) return undefined;
  const kept: Condition[] = [];
  for (const { type, status, reason, message } of conditions) {
    if (!CACHED_POD_CONDITIONS.has(type)) continue;
    const unscheduled = type === "PodScheduled" && status !== "True";
    kept.push({ type, status, reason, message: unscheduled ? message : undefined });
  }
  const key = kept.map((c) => [c.type, c.status, c.reason ?? "", c.message ?? ""].join("\u0000")).join("\u0001");
  return shared.share(`conditions\u0002${key}`, () => kept.map((c) => Object.freeze(c)));
}

/** The controller reference, one array for all pods of an owner instead of one each. */
function controllerReference({ kind, name, uid }: OwnerReference): readonly OwnerReference[] {
  return shared.share(`owner\u0002${kind}\u0000${name}\u0000${uid}`, () => [Object.freeze({ kind, name, uid, controller: true })]);
}

export function slimPod(raw: ObjectWithMeta): CachedPod {
  const { metadata, spec, status } = raw as RawPod;
  const owner = metadata?.ownerReferences?.find((o) => o.controller);
  return {
    metadata: {
      name: metadata?.name ?? "",
      namespace: shared.intern(metadata?.namespace ?? ""),
      uid: metadata?.uid,
      resourceVersion: metadata?.resourceVersion,
      labels: ourLabels(metadata?.labels),
      deletionTimestamp: metadata?.deletionTimestamp,
      ownerReferences: owner ? controllerReference(owner) : undefined,
    },
    spec: { nodeName: shared.intern(spec?.nodeName) },
    status: { phase: status?.phase, conditions: readConditions(status?.conditions) },
  };
}

/** The key of the BatchRollout controlling a pod, or undefined for anyone else's pod. */
export function rolloutKeyOf(pod: CachedPod): string | undefined {
  const owner = pod.metadata.ownerReferences?.find((o) => o.controller && o.kind === KIND);
  return owner ? `${pod.metadata.namespace}/${owner.name}` : undefined;
}

export const podIndexers = {
  [BY_ROLLOUT]: (pod: CachedPod): string[] => {
    const key = rolloutKeyOf(pod);
    return key ? [key] : [];
  },
};
