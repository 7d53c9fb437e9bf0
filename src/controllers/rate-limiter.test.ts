import { describe, expect, it } from "vitest";
import {
  BucketRateLimiter,
  DEFAULT_BUCKET_BURST,
  DEFAULT_BUCKET_QPS,
  DEFAULT_ITEM_BASE_DELAY_MS,
  DEFAULT_ITEM_MAX_DELAY_MS,
  ItemExponentialFailureRateLimiter,
  MaxOfRateLimiter,
  defaultControllerRateLimiter,
} from "./rate-limiter.ts";
import type { RateLimiter } from "./rate-limiter.ts";

function manualClock(start = 1_000_000): { now(): number; advance(ms: number): void; set(ms: number): void } {
  let t = start;
  return {
    now: () => t,
    advance(ms) {
      t += ms;
    },
    set(ms) {
      t = ms;
    },
  };
}

describe("ItemExponentialFailureRateLimiter", () => {
  it("defaults to client-go's 5 ms base and 1000 s cap", () => {
    expect(DEFAULT_ITEM_BASE_DELAY_MS).toBe(5);
    expect(DEFAULT_ITEM_MAX_DELAY_MS).toBe(1000 * 1000);
  });

  it("doubles from the base delay on each failure and counts requeues", () => {
    const limiter = new ItemExponentialFailureRateLimiter();
    const delays = Array.from({ length: 6 }, () => limiter.when("a"));
    expect(delays).toEqual([5, 10, 20, 40, 80, 160]);
    expect(limiter.numRequeues("a")).toBe(6);
  });

  it("caps at the max delay, including once 2^n overflows", () => {
    const limiter = new ItemExponentialFailureRateLimiter();
    let last = 0;
    // 5 ms · 2^18 = 1310.72 s is the first value past the cap.
    for (let i = 0; i < 18; i++) last = limiter.when("a");
    expect(last).toBe(5 * 2 ** 17);
    expect(limiter.when("a")).toBe(DEFAULT_ITEM_MAX_DELAY_MS);
    for (let i = 0; i < 2000; i++) limiter.when("a");
    expect(limiter.when("a")).toBe(DEFAULT_ITEM_MAX_DELAY_MS);
  });

  it("tracks each item separately", () => {
    const limiter = new ItemExponentialFailureRateLimiter(1, 1000);
    limiter.when("a");
    limiter.when("a");
    expect(limiter.when("b")).toBe(1);
    expect(limiter.when("a")).toBe(4);
    expect(limiter.numRequeues("a")).toBe(3);
    expect(limiter.numRequeues("b")).toBe(1);
    expect(limiter.numRequeues("c")).toBe(0);
  });

  it("forget resets the item to the base delay and leaves others alone", () => {
    const limiter = new ItemExponentialFailureRateLimiter();
    limiter.when("a");
    limiter.when("a");
    limiter.when("b");
    limiter.forget("a");
    expect(limiter.numRequeues("a")).toBe(0);
    expect(limiter.when("a")).toBe(5);
    expect(limiter.when("b")).toBe(10);
  });

  it("rejects a base delay above the max", () => {
    expect(() => new ItemExponentialFailureRateLimiter(10, 5)).toThrow(/baseDelayMs=10 maxDelayMs=5/);
    expect(() => new ItemExponentialFailureRateLimiter(-1, 5)).toThrow(RangeError);
  });
});

describe("BucketRateLimiter", () => {
  it("defaults to client-go's 10 qps and burst 100", () => {
    expect(DEFAULT_BUCKET_QPS).toBe(10);
    expect(DEFAULT_BUCKET_BURST).toBe(100);
  });

  it("lets the burst through at once, then spaces calls 1/qps apart", () => {
    const clock = manualClock();
    const limiter = new BucketRateLimiter({ clock });
    for (let i = 0; i < 100; i++) expect(limiter.when(`item-${i}`)).toBe(0);
    // Each further call reserves a future token: 100 ms, 200 ms, 300 ms at 10 qps.
    expect(limiter.when("x")).toBe(100);
    expect(limiter.when("y")).toBe(200);
    expect(limiter.when("z")).toBe(300);
  });

  it("refills with time, never beyond the burst", () => {
    const clock = manualClock();
    const limiter = new BucketRateLimiter({ qps: 2, burst: 3, clock });
    expect([limiter.when("a"), limiter.when("a"), limiter.when("a")]).toEqual([0, 0, 0]);
    expect(limiter.when("a")).toBe(500);
    // The debt of one token is paid after 500 ms; one more token after another 500 ms.
    clock.advance(1000);
    expect(limiter.when("a")).toBe(0);
    expect(limiter.when("a")).toBe(500);
    // A long idle period refills to the burst, not more.
    clock.advance(60_000);
    expect([limiter.when("a"), limiter.when("a"), limiter.when("a"), limiter.when("a")]).toEqual([0, 0, 0, 500]);
  });

  it("mints no tokens when the clock steps backwards", () => {
    const clock = manualClock(10_000);
    const limiter = new BucketRateLimiter({ qps: 1, burst: 1, clock });
    expect(limiter.when("a")).toBe(0);
    clock.set(5_000);
    expect(limiter.when("a")).toBe(1000);
  });

  it("is not per item: it never tracks requeues and forget does nothing", () => {
    const limiter = new BucketRateLimiter({ qps: 1, burst: 1, clock: manualClock() });
    limiter.when("a");
    limiter.forget("a");
    expect(limiter.numRequeues("a")).toBe(0);
    expect(limiter.when("a")).toBe(1000);
  });

  it("rejects nonsensical settings", () => {
    expect(() => new BucketRateLimiter({ qps: 0 })).toThrow(/qps > 0, got 0/);
    expect(() => new BucketRateLimiter({ burst: 0 })).toThrow(/burst >= 1, got 0/);
  });
});

describe("MaxOfRateLimiter", () => {
  function fixed(delay: number, requeues: number): RateLimiter & { forgotten: string[]; asked: number } {
    return {
      forgotten: [],
      asked: 0,
      when() {
        this.asked++;
        return delay;
      },
      forget(item) {
        this.forgotten.push(item);
      },
      numRequeues: () => requeues,
    };
  }

  it("returns the longest delay but asks every limiter", () => {
    const a = fixed(30, 1);
    const b = fixed(70, 4);
    const c = fixed(10, 2);
    const limiter = new MaxOfRateLimiter(a, b, c);
    expect(limiter.when("k")).toBe(70);
    expect([a.asked, b.asked, c.asked]).toEqual([1, 1, 1]);
    expect(limiter.numRequeues("k")).toBe(4);
    limiter.forget("k");
    expect([a.forgotten, b.forgotten, c.forgotten]).toEqual([["k"], ["k"], ["k"]]);
  });

  it("with no limiters never delays", () => {
    const limiter = new MaxOfRateLimiter();
    expect(limiter.when("k")).toBe(0);
    expect(limiter.numRequeues("k")).toBe(0);
  });
});

describe("defaultControllerRateLimiter", () => {
  it("follows per-item backoff while the bucket has tokens", () => {
    const limiter = defaultControllerRateLimiter(manualClock());
    expect([limiter.when("a"), limiter.when("a"), limiter.when("a")]).toEqual([5, 10, 20]);
    expect(limiter.when("b")).toBe(5);
    expect(limiter.numRequeues("a")).toBe(3);
    limiter.forget("a");
    expect(limiter.numRequeues("a")).toBe(0);
    expect(limiter.when("a")).toBe(5);
  });

  it("is held to the overall bucket once the burst is spent", () => {
    const limiter = defaultControllerRateLimiter(manualClock());
    for (let i = 0; i < DEFAULT_BUCKET_BURST; i++) expect(limiter.when(`item-${i}`)).toBe(5);
    // A fresh item would wait 5 ms by backoff, but the bucket needs 100 ms for the next token.
    expect(limiter.when("fresh")).toBe(100);
    expect(limiter.when("fresh-2")).toBe(200);
  });
});
