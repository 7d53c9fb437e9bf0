import { describe, expect, it } from "vitest";
import { KIND, LABEL_NAME, LABEL_ORDINAL, LABEL_TEMPLATE_HASH } from "../../api/batchrollout.ts";
import { toObservedPod } from "./observed.ts";
import { rolloutKeyOf, slimPod } from "./pod-cache.ts";

// A pod as the API server sends it, trimmed to what matters here plus the fields slimPod drops.
function rawPod(overrides: { scheduled?: "True" | "False"; ready?: "True" | "False" } = {}) {
  return {
    metadata: {
      name: "sim-7",
      namespace: "ns",
      uid: "u-7",
      resourceVersion: "42",
      labels: { app: "sim", team: "x", [LABEL_NAME]: "sim", [LABEL_ORDINAL]: "7", [LABEL_TEMPLATE_HASH]: "abc" },
      annotations: { note: "big" },
      managedFields: [{ manager: "kube-scheduler" }],
      ownerReferences: [
        { apiVersion: "v1", kind: "Other", name: "o", uid: "o-1" },
        { apiVersion: "batchrollout.dev/v1alpha1", kind: KIND, name: "sim", uid: "r-1", controller: true, blockOwnerDeletion: true },
      ],
    },
    spec: { nodeName: overrides.scheduled === "False" ? undefined : "node-1", containers: [{ name: "c", image: "pause" }] },
    status: {
      phase: "Pending",
      podIP: "10.0.0.7",
      conditions: [
        { type: "Initialized", status: "True" },
        {
          type: "PodScheduled",
          status: overrides.scheduled ?? "True",
          ...(overrides.scheduled === "False" ? { reason: "Unschedulable", message: "0/3 nodes are available" } : {}),
        },
        { type: "ContainersReady", status: overrides.ready ?? "False", reason: "ContainersNotReady", message: "containers with unready status: [c]" },
        { type: "Ready", status: overrides.ready ?? "False", reason: "ContainersNotReady", message: "containers with unready status: [c]" },
      ],
    },
  };
}

describe("slimPod", () => {
  it("keeps only the operator's labels, the controller reference, and PodScheduled and Ready", () => {
    const pod = slimPod(rawPod());
    expect(pod.metadata.labels).toEqual({ [LABEL_NAME]: "sim", [LABEL_ORDINAL]: "7", [LABEL_TEMPLATE_HASH]: "abc" });
    expect(pod.metadata.ownerReferences).toEqual([{ kind: KIND, name: "sim", uid: "r-1", controller: true }]);
    expect(pod.status.conditions?.map((c) => c.type)).toEqual(["PodScheduled", "Ready"]);
    expect(pod.status.conditions?.find((c) => c.type === "Ready")?.message).toBeUndefined();
    expect(JSON.stringify(pod)).not.toMatch(/managedFields|annotations|podIP|containers|"app"/);
    expect(rolloutKeyOf(pod)).toBe("ns/sim");
  });

  it("keeps the scheduler's message while the pod is unschedulable", () => {
    const pod = slimPod(rawPod({ scheduled: "False" }));
    expect(pod.status.conditions?.[0]).toEqual({ type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/3 nodes are available" });
  });

  it.each([{}, { scheduled: "False" as const }, { ready: "True" as const }])("gives the planner the same view as the full pod (%j)", (overrides) => {
    const raw = rawPod(overrides);
    expect(toObservedPod(slimPod(raw))).toEqual(toObservedPod(raw));
  });

  it("shares the owner reference and the conditions between pods in the same state, frozen", () => {
    const a = slimPod(rawPod());
    const sibling = { ...rawPod(), metadata: { ...rawPod().metadata, name: "sim-8", uid: "u-8" } };
    const b = slimPod(sibling);
    expect(b.metadata.ownerReferences).toBe(a.metadata.ownerReferences);
    expect(b.status.conditions).toBe(a.status.conditions);
    expect(Object.isFrozen(a.status.conditions) && Object.isFrozen(a.status.conditions?.[0])).toBe(true);
    expect(slimPod(rawPod({ ready: "True" })).status.conditions).not.toBe(a.status.conditions);
    const otherMessage = rawPod({ scheduled: "False" });
    otherMessage.status.conditions[1] = { type: "PodScheduled", status: "False", reason: "Unschedulable", message: "0/4 nodes are available" };
    expect(slimPod(otherMessage).status.conditions?.[0]?.message).toBe("0/4 nodes are available");
  });

  it("gives every pod the same property layout, so the cache stays monomorphic", () => {
    const bare = slimPod({ metadata: { name: "p", namespace: "ns" } });
    const full = slimPod(rawPod());
    for (const part of ["metadata", "spec", "status"] as const) expect(Object.keys(bare[part])).toEqual(Object.keys(full[part]));
  });
});
