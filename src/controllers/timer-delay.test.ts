import { describe, expect, it } from "vitest";
import { MAX_TIMER_DELAY_MS, timerDelay } from "./timer-delay.ts";

describe("timerDelay", () => {
  it("passes delays Node can hold, and clamps the rest to what it can", () => {
    expect(timerDelay(1_000)).toBe(1_000);
    expect(timerDelay(MAX_TIMER_DELAY_MS)).toBe(MAX_TIMER_DELAY_MS);
    expect(timerDelay(1_000 * 3_600_000)).toBe(MAX_TIMER_DELAY_MS);
    expect(timerDelay(Infinity)).toBe(MAX_TIMER_DELAY_MS);
  });

  it("turns negative and NaN delays into 0", () => {
    expect(timerDelay(-5)).toBe(0);
    expect(timerDelay(Number.NaN)).toBe(0);
  });

  it("keeps a far timer from firing at once", async () => {
    let fired = false;
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on("warning", onWarning);
    const handle = setTimeout(() => (fired = true), timerDelay(1_000 * 3_600_000));
    await new Promise((resolve) => setTimeout(resolve, 20));
    clearTimeout(handle);
    process.off("warning", onWarning);
    expect(fired).toBe(false);
    expect(warnings).not.toContain("TimeoutOverflowWarning");
  });
});
