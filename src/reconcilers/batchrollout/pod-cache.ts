import { KIND } from "../../api/batchrollout.ts";
import type { ObjectWithMeta } from "../../controllers/informer.ts";

// What the pod cache keeps of each pod. At 100,000 pods the full objects would cost gigabytes;
// the reconciler, the status and the IP-headroom arithmetic read only these fields.

export interface CachedPod {
  metadata: {
    name: string;
    namespace: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    deletionTimestamp?: string;
    ownerReferences?: { kind: string; name: string; uid: string; controller?: boolean }[];
  };
  spec: { nodeName?: string; hostNetwork?: boolean };
  status: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
  };
}

/** Index name: pods by the BatchRollout that controls them ("<namespace>/<name>"). */
export const BY_ROLLOUT = "byRollout";

interface RawPod extends ObjectWithMeta {
  metadata?: CachedPod["metadata"] & { managedFields?: unknown };
  spec?: CachedPod["spec"];
  status?: CachedPod["status"];
}

export function slimPod(raw: ObjectWithMeta): CachedPod {
  const { metadata, spec, status } = raw as RawPod;
  const owner = metadata?.ownerReferences?.find((o) => o.controller);
  return {
    metadata: {
      name: metadata?.name ?? "",
      namespace: metadata?.namespace ?? "",
      uid: metadata?.uid,
      resourceVersion: metadata?.resourceVersion,
      labels: metadata?.labels,
      deletionTimestamp: metadata?.deletionTimestamp,
      ownerReferences: owner ? [{ kind: owner.kind, name: owner.name, uid: owner.uid, controller: true }] : undefined,
    },
    spec: { nodeName: spec?.nodeName, hostNetwork: spec?.hostNetwork },
    status: {
      phase: status?.phase,
      podIP: status?.podIP,
      conditions: status?.conditions?.map(({ type, status: s, reason, message }) => ({ type, status: s, reason, message })),
    },
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
