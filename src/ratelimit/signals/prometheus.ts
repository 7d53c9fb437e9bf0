// Reading scraped Prometheus metrics: only the families a signal needs, counters as increases between
// two scrapes, and histogram quantiles over that interval (what PromQL's
// histogram_quantile(q, increase(x_bucket[interval])) would give).

import { type PromSample, parsePrometheusText } from "../ipam/aws-vpc-cni.ts";

export type { PromSample };

/**
 * Samples of the named families only. kube-apiserver's /metrics is megabytes (~25,000 lines on a small
 * cluster); dropping unwanted lines with a prefix test before parsing keeps a scrape cheap. Histogram
 * families match their _bucket, _sum and _count series too.
 */
export function parseFamilies(text: string, families: readonly string[]): PromSample[] {
  const wanted = text.split("\n").filter((line) => families.some((family) => line.startsWith(family)));
  return parsePrometheusText(wanted.join("\n"));
}

/** One cumulative histogram bucket: observations at or below `le`. */
export interface Bucket {
  le: number;
  count: number;
}

/**
 * The cumulative buckets of one histogram family, summed over every series whose labels `match`
 * accepts (e.g. all flow schemas of one priority level), sorted by upper bound.
 */
export function histogramBuckets(samples: readonly PromSample[], family: string, match: (labels: Record<string, string>) => boolean): Bucket[] {
  const byLe = new Map<number, number>();
  const bucketName = `${family}_bucket`;
  for (const s of samples) {
    if (s.name !== bucketName || !match(s.labels)) continue;
    const le = Number(s.labels.le === "+Inf" ? Infinity : s.labels.le);
    if (Number.isNaN(le) || !Number.isFinite(s.value)) continue;
    byLe.set(le, (byLe.get(le) ?? 0) + s.value);
  }
  return [...byLe].map(([le, count]) => ({ le, count })).sort((a, b) => a.le - b.le);
}

/** Increase of a counter between two scrapes; a drop means the process restarted, so all of `current` is new. */
export function counterIncrease(previous: number | undefined, current: number): number {
  if (previous === undefined) return 0;
  return current >= previous ? current - previous : current;
}

/**
 * Per-bucket increase between two scrapes of the same histogram. A smaller total means a restart
 * (Prometheus' counter-reset rule), and then the current buckets are the whole increase.
 */
export function bucketIncrease(previous: readonly Bucket[], current: readonly Bucket[]): Bucket[] {
  const before = new Map(previous.map((b) => [b.le, b.count]));
  const total = (buckets: readonly Bucket[]) => buckets.find((b) => b.le === Infinity)?.count ?? 0;
  if (total(current) < total(previous)) return current.map((b) => ({ ...b }));
  return current.map((b) => ({ le: b.le, count: Math.max(0, b.count - (before.get(b.le) ?? 0)) }));
}

/**
 * The q-quantile of a cumulative histogram, by linear interpolation inside the bucket that holds the
 * rank, as Prometheus' histogram_quantile does (lower bound 0 for the first bucket; a rank in the +Inf
 * bucket answers the largest finite bound). Undefined without observations or without a +Inf bucket.
 */
export function histogramQuantile(q: number, buckets: readonly Bucket[]): number | undefined {
  const last = buckets[buckets.length - 1];
  if (!last || last.le !== Infinity || last.count <= 0) return undefined;
  // Scrapes are not atomic, so buckets can be slightly out of order; make them monotonic first.
  const counts: number[] = [];
  let running = 0;
  for (const b of buckets) counts.push((running = Math.max(running, b.count)));
  const total = counts[counts.length - 1] ?? 0;
  const rank = Math.min(1, Math.max(0, q)) * total;
  for (let i = 0; i < buckets.length; i++) {
    const count = counts[i] ?? 0;
    if (count < rank) continue;
    const upper = buckets[i]?.le ?? 0;
    if (upper === Infinity) return buckets[i - 1]?.le ?? undefined;
    const lower = i === 0 ? 0 : (buckets[i - 1]?.le ?? 0);
    if (i === 0 && upper <= 0) return upper;
    const below = i === 0 ? 0 : (counts[i - 1] ?? 0);
    const inBucket = count - below;
    return inBucket > 0 ? lower + (upper - lower) * ((rank - below) / inBucket) : upper;
  }
  return undefined;
}
