import { describe, expect, it } from "vitest";
import { EXPECTATION_TTL_MS, Expectations } from "./expectations.ts";

describe("Expectations", () => {
  it("holds creates and deletes until observed", () => {
    const e = new Expectations(() => 0);
    e.expectCreate("ns/a", 3);
    e.expectCreate("ns/a", 4);
    e.expectDelete("ns/a", "a-9");
    expect(e.pending("ns/a")).toEqual({ creates: new Set([3, 4]), deletes: new Set(["a-9"]) });
    e.observeCreate("ns/a", 3);
    e.observeDelete("ns/a", "a-9");
    expect(e.pending("ns/a")).toEqual({ creates: new Set([4]), deletes: new Set() });
    expect(e.pending("ns/other")).toEqual({ creates: new Set(), deletes: new Set() });
  });

  it("drops expectations past their TTL", () => {
    let now = 0;
    const e = new Expectations(() => now);
    e.expectCreate("ns/a", 1);
    now = EXPECTATION_TTL_MS - 1;
    e.expectCreate("ns/a", 2);
    now = EXPECTATION_TTL_MS + 1;
    expect(e.pending("ns/a").creates).toEqual(new Set([2]));
  });

  it("says when the oldest pending write expires, so a reconcile waiting on a lost event still runs", () => {
    let now = 1_000;
    const e = new Expectations(() => now);
    expect(e.expiresInMs("ns/a")).toBeUndefined();
    e.expectDelete("ns/a", "a-9");
    now = 3_000;
    e.expectCreate("ns/a", 1);
    expect(e.expiresInMs("ns/a")).toBe(EXPECTATION_TTL_MS - 2_000);
    e.observeDelete("ns/a", "a-9");
    expect(e.expiresInMs("ns/a")).toBe(EXPECTATION_TTL_MS);
    now += EXPECTATION_TTL_MS + 1;
    expect(e.expiresInMs("ns/a")).toBe(0);
    e.observeCreate("ns/a", 1);
    expect(e.expiresInMs("ns/a")).toBeUndefined();
  });

  it("forgets a rollout entirely", () => {
    const e = new Expectations(() => 0);
    e.expectCreate("ns/a", 1);
    e.forget("ns/a");
    expect(e.pending("ns/a").creates.size).toBe(0);
  });
});
