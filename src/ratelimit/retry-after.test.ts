import { describe, expect, it } from "vitest";
import { DEFAULT_RETRY_AFTER_MS, MAX_RETRY_AFTER_MS, RetryAfterGate, parseRetryAfter } from "./retry-after.ts";

const NOW = Date.parse("2025-03-01T12:00:00Z");

describe("parseRetryAfter", () => {
  it("reads delta-seconds", () => {
    expect(parseRetryAfter("1", NOW)).toBe(1_000);
    expect(parseRetryAfter(" 32 ", NOW)).toBe(32_000);
    expect(parseRetryAfter("0", NOW)).toBe(0);
  });

  it("reads the three HTTP-date forms relative to now", () => {
    expect(parseRetryAfter("Sat, 01 Mar 2025 12:00:05 GMT", NOW)).toBe(5_000);
    expect(parseRetryAfter("Saturday, 01-Mar-25 12:00:07 GMT", NOW)).toBe(7_000);
    expect(parseRetryAfter("Sat Mar  1 12:00:09 2025", NOW)).toBe(9_000);
  });

  it("treats a date in the past as no wait", () => {
    expect(parseRetryAfter("Sat, 01 Mar 2025 11:59:00 GMT", NOW)).toBe(0);
  });

  it("clamps to the named max, or to a given one", () => {
    expect(parseRetryAfter("3600", NOW)).toBe(MAX_RETRY_AFTER_MS);
    expect(parseRetryAfter("Sun, 02 Mar 2025 12:00:00 GMT", NOW)).toBe(MAX_RETRY_AFTER_MS);
    expect(parseRetryAfter("10", NOW, 4_000)).toBe(4_000);
  });

  it("returns undefined for absent or unreadable values", () => {
    expect(parseRetryAfter(undefined, NOW)).toBeUndefined();
    expect(parseRetryAfter(null, NOW)).toBeUndefined();
    expect(parseRetryAfter("", NOW)).toBeUndefined();
    expect(parseRetryAfter("-1", NOW)).toBeUndefined();
    expect(parseRetryAfter("1.5", NOW)).toBeUndefined();
    expect(parseRetryAfter("soon", NOW)).toBeUndefined();
  });

  it("takes the first of repeated header values", () => {
    expect(parseRetryAfter(["2", "8"], NOW)).toBe(2_000);
  });
});

describe("RetryAfterGate", () => {
  it("is open until told to wait", () => {
    const gate = new RetryAfterGate();
    expect(gate.waitMs(NOW)).toBe(0);
    expect(gate.isOpen(NOW)).toBe(true);
  });

  it("keeps the latest not-before instant: the largest Retry-After wins", () => {
    const gate = new RetryAfterGate();
    gate.observe(NOW, 4_000);
    gate.observe(NOW + 100, 1_000);
    expect(gate.notBefore).toBe(NOW + 4_000);
    expect(gate.waitMs(NOW + 1_000)).toBe(3_000);
    expect(gate.waitMs(NOW + 4_000)).toBe(0);
    gate.observe(NOW + 3_500, 2_000);
    expect(gate.notBefore).toBe(NOW + 5_500);
  });

  it("waits the default on a throttled response without a usable header, and not otherwise", () => {
    const gate = new RetryAfterGate();
    expect(gate.observeHeader(NOW, undefined, false)).toBeUndefined();
    expect(gate.isOpen(NOW)).toBe(true);
    expect(gate.observeHeader(NOW, "garbage")).toBe(DEFAULT_RETRY_AFTER_MS);
    expect(gate.waitMs(NOW)).toBe(DEFAULT_RETRY_AFTER_MS);
    expect(gate.observeHeader(NOW, "8")).toBe(8_000);
    expect(gate.lastRetryAfterMs).toBe(8_000);
  });

  it("clamps what it is told to its own max", () => {
    const gate = new RetryAfterGate(10_000);
    gate.observe(NOW, 3_600_000);
    expect(gate.waitMs(NOW)).toBe(10_000);
    expect(gate.observeHeader(NOW, "3600")).toBe(10_000);
  });
});
