import { describe, expect, it } from "vitest";
import { headroomAfterReserve, reserveCount } from "./reserve.ts";

describe("reserveCount", () => {
  it("takes a count as it is", () => {
    expect(reserveCount(100, 50_000, 1_000)).toBe(100);
    expect(reserveCount(0, 50_000, 1_000)).toBe(0);
  });

  it("takes a percentage of the pool's capacity, rounded up", () => {
    expect(reserveCount("5%", 253_000, 10)).toBe(12_650);
    expect(reserveCount("5%", 253, 10)).toBe(13); // 12.65 → 13
    expect(reserveCount("1%", 1, 1)).toBe(1);
    expect(reserveCount("0%", 1_000, 1_000)).toBe(0);
    expect(reserveCount("100%", 500, 200)).toBe(500);
    expect(reserveCount("250%", 500, 200)).toBe(500);
  });

  it("takes the percentage of the free addresses when the capacity is unknown", () => {
    expect(reserveCount("10%", undefined, 1_001)).toBe(101);
  });
});

describe("headroomAfterReserve", () => {
  it("never goes negative", () => {
    expect(headroomAfterReserve(1_000, 100)).toBe(900);
    expect(headroomAfterReserve(50, 100)).toBe(0);
  });
});
