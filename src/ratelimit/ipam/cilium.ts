// Cilium IPAM headroom from cilium.io/v2 CiliumNode objects. Two shapes exist:
// - address pools (ENI, Azure, CRD-backed IPAM): spec.ipam.pool lists every address the node may hand
//   out, status.ipam.used those in use;
// - CIDR pools (cluster-pool, kubernetes, multi-pool): spec.ipam.podCIDRs; the agent allocates inside
//   them without listing each address, so "used" comes from status.ipam.used when the mode fills it,
//   else from the pods on the node.

import { type IpFamily, minOverFamilies, parseCidr, parseIp, toCount } from "./cidr.ts";
import type { IpHeadroom } from "./index.ts";

/** Addresses of a Cilium podCIDR no endpoint gets: the network and broadcast addresses. */
export const CILIUM_CIDR_RESERVED = 2n;
/**
 * Addresses the agent itself takes from a node's podCIDRs: the router (cilium_host) and the health
 * endpoint. Only subtracted when "used" is counted from pods, which do not include them.
 */
export const CILIUM_AGENT_ADDRESSES = 2;
/** release-ips states after which an address is on its way back to the cloud, not to a pod. */
export const CILIUM_RELEASING_STATES: ReadonlySet<string> = new Set(["marked-for-release", "ready-for-release", "released"]);

type AllocationMap = Record<string, { owner?: string; resource?: string } | undefined>;

export interface CiliumNode {
  metadata?: { name?: string };
  spec?: { ipam?: { pool?: AllocationMap; "ipv6-pool"?: AllocationMap; podCIDRs?: string[] } };
  status?: {
    ipam?: {
      used?: AllocationMap;
      "ipv6-used"?: AllocationMap;
      "release-ips"?: Record<string, string>;
      "release-ipv6s"?: Record<string, string>;
    };
  };
}

export interface CiliumOptions {
  /** CiliumNode names (the node names) our pods may land on; others are skipped. */
  eligibleNodes?: ReadonlySet<string>;
  /** Non-terminal, non-hostNetwork pods per node (podCountsByNode().withIp), for CIDR-pool nodes. */
  podsWithIpByNode?: ReadonlyMap<string, number>;
}

export interface CiliumNodeHeadroom {
  name: string;
  mode: "pool" | "podCIDRs" | "unknown";
  capacity: number;
  free: number | undefined;
}

export interface CiliumHeadroom extends IpHeadroom {
  provider: "Cilium";
  nodes: CiliumNodeHeadroom[];
}

function poolFree(pool: AllocationMap, used: AllocationMap | undefined, releasing: Record<string, string> | undefined) {
  let capacity = 0;
  let free = 0;
  for (const ip of Object.keys(pool)) {
    if (CILIUM_RELEASING_STATES.has(releasing?.[ip] ?? "")) continue;
    capacity += 1;
    if (!used?.[ip]) free += 1;
  }
  return { capacity, free };
}

function nodeHeadroom(node: CiliumNode, options: CiliumOptions): CiliumNodeHeadroom {
  const name = node.metadata?.name ?? "";
  const ipam = node.spec?.ipam;
  const status = node.status?.ipam;
  const v4Pool = ipam?.pool ?? {};
  const v6Pool = ipam?.["ipv6-pool"] ?? {};
  if (Object.keys(v4Pool).length || Object.keys(v6Pool).length) {
    const free = new Map<IpFamily, number>();
    const capacity = new Map<IpFamily, number>();
    if (Object.keys(v4Pool).length) {
      const r = poolFree(v4Pool, status?.used, status?.["release-ips"]);
      free.set(4, r.free);
      capacity.set(4, r.capacity);
    }
    if (Object.keys(v6Pool).length) {
      const r = poolFree(v6Pool, status?.["ipv6-used"], status?.["release-ipv6s"]);
      free.set(6, r.free);
      capacity.set(6, r.capacity);
    }
    return { name, mode: "pool", capacity: minOverFamilies(capacity) ?? 0, free: minOverFamilies(free) ?? 0 };
  }

  const capacityByFamily = new Map<IpFamily, number>();
  for (const text of ipam?.podCIDRs ?? []) {
    const cidr = parseCidr(text);
    if (!cidr) continue;
    const usable = toCount(cidr.size - CILIUM_CIDR_RESERVED, cidr.family);
    capacityByFamily.set(cidr.family, (capacityByFamily.get(cidr.family) ?? 0) + usable);
  }
  if (capacityByFamily.size === 0) return { name, mode: "unknown", capacity: 0, free: undefined };

  const usedByFamily = new Map<IpFamily, number>();
  const usedV4 = status?.used ? Object.keys(status.used) : undefined;
  const usedV6 = status?.["ipv6-used"] ? Object.keys(status["ipv6-used"]) : undefined;
  const pods = options.podsWithIpByNode?.get(name);
  for (const family of capacityByFamily.keys()) {
    const listed = family === 4 ? usedV4 : usedV6;
    if (listed) usedByFamily.set(family, listed.filter((ip) => parseIp(ip)?.family === family).length);
    else if (pods !== undefined) usedByFamily.set(family, pods + CILIUM_AGENT_ADDRESSES);
  }
  const capacity = minOverFamilies(capacityByFamily) ?? 0;
  if (usedByFamily.size < capacityByFamily.size) return { name, mode: "podCIDRs", capacity, free: undefined };
  const free = new Map<IpFamily, number>();
  for (const [family, cap] of capacityByFamily) free.set(family, Math.max(0, cap - (usedByFamily.get(family) ?? 0)));
  return { name, mode: "podCIDRs", capacity, free: minOverFamilies(free) };
}

/**
 * Free pod addresses over eligible CiliumNodes. Pool nodes: pool addresses not used and not being
 * released. podCIDR nodes: usable addresses (CILIUM_CIDR_RESERVED off each CIDR) minus
 * status.ipam.used, or, when the IPAM mode leaves that empty, minus the node's pods and the agent's
 * own addresses. Nodes whose usage cannot be known add nothing and are named in the message.
 */
export function ciliumHeadroom(nodes: Iterable<CiliumNode>, options: CiliumOptions = {}): CiliumHeadroom {
  const rows: CiliumNodeHeadroom[] = [];
  for (const node of nodes) {
    if (options.eligibleNodes && !options.eligibleNodes.has(node.metadata?.name ?? "")) continue;
    rows.push(nodeHeadroom(node, options));
  }
  const known = rows.filter((r) => r.free !== undefined);
  const unknown = rows.length - known.length;
  const free = known.reduce((sum, r) => sum + (r.free ?? 0), 0);
  const capacity = known.reduce((sum, r) => sum + r.capacity, 0);
  const unknownNote = unknown ? `; usage unknown on ${unknown} node(s) (no pool, no podCIDRs, or no pod count)` : "";
  if (known.length === 0) {
    return { provider: "Cilium", free: undefined, message: `no eligible CiliumNode reports usable IPAM state; IP headroom unknown${unknownNote}`, nodes: rows };
  }
  return { provider: "Cilium", free, capacity, message: `${free} pod IPs free on ${known.length} CiliumNode(s)${unknownNote}`, nodes: rows };
}
