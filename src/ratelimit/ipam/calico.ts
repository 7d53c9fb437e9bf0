// Calico IPAM headroom from crd.projectcalico.org/v1 IPPool and IPAMBlock objects.
// Calico carves each pool into blocks (2^(bits − blockSize) addresses) that nodes claim on demand;
// a block's spec.allocations has one entry per address, null when the address is free.

import { type Cidr, type IpFamily, containsCidr, minOverFamilies, parseCidr, toCount } from "./cidr.ts";
import type { IpHeadroom } from "./index.ts";

/** Calico's default block size for IPv4 pools when spec.blockSize is unset or 0. */
export const CALICO_DEFAULT_BLOCK_SIZE_V4 = 26;
/** Calico's default block size for IPv6 pools when spec.blockSize is unset or 0. */
export const CALICO_DEFAULT_BLOCK_SIZE_V6 = 122;
/** The prefix Calico puts before a node name in IPAMBlock.spec.affinity. */
export const CALICO_HOST_AFFINITY_PREFIX = "host:";

export interface CalicoIpPool {
  metadata?: { name?: string };
  spec: { cidr: string; blockSize?: number; disabled?: boolean; allowedUses?: string[] };
}

export interface CalicoIpamBlock {
  metadata?: { name?: string };
  spec: {
    cidr: string;
    allocations?: Array<number | null>;
    unallocated?: number[];
    affinity?: string;
    deleted?: boolean;
  };
}

export interface CalicoOptions {
  /**
   * Nodes our pods may land on. Free addresses in blocks affine to other hosts are then not counted.
   * Conservative: without IPAMConfig strictAffinity a node that can claim no new block borrows from
   * other hosts' blocks, so those addresses might still be used.
   */
  eligibleHosts?: ReadonlySet<string>;
}

export interface CalicoPoolHeadroom {
  name: string;
  cidr: string;
  family: IpFamily;
  /** Addresses in the pool: Calico hands out every address of a block, network and broadcast too. */
  capacity: number;
  /** Free addresses in claimed blocks plus every address of blocks not yet claimed. */
  free: number;
  claimedBlocks: number;
  totalBlocks: number;
}

export interface CalicoHeadroom extends IpHeadroom {
  provider: "Calico";
  pools: CalicoPoolHeadroom[];
}

function servesWorkloads(pool: CalicoIpPool): boolean {
  const uses = pool.spec.allowedUses;
  // Unset or empty means ["Tunnel", "Workload"] (the CRD's documented default).
  return !uses || uses.length === 0 || uses.includes("Workload");
}

function blockFree(block: CalicoIpamBlock): number {
  const { allocations, unallocated } = block.spec;
  if (allocations) return allocations.reduce<number>((n, a) => (a === null ? n + 1 : n), 0);
  return unallocated?.length ?? 0;
}

function affineHost(block: CalicoIpamBlock): string | undefined {
  const affinity = block.spec.affinity;
  return affinity?.startsWith(CALICO_HOST_AFFINITY_PREFIX) ? affinity.slice(CALICO_HOST_AFFINITY_PREFIX.length) : undefined;
}

/**
 * Free pod addresses in Calico's enabled workload pools. Per pool:
 *   free = Σ over claimed blocks of null entries in spec.allocations
 *        + (blocks the pool can hold − blocks claimed) × addresses per block.
 * Unclaimed blocks count in full because any node may claim one (up to IPAMConfig maxBlocksPerHost,
 * which we do not read). Blocks marked deleted are being returned to the pool, so their range counts as
 * unclaimed. Addresses in cooldown (attributes[].releasedAt) are still non-null, hence used.
 * IPReservation objects (projectcalico.org/v3) are not read, so reserved addresses count as free.
 * With both families present a dual-stack pod needs one of each, so the scarcer family decides.
 */
export function calicoHeadroom(pools: readonly CalicoIpPool[], blocks: readonly CalicoIpamBlock[], options: CalicoOptions = {}): CalicoHeadroom {
  const parsedPools: Array<{ pool: CalicoIpPool; cidr: Cidr; blockPrefix: number; row: CalicoPoolHeadroom }> = [];
  const skipped: string[] = [];
  for (const pool of pools) {
    const name = pool.metadata?.name ?? pool.spec.cidr;
    const cidr = parseCidr(pool.spec.cidr);
    if (!cidr) {
      skipped.push(`${name}: unparsable cidr ${pool.spec.cidr}`);
      continue;
    }
    if (pool.spec.disabled || !servesWorkloads(pool)) continue;
    const bits = cidr.family === 4 ? 32 : 128;
    const blockPrefix = pool.spec.blockSize || (cidr.family === 4 ? CALICO_DEFAULT_BLOCK_SIZE_V4 : CALICO_DEFAULT_BLOCK_SIZE_V6);
    if (blockPrefix < cidr.prefix || blockPrefix > bits) {
      skipped.push(`${name}: blockSize ${blockPrefix} does not fit ${pool.spec.cidr}`);
      continue;
    }
    const totalBlocks = 1n << BigInt(blockPrefix - cidr.prefix);
    parsedPools.push({
      pool,
      cidr,
      blockPrefix,
      row: {
        name,
        cidr: pool.spec.cidr,
        family: cidr.family,
        capacity: toCount(cidr.size, cidr.family),
        free: 0,
        claimedBlocks: 0,
        totalBlocks: toCount(totalBlocks, cidr.family),
      },
    });
  }

  const claimedFree = new Map<CalicoPoolHeadroom, bigint>();
  for (const block of blocks) {
    if (block.spec.deleted) continue;
    const cidr = parseCidr(block.spec.cidr);
    if (!cidr) continue;
    const owner = parsedPools.find((p) => containsCidr(p.cidr, cidr));
    if (!owner) continue; // a block of a disabled or removed pool hands out nothing new
    owner.row.claimedBlocks += 1;
    const host = affineHost(block);
    const counted = options.eligibleHosts && host !== undefined && !options.eligibleHosts.has(host) ? 0 : blockFree(block);
    claimedFree.set(owner.row, (claimedFree.get(owner.row) ?? 0n) + BigInt(counted));
  }

  const freeByFamily = new Map<IpFamily, number>();
  const capacityByFamily = new Map<IpFamily, number>();
  for (const { cidr, blockPrefix, row } of parsedPools) {
    const bits = cidr.family === 4 ? 32 : 128;
    const perBlock = 1n << BigInt(bits - blockPrefix);
    const totalBlocks = 1n << BigInt(blockPrefix - cidr.prefix);
    const unclaimed = totalBlocks - BigInt(row.claimedBlocks);
    const free = (claimedFree.get(row) ?? 0n) + (unclaimed > 0n ? unclaimed * perBlock : 0n);
    row.free = toCount(free, cidr.family);
    freeByFamily.set(cidr.family, toCount(BigInt(freeByFamily.get(cidr.family) ?? 0) + BigInt(row.free), cidr.family));
    capacityByFamily.set(cidr.family, toCount(BigInt(capacityByFamily.get(cidr.family) ?? 0) + BigInt(row.capacity), cidr.family));
  }

  const rows = parsedPools.map((p) => p.row);
  const free = minOverFamilies(freeByFamily);
  const capacity = minOverFamilies(capacityByFamily);
  const problems = skipped.length ? `; ignored ${skipped.join("; ")}` : "";
  const message =
    free === undefined
      ? `no enabled Calico IPPool serves workloads; IP headroom unknown${problems}`
      : `${free} pod IPs free in ${rows.length} Calico IPPool(s): ${rows.map((r) => `${r.name} ${r.free}/${r.capacity}`).join(", ")}${problems}`;
  return { provider: "Calico", free, ...(capacity === undefined ? {} : { capacity }), message, pools: rows };
}
