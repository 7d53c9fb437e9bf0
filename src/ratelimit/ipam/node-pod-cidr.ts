// Generic IP headroom from Node.spec.podCIDRs, and the node-slot count every provider shares.
// Plain-object shapes, structurally compatible with @kubernetes/client-node's V1Node and V1Pod, so the
// lead can pass informer cache objects as they are.

import type { PodTemplate } from "../../api/batchrollout.ts";
import { type IpFamily, minOverFamilies, parseCidr, toCount } from "./cidr.ts";
import type { IpOverflow } from "./index.ts";

/**
 * Addresses of an IPv4 podCIDR no pod can get: the network address, the gateway (.1, which the bridge
 * or the CNI's host side takes; kube-controller-manager's node IPAM hands out the whole range and
 * host-local's defaults start at .2) and the broadcast address. A /24 gives 253 pods.
 */
export const NODE_CIDR_RESERVED_V4 = 3n;
/** IPv6 has no broadcast address: the network address and the gateway (::1) are reserved. */
export const NODE_CIDR_RESERVED_V6 = 2n;

/** Taint effects that keep a pod off a node unless tolerated; PreferNoSchedule only discourages. */
export const BLOCKING_TAINT_EFFECTS: ReadonlySet<string> = new Set(["NoSchedule", "NoExecute"]);

/** Pod phases whose pods hold neither a pod slot nor an address. */
export const TERMINAL_POD_PHASES: ReadonlySet<string> = new Set(["Succeeded", "Failed"]);

export interface Taint {
  key: string;
  value?: string;
  effect: string;
}

export interface Toleration {
  key?: string;
  operator?: string;
  value?: string;
  effect?: string;
}

export interface NodeSelectorRequirement {
  key: string;
  operator: string;
  values?: string[];
}

export interface NodeSelectorTerm {
  matchExpressions?: NodeSelectorRequirement[];
  matchFields?: NodeSelectorRequirement[];
}

export interface NodeLike {
  metadata?: { name?: string; labels?: Record<string, string> };
  spec?: { podCIDR?: string; podCIDRs?: string[]; unschedulable?: boolean; taints?: Taint[] };
  status?: {
    allocatable?: Record<string, string>;
    conditions?: Array<{ type: string; status: string }>;
  };
}

export interface PodLike {
  spec?: { nodeName?: string; hostNetwork?: boolean };
  status?: { phase?: string };
}

/** The parts of a pod template that decide which nodes its pods may land on. */
export interface SchedulingConstraints {
  nodeSelector: Record<string, string>;
  tolerations: Toleration[];
  /** requiredDuringSchedulingIgnoredDuringExecution terms; undefined means no node affinity. */
  requiredTerms?: NodeSelectorTerm[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Reads nodeSelector, tolerations and required node affinity from a template. The template's pod spec
 * is passed through unvalidated (the API server judges it), so malformed parts are treated as absent.
 */
export function schedulingConstraints(template: PodTemplate): SchedulingConstraints {
  const spec: Record<string, unknown> = template.spec;
  const nodeSelector: Record<string, string> = {};
  if (isRecord(spec.nodeSelector)) {
    for (const [key, value] of Object.entries(spec.nodeSelector)) if (typeof value === "string") nodeSelector[key] = value;
  }
  const tolerations = Array.isArray(spec.tolerations) ? (spec.tolerations.filter(isRecord) as Toleration[]) : [];
  let requiredTerms: NodeSelectorTerm[] | undefined;
  const affinity = isRecord(spec.affinity) ? spec.affinity : undefined;
  const nodeAffinity = affinity && isRecord(affinity.nodeAffinity) ? affinity.nodeAffinity : undefined;
  const required = nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution;
  if (isRecord(required) && Array.isArray(required.nodeSelectorTerms)) {
    requiredTerms = required.nodeSelectorTerms.filter(isRecord) as NodeSelectorTerm[];
  }
  return { nodeSelector, tolerations, requiredTerms };
}

/**
 * Kubernetes' toleration rule (core/v1 Toleration.ToleratesTaint): effects must match unless the
 * toleration's effect is empty; keys must match unless the toleration's key is empty (validation only
 * allows that with Exists, which then tolerates every taint); Exists ignores the value, Equal (or no
 * operator) compares it. Operators we do not know tolerate nothing, so a newer API never lets us
 * overestimate room.
 */
export function toleratesTaint(toleration: Toleration, taint: Taint): boolean {
  if (toleration.effect && toleration.effect !== taint.effect) return false;
  if (toleration.key && toleration.key !== taint.key) return false;
  switch (toleration.operator ?? "") {
    case "Exists":
      return true;
    case "":
    case "Equal":
      return (toleration.value ?? "") === (taint.value ?? "");
    default:
      return false;
  }
}

/** The first NoSchedule/NoExecute taint no toleration covers, or undefined when all are tolerated. */
export function untoleratedTaint(taints: readonly Taint[] | undefined, tolerations: readonly Toleration[]): Taint | undefined {
  return (taints ?? []).find((taint) => BLOCKING_TAINT_EFFECTS.has(taint.effect) && !tolerations.some((t) => toleratesTaint(t, taint)));
}

function requirementMatches(requirement: NodeSelectorRequirement, value: string | undefined): boolean {
  const values = requirement.values ?? [];
  switch (requirement.operator) {
    case "In":
      return value !== undefined && values.includes(value);
    case "NotIn":
      return value === undefined || !values.includes(value);
    case "Exists":
      return value !== undefined;
    case "DoesNotExist":
      return value === undefined;
    case "Gt":
    case "Lt": {
      // Both sides must parse as integers, as in k8s.io/component-helpers nodeaffinity.
      const bound = values.length === 1 ? Number(values[0]) : NaN;
      const actual = value === undefined ? NaN : Number(value);
      if (!Number.isInteger(bound) || !Number.isInteger(actual)) return false;
      return requirement.operator === "Gt" ? actual > bound : actual < bound;
    }
    default:
      return false;
  }
}

/** Terms are ORed, requirements within a term ANDed; a term with no requirements matches nothing. */
export function matchesNodeSelectorTerms(terms: readonly NodeSelectorTerm[], node: NodeLike): boolean {
  const labels = node.metadata?.labels ?? {};
  return terms.some((term) => {
    const expressions = term.matchExpressions ?? [];
    const fields = term.matchFields ?? [];
    if (expressions.length === 0 && fields.length === 0) return false;
    return (
      expressions.every((r) => requirementMatches(r, labels[r.key])) &&
      // metadata.name is the only field Kubernetes supports in matchFields.
      fields.every((r) => r.key === "metadata.name" && requirementMatches(r, node.metadata?.name))
    );
  });
}

export type IneligibleReason = "Unschedulable" | "NotReady" | "NodeSelector" | "NodeAffinity" | "Taint";

export interface Eligibility {
  eligible: boolean;
  reason?: IneligibleReason;
  detail?: string;
}

/** Whether a pod from the template could be scheduled onto the node, ignoring resources. */
export function nodeEligibility(node: NodeLike, constraints: SchedulingConstraints): Eligibility {
  if (node.spec?.unschedulable) return { eligible: false, reason: "Unschedulable", detail: "cordoned" };
  const ready = node.status?.conditions?.find((c) => c.type === "Ready");
  if (ready?.status !== "True") return { eligible: false, reason: "NotReady", detail: `Ready=${ready?.status ?? "missing"}` };
  const labels = node.metadata?.labels ?? {};
  for (const [key, value] of Object.entries(constraints.nodeSelector)) {
    if (labels[key] !== value) return { eligible: false, reason: "NodeSelector", detail: `label ${key}=${value} missing` };
  }
  if (constraints.requiredTerms && !matchesNodeSelectorTerms(constraints.requiredTerms, node)) {
    return { eligible: false, reason: "NodeAffinity", detail: "required node affinity does not match" };
  }
  const taint = untoleratedTaint(node.spec?.taints, constraints.tolerations);
  if (taint) {
    return { eligible: false, reason: "Taint", detail: `taint ${taint.key}${taint.value ? `=${taint.value}` : ""}:${taint.effect} not tolerated` };
  }
  return { eligible: true };
}

const QUANTITY = /^([0-9]+(?:\.[0-9]+)?)(k|M|G|Ki|Mi|Gi)?$/;
const QUANTITY_SCALE: Record<string, number> = { "": 1, k: 1e3, M: 1e6, G: 1e9, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 };

/** status.allocatable.pods as a count ("110"; suffixed quantities are legal, if rare). 0 when absent or unreadable. */
export function allocatablePods(node: NodeLike): number {
  const match = QUANTITY.exec(node.status?.allocatable?.pods?.trim() ?? "");
  if (!match) return 0;
  return Math.floor(Number(match[1]) * (QUANTITY_SCALE[match[2] ?? ""] ?? 0));
}

/** Usable pod addresses in one node podCIDR (see NODE_CIDR_RESERVED_V4/V6); undefined when unparsable. */
export function usableNodeCidrAddresses(cidrText: string): { family: IpFamily; usable: number } | undefined {
  const cidr = parseCidr(cidrText);
  if (!cidr) return undefined;
  const reserved = cidr.family === 4 ? NODE_CIDR_RESERVED_V4 : NODE_CIDR_RESERVED_V6;
  return { family: cidr.family, usable: toCount(cidr.size - reserved, cidr.family) };
}

export interface PodCounts {
  /** Non-terminal pods: each holds a pod slot. */
  active: number;
  /** Of those, pods on the pod network: each holds an address. */
  withIp: number;
}

/** Pod counts by node name: all the headroom arithmetic needs to know about pods. */
export type PodCountsByNode = ReadonlyMap<string, PodCounts>;

/**
 * Pods per node, kept up to date one pod at a time (from an informer's notifications), so a reading
 * costs O(nodes) however many pods run. Feed it only pods that hold a slot (bound, not finished: the
 * active-pod informer's field selector sees to that) and remove what was added; a pod's node and
 * hostNetwork never change, so the object a deletion carries removes what its addition added.
 */
export class NodePodCounter {
  readonly #counts = new Map<string, PodCounts>();

  get counts(): PodCountsByNode {
    return this.#counts;
  }

  add(pod: PodLike): void {
    this.#change(pod, 1);
  }

  remove(pod: PodLike): void {
    this.#change(pod, -1);
  }

  #change(pod: PodLike, by: 1 | -1): void {
    const node = pod.spec?.nodeName;
    if (!node) return;
    let entry = this.#counts.get(node);
    if (!entry) this.#counts.set(node, (entry = { active: 0, withIp: 0 }));
    entry.active += by;
    if (!pod.spec?.hostNetwork) entry.withIp += by;
    if (entry.active <= 0) this.#counts.delete(node);
  }
}

/**
 * Non-terminal pods per node, counted once from a list. A pod being deleted still holds its slot and
 * its address until the kubelet tears its sandbox down, so it counts.
 */
export function podCountsByNode(pods: Iterable<PodLike>): PodCountsByNode {
  const counter = new NodePodCounter();
  for (const pod of pods) if (!TERMINAL_POD_PHASES.has(pod.status?.phase ?? "")) counter.add(pod);
  return counter.counts;
}

export interface NodeHeadroom {
  name: string;
  eligibility: Eligibility;
  /** allocatable pods minus non-terminal pods, at least 0. */
  slots: number;
  /** Usable podCIDR addresses (scarcer family); undefined when the node has no podCIDRs. */
  ipCapacity?: number;
  /** ipCapacity minus pods on the pod network, at least 0. */
  ipFree?: number;
  /** Pods on the pod network beyond ipCapacity: the scheduler counts slots, not addresses. */
  ipOverflow?: number;
}

export interface NodeCapacity {
  /** Pods eligible nodes can still take, by allocatable pods. */
  nodeSlots: number;
  eligibleNodes: number;
  ineligible: Partial<Record<IneligibleReason, number>>;
  perNode?: NodeHeadroom[];
  message: string;
}

export interface NodePodCidrHeadroom extends NodeCapacity {
  provider: "NodePodCIDR";
  /** Free pod addresses on eligible nodes; undefined when no eligible node has podCIDRs. */
  free: number | undefined;
  /** Usable pod addresses on eligible nodes with podCIDRs. */
  capacity: number | undefined;
  nodesWithoutPodCidr: number;
  overflow?: IpOverflow;
}

/** Nodes named in the overflow message before the rest is counted. */
const OVERFLOW_NODES_NAMED = 3;

export interface NodeHeadroomOptions {
  /** Return the per-node breakdown (for debugging and logs; status does not need it). */
  perNode?: boolean;
}

function ineligibleSummary(ineligible: Partial<Record<IneligibleReason, number>>): string {
  const parts = Object.entries(ineligible).map(([reason, count]) => `${count} ${reason}`);
  return parts.length ? `; skipped ${parts.join(", ")}` : "";
}

function evaluateNodes(nodes: Iterable<NodeLike>, counts: PodCountsByNode, template: PodTemplate) {
  const constraints = schedulingConstraints(template);
  const rows: NodeHeadroom[] = [];
  const ineligible: Partial<Record<IneligibleReason, number>> = {};
  for (const node of nodes) {
    const name = node.metadata?.name ?? "";
    const eligibility = nodeEligibility(node, constraints);
    const podCount = counts.get(name) ?? { active: 0, withIp: 0 };
    const row: NodeHeadroom = { name, eligibility, slots: Math.max(0, allocatablePods(node) - podCount.active) };
    if (!eligibility.eligible && eligibility.reason) ineligible[eligibility.reason] = (ineligible[eligibility.reason] ?? 0) + 1;
    const cidrs = node.spec?.podCIDRs?.length ? node.spec.podCIDRs : node.spec?.podCIDR ? [node.spec.podCIDR] : [];
    const byFamily = new Map<IpFamily, number>();
    for (const text of cidrs) {
      const usable = usableNodeCidrAddresses(text);
      if (usable) byFamily.set(usable.family, (byFamily.get(usable.family) ?? 0) + usable.usable);
    }
    const ipCapacity = minOverFamilies(byFamily);
    if (ipCapacity !== undefined) {
      row.ipCapacity = ipCapacity;
      row.ipFree = Math.max(0, ipCapacity - podCount.withIp);
      row.ipOverflow = Math.max(0, podCount.withIp - ipCapacity);
    }
    rows.push(row);
  }
  return { rows, ineligible };
}

/** Pod slots on nodes the template may use: Σ max(0, allocatable pods − non-terminal pods). Any IPAM. */
export function nodeCapacity(nodes: Iterable<NodeLike>, pods: PodCountsByNode, template: PodTemplate, options: NodeHeadroomOptions = {}): NodeCapacity {
  const { rows, ineligible } = evaluateNodes(nodes, pods, template);
  const eligible = rows.filter((r) => r.eligibility.eligible);
  const nodeSlots = eligible.reduce((sum, r) => sum + r.slots, 0);
  return {
    nodeSlots,
    eligibleNodes: eligible.length,
    ineligible,
    ...(options.perNode ? { perNode: rows } : {}),
    message: `${nodeSlots} pod slots free on ${eligible.length} eligible nodes${ineligibleSummary(ineligible)}`,
  };
}

/**
 * IP headroom from node podCIDRs. For each eligible node: usable addresses of spec.podCIDRs
 * (NODE_CIDR_RESERVED_* taken off each range; with dual-stack the scarcer family) minus its
 * non-terminal, non-hostNetwork pods. `free` is the sum of those addresses: the IP signal, and what
 * a percentage reserve is weighed against. `nodeSlots` is Σ min(slots, free addresses) per node: a
 * slot is only usable on a node that also has an address, and an address only on a node with a slot,
 * so a cluster with IPs on one node and slots on another is not counted twice.
 * Nodes without podCIDRs add nothing; when no eligible node has any, free is undefined (unknown, no
 * cap), since the cluster's CNI then does not take addresses from node podCIDRs.
 * The scheduler counts pod slots, not addresses: a node that allows more pods than its podCIDR
 * holds (a common misconfiguration) can be given pods beyond its addresses, which wait for one
 * forever. Those pods come off `free` too, so the pool is never overcommitted however pods are
 * placed, and `overflow` names them; the guard stops creating while such a node takes more pods.
 */
export function nodePodCidrHeadroom(
  nodes: Iterable<NodeLike>,
  pods: PodCountsByNode,
  template: PodTemplate,
  options: NodeHeadroomOptions = {},
): NodePodCidrHeadroom {
  const { rows, ineligible } = evaluateNodes(nodes, pods, template);
  let free = 0;
  let capacity = 0;
  let nodeSlots = 0;
  let withCidr = 0;
  let eligibleNodes = 0;
  const overflowing: NodeHeadroom[] = [];
  for (const row of rows) {
    if (!row.eligibility.eligible) continue;
    eligibleNodes += 1;
    if (row.ipFree === undefined || row.ipCapacity === undefined) {
      nodeSlots += row.slots;
      continue;
    }
    withCidr += 1;
    free += row.ipFree;
    if (row.ipOverflow) overflowing.push(row);
    capacity += row.ipCapacity;
    nodeSlots += Math.min(row.slots, row.ipFree);
  }
  const nodesWithoutPodCidr = eligibleNodes - withCidr;
  const known = withCidr > 0;
  const overflow = overflowOf(overflowing);
  if (overflow) free = Math.max(0, free - overflow.pods);
  const message = known
    ? `${free} pod IPs free in the podCIDRs of ${withCidr} eligible nodes${nodesWithoutPodCidr ? ` (${nodesWithoutPodCidr} eligible nodes have no podCIDR)` : ""}${ineligibleSummary(ineligible)}${overflow ? `; ${overflow.message}` : ""}`
    : `no eligible node has spec.podCIDRs (is kube-controller-manager's --allocate-node-cidrs off?); IP headroom unknown${ineligibleSummary(ineligible)}`;
  return {
    provider: "NodePodCIDR",
    free: known ? free : undefined,
    capacity: known ? capacity : undefined,
    nodeSlots,
    eligibleNodes,
    nodesWithoutPodCidr,
    ineligible,
    ...(overflow ? { overflow } : {}),
    ...(options.perNode ? { perNode: rows } : {}),
    message,
  };
}

function overflowOf(rows: readonly NodeHeadroom[]): IpOverflow | undefined {
  if (rows.length === 0) return undefined;
  const sorted = [...rows].sort((a, b) => (b.ipOverflow ?? 0) - (a.ipOverflow ?? 0) || a.name.localeCompare(b.name));
  const pods = sorted.reduce((sum, r) => sum + (r.ipOverflow ?? 0), 0);
  const openNodes = sorted.filter((r) => r.slots > 0).length;
  const named = sorted
    .slice(0, OVERFLOW_NODES_NAMED)
    .map((r) => `${r.name}: ${(r.ipCapacity ?? 0) + (r.ipOverflow ?? 0)} pods for ${r.ipCapacity ?? 0} addresses`)
    .join(", ");
  const more = sorted.length > OVERFLOW_NODES_NAMED ? ` and ${sorted.length - OVERFLOW_NODES_NAMED} more` : "";
  return {
    pods,
    openNodes,
    message:
      `${pods} pods stand beyond their node's podCIDR addresses on ${sorted.length} nodes (${named}${more}): ` +
      "these nodes allow more pods (status.allocatable.pods) than their podCIDR holds, and such pods get no IP",
  };
}
