import { z } from "zod";

// Kubernetes-style durations as users write them in YAML: "500ms", "1s", "2m", "1h", or a sum "1m30s".
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;
export const DURATION_PATTERN = "^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$";
const TERM = /([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g;

/** Milliseconds in a duration string that matched DURATION_PATTERN. */
export function durationToMs(text: string): number {
  let total = 0;
  for (const [, amount, unit] of text.matchAll(TERM)) {
    total += Number(amount) * UNIT_MS[unit as keyof typeof UNIT_MS];
  }
  return total;
}

/** Longer than any sensible duration; bounds the cost the API server estimates for CEL's duration(). */
export const MAX_DURATION_LENGTH = 32;

export const Duration = z
  .string()
  .max(MAX_DURATION_LENGTH)
  .regex(new RegExp(DURATION_PATTERN), 'must be a duration such as "500ms", "1s", "2m" or "1m30s"');
