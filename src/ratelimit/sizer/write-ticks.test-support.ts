import type { WriteTick } from "../write-latency.ts";

/** A tick of `count` answered writes at `now` with the given p90 (none: no latency sample), for scripted traces. */
export function answeredTick(now: number, count: number, p90: number | undefined, extra: Partial<WriteTick> = {}): WriteTick {
  return {
    at: now,
    count,
    throttled: 0,
    serverErrors: 0,
    timeouts: 0,
    networkErrors: 0,
    latencySamples: p90 === undefined ? 0 : count,
    latencySource: p90 === undefined ? "none" : "tick",
    ...(p90 === undefined ? {} : { p50: p90 * 0.7, p90, p99: p90 * 1.5 }),
    ...extra,
  };
}
