import { describe, expect, it } from "vitest";
import type { PodTemplate } from "../../api/batchrollout.ts";
import {
  type NodeLike,
  type PodLike,
  type Taint,
  NodePodCounter,
  allocatablePods,
  matchesNodeSelectorTerms,
  nodeCapacity,
  nodeEligibility,
  nodePodCidrHeadroom,
  podCountsByNode,
  schedulingConstraints,
  toleratesTaint,
  usableNodeCidrAddresses,
} from "./node-pod-cidr.ts";

// Shaped like what kwok and kubelet report (kubectl get node -o yaml, trimmed).
function node(name: string, fields: { podCIDRs?: string[]; pods?: string; labels?: Record<string, string>; taints?: Taint[]; unschedulable?: boolean; ready?: string } = {}): NodeLike {
  const podCIDRs = fields.podCIDRs ?? ["10.244.1.0/24"];
  return {
    metadata: {
      name,
      labels: { "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "node-role.kubernetes.io/agent": "", type: "kwok", ...fields.labels },
    },
    spec: {
      ...(podCIDRs.length ? { podCIDR: podCIDRs[0], podCIDRs } : {}),
      ...(fields.taints ? { taints: fields.taints } : {}),
      ...(fields.unschedulable ? { unschedulable: true } : {}),
    },
    status: {
      allocatable: { cpu: "32", memory: "256Gi", pods: fields.pods ?? "110" },
      conditions: [
        { type: "MemoryPressure", status: "False" },
        { type: "Ready", status: fields.ready ?? "True" },
      ],
    },
  };
}

function pod(nodeName: string, phase = "Running", hostNetwork = false): PodLike {
  return { spec: { nodeName, ...(hostNetwork ? { hostNetwork } : {}) }, status: { phase } };
}

function pods(nodeName: string, count: number, phase = "Running", hostNetwork = false): PodLike[] {
  return Array.from({ length: count }, () => pod(nodeName, phase, hostNetwork));
}

function template(spec: Record<string, unknown> = {}): PodTemplate {
  return { metadata: { labels: { app: "sim" } }, spec: { containers: [{ name: "sim", image: "busybox" }], ...spec } };
}

describe("toleratesTaint (Kubernetes rules)", () => {
  const taint = { key: "dedicated", value: "sims", effect: "NoSchedule" };

  it("Equal (or no operator) compares key and value", () => {
    expect(toleratesTaint({ key: "dedicated", operator: "Equal", value: "sims", effect: "NoSchedule" }, taint)).toBe(true);
    expect(toleratesTaint({ key: "dedicated", value: "sims" }, taint)).toBe(true);
    expect(toleratesTaint({ key: "dedicated", operator: "Equal", value: "other" }, taint)).toBe(false);
    expect(toleratesTaint({ key: "other", operator: "Equal", value: "sims" }, taint)).toBe(false);
  });

  it("Exists ignores the value; an empty key with Exists tolerates everything", () => {
    expect(toleratesTaint({ key: "dedicated", operator: "Exists" }, taint)).toBe(true);
    expect(toleratesTaint({ operator: "Exists" }, taint)).toBe(true);
    expect(toleratesTaint({ operator: "Exists" }, { key: "node.kubernetes.io/not-ready", effect: "NoExecute" })).toBe(true);
  });

  it("an empty effect matches every effect; a set one must match", () => {
    expect(toleratesTaint({ key: "dedicated", operator: "Exists", effect: "" }, taint)).toBe(true);
    expect(toleratesTaint({ key: "dedicated", operator: "Exists", effect: "NoExecute" }, taint)).toBe(false);
  });

  it("an unknown operator tolerates nothing", () => {
    expect(toleratesTaint({ key: "dedicated", operator: "Gt", value: "1" }, taint)).toBe(false);
  });
});

describe("nodeEligibility", () => {
  const plain = schedulingConstraints(template());

  it("skips cordoned and NotReady nodes", () => {
    expect(nodeEligibility(node("n", { unschedulable: true }), plain)).toMatchObject({ eligible: false, reason: "Unschedulable" });
    expect(nodeEligibility(node("n", { ready: "Unknown" }), plain)).toMatchObject({ eligible: false, reason: "NotReady", detail: "Ready=Unknown" });
  });

  it("needs every nodeSelector label", () => {
    const constraints = schedulingConstraints(template({ nodeSelector: { type: "kwok", pool: "sims" } }));
    expect(nodeEligibility(node("n", { labels: { pool: "sims" } }), constraints).eligible).toBe(true);
    expect(nodeEligibility(node("n"), constraints)).toMatchObject({ eligible: false, reason: "NodeSelector", detail: "label pool=sims missing" });
  });

  it("needs NoSchedule and NoExecute taints tolerated, not PreferNoSchedule", () => {
    const kwokTaint = { key: "kwok.x-k8s.io/node", value: "fake", effect: "NoSchedule" };
    expect(nodeEligibility(node("n", { taints: [kwokTaint] }), plain)).toMatchObject({ eligible: false, reason: "Taint", detail: "taint kwok.x-k8s.io/node=fake:NoSchedule not tolerated" });
    const tolerant = schedulingConstraints(template({ tolerations: [{ key: "kwok.x-k8s.io/node", operator: "Exists", effect: "NoSchedule" }] }));
    expect(nodeEligibility(node("n", { taints: [kwokTaint] }), tolerant).eligible).toBe(true);
    expect(nodeEligibility(node("n", { taints: [{ key: "spot", effect: "PreferNoSchedule" }] }), plain).eligible).toBe(true);
    expect(nodeEligibility(node("n", { taints: [kwokTaint, { key: "gpu", effect: "NoExecute" }] }), tolerant).reason).toBe("Taint");
  });

  it("honours required node affinity", () => {
    const constraints = schedulingConstraints(
      template({
        affinity: {
          nodeAffinity: {
            requiredDuringSchedulingIgnoredDuringExecution: {
              nodeSelectorTerms: [{ matchExpressions: [{ key: "zone", operator: "In", values: ["a", "b"] }] }, { matchFields: [{ key: "metadata.name", operator: "In", values: ["special"] }] }],
            },
          },
        },
      }),
    );
    expect(nodeEligibility(node("n", { labels: { zone: "b" } }), constraints).eligible).toBe(true);
    expect(nodeEligibility(node("special"), constraints).eligible).toBe(true);
    expect(nodeEligibility(node("n", { labels: { zone: "c" } }), constraints)).toMatchObject({ eligible: false, reason: "NodeAffinity" });
  });
});

describe("matchesNodeSelectorTerms", () => {
  const n = node("n", { labels: { cores: "32", spot: "true" } });
  it.each([
    [{ key: "cores", operator: "Gt", values: ["16"] }, true],
    [{ key: "cores", operator: "Lt", values: ["16"] }, false],
    [{ key: "cores", operator: "Gt", values: ["x"] }, false],
    [{ key: "spot", operator: "Exists" }, true],
    [{ key: "gpu", operator: "DoesNotExist" }, true],
    [{ key: "spot", operator: "NotIn", values: ["true"] }, false],
    [{ key: "gpu", operator: "NotIn", values: ["a100"] }, true],
  ])("%o → %s", (requirement, expected) => {
    expect(matchesNodeSelectorTerms([{ matchExpressions: [requirement] }], n)).toBe(expected);
  });

  it("an empty term matches nothing", () => {
    expect(matchesNodeSelectorTerms([{}], n)).toBe(false);
  });
});

describe("address and slot arithmetic", () => {
  it("reserves network, gateway and broadcast in IPv4, network and gateway in IPv6", () => {
    expect(usableNodeCidrAddresses("10.244.1.0/24")).toEqual({ family: 4, usable: 253 });
    expect(usableNodeCidrAddresses("10.244.1.0/26")).toEqual({ family: 4, usable: 61 });
    expect(usableNodeCidrAddresses("10.244.1.0/31")).toEqual({ family: 4, usable: 0 });
    expect(usableNodeCidrAddresses("fd00:10:244:1::/64")).toEqual({ family: 6, usable: 1_000_000 });
    expect(usableNodeCidrAddresses("nonsense")).toBeUndefined();
  });

  it("reads allocatable pods", () => {
    expect(allocatablePods(node("n", { pods: "110" }))).toBe(110);
    expect(allocatablePods(node("n", { pods: "1k" }))).toBe(1000);
    expect(allocatablePods({})).toBe(0);
  });
});

describe("nodePodCidrHeadroom", () => {
  it("sums usable addresses minus pods on the pod network, over eligible nodes", () => {
    const nodes = [node("a", { podCIDRs: ["10.244.1.0/24"] }), node("b", { podCIDRs: ["10.244.2.0/24"] }), node("cordoned", { unschedulable: true })];
    const all = [
      ...pods("a", 100),
      ...pods("a", 5, "Pending"),
      ...pods("a", 20, "Succeeded"),
      ...pods("a", 3, "Failed"),
      ...pods("a", 2, "Running", true),
      ...pods("b", 10),
      ...pods("cordoned", 50),
      { spec: {}, status: { phase: "Pending" } }, // unscheduled: on no node yet
    ];
    const result = nodePodCidrHeadroom(nodes, podCountsByNode(all), template(), { perNode: true });
    // a: 253 − 105 IP pods = 148 free IPs; 110 − 107 non-terminal = 3 slots. b: 243 IPs, 100 slots.
    expect(result).toMatchObject({ provider: "NodePodCIDR", free: 148 + 243, capacity: 506, nodeSlots: 3 + 100, eligibleNodes: 2, ineligible: { Unschedulable: 1 } });
    expect(result.perNode?.find((r) => r.name === "a")).toMatchObject({ slots: 3, ipCapacity: 253, ipFree: 148 });
    expect(result.message).toBe("391 pod IPs free in the podCIDRs of 2 eligible nodes; skipped 1 Unschedulable");
  });

  it("bounds node slots by free addresses per node, so IPs on one node and slots on another do not add up", () => {
    const nodes = [node("ips-only", { podCIDRs: ["10.244.1.0/26"], pods: "110" }), node("slots-only", { podCIDRs: ["10.244.2.0/26"], pods: "250" })];
    const all = [...pods("ips-only", 100, "Running", true), ...pods("slots-only", 61)];
    const result = nodePodCidrHeadroom(nodes, podCountsByNode(all), template());
    // ips-only: 61 free IPs but 10 slots; slots-only: 0 free IPs but 189 slots.
    expect(result.free).toBe(61);
    expect(result.nodeSlots).toBe(10);
    expect(nodeCapacity(nodes, podCountsByNode(all), template()).nodeSlots).toBe(10 + 189);
  });

  it("counts pods beyond their node's addresses against the pool, and names those nodes, however the scheduler packed them", () => {
    // The case: /28s (13 usable addresses) on nodes allowing 110 pods, packed onto a few nodes.
    const nodes = Array.from({ length: 20 }, (_, i) => node(`n${String(i).padStart(2, "0")}`, { podCIDRs: [`10.244.${i}.0/28`] }));
    const packed = [...pods("n00", 110), ...pods("n01", 110), ...pods("n02", 87), ...pods("n03", 65), ...pods("n04", 64), ...pods("n05", 64)];
    const result = nodePodCidrHeadroom(nodes, podCountsByNode(packed), template());
    expect(result.capacity).toBe(260);
    // 500 pods on the pod network: the pool has no address left, wherever they stand.
    expect(result.free).toBe(0);
    expect(result.overflow).toEqual({ pods: 500 - 6 * 13, openNodes: 4, message: expect.stringContaining("422 pods stand beyond their node's podCIDR addresses on 6 nodes") });
    expect(result.overflow?.message).toContain("n00: 110 pods for 13 addresses, n01: 110 pods for 13 addresses, n02: 87 pods for 13 addresses and 3 more");
    expect(result.message).toContain(result.overflow?.message);
    // Spread one a node, as a spread constraint would place them: no overflow, 13 per node.
    const spread = nodes.flatMap((n) => pods(n.metadata?.name ?? "", 12));
    const even = nodePodCidrHeadroom(nodes, podCountsByNode(spread), template());
    expect(even).toMatchObject({ free: 260 - 240 });
    expect(even.overflow).toBeUndefined();
  });

  it("dual-stack: the IPv4 range decides", () => {
    const result = nodePodCidrHeadroom([node("d", { podCIDRs: ["10.244.1.0/24", "fd00:10:244:1::/64"] })], podCountsByNode(pods("d", 3)), template());
    expect(result.free).toBe(250);
  });

  it("is unknown, not zero, when no eligible node has podCIDRs", () => {
    const result = nodePodCidrHeadroom([node("x", { podCIDRs: [] })], new Map(), template());
    expect(result.free).toBeUndefined();
    expect(result.nodeSlots).toBe(110);
    expect(result.message).toContain("--allocate-node-cidrs");
  });

  it("counts only nodes the template can use", () => {
    const nodes = [node("gpu", { labels: { pool: "gpu" } }), node("sim", { labels: { pool: "sims" } })];
    const result = nodePodCidrHeadroom(nodes, new Map(), template({ nodeSelector: { pool: "sims" } }));
    expect(result).toMatchObject({ free: 253, nodeSlots: 110, eligibleNodes: 1, ineligible: { NodeSelector: 1 } });
  });

  it("scales: 1,000 kwok nodes with /24s and 110 pods each", () => {
    const nodes = Array.from({ length: 1_000 }, (_, i) => node(`kwok-node-${i}`, { podCIDRs: [`10.${(i >> 8) + 1}.${i & 255}.0/24`] }));
    const all = nodes.flatMap((n, i) => (i < 500 ? pods(n.metadata?.name ?? "", 40) : []));
    const result = nodePodCidrHeadroom(nodes, podCountsByNode(all), template());
    expect(result.free).toBe(1_000 * 253 - 500 * 40);
    expect(result.nodeSlots).toBe(1_000 * 110 - 500 * 40);
  });
});

describe("NodePodCounter", () => {
  it("counts pods in and out as they come and go, and forgets a node whose pods are all gone", () => {
    const counter = new NodePodCounter();
    const [a1, a2] = pods("a", 2);
    const [host] = pods("a", 1, "Running", true);
    const [b1] = pods("b", 1);
    for (const pod of [a1!, a2!, host!, b1!]) counter.add(pod);
    counter.add({ spec: {}, status: { phase: "Pending" } }); // not bound: counts nowhere
    expect(counter.counts).toEqual(
      new Map([
        ["a", { active: 3, withIp: 2 }],
        ["b", { active: 1, withIp: 1 }],
      ]),
    );
    counter.remove(a1!);
    // A deletion carries the pod's last state, finished or not: it removes what the addition added.
    counter.remove({ ...host!, status: { phase: "Succeeded" } });
    expect(counter.counts.get("a")).toEqual({ active: 1, withIp: 1 });
    counter.remove(b1!);
    expect(counter.counts.has("b")).toBe(false);
  });

  it("agrees with counting a list at once, which skips finished pods", () => {
    const all = [...pods("a", 7), ...pods("a", 2, "Running", true), ...pods("b", 3, "Failed"), ...pods("c", 4)];
    const counter = new NodePodCounter();
    for (const pod of all.filter((p) => p.status?.phase !== "Failed")) counter.add(pod);
    expect(counter.counts).toEqual(podCountsByNode(all));
    expect(podCountsByNode(all).has("b")).toBe(false);
  });
});
