import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { type CalicoIpPool, type CalicoIpamBlock, calicoHeadroom } from "./calico.ts";

const docs = parseAllDocuments(readFileSync(new URL("./testdata/calico.yaml", import.meta.url), "utf8")).map((d) => d.toJS());
const pools = docs.filter((d) => d.kind === "IPPool") as CalicoIpPool[];
const blocks = docs.filter((d) => d.kind === "IPAMBlock") as CalicoIpamBlock[];

// default-ipv4-ippool 10.244.0.0/16 in /26 blocks: 1024 blocks of 64 addresses. Three are claimed:
// worker-1 uses 5 (tunnel + 4 pods, 59 free), worker-2 is full, worker-3 has 2 free (one address in
// release cooldown still counts as used). The other 1021 blocks are unclaimed.
const UNCLAIMED = 1021 * 64;

describe("calicoHeadroom", () => {
  it("counts null allocations in claimed blocks plus every address of unclaimed blocks", () => {
    const result = calicoHeadroom(pools, blocks);
    expect(result.free).toBe(59 + 0 + 2 + UNCLAIMED);
    expect(result.capacity).toBe(65_536);
    expect(result.pools).toEqual([
      { name: "default-ipv4-ippool", cidr: "10.244.0.0/16", family: 4, capacity: 65_536, free: 61 + UNCLAIMED, claimedBlocks: 3, totalBlocks: 1024 },
    ]);
    expect(result.message).toContain("default-ipv4-ippool 65405/65536");
  });

  it("ignores disabled pools, LoadBalancer pools and the blocks they hold", () => {
    const result = calicoHeadroom(pools, blocks);
    expect(result.pools.map((p) => p.name)).toEqual(["default-ipv4-ippool"]);
  });

  it("skips free addresses in blocks affine to hosts our pods cannot use", () => {
    const result = calicoHeadroom(pools, blocks, { eligibleHosts: new Set(["worker-2", "worker-3"]) });
    expect(result.free).toBe(2 + UNCLAIMED);
  });

  it("treats a deleted block's range as unclaimed, and falls back to spec.unallocated", () => {
    const [first, ...rest] = blocks;
    const deleted = { ...first!, spec: { ...first!.spec, deleted: true } };
    expect(calicoHeadroom(pools, [deleted, ...rest]).free).toBe(2 + UNCLAIMED + 64);
    const noAllocations = { ...first!, spec: { ...first!.spec, allocations: undefined } };
    expect(calicoHeadroom(pools, [noAllocations]).free).toBe(59 + 1023 * 64);
  });

  it("uses the default block size and lets the scarcer family decide for dual-stack", () => {
    const result = calicoHeadroom(
      [
        { metadata: { name: "v4" }, spec: { cidr: "10.10.0.0/24" } },
        { metadata: { name: "v6" }, spec: { cidr: "fd00:10::/112", blockSize: 0 } },
      ],
      [],
    );
    expect(result.pools.map((p) => [p.name, p.totalBlocks, p.free])).toEqual([
      ["v4", 4, 256],
      ["v6", 1024, 65_536],
    ]);
    expect(result.free).toBe(256);
  });

  it("reports unknown when no pool serves workloads, and names unreadable pools", () => {
    const result = calicoHeadroom([{ metadata: { name: "broken" }, spec: { cidr: "10.0.0.0/99" } }], blocks);
    expect(result.free).toBeUndefined();
    expect(result.message).toContain("broken: unparsable cidr 10.0.0.0/99");
  });
});
