import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { CILIUM_AGENT_ADDRESSES, type CiliumNode, ciliumHeadroom } from "./cilium.ts";

const nodes = parseAllDocuments(readFileSync(new URL("./testdata/cilium.yaml", import.meta.url), "utf8")).map((d) => d.toJS()) as CiliumNode[];
const eni = nodes.filter((n) => n.metadata?.name === "ip-10-0-1-23.ec2.internal");

describe("ciliumHeadroom", () => {
  it("pool mode: pool addresses not used and not being released", () => {
    // 10 in the pool, 10.0.1.110 marked for release, 4 used (router, health, two pods).
    const result = ciliumHeadroom(eni);
    expect(result.free).toBe(5);
    expect(result.capacity).toBe(9);
    expect(result.nodes).toEqual([{ name: "ip-10-0-1-23.ec2.internal", mode: "pool", capacity: 9, free: 5 }]);
  });

  it("podCIDR mode: usable addresses minus the node's pods and the agent's own addresses", () => {
    const result = ciliumHeadroom(nodes, { podsWithIpByNode: new Map([["worker-1", 30], ["worker-2", 0]]) });
    const worker1 = 254 - 30 - CILIUM_AGENT_ADDRESSES;
    const worker2 = 254 - CILIUM_AGENT_ADDRESSES;
    expect(result.nodes.map((n) => [n.name, n.mode, n.free])).toEqual([
      ["ip-10-0-1-23.ec2.internal", "pool", 5],
      ["worker-1", "podCIDRs", worker1],
      ["worker-2", "podCIDRs", worker2],
    ]);
    expect(result.free).toBe(5 + worker1 + worker2);
  });

  it("podCIDR mode uses status.ipam.used when the IPAM mode fills it", () => {
    const node: CiliumNode = {
      metadata: { name: "worker-9" },
      spec: { ipam: { podCIDRs: ["10.0.9.0/28"] } },
      status: { ipam: { used: { "10.0.9.1": { owner: "router" }, "10.0.9.2": { owner: "sims/sim-fleet-7" } } } },
    };
    expect(ciliumHeadroom([node]).free).toBe(14 - 2);
  });

  it("names nodes whose usage is unknown and skips ineligible ones", () => {
    const result = ciliumHeadroom(nodes, { eligibleNodes: new Set(["worker-1", "worker-2"]) });
    expect(result.free).toBeUndefined();
    expect(result.message).toContain("usage unknown on 2 node(s)");
    const partly = ciliumHeadroom(nodes, { podsWithIpByNode: new Map([["worker-1", 10]]) });
    expect(partly.free).toBe(5 + 254 - 10 - CILIUM_AGENT_ADDRESSES);
    expect(partly.message).toContain("usage unknown on 1 node(s)");
  });

  it("dual-stack pool: the scarcer family decides", () => {
    const node: CiliumNode = {
      metadata: { name: "dual" },
      spec: { ipam: { pool: { "10.1.0.1": {}, "10.1.0.2": {}, "10.1.0.3": {} }, "ipv6-pool": { "fd00::1": {} } } },
      status: { ipam: { used: { "10.1.0.1": { owner: "router" } } } },
    };
    expect(ciliumHeadroom([node]).free).toBe(1);
  });
});
