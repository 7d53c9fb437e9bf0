import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import type { PodTemplate } from "../../api/batchrollout.ts";
import type { KubeResponse, Query, RequestOptions, WatchEvent } from "../../kube/client.ts";
import { nodePodCidrHeadroom, podCountsByNode } from "../ipam/node-pod-cidr.ts";
import { IpamNotReadyError, IpamSignals, apiGroupOf } from "./ipam.ts";
import { slimCalicoBlock, slimCiliumNode, slimWhereaboutsPool } from "./ipam-cni-objects.ts";
import { AWS_VPC_CNI_SCRAPE_MIN_INTERVAL_MS } from "./ipamd-scrape.ts";
import { MetricsEndpointError } from "./metrics-endpoint.ts";
import { ACTIVE_PODS_FIELD_SELECTOR, slimActivePod, slimNode } from "./node-slots.ts";

const logger = pino({ level: "silent" });
const TEMPLATE: PodTemplate = { spec: { containers: [{ name: "c", image: "busybox" }] } };

function node(name: string, podCIDR: string, opts: { labels?: Record<string, string>; ready?: boolean; pods?: string } = {}) {
  return {
    metadata: { name, resourceVersion: "1", labels: { "kubernetes.io/hostname": name, ...opts.labels }, annotations: { big: "x".repeat(100) }, managedFields: [{}] },
    spec: { podCIDR, podCIDRs: [podCIDR], providerID: "kwok://" + name },
    status: {
      allocatable: { pods: opts.pods ?? "110", cpu: "64" },
      capacity: { pods: "110" },
      conditions: [
        { type: "MemoryPressure", status: "False" },
        { type: "Ready", status: opts.ready === false ? "False" : "True", reason: "KubeletReady" },
      ],
      images: [{ names: ["busybox"] }],
    },
  };
}

function pod(name: string, nodeName: string, hostNetwork = false) {
  return {
    metadata: { name, namespace: "sims", resourceVersion: "2", labels: { app: "x" } },
    spec: { nodeName, hostNetwork, containers: [{ name: "c", image: "busybox" }] },
    status: { phase: "Running", podIP: "10.0.0.5" },
  };
}

const CALICO_GROUPS = ["apps", "crd.projectcalico.org"];

function calicoObjects() {
  const allocations = (used: number, size: number) => Array.from({ length: size }, (_, i) => (i < used ? i : null));
  return {
    pools: [{ metadata: { name: "pool-a", resourceVersion: "1" }, spec: { cidr: "10.200.0.0/25", blockSize: 26 } }],
    blocks: [
      { metadata: { name: "10-200-0-0-26", resourceVersion: "1" }, spec: { cidr: "10.200.0.0/26", affinity: "host:n1", allocations: allocations(61, 64), unallocated: [61, 62, 63], attributes: [{ handle_id: "h" }], strictAffinity: false } },
      { metadata: { name: "10-200-0-64-26", resourceVersion: "1" }, spec: { cidr: "10.200.0.64/26", affinity: "host:n2", allocations: allocations(63, 64), unallocated: [63], attributes: [], strictAffinity: false } },
    ],
  };
}

interface FakeOptions {
  groups?: string[];
  lists?: Record<string, unknown[]>;
  /** Paths whose list never answers. */
  hang?: string[];
}

function fakeClient(opts: FakeOptions) {
  const requests: RequestOptions[] = [];
  const client = {
    request: async <T>(o: RequestOptions): Promise<KubeResponse<T>> => {
      requests.push(o);
      if (o.path === "/apis") return { code: 200, headers: {}, body: { groups: (opts.groups ?? []).map((name) => ({ name })) } as T };
      if (opts.hang?.includes(o.path)) await new Promise((_, reject) => o.signal?.addEventListener("abort", () => reject(new Error("aborted")), { once: true }));
      return { code: 200, headers: {}, body: { metadata: { resourceVersion: "5" }, items: opts.lists?.[o.path] ?? [] } as T };
    },
    // A watch that stays open until the informer stops, carrying what the test pushes.
    async *watch<T>(path: string, _query: Query, signal: AbortSignal): AsyncGenerator<WatchEvent<T>> {
      const queue: WatchEvent<unknown>[] = [];
      let wake = () => {};
      watches.set(path, (event) => {
        queue.push(event);
        wake();
      });
      while (!signal.aborted) {
        for (let event = queue.shift(); event; event = queue.shift()) yield event as WatchEvent<T>;
        await new Promise<void>((resolve) => {
          wake = resolve;
          signal.addEventListener("abort", () => resolve(), { once: true });
        });
      }
    },
  };
  const watches = new Map<string, (event: WatchEvent<unknown>) => void>();
  const push = async (path: string, event: WatchEvent<unknown>) => {
    watches.get(path)?.(event);
    await new Promise((resolve) => setTimeout(resolve, 0));
  };
  return { client, requests, push };
}

const NODES = [node("n1", "10.0.1.0/24"), node("n2", "10.0.2.0/24", { labels: { pool: "gpu" } }), node("n3", "10.0.3.0/24", { ready: false })];
const PODS = [pod("a", "n1"), pod("b", "n1"), pod("h", "n1", true), pod("c", "n2")];

describe("slim transforms", () => {
  it("slimNode keeps what eligibility and headroom read, and gives the same arithmetic", () => {
    const slim = slimNode(NODES[0]!);
    expect(slim).toEqual({
      metadata: { name: "n1", resourceVersion: "1", labels: { "kubernetes.io/hostname": "n1" } },
      spec: { podCIDR: "10.0.1.0/24", podCIDRs: ["10.0.1.0/24"] },
      status: { allocatable: { pods: "110" }, conditions: [{ type: "Ready", status: "True" }] },
    });
    const full = nodePodCidrHeadroom(NODES, podCountsByNode(PODS), TEMPLATE);
    const slimmed = nodePodCidrHeadroom(NODES.map(slimNode), podCountsByNode(PODS.map(slimActivePod)), TEMPLATE);
    expect(slimmed).toEqual(full);
  });

  it("slimNode keeps taints and cordon", () => {
    const raw = { metadata: { name: "t" }, spec: { unschedulable: true, taints: [{ key: "k", effect: "NoSchedule", timeAdded: "x" }] } };
    expect(slimNode(raw).spec).toEqual({ unschedulable: true, taints: [{ key: "k", effect: "NoSchedule" }] });
  });

  it("slimActivePod keeps the node and hostNetwork only", () => {
    expect(slimActivePod(pod("h", "n1", true))).toEqual({ metadata: { name: "h", namespace: "sims", resourceVersion: "2" }, spec: { nodeName: "n1", hostNetwork: true } });
  });

  it("slimCalicoBlock drops attributes and keeps allocations", () => {
    const slim = slimCalicoBlock(calicoObjects().blocks[0]!);
    expect(slim.spec).not.toHaveProperty("attributes");
    expect(slim.spec.allocations).toHaveLength(64);
    expect(slim.spec.affinity).toBe("host:n1");
  });

  it("slimCiliumNode keeps the IPAM pool and usage", () => {
    const raw = { metadata: { name: "n1" }, spec: { eni: { "instance-type": "m5" }, ipam: { pool: { "10.0.0.1": {} } } }, status: { eni: { enis: {} }, ipam: { used: { "10.0.0.1": { owner: "p" } } } } };
    expect(slimCiliumNode(raw)).toEqual({ metadata: { name: "n1" }, spec: { ipam: { pool: { "10.0.0.1": {} } } }, status: { ipam: { used: { "10.0.0.1": { owner: "p" } } } } });
  });

  it("slimWhereaboutsPool keeps the range and the allocated offsets", () => {
    const raw = { metadata: { name: "p", namespace: "kube-system" }, spec: { range: "10.9.0.0/24", allocations: { "1": { id: "x", podref: "ns/p" } } } };
    expect(slimWhereaboutsPool(raw)).toEqual({ metadata: { name: "p", namespace: "kube-system" }, spec: { range: "10.9.0.0/24", allocations: { "1": {} } } });
  });
});

describe("apiGroupOf", () => {
  it("names the group of CRD-backed providers only", () => {
    expect(apiGroupOf("Calico")).toBe("crd.projectcalico.org");
    expect(apiGroupOf("NodePodCIDR")).toBeUndefined();
  });
});

describe("IpamSignals", () => {
  const controllers: AbortController[] = [];
  afterEach(() => {
    for (const c of controllers.splice(0)) c.abort();
  });
  /** An IpamSignals over the fake client, running; `sync: false` leaves its caches to the test. */
  async function signals(opts: FakeOptions, extra: Partial<ConstructorParameters<typeof IpamSignals>[0]> = {}, { sync = true } = {}) {
    const c = new AbortController();
    controllers.push(c);
    const fake = fakeClient({ ...opts, lists: { "/api/v1/nodes": NODES, "/api/v1/pods": PODS, ...opts.lists } });
    const ipam = new IpamSignals({ client: fake.client, logger, signal: c.signal, ...extra });
    void ipam.run();
    if (sync) await ipam.waitForSync();
    return { ...fake, ipam };
  }

  it("NodePodCIDR: the arithmetic over the cached nodes and bound, active pods", async () => {
    const { ipam, requests } = await signals({});
    const reading = await ipam.read({ provider: "Auto", template: TEMPLATE });
    const expected = nodePodCidrHeadroom(NODES, podCountsByNode(PODS), TEMPLATE);
    expect(reading.choice.provider).toBe("NodePodCIDR");
    expect(reading.headroom).toMatchObject({ provider: "NodePodCIDR", free: expected.free, capacity: expected.capacity });
    expect(reading.nodeSlots).toBe(expected.nodeSlots);
    expect(requests.find((r) => r.path === "/api/v1/pods")?.query?.fieldSelector).toBe(ACTIVE_PODS_FIELD_SELECTOR);
    // No CNI objects were asked for.
    expect(requests.map((r) => r.path).filter((p) => p.startsWith("/apis/"))).toEqual([]);
  });

  it("honours the template's node selector", async () => {
    const { ipam } = await signals({});
    const template: PodTemplate = { spec: { ...TEMPLATE.spec, nodeSelector: { pool: "gpu" } } };
    const reading = await ipam.read({ provider: "NodePodCIDR", template });
    expect(reading.headroom?.free).toBe(253 - 1);
  });

  it("follows the active-pod watch: a pod bound adds to its node's count, a pod finished or deleted leaves it", async () => {
    const { ipam, push } = await signals({});
    const read = async () => (await ipam.read({ provider: "NodePodCIDR", template: TEMPLATE })).headroom?.free;
    const before = await read();
    await push("/api/v1/pods", { type: "ADDED", object: { ...pod("d", "n2"), metadata: { ...pod("d", "n2").metadata, resourceVersion: "6" } } });
    expect(await read()).toBe(before! - 1);
    // Leaving the field selector (Succeeded) arrives as DELETED with the pod's final state.
    await push("/api/v1/pods", { type: "DELETED", object: { ...pod("a", "n1"), status: { phase: "Succeeded" } } });
    await push("/api/v1/pods", { type: "DELETED", object: pod("h", "n1", true) }); // hostNetwork: held a slot, no address
    expect(await read()).toBe(before! - 1 + 1);
    // A DELETED for a pod never seen changes nothing.
    await push("/api/v1/pods", { type: "DELETED", object: pod("never", "n1") });
    expect(await read()).toBe(before);
    expect((await ipam.read({ provider: "None", template: TEMPLATE })).nodeSlots).toBe(110 - 1 + (110 - 2));
  });

  it("says which pods its node counts already include", async () => {
    const { ipam, push } = await signals({});
    const d = pod("d", "n2");
    expect(ipam.counts(d.metadata.namespace ?? "", "d")).toBe(false);
    await push("/api/v1/pods", { type: "ADDED", object: { ...d, metadata: { ...d.metadata, resourceVersion: "6" } } });
    expect(ipam.counts(d.metadata.namespace ?? "", "d")).toBe(true);
  });

  it("returns the memoised reading while no cache event happened", async () => {
    const { ipam } = await signals({});
    const a = await ipam.read({ provider: "NodePodCIDR", template: TEMPLATE });
    const b = await ipam.read({ provider: "NodePodCIDR", template: TEMPLATE });
    expect(b).toBe(a);
  });

  it("Auto picks Calico when discovery serves it, and counts the free addresses of the blocks", async () => {
    const { pools, blocks } = calicoObjects();
    const { ipam, requests } = await signals({
      groups: CALICO_GROUPS,
      lists: { "/apis/crd.projectcalico.org/v1/ippools": pools, "/apis/crd.projectcalico.org/v1/ipamblocks": blocks },
    });
    const reading = await ipam.read({ provider: "Auto", template: TEMPLATE });
    expect(reading.choice).toEqual({ provider: "Calico", reason: "Auto: API group crd.projectcalico.org is served" });
    expect(reading.headroom).toMatchObject({ provider: "Calico", free: 4, capacity: 128 });
    expect(reading.headroom).not.toHaveProperty("pools");
    // Blocks of nodes the template cannot use are not counted.
    const gpuOnly = await ipam.read({ provider: "Calico", template: { spec: { ...TEMPLATE.spec, nodeSelector: { pool: "gpu" } } } });
    expect(gpuOnly.headroom?.free).toBe(1);
    expect(requests.filter((r) => r.path === "/apis")).toHaveLength(1);
  });

  it("an explicit provider whose API group is not served reports unknown headroom without watching", async () => {
    const { ipam, requests } = await signals({ groups: ["apps"] });
    const reading = await ipam.read({ provider: "Cilium", template: TEMPLATE });
    expect(reading.headroom).toEqual({ provider: "Cilium", free: undefined, message: "API group cilium.io is not served (is Cilium installed?); IP headroom unknown" });
    expect(reading.nodeSlots).toBeGreaterThan(0);
    expect(requests.some((r) => r.path.includes("ciliumnodes"))).toBe(false);
  });

  it("None reports node slots only", async () => {
    const { ipam } = await signals({});
    const reading = await ipam.read({ provider: "None", template: TEMPLATE });
    expect(reading.headroom).toBeUndefined();
    // n1: 110 − 3 pods, n2: 110 − 1 pod, n3 is NotReady.
    expect(reading.nodeSlots).toBe(107 + 109);
  });

  it("Whereabouts sums its pools", async () => {
    const pool = { metadata: { name: "p", namespace: "kube-system" }, spec: { range: "10.9.0.0/29", allocations: { "1": { id: "x", podref: "ns/p" } } } };
    const { ipam } = await signals({ groups: ["whereabouts.cni.cncf.io"], lists: { "/apis/whereabouts.cni.cncf.io/v1alpha1/ippools": [pool] } });
    const reading = await ipam.read({ provider: "Auto", template: TEMPLATE });
    expect(reading.headroom).toMatchObject({ provider: "Whereabouts", free: 5, capacity: 6 });
  });

  it("AwsVpcCni scrapes the metrics URL at most once per interval, and quotes no response body", async () => {
    let now = 0;
    let scrapes = 0;
    let answer: string | Error = "awscni_total_ip_addresses 30\nawscni_assigned_ip_addresses 12\n";
    const endpoint = (url: string) => ({
      url,
      close: async () => undefined,
      scrape: async () => {
        scrapes += 1;
        if (answer instanceof Error) throw answer;
        return answer;
      },
    });
    const { ipam } = await signals({}, { clock: () => now, metricsEndpoint: endpoint });
    const request = { provider: "AwsVpcCni" as const, template: TEMPLATE, metricsURL: "http://ipamd:61678/metrics" };
    expect((await ipam.read(request)).headroom).toMatchObject({ free: 18, capacity: 30 });
    await ipam.read(request);
    expect(scrapes).toBe(1);
    now += AWS_VPC_CNI_SCRAPE_MIN_INTERVAL_MS;
    answer = new MetricsEndpointError(request.metricsURL, "HTTP 500: secret internal page", 500);
    const failed = (await ipam.read(request)).headroom;
    expect(failed?.free).toBeUndefined();
    expect(failed?.message).toContain("HTTP 500");
    expect(failed?.message).not.toContain("secret");
    expect((await ipam.read({ ...request, metricsURL: undefined })).headroom?.message).toContain("metricsURL is required");
  });

  it("throws IpamNotReadyError at once while a cache has not synced, and start-up stops waiting for it after the timeout", async () => {
    let now = 0;
    const { ipam } = await signals({ hang: ["/api/v1/nodes"] }, { syncTimeoutMs: 50, clock: () => now }, { sync: false });
    await ipam.waitForSync();
    expect(ipam.hasSynced).toBe(false);
    now += 50;
    await expect(ipam.read({ provider: "NodePodCIDR", template: TEMPLATE })).rejects.toThrow(IpamNotReadyError);
    await expect(ipam.read({ provider: "NodePodCIDR", template: TEMPLATE })).rejects.toThrow(/cache nodes not synced after 50 ms/);
  });

  it("reads nothing before run(): no cache is watched, so no pod is counted and no reading is made", async () => {
    const fake = fakeClient({});
    const ipam = new IpamSignals({ client: fake.client, logger, signal: new AbortController().signal });
    expect(ipam.counts("sims", "a")).toBe(false);
    await expect(ipam.read({ provider: "NodePodCIDR", template: TEMPLATE })).rejects.toThrow(/run\(\) was not called/);
    await expect(ipam.read({ provider: "Auto", template: TEMPLATE })).rejects.toThrow(/discovery has not answered/);
    expect(fake.requests).toEqual([]);
  });

  it("starts a CNI's caches when discovery finds its group, not on a read", async () => {
    const { pools, blocks } = calicoObjects();
    const { ipam, requests } = await signals({
      groups: CALICO_GROUPS,
      lists: { "/apis/crd.projectcalico.org/v1/ippools": pools, "/apis/crd.projectcalico.org/v1/ipamblocks": blocks },
    });
    // Synced before any rollout asked: a reading needs no I/O.
    const before = requests.length;
    expect(ipam.hasSynced).toBe(true);
    expect((await ipam.read({ provider: "Calico", template: TEMPLATE })).headroom).toMatchObject({ provider: "Calico", free: 4 });
    expect(requests).toHaveLength(before);
  });
});
