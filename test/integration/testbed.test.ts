import { BlockList } from "node:net";
import { Agent, request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubeClient } from "../../src/kube/client.ts";
import { isNotFound } from "../../src/kube/errors.ts";
import { PORTS } from "../cluster/layout.ts";
import { summarizeNodes } from "../cluster/cluster.ts";
import { adminClient, cluster, createTestNamespace, deleteNamespace, eventually, operatorClient } from "./support/cluster.ts";

// The test bed itself: the behaviours every later test relies on exist on this control plane.

interface Pod {
  metadata: { name: string; uid: string };
  spec: { nodeName?: string };
  status: { phase?: string; podIP?: string };
}
interface Node {
  spec: { podCIDR?: string };
}
interface NamedUid {
  metadata: { name: string; uid: string };
}

function inCidr(ip: string, cidr: string): boolean {
  const [network, prefix] = cidr.split("/");
  const block = new BlockList();
  block.addSubnet(network!, Number(prefix), "ipv4");
  return block.check(ip, "ipv4");
}

async function resolveApf(admin: KubeClient, headers: Record<string, unknown>): Promise<{ flowSchema?: string; priorityLevel?: string }> {
  const fsUid = headers["x-kubernetes-pf-flowschema-uid"];
  const plUid = headers["x-kubernetes-pf-prioritylevel-uid"];
  const flowSchemas = await admin.get<{ items: NamedUid[] }>("/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas");
  const levels = await admin.get<{ items: NamedUid[] }>("/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations");
  return {
    flowSchema: flowSchemas.items.find((f) => f.metadata.uid === fsUid)?.metadata.name,
    priorityLevel: levels.items.find((l) => l.metadata.uid === plUid)?.metadata.name,
  };
}

describe("local control plane", () => {
  let admin: KubeClient;
  let operator: KubeClient;
  let ns: string;

  beforeAll(async () => {
    admin = await adminClient();
    operator = await operatorClient();
    ns = await createTestNamespace(admin, "testbed");
  });
  afterAll(async () => {
    await deleteNamespace(admin, ns);
    await Promise.all([admin.close(), operator.close()]);
  });

  it("has every node Ready with its own podCIDR", async () => {
    const nodes = await summarizeNodes(cluster().binDir);
    expect(nodes.total).toBeGreaterThanOrEqual(cluster().nodes);
    expect(nodes.ready).toBe(nodes.total);
    expect(nodes.distinctPodCIDRs).toBe(nodes.total);
  });

  it("schedules a pod created by the non-exempt identity, runs it with an IP in its node's podCIDR, and garbage-collects it with its owner", async () => {
    // The operator's RBAC covers pods but not configmaps: admin makes the owner, the operator the pod.
    const owner = await admin.create<NamedUid>(`/api/v1/namespaces/${ns}/configmaps`, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "owner" },
    });
    await operator.create(`/api/v1/namespaces/${ns}/pods`, {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name: "probe",
        ownerReferences: [{ apiVersion: "v1", kind: "ConfigMap", name: owner.metadata.name, uid: owner.metadata.uid }],
      },
      spec: { containers: [{ name: "main", image: "registry.k8s.io/pause:3.10" }] },
    });

    const pod = await eventually("pod Running with an IP", async () => {
      const p = await operator.get<Pod>(`/api/v1/namespaces/${ns}/pods/probe`);
      return p.status.phase === "Running" && p.status.podIP ? p : undefined;
    });
    expect(pod.spec.nodeName).toBeTruthy();
    const node = await admin.get<Node>(`/api/v1/nodes/${pod.spec.nodeName}`);
    expect(node.spec.podCIDR).toBeTruthy();
    expect(inCidr(pod.status.podIP!, node.spec.podCIDR!)).toBe(true);

    await admin.delete(`/api/v1/namespaces/${ns}/configmaps/owner`);
    await eventually("pod garbage-collected", async () => {
      try {
        await operator.get(`/api/v1/namespaces/${ns}/pods/probe`);
        return false;
      } catch (err) {
        return isNotFound(err);
      }
    });
  });

  it("classifies the non-exempt identity into workload-low and admin into exempt (X-Kubernetes-PF-* headers)", async () => {
    const asOperator = await operator.request({ method: "GET", path: `/api/v1/namespaces/${ns}/pods` });
    const asAdmin = await admin.request({ method: "GET", path: `/api/v1/namespaces/${ns}/pods` });
    for (const res of [asOperator, asAdmin]) {
      expect(res.headers["x-kubernetes-pf-flowschema-uid"]).toBeTruthy();
      expect(res.headers["x-kubernetes-pf-prioritylevel-uid"]).toBeTruthy();
    }
    expect(await resolveApf(admin, asOperator.headers)).toEqual({ flowSchema: "service-accounts", priorityLevel: "workload-low" });
    expect(await resolveApf(admin, asAdmin.headers)).toEqual({ flowSchema: "exempt", priorityLevel: "exempt" });
  });

  it("exposes scheduler_pending_pods from kube-scheduler and apiserver_flowcontrol_current_inqueue_requests from kube-apiserver", async () => {
    const loopback = new Agent({ connect: { rejectUnauthorized: false } });
    const scheduler = await request(`https://127.0.0.1:${PORTS.scheduler}/metrics`, { dispatcher: loopback });
    expect(scheduler.statusCode).toBe(200);
    expect(await scheduler.body.text()).toMatch(/^scheduler_pending_pods\{queue="active"\} \d+/m);
    await loopback.close();

    // The operator's ClusterRole grants the /metrics nonResourceURL.
    const apiserver = await operator.request<string>({ method: "GET", path: "/metrics", accept: "text/plain", responseType: "text" });
    expect(apiserver.body).toMatch(/^apiserver_flowcontrol_current_inqueue_requests\{/m);
  });
});
