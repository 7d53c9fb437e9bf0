// Node slots: free pod slots (allocatable pods minus the pods bound there) on the nodes a rollout's
// template may use. Not IP headroom, but every IPAM provider reads the same two caches, so they run
// whatever the provider. Pods are kept as counts per node, updated from the active-pod informer's
// notifications: a reading walks the nodes, never the cluster's pods, and the informer keeps of each
// pod only its key and a placement shared by all pods on its node.

import type { Logger } from "pino";
import type { PodTemplate } from "../../api/batchrollout.ts";
import { Informer, type ObjectWithMeta, type SlimMeta, slimMeta } from "../../controllers/informer.ts";
import { InternPool } from "../../controllers/intern-pool.ts";
import type { KubeClient } from "../../kube/client.ts";
import { NODES, PODS, resourcePath } from "../../kube/resources.ts";
import { type NodeLike, NodePodCounter, type PodCountsByNode, type PodLike, nodeCapacity } from "../ipam/node-pod-cidr.ts";

/**
 * Pods holding a slot and an address: bound to a node and not finished. Unbound pods hold neither
 * yet (the scheduler guard counts them); finished pods have released both.
 */
export const ACTIVE_PODS_FIELD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed,spec.nodeName!=";

export interface CachedNode extends ObjectWithMeta {
  metadata: SlimMeta & { labels?: Record<string, string> };
  spec: NonNullable<NodeLike["spec"]>;
  status: { allocatable?: Record<string, string>; conditions?: Array<{ type: string; status: string }> };
}

export interface ActivePod extends ObjectWithMeta {
  metadata: SlimMeta;
  spec: { nodeName?: string; hostNetwork?: boolean };
}

/** Labels, taints, cordon, podCIDRs, allocatable pods and Ready: what eligibility and headroom read. */
export function slimNode(raw: ObjectWithMeta): CachedNode {
  const node = raw as NodeLike & ObjectWithMeta;
  const ready = node.status?.conditions?.find((c) => c.type === "Ready");
  const pods = node.status?.allocatable?.pods;
  const spec = node.spec ?? {};
  return {
    metadata: { ...slimMeta(raw), ...(node.metadata?.labels ? { labels: node.metadata.labels } : {}) },
    spec: {
      ...(spec.podCIDR ? { podCIDR: spec.podCIDR } : {}),
      ...(spec.podCIDRs ? { podCIDRs: spec.podCIDRs } : {}),
      ...(spec.unschedulable ? { unschedulable: true } : {}),
      ...(spec.taints?.length ? { taints: spec.taints.map(({ key, value, effect }) => ({ key, ...(value === undefined ? {} : { value }), effect })) } : {}),
    },
    status: {
      ...(pods === undefined ? {} : { allocatable: { pods } }),
      ...(ready ? { conditions: [{ type: ready.type, status: ready.status }] } : {}),
    },
  };
}

/** Namespaces and placements (node, hostNetwork), repeated by every cached active pod. */
const activePodShared = new InternPool();

/** A pod as the slot and address count needs it: where it runs and whether it uses the pod network. */
export function slimActivePod(raw: ObjectWithMeta): ActivePod {
  const spec = (raw as PodLike).spec;
  const m = slimMeta(raw);
  if (m.namespace) m.namespace = activePodShared.intern(m.namespace);
  const nodeName = spec?.nodeName || undefined;
  const hostNetwork = spec?.hostNetwork === true;
  const placement = activePodShared.share(`${nodeName ?? ""}\u0000${hostNetwork}`, () => ({ ...(nodeName ? { nodeName } : {}), ...(hostNetwork ? { hostNetwork } : {}) }));
  return { metadata: m, spec: placement };
}

export interface NodeSlotsOptions {
  client: Pick<KubeClient, "request" | "watch">;
  logger: Logger;
  /** Called on every event of either cache. */
  onChange?: () => void;
}

/** The node and active-pod caches, and the free pod slots they give a template. */
export class NodeSlots {
  readonly nodes: Informer<CachedNode>;
  readonly activePods: Informer<ActivePod>;
  /** Non-terminal pods per node, fed by the active-pod informer. */
  readonly #counter = new NodePodCounter();

  constructor(opts: NodeSlotsOptions) {
    const { client, logger } = opts;
    this.nodes = new Informer({ name: "nodes", client, path: resourcePath(NODES), transform: slimNode, logger });
    this.activePods = new Informer({ name: "active-pods", client, path: resourcePath(PODS), transform: slimActivePod, fieldSelector: ACTIVE_PODS_FIELD_SELECTOR, logger });
    const counter = this.#counter;
    this.activePods.addHandlers({
      onAdd: (pod) => counter.add(pod),
      onUpdate: (old, cur) => {
        counter.remove(old);
        counter.add(cur);
      },
      onDelete: (pod) => counter.remove(pod),
    });
    const changed = opts.onChange;
    if (changed) for (const informer of this.informers) informer.addHandlers({ onAdd: changed, onUpdate: changed, onDelete: changed });
  }

  get informers(): [Informer<CachedNode>, Informer<ActivePod>] {
    return [this.nodes, this.activePods];
  }

  /** Runs both caches until the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    await Promise.all(this.informers.map((i) => i.start(signal)));
  }

  /** Non-terminal pods per node, live: read it, do not keep it. */
  get podCounts(): PodCountsByNode {
    return this.#counter.counts;
  }

  /** Free pod slots on the nodes the template may use. */
  free(template: PodTemplate): number {
    return nodeCapacity(this.nodes.list(), this.podCounts, template).nodeSlots;
  }

  /** Whether the per-node counts already include this pod (see IpamSignals.counts). */
  includes(namespace: string, name: string): boolean {
    return this.activePods.get(`${namespace}/${name}`) !== undefined;
  }
}
