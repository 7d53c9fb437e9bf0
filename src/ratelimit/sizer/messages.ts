// How the sizer's numbers read in status.wave.message.

import type { WriteTick } from "../write-latency.ts";

export function formatMs(ms: number): string {
  return ms >= 1_000 ? `${(ms / 1_000).toFixed(ms >= 10_000 ? 0 : 1)} s` : `${Math.round(ms)} ms`;
}

export function formatRate(perSecond: number): string {
  return perSecond >= 10 ? `${Math.round(perSecond)}/s` : `${perSecond.toFixed(1)}/s`;
}

/** Loss counts of a tick, as a person reads them. */
export function describeLosses(w: WriteTick): string {
  const parts: string[] = [];
  if (w.throttled) parts.push(`${w.throttled}×429`);
  if (w.serverErrors) parts.push(`${w.serverErrors}×5xx`);
  if (w.timeouts) parts.push(`${w.timeouts} timeouts`);
  if (w.networkErrors) parts.push(`${w.networkErrors} dropped connections`);
  return parts.join(", ");
}
