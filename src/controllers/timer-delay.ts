// Node's timers take a signed 32-bit delay in ms. A longer one fires after 1 ms with a
// TimeoutOverflowWarning, so a timer re-armed for the same far deadline spins. Every timer whose
// delay comes from user input or a server goes through timerDelay; its callers re-arm on wake-up.

/** The longest delay Node's setTimeout honours (about 24.8 days). */
export const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** `ms` clamped to what setTimeout honours; negative and NaN become 0. */
export function timerDelay(ms: number): number {
  if (!(ms > 0)) return 0;
  return Math.min(MAX_TIMER_DELAY_MS, ms);
}
