// Whereabouts IPAM headroom from whereabouts.cni.cncf.io/v1alpha1 IPPool objects.
// The CRD holds only spec.range (a CIDR) and spec.allocations, keyed by the decimal offset of the
// address from the range's network address. range_start, range_end and exclude live in the CNI config
// of the NetworkAttachmentDefinition, not in the CRD, so the caller passes them when it has them.

import { type Cidr, parseCidr, parseIp, toCount } from "./cidr.ts";
import type { IpHeadroom } from "./index.ts";

export interface WhereaboutsIpPool {
  metadata?: { name?: string; namespace?: string };
  spec: { range: string; allocations?: Record<string, { id?: string; podref?: string; ifname?: string }> };
}

/** The range options of the network's CNI config (range_start, range_end, exclude). */
export interface WhereaboutsRangeConfig {
  rangeStart?: string;
  rangeEnd?: string;
  exclude?: string[];
}

export interface WhereaboutsPoolHeadroom {
  name: string;
  range: string;
  capacity: number;
  allocated: number;
  free: number;
}

export interface WhereaboutsHeadroom extends IpHeadroom {
  provider: "Whereabouts";
  pools: WhereaboutsPoolHeadroom[];
}

interface Span {
  first: bigint;
  last: bigint;
}

/** The CIDR and any start-end bounds, also from the legacy "10.0.0.10-10.0.0.50/24" range form. */
function parseRange(text: string, config: WhereaboutsRangeConfig): { cidr: Cidr; start?: bigint; end?: bigint } | undefined {
  let rangeText = text.trim();
  let start = config.rangeStart ? parseIp(config.rangeStart)?.value : undefined;
  let end = config.rangeEnd ? parseIp(config.rangeEnd)?.value : undefined;
  const dash = rangeText.indexOf("-");
  if (dash > 0) {
    const slash = rangeText.indexOf("/");
    const from = parseIp(rangeText.slice(0, dash));
    const to = parseIp(rangeText.slice(dash + 1, slash < 0 ? undefined : slash));
    if (!from || !to || slash < 0) return undefined;
    start ??= from.value;
    end ??= to.value;
    rangeText = `${rangeText.slice(0, dash)}${rangeText.slice(slash)}`;
  }
  const cidr = parseCidr(rangeText);
  return cidr ? { cidr, start, end } : undefined;
}

function mergedOverlap(spans: Span[], within: Span): bigint {
  const clipped = spans
    .map((s) => ({ first: s.first > within.first ? s.first : within.first, last: s.last < within.last ? s.last : within.last }))
    .filter((s) => s.first <= s.last)
    .sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  let total = 0n;
  let current: Span | undefined;
  for (const span of clipped) {
    if (current && span.first <= current.last + 1n) {
      if (span.last > current.last) current.last = span.last;
      continue;
    }
    if (current) total += current.last - current.first + 1n;
    current = { ...span };
  }
  if (current) total += current.last - current.first + 1n;
  return total;
}

/**
 * One pool's free addresses. Whereabouts assigns from the range without its network and last
 * (broadcast) address, narrowed by range_start/range_end, skipping excluded subnets; so
 *   free = |usable span| − |excluded ∩ span| − allocations whose offset falls in the span.
 * Offsets that are not decimal integers are ignored, as Whereabouts itself ignores them.
 */
export function whereaboutsPoolHeadroom(pool: WhereaboutsIpPool, config: WhereaboutsRangeConfig = {}): WhereaboutsPoolHeadroom | undefined {
  const name = pool.metadata?.name ?? pool.spec.range;
  const parsed = parseRange(pool.spec.range, config);
  if (!parsed) return undefined;
  const { cidr } = parsed;
  const broadcast = cidr.network + cidr.size - 1n;
  const span: Span = { first: cidr.network + 1n, last: broadcast - 1n };
  if (parsed.start !== undefined && parsed.start > span.first && parsed.start <= span.last) span.first = parsed.start;
  if (parsed.end !== undefined && parsed.end < span.last && parsed.end >= span.first) span.last = parsed.end;
  const excluded: Span[] = [];
  for (const text of config.exclude ?? []) {
    const ex = parseCidr(text.includes("/") ? text : `${text}/${cidr.family === 4 ? 32 : 128}`);
    if (ex && ex.family === cidr.family) excluded.push({ first: ex.network, last: ex.network + ex.size - 1n });
  }
  const spanSize = span.last >= span.first ? span.last - span.first + 1n : 0n;
  const capacity = spanSize > 0n ? spanSize - mergedOverlap(excluded, span) : 0n;

  let allocated = 0n;
  for (const key of Object.keys(pool.spec.allocations ?? {})) {
    if (!/^[0-9]+$/.test(key)) continue;
    const address = cidr.network + BigInt(key);
    if (address < span.first || address > span.last) continue;
    if (excluded.some((e) => address >= e.first && address <= e.last)) continue;
    allocated += 1n;
  }
  const free = capacity - allocated;
  return {
    name,
    range: pool.spec.range,
    capacity: toCount(capacity, cidr.family),
    allocated: Number(allocated),
    free: toCount(free, cidr.family),
  };
}

/**
 * Free addresses over the given pools. Pass the pools of the network(s) the pod template attaches
 * (k8s.v1.cni.cncf.io/networks); a pod on several networks needs one address from each, so the lead
 * should then take the smallest of per-network results rather than this sum.
 */
export function whereaboutsHeadroom(
  pools: readonly WhereaboutsIpPool[],
  configFor: (pool: WhereaboutsIpPool) => WhereaboutsRangeConfig | undefined = () => undefined,
): WhereaboutsHeadroom {
  const rows: WhereaboutsPoolHeadroom[] = [];
  const bad: string[] = [];
  for (const pool of pools) {
    const row = whereaboutsPoolHeadroom(pool, configFor(pool));
    if (row) rows.push(row);
    else bad.push(`${pool.metadata?.name ?? "?"} (range ${pool.spec.range})`);
  }
  const badNote = bad.length ? `; unreadable: ${bad.join(", ")}` : "";
  if (rows.length === 0) return { provider: "Whereabouts", free: undefined, message: `no readable Whereabouts IPPool; IP headroom unknown${badNote}`, pools: rows };
  const free = rows.reduce((sum, r) => sum + r.free, 0);
  const capacity = rows.reduce((sum, r) => sum + r.capacity, 0);
  return {
    provider: "Whereabouts",
    free,
    capacity,
    message: `${free} pod IPs free in ${rows.length} Whereabouts IPPool(s): ${rows.map((r) => `${r.name} ${r.free}/${r.capacity}`).join(", ")}${badNote}`,
    pools: rows,
  };
}
