import { describe, expect, it } from "vitest";
import type { KubeClient } from "../../src/kube/client.ts";
import { isNotFound } from "../../src/kube/errors.ts";
import { NODES, resourcePath } from "../../src/kube/resources.ts";
import { eventually } from "./support/cluster.ts";
import { conditionOf, createRollout, getRollout, listPods, podTemplate, rolloutPath, useTestBed, type TestRollout } from "./support/batchrollout.ts";

// Kubelet backlog: pods bound to a node whose kubelet never starts them (a Node object kwok does not
// manage, named in the template's nodeName so no scheduler is involved) stay Pending. The rollout
// must stop at spec.guards.kubelet.maxStarting, say so in status as a wait (not a stall), go on when
// the guard is raised, and still delete pods when scaled down: the guard holds creates only.

const NAME = "unstarted";
/** No kwok.x-k8s.io/node annotation: kwok leaves this node and its pods alone. */
const NODE = "batchrollout-test-no-kubelet";
const REPLICAS = 120;
const MAX_STARTING = 40;
const RAISED = 80;
/** Fixed waves smaller than the guard's room, so the guard (not the wave size) decides where creation stops. */
const WAVES = { strategy: "Fixed", initialSize: 15, minInterval: "0s" };
/** "Holds": no pod added for this long after the guard closed. */
const QUIET_MS = 5_000;
const STEP_TIMEOUT_MS = 60_000;
const TEST_TIMEOUT_MS = 240_000;

async function deleteNode(admin: KubeClient): Promise<void> {
  await admin.delete(resourcePath(NODES, { name: NODE })).catch((err: unknown) => {
    if (!isNotFound(err)) throw err;
  });
}

/** The rollout once it holds at `max` starting pods with the Kubelet guard closed. */
function heldAt(admin: KubeClient, ns: string, max: number): Promise<TestRollout> {
  return eventually(
    `the rollout held by the Kubelet guard at ${max} starting pods`,
    async () => {
      const r = await getRollout(admin, ns, NAME);
      const s = r.status;
      return s?.wave?.limitedBy === "Kubelet" && s.wave.size === 0 && s.signals?.kubelet?.starting === max ? r : undefined;
    },
    STEP_TIMEOUT_MS,
  );
}

describe("adaptive waves against nodes that do not start their pods", () => {
  const bed = useTestBed();

  it(
    "stops at spec.guards.kubelet.maxStarting (limitedBy Kubelet, a wait), resumes when it is raised, and still scales down",
    async () => {
      const ns = await bed.namespace("adaptive-kubelet");
      const { admin } = bed;
      await deleteNode(admin);
      await admin.create(resourcePath(NODES), { apiVersion: "v1", kind: "Node", metadata: { name: NODE } });
      try {
        bed.operator();
        const base = podTemplate() as { spec: Record<string, unknown> };
        // The node never reports Ready, so the node lifecycle controller taints it NoExecute at once;
        // the pods tolerate that for good, not for the default 300 s, so a slow run is not evicted.
        const template = { ...base, spec: { ...base.spec, nodeName: NODE, tolerations: [{ operator: "Exists" }] } };
        await createRollout(admin, ns, NAME, { replicas: REPLICAS, template, waves: WAVES, guards: { kubelet: { maxStarting: MAX_STARTING } } });

        const held = await heldAt(admin, ns, MAX_STARTING);
        await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
        const pods = await listPods(admin, ns);
        console.log(`[figure] kubelet backlog: held at ${pods.length} of ${REPLICAS} pods, wave ${held.status?.wave?.number}: ${held.status?.wave?.message}`);
        expect(pods).toHaveLength(MAX_STARTING);
        expect(pods.every((p) => p.spec?.nodeName === NODE && p.status?.phase === "Pending")).toBe(true);
        expect(held.status?.wave?.message).toContain(`spec.guards.kubelet.maxStarting ${MAX_STARTING}`);
        expect(conditionOf(held, "Stalled")?.status).not.toBe("True");
        expect(conditionOf(held, "Progressing")).toMatchObject({ status: "True", reason: "WaitingForCapacity" });

        await admin.patch(rolloutPath(ns, NAME), { spec: { guards: { kubelet: { maxStarting: RAISED } } } });
        await heldAt(admin, ns, RAISED);
        expect(await listPods(admin, ns)).toHaveLength(RAISED);

        // Deletes relieve the guard, so it must not hold them: every pod gets its deletion (and, with
        // no kubelet to confirm it, stays Terminating until teardown removes it with grace 0).
        await admin.patch(rolloutPath(ns, NAME), { spec: { replicas: 0 } });
        await eventually(
          "every pod being deleted",
          async () => (await listPods(admin, ns)).every((p) => p.metadata.deletionTimestamp !== undefined),
          STEP_TIMEOUT_MS,
        );
      } finally {
        await deleteNode(admin);
      }
    },
    TEST_TIMEOUT_MS,
  );
});
