// The CNIs' own IPAM objects, as their caches keep them: Calico IPPools and IPAMBlocks, CiliumNodes
// and Whereabouts IPPools, each cut down to what the headroom arithmetic in ../ipam/ reads.

import { type ObjectWithMeta, type SlimMeta, slimMeta } from "../../controllers/informer.ts";
import type { ResourceType } from "../../kube/resources.ts";
import type { CalicoIpPool, CalicoIpamBlock } from "../ipam/calico.ts";
import type { CiliumNode } from "../ipam/cilium.ts";
import type { WhereaboutsIpPool } from "../ipam/whereabouts.ts";

export const CALICO_IPPOOLS: ResourceType = { group: "crd.projectcalico.org", version: "v1", plural: "ippools", namespaced: false };
export const CALICO_IPAMBLOCKS: ResourceType = { group: "crd.projectcalico.org", version: "v1", plural: "ipamblocks", namespaced: false };
export const CILIUM_NODES: ResourceType = { group: "cilium.io", version: "v2", plural: "ciliumnodes", namespaced: false };
export const WHEREABOUTS_IPPOOLS: ResourceType = { group: "whereabouts.cni.cncf.io", version: "v1alpha1", plural: "ippools", namespaced: true };

export type CachedCalicoPool = CalicoIpPool & { metadata: SlimMeta };
export type CachedCalicoBlock = CalicoIpamBlock & { metadata: SlimMeta };
export type CachedCiliumNode = CiliumNode & { metadata: SlimMeta };
export type CachedWhereaboutsPool = WhereaboutsIpPool & { metadata: SlimMeta };

/** IPAMBlock without spec.attributes (handles and pod names: most of its bytes, none of its headroom). */
export function slimCalicoBlock(raw: ObjectWithMeta): CachedCalicoBlock {
  const spec = (raw as CalicoIpamBlock).spec;
  return {
    metadata: slimMeta(raw),
    spec: {
      cidr: spec.cidr,
      ...(spec.allocations ? { allocations: spec.allocations } : { unallocated: spec.unallocated ?? [] }),
      ...(spec.affinity ? { affinity: spec.affinity } : {}),
      ...(spec.deleted ? { deleted: true } : {}),
    },
  };
}

export function slimCalicoPool(raw: ObjectWithMeta): CachedCalicoPool {
  const { cidr, blockSize, disabled, allowedUses } = (raw as CalicoIpPool).spec;
  return {
    metadata: slimMeta(raw),
    spec: { cidr, ...(blockSize === undefined ? {} : { blockSize }), ...(disabled ? { disabled } : {}), ...(allowedUses ? { allowedUses } : {}) },
  };
}

/** CiliumNode's IPAM pool and usage only; its ENI and health sections are large and unused. */
export function slimCiliumNode(raw: ObjectWithMeta): CachedCiliumNode {
  const node = raw as CiliumNode;
  const ipam = node.spec?.ipam;
  const used = node.status?.ipam;
  return {
    metadata: slimMeta(raw),
    spec: { ipam: { ...(ipam?.pool ? { pool: ipam.pool } : {}), ...(ipam?.["ipv6-pool"] ? { "ipv6-pool": ipam["ipv6-pool"] } : {}), ...(ipam?.podCIDRs ? { podCIDRs: ipam.podCIDRs } : {}) } },
    status: {
      ipam: {
        ...(used?.used ? { used: used.used } : {}),
        ...(used?.["ipv6-used"] ? { "ipv6-used": used["ipv6-used"] } : {}),
        ...(used?.["release-ips"] ? { "release-ips": used["release-ips"] } : {}),
        ...(used?.["release-ipv6s"] ? { "release-ipv6s": used["release-ipv6s"] } : {}),
      },
    },
  };
}

/** A Whereabouts pool's range and the offsets in use; which pod holds each is not our concern. */
export function slimWhereaboutsPool(raw: ObjectWithMeta): CachedWhereaboutsPool {
  const spec = (raw as WhereaboutsIpPool).spec;
  return { metadata: slimMeta(raw), spec: { range: spec.range, allocations: Object.fromEntries(Object.keys(spec.allocations ?? {}).map((k) => [k, {}])) } };
}
