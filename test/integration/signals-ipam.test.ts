import { randomInt } from "node:crypto";
import { readFileSync } from "node:fs";
import { pino } from "pino";
import { parse } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PodTemplate } from "../../src/api/batchrollout.ts";
import type { KubeClient } from "../../src/kube/client.ts";
import { isAlreadyExists, isNotFound } from "../../src/kube/errors.ts";
import { NODES, PODS, resourcePath } from "../../src/kube/resources.ts";
import { type NodeLike, type PodLike, nodePodCidrHeadroom, podCountsByNode } from "../../src/ratelimit/ipam/node-pod-cidr.ts";
import { IpamSignals } from "../../src/ratelimit/signals/ipam.ts";
import { CALICO_IPAMBLOCKS, CALICO_IPPOOLS } from "../../src/ratelimit/signals/ipam-cni-objects.ts";
import { adminClient, createTestNamespace, deleteNamespace, eventually, operatorClient } from "./support/cluster.ts";

// IP headroom with I/O against the real API server. Calico: our CRD fixtures are installed (and
// removed again if this test installed them, so Auto elsewhere keeps choosing NodePodCIDR), IPPool and
// IPAMBlock objects describe nearly full blocks, and the provider, reading them through its
// informers as the operator's ServiceAccount, reports exactly the addresses left. NodePodCIDR: the
// live cluster's figure equals the arithmetic over nodes and pods listed directly.

const logger = pino({ level: process.env.BATCHROLLOUT_TEST_LOG ?? "silent" });
// Our minimal CRDs for the CNIs' IPAM objects (see its README), so the test needs nothing beside the clone.
const CRD_DIR = new URL("../fixtures/crds/", import.meta.url);
const CALICO_CRDS = ["calico-ippools.yaml", "calico-ipamblocks.yaml"];
const ALL_CRDS = [...CALICO_CRDS, "calico-blockaffinities.yaml", "cilium-ciliumnodes.yaml", "whereabouts-ippools.yaml"];
const TEST_LABEL = { "batchrollout.dev/test": "signals-ipam" };
const TEMPLATE: PodTemplate = { spec: { containers: [{ name: "main", image: "registry.k8s.io/pause:3.10" }] } };
const CRDS_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";

interface Crd {
  metadata: { name: string };
  spec: { group: string };
  status?: { conditions?: Array<{ type: string; status: string }> };
}

/** Creates the CRD unless it exists, waits until it is Established; true when this call created it. */
async function ensureCrd(admin: KubeClient, file: string): Promise<{ name: string; created: boolean }> {
  const crd = parse(readFileSync(new URL(file, CRD_DIR), "utf8")) as Crd;
  const name = crd.metadata.name;
  let created = false;
  try {
    await admin.get(`${CRDS_PATH}/${name}`);
  } catch (err) {
    if (!isNotFound(err)) throw err;
    await admin.create(CRDS_PATH, crd);
    created = true;
  }
  await eventually(`CRD ${name} Established`, async () => {
    const current = await admin.get<Crd>(`${CRDS_PATH}/${name}`);
    return current.status?.conditions?.some((c) => c.type === "Established" && c.status === "True");
  });
  // The signal asks discovery at start whether the group is served, and again only minutes later.
  await eventually(`${crd.spec.group} in discovery`, async () => {
    const apis = await admin.get<{ groups?: Array<{ name: string }> }>("/apis");
    return apis.groups?.some((g) => g.name === crd.spec.group);
  });
  return { name, created };
}

/** An IPAMBlock of a /26 with `used` of its 64 addresses taken, affine to `node`. */
function ipamBlock(cidr: string, node: string, used: number) {
  const allocations = Array.from({ length: 64 }, (_, i) => (i < used ? i : null));
  return {
    apiVersion: "crd.projectcalico.org/v1",
    kind: "IPAMBlock",
    metadata: { name: cidr.replace(/[./]/g, "-"), labels: TEST_LABEL },
    spec: {
      cidr,
      affinity: `host:${node}`,
      allocations,
      unallocated: Array.from({ length: 64 - used }, (_, i) => used + i),
      attributes: Array.from({ length: used }, (_, i) => ({ handle_id: `k8s-pod-network.test-${i}`, secondary: { node, namespace: "sims", pod: `sim-${i}` } })),
      strictAffinity: false,
      deleted: false,
    },
  };
}

async function listAll<T>(client: KubeClient, path: string): Promise<T[]> {
  const items: T[] = [];
  let token: string | undefined;
  do {
    const page = await client.request<{ items: T[]; metadata: { continue?: string } }>({ method: "GET", path, query: { limit: 500, continue: token } });
    items.push(...page.body.items);
    token = page.body.metadata.continue || undefined;
  } while (token);
  return items;
}

describe("IpamSignals", () => {
  let admin: KubeClient;
  let operator: KubeClient;
  const stop = new AbortController();

  /** Started as the operator starts it: its caches and discovery run before any reading. */
  async function started(): Promise<IpamSignals> {
    const ipam = new IpamSignals({ client: operator, logger, signal: stop.signal });
    void ipam.run();
    await ipam.waitForSync();
    return ipam;
  }

  beforeAll(async () => {
    admin = await adminClient();
    operator = await operatorClient();
  });

  afterAll(async () => {
    stop.abort();
    await Promise.all([admin.close(), operator.close()]);
  });

  it("every IPAM CRD fixture passes the API server's validation (dry run: nothing is installed)", async () => {
    // A dry run keeps the Cilium and Whereabouts groups out of discovery, where Auto would see them.
    for (const file of ALL_CRDS) {
      const crd = parse(readFileSync(new URL(file, CRD_DIR), "utf8")) as Crd;
      // AlreadyExists comes after validation, so a CRD installed already has passed it too.
      await admin.request({ method: "POST", path: CRDS_PATH, query: { dryRun: "All" }, body: crd }).catch((err: unknown) => {
        if (!isAlreadyExists(err)) throw err;
      });
    }
  });

  it("Calico: counts exactly the free addresses of nearly full blocks, and follows their changes", async () => {
    const crds = [];
    for (const file of CALICO_CRDS) crds.push(await ensureCrd(admin, file));
    const created: string[] = [];
    try {
      // Leftovers of an interrupted run would be counted too.
      for (const type of [CALICO_IPAMBLOCKS, CALICO_IPPOOLS]) {
        // Retried: a CRD's REST handler can trail its Established condition by a moment.
        await eventually(`no test ${type.plural} left`, () =>
          admin.request({ method: "DELETE", path: resourcePath(type), query: { labelSelector: "batchrollout.dev/test=signals-ipam" } }).then(() => true),
        );
      }
      const foreign = await admin.get<{ items: unknown[] }>(resourcePath(CALICO_IPPOOLS));
      expect(foreign.items, "only this test's Calico IPPools may exist on the test bed").toEqual([]);

      // A /25 pool of two /26 blocks, both claimed: 61 and 63 of 64 addresses used → 3 + 1 free.
      const octet = randomInt(0, 256);
      const pool = `brtest-${octet}`;
      await admin.create(resourcePath(CALICO_IPPOOLS), {
        apiVersion: "crd.projectcalico.org/v1",
        kind: "IPPool",
        metadata: { name: pool, labels: TEST_LABEL },
        spec: { cidr: `10.250.${octet}.0/25`, blockSize: 26, ipipMode: "Never", vxlanMode: "Never", natOutgoing: true, nodeSelector: "all()" },
      });
      created.push(`${resourcePath(CALICO_IPPOOLS)}/${pool}`);
      for (const [cidr, node, used] of [[`10.250.${octet}.0/26`, "kwok-node-0000", 61], [`10.250.${octet}.64/26`, "kwok-node-0001", 63]] as const) {
        const block = ipamBlock(cidr, node, used);
        await admin.create(resourcePath(CALICO_IPAMBLOCKS), block);
        created.push(`${resourcePath(CALICO_IPAMBLOCKS)}/${block.metadata.name}`);
      }

      const ipam = await started();
      const reading = await eventually("Calico headroom from the informers", async () => {
        const r = await ipam.read({ provider: "Calico", template: TEMPLATE });
        return r.headroom?.free === 4 ? r : undefined;
      });
      expect(reading.headroom).toMatchObject({ provider: "Calico", free: 4, capacity: 128 });
      expect(reading.headroom?.message).toContain(`${pool} 4/128`);
      expect(reading.nodeSlots).toBeGreaterThan(0);

      // Auto sees the group through discovery.
      const auto = await (await started()).read({ provider: "Auto", template: TEMPLATE });
      expect(auto.choice).toEqual({ provider: "Calico", reason: "Auto: API group crd.projectcalico.org is served" });

      // A pod on kwok-node-0000 goes away: its address is free again, and the watch says so.
      const freed = ipamBlock(`10.250.${octet}.0/26`, "kwok-node-0000", 60);
      await admin.patch(`${resourcePath(CALICO_IPAMBLOCKS)}/${freed.metadata.name}`, { spec: { allocations: freed.spec.allocations, unallocated: freed.spec.unallocated } });
      await eventually("the freed address counted", async () => (await ipam.read({ provider: "Calico", template: TEMPLATE })).headroom?.free === 5);

      // Blocks affine to nodes the template cannot use are not counted.
      const onlyNode1 = await ipam.read({ provider: "Calico", template: { spec: { ...TEMPLATE.spec, nodeSelector: { "kubernetes.io/hostname": "kwok-node-0001" } } } });
      expect(onlyNode1.headroom?.free).toBe(1);
    } finally {
      for (const path of created.reverse()) await admin.delete(path).catch(() => undefined);
      // Removing the CRDs we installed keeps Auto on NodePodCIDR for every other test.
      for (const crd of crds) if (crd.created) await admin.delete(`${CRDS_PATH}/${crd.name}`).catch(() => undefined);
    }
  });

  it("NodePodCIDR: the live cluster's headroom equals the arithmetic over nodes and pods listed directly", async () => {
    const ns = await createTestNamespace(admin, "signals-ipam");
    try {
      // Some bound pods, one of them on the host network (a slot, no address).
      const pods = resourcePath(PODS, { namespace: ns });
      for (let i = 0; i < 4; i++) await operator.create(pods, { apiVersion: "v1", kind: "Pod", metadata: { name: `p-${i}` }, spec: TEMPLATE.spec });
      await operator.create(pods, { apiVersion: "v1", kind: "Pod", metadata: { name: "host" }, spec: { ...TEMPLATE.spec, hostNetwork: true } });
      await eventually("test pods bound", async () => {
        const list = await admin.get<{ items: PodLike[] }>(pods);
        return list.items.length === 5 && list.items.every((p) => p.spec?.nodeName);
      });

      const ipam = await started();
      const templates: PodTemplate[] = [TEMPLATE, { spec: { ...TEMPLATE.spec, nodeSelector: { "kubernetes.io/hostname": "kwok-node-0003" } } }];
      for (const template of templates) {
        // Other tests create pods meanwhile: compare until a reading and a direct listing agree.
        const [reading, direct] = await eventually("provider and direct arithmetic agree", async () => {
          const nodes = await listAll<NodeLike>(admin, resourcePath(NODES));
          const all = await listAll<PodLike>(admin, resourcePath(PODS));
          const expected = nodePodCidrHeadroom(nodes, podCountsByNode(all), template);
          const r = await ipam.read({ provider: "NodePodCIDR", template });
          return r.headroom?.free === expected.free && r.nodeSlots === expected.nodeSlots ? ([r, expected] as const) : undefined;
        });
        expect(reading.headroom).toMatchObject({ provider: "NodePodCIDR", free: direct.free, capacity: direct.capacity, message: direct.message });
        expect(reading.nodeSlots).toBe(direct.nodeSlots);
        expect(direct.free).toBeGreaterThan(0);
      }
    } finally {
      await deleteNamespace(admin, ns);
    }
  });
});
