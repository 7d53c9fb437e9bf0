import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { type WhereaboutsIpPool, whereaboutsHeadroom, whereaboutsPoolHeadroom } from "./whereabouts.ts";

const pools = parseAllDocuments(readFileSync(new URL("./testdata/whereabouts.yaml", import.meta.url), "utf8")).map((d) => d.toJS()) as WhereaboutsIpPool[];
const [sims, storage] = pools as [WhereaboutsIpPool, WhereaboutsIpPool];

describe("whereaboutsPoolHeadroom", () => {
  it("usable = the range without network and broadcast, minus allocations", () => {
    expect(whereaboutsPoolHeadroom(sims)).toEqual({ name: "192.168.2.0-24", range: "192.168.2.0/24", capacity: 254, allocated: 3, free: 251 });
    expect(whereaboutsPoolHeadroom(storage)).toMatchObject({ capacity: 14, allocated: 0, free: 14 });
  });

  it("narrows to range_start/range_end from the CNI config; allocations outside do not count", () => {
    // .50 – .99: offset 100 is outside, offsets 1 and 2 too.
    expect(whereaboutsPoolHeadroom(sims, { rangeStart: "192.168.2.50", rangeEnd: "192.168.2.99" })).toMatchObject({ capacity: 50, allocated: 0, free: 50 });
    expect(whereaboutsPoolHeadroom(sims, { rangeStart: "192.168.2.100" })).toMatchObject({ capacity: 155, allocated: 1, free: 154 });
  });

  it("takes excluded subnets and single addresses off, overlaps counted once", () => {
    const result = whereaboutsPoolHeadroom(sims, { exclude: ["192.168.2.0/28", "192.168.2.8/29", "192.168.2.200"] });
    // /28 covers .0–.15, of which .1–.15 are usable (15); the /29 lies inside it; .200 is one more.
    expect(result).toMatchObject({ capacity: 254 - 15 - 1, allocated: 1, free: 254 - 16 - 1 });
  });

  it("reads the legacy start-end/prefix range form and ignores malformed offsets", () => {
    const pool: WhereaboutsIpPool = {
      metadata: { name: "legacy" },
      spec: { range: "10.5.0.10-10.5.0.19/24", allocations: { "10": { id: "a", podref: "x/y" }, oops: { id: "b", podref: "x/z" } } },
    };
    expect(whereaboutsPoolHeadroom(pool)).toMatchObject({ capacity: 10, allocated: 1, free: 9 });
  });

  it("caps IPv6 ranges", () => {
    const pool: WhereaboutsIpPool = { spec: { range: "fd00:10::/64", allocations: { "1": { id: "a", podref: "x/y" } } } };
    expect(whereaboutsPoolHeadroom(pool)?.free).toBe(1_000_000);
  });
});

describe("whereaboutsHeadroom", () => {
  it("sums the pools it is given and names unreadable ones", () => {
    const bad: WhereaboutsIpPool = { metadata: { name: "bad" }, spec: { range: "not-a-range", allocations: {} } };
    const result = whereaboutsHeadroom([...pools, bad]);
    expect(result).toMatchObject({ provider: "Whereabouts", free: 251 + 14, capacity: 254 + 14 });
    expect(result.message).toContain("unreadable: bad (range not-a-range)");
    expect(whereaboutsHeadroom([bad]).free).toBeUndefined();
  });

  it("applies per-pool CNI config", () => {
    const result = whereaboutsHeadroom(pools, (p) => (p.metadata?.name === "192.168.2.0-24" ? { rangeEnd: "192.168.2.10" } : undefined));
    expect(result.free).toBe(8 + 14);
  });
});
