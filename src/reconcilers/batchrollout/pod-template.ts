import { createHash } from "node:crypto";
import { API_VERSION, KIND, LABEL_NAME, LABEL_ORDINAL, LABEL_TEMPLATE_HASH, type BatchRollout, type PodTemplate } from "../../api/batchrollout.ts";
import { podName } from "./observed.ts";

// How a pod is made from the rollout's template. The template hash labels each pod with the
// template it was created from, so status can count pods still on an older template.

/** Hex characters of the template hash kept in the label. */
export const TEMPLATE_HASH_LENGTH = 10;

/** JSON with object keys sorted, so equal templates hash equally whatever their key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

export function templateHash(template: PodTemplate): string {
  return createHash("sha256").update(canonicalJson(template)).digest("hex").slice(0, TEMPLATE_HASH_LENGTH);
}

/** The pod for one ordinal: template plus our labels and a controller owner reference. */
export function buildPod(rollout: BatchRollout, ordinal: number, hash: string): object {
  const { metadata, spec } = rollout;
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: podName(metadata.name, ordinal),
      namespace: metadata.namespace,
      labels: {
        ...spec.template.metadata?.labels,
        [LABEL_NAME]: metadata.name,
        [LABEL_ORDINAL]: String(ordinal),
        [LABEL_TEMPLATE_HASH]: hash,
      },
      annotations: spec.template.metadata?.annotations,
      ownerReferences: [
        { apiVersion: API_VERSION, kind: KIND, name: metadata.name, uid: metadata.uid, controller: true, blockOwnerDeletion: true },
      ],
    },
    spec: spec.template.spec,
  };
}
