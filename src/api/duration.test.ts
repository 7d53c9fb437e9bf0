import { describe, expect, it } from "vitest";
import { DURATION_PATTERN, Duration, durationToMs } from "./duration.ts";

describe("durationToMs", () => {
  it.each([
    ["500ms", 500],
    ["1s", 1_000],
    ["1.5s", 1_500],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["1m30s", 90_000],
    ["1h2m3s4ms", 3_723_004],
    ["0s", 0],
    ["0.25m", 15_000],
  ])("%s is %d ms", (text, ms) => {
    expect(durationToMs(text)).toBe(ms);
  });

  it("does not read 'ms' as minutes followed by seconds", () => {
    expect(durationToMs("5ms")).toBe(5);
  });
});

describe("Duration", () => {
  it.each(["500ms", "1s", "2m", "1h", "1m30s", "1.5s"])("accepts %s", (text) => {
    expect(Duration.safeParse(text).success).toBe(true);
  });

  it.each(["", "1", "1 s", "s", "-1s", "1d", "1.s", ".5s", "1sec", "1S", "1.5.5s"])("rejects %j with a message saying what a duration looks like", (text) => {
    const result = Duration.safeParse(text);
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toContain('such as "500ms"');
  });

  it("is the same check the CRD carries (DURATION_PATTERN)", () => {
    const pattern = new RegExp(DURATION_PATTERN);
    for (const text of ["500ms", "1m30s", "1 s", "1d"]) {
      expect(pattern.test(text)).toBe(Duration.safeParse(text).success);
    }
  });
});
