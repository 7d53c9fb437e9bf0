import { describe, expect, it } from "vitest";
import { InternPool } from "./intern-pool.ts";

describe("InternPool", () => {
  it("keeps one copy of equal strings and passes undefined through", () => {
    const pool = new InternPool();
    const first = pool.intern(["name", "space"].join(""));
    expect(pool.intern(["names", "pace"].join(""))).toBe(first);
    expect(pool.intern(undefined)).toBeUndefined();
    expect(pool.size).toBe(1);
  });

  it("shares one frozen value per key, made once", () => {
    const pool = new InternPool();
    let made = 0;
    const make = () => (made++, [{ type: "Ready" }]);
    const a = pool.share("Ready", make);
    expect(pool.share("Ready", make)).toBe(a);
    expect(made).toBe(1);
    expect(Object.isFrozen(a)).toBe(true);
    expect(pool.share("other", make)).not.toBe(a);
  });

  it("starts over when full, so it never grows without bound", () => {
    const pool = new InternPool(2);
    pool.intern("a");
    pool.intern("b");
    pool.intern("c");
    expect(pool.size).toBe(1);
    expect(pool.intern("c")).toBe("c");
  });
});
