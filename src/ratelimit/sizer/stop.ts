// The two answers that come before any sizing, for every strategy: nothing left to do, or a pause the
// API server asked for.

import type { RateLimit, WaveDecision } from "./contract.ts";
import { formatMs } from "./messages.ts";

/**
 * No wave while nothing is left (None) or until the API server's Retry-After has passed (ApiServer,
 * with how long is left and `then`: what follows the pause); undefined when a wave may be sized.
 */
export function stopDecision(now: number, remaining: number, pauseUntil: number, rateLimit: RateLimit, then = ""): WaveDecision | undefined {
  if (remaining <= 0) return { size: 0, limitedBy: "None", message: "all pods created", rateLimit, waitMs: 0 };
  if (now >= pauseUntil) return undefined;
  const waitMs = pauseUntil - now;
  return { size: 0, limitedBy: "ApiServer", message: `the API server asked us to wait (Retry-After): ${formatMs(waitMs)} left${then}`, rateLimit, waitMs };
}
