// Prometheus text exposition, read just far enough for the benchmark: counter and gauge samples with
// their labels, and the cumulative buckets of a histogram. kube-apiserver's /metrics is megabytes, so
// lines are filtered by family prefix before any parsing.

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Samples of the named families (a histogram family also matches its _bucket, _sum and _count). */
export function parseFamilies(text: string, families: readonly string[]): PromSample[] {
  const out: PromSample[] = [];
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || !families.some((f) => line.startsWith(f))) continue;
    const m = SAMPLE_LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? "").matchAll(LABEL_PAIR)) labels[pair[1]!] = pair[2]!.replace(/\\(.)/g, "$1");
    const value = m[3] === "+Inf" ? Infinity : Number(m[3]);
    if (!Number.isNaN(value)) out.push({ name: m[1]!, labels, value });
  }
  return out;
}

export type LabelMatch = Record<string, string>;

function matches(labels: Record<string, string>, want: LabelMatch): boolean {
  return Object.entries(want).every(([k, v]) => labels[k] === v);
}

/** Sum of every series of `name` whose labels include `want`. */
export function sumOf(samples: readonly PromSample[], name: string, want: LabelMatch = {}): number {
  let total = 0;
  for (const s of samples) if (s.name === name && matches(s.labels, want)) total += s.value;
  return total;
}

/** Totals of `name` grouped by the values of the given labels, e.g. by flow_schema and priority_level. */
export function sumBy(samples: readonly PromSample[], name: string, by: readonly string[], want: LabelMatch = {}): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (s.name !== name || !matches(s.labels, want)) continue;
    const key = by.map((l) => s.labels[l] ?? "").join("|");
    out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return out;
}

/** Cumulative buckets (upper bound → count), summed over matching series. */
export function histogramBuckets(samples: readonly PromSample[], family: string, want: LabelMatch = {}): Map<number, number> {
  const out = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${family}_bucket` || !matches(s.labels, want)) continue;
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    if (!Number.isNaN(le)) out.set(le, (out.get(le) ?? 0) + s.value);
  }
  return out;
}

/**
 * The q-quantile of the observations made between two scrapes of a cumulative histogram, by linear
 * interpolation inside the bucket that holds the rank (Prometheus' histogram_quantile over an increase).
 */
export function quantileOfIncrease(q: number, before: ReadonlyMap<number, number>, after: ReadonlyMap<number, number>): number | undefined {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const counts: number[] = [];
  let running = 0;
  for (const le of bounds) counts.push((running = Math.max(running, (after.get(le) ?? 0) - (before.get(le) ?? 0))));
  const total = counts[counts.length - 1] ?? 0;
  if (total <= 0 || bounds[bounds.length - 1] !== Infinity) return undefined;
  const rank = q * total;
  for (let i = 0; i < bounds.length; i++) {
    const count = counts[i] ?? 0;
    if (count < rank) continue;
    const upper = bounds[i]!;
    const lower = i === 0 ? 0 : bounds[i - 1]!;
    if (upper === Infinity) return lower;
    const below = i === 0 ? 0 : (counts[i - 1] ?? 0);
    return lower + ((upper - lower) * (rank - below)) / Math.max(1, count - below);
  }
  return undefined;
}
