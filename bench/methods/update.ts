import { LABEL_ORDINAL } from "../../src/api/batchrollout.ts";
import { setTimeout as sleep } from "node:timers/promises";
import type { KubeClient } from "../../src/kube/client.ts";
import { methodDeadlineMs } from "../modes.ts";
import { podTemplate } from "../pod-template.ts";
import { ROLLOUT_NAME, rolloutsPath, startRollout } from "./batchrollout.ts";
import { DEPLOYMENT_NAME, deploymentBody } from "./deployment.ts";
import type { Method, MethodContext } from "./method.ts";

// The "update" pair (issue 27): the same fleet of N pods, Ready, then its template changed. A
// Deployment rolls it with RollingUpdate (maxSurge 25 %, maxUnavailable 25 %) at kube-controller-manager's
// pace; a BatchRollout replaces its pods in waves (spec.updateStrategy's defaults: RollingRecreate,
// maxUnavailable 25 %). The fleet is brought up before the clock starts; the clock starts at the
// template change, and only pods of the new template are watched (UPDATE_SELECTOR), so the makespan
// is "template changed → every new pod Running" and the correctness check is N distinct new pods.

/** The template label that changes: v1 → v2, so both controllers see a new template. */
export const TEMPLATE_LABEL = "bench.batchrollout.dev/template";
export const UPDATE_SELECTOR = `${TEMPLATE_LABEL}=v2`;
/** Deployment's RollingUpdate as in the issue (and Kubernetes' defaults). */
export const DEPLOYMENT_MAX_SURGE = "25%";
export const DEPLOYMENT_MAX_UNAVAILABLE = "25%";
/** DEPLOYMENT_MAX_SURGE as a share of N: the extra pod slots the nodes need during the Deployment's update. */
export const DEPLOYMENT_SURGE_SHARE = 0.25;
/** How often the fleet's readiness is polled while it comes up (before the clock). */
const READY_POLL_MS = 2_000;

function template(method: string, version: "v1" | "v2") {
  const t = podTemplate(method);
  return { ...t, metadata: { labels: { ...t.metadata.labels, [TEMPLATE_LABEL]: version } } };
}

/** Waits (before the clock) until the object's status says all N are Ready. */
async function waitReady(admin: KubeClient, path: string, n: number, what: string): Promise<void> {
  const deadline = Date.now() + methodDeadlineMs(n);
  for (;;) {
    const o = await admin.get<{ status?: { readyReplicas?: number } }>(path);
    if ((o.status?.readyReplicas ?? 0) >= n) return;
    if (Date.now() > deadline) throw new Error(`${what}: only ${o.status?.readyReplicas ?? 0}/${n} Ready before the update could start`);
    await sleep(READY_POLL_MS);
  }
}

const patchLabels = (version: "v1" | "v2") => ({ spec: { template: { metadata: { labels: { [TEMPLATE_LABEL]: version } } } } });

export const updateDeployment: Method = {
  id: "update-deployment",
  label: `Deployment RollingUpdate (maxSurge ${DEPLOYMENT_MAX_SURGE}, maxUnavailable ${DEPLOYMENT_MAX_UNAVAILABLE})`,
  writerIdentity: "replicaset-controller",
  pods: (n) => n,
  trackSelector: UPDATE_SELECTOR,
  async run(ctx: MethodContext) {
    const path = `/apis/apps/v1/namespaces/${ctx.namespace}/deployments`;
    const strategy = { type: "RollingUpdate", rollingUpdate: { maxSurge: DEPLOYMENT_MAX_SURGE, maxUnavailable: DEPLOYMENT_MAX_UNAVAILABLE } };
    await ctx.admin.create(path, deploymentBody(ctx.namespace, ctx.n, template("update-deployment", "v1"), strategy));
    await waitReady(ctx.admin, `${path}/${DEPLOYMENT_NAME}`, ctx.n, "Deployment");
    ctx.markStart();
    await ctx.admin.patch(`${path}/${DEPLOYMENT_NAME}`, patchLabels("v2"));
    return { stop: async () => undefined, notes: [`${ctx.n} pods Ready on template v1 before the clock; the clock starts at the patch to v2`] };
  },
};

export const updateBatchRollout: Method = {
  id: "update-batchrollout",
  label: "BatchRollout update (updateStrategy defaults)",
  writerIdentity: "writer",
  pods: (n) => n,
  trackSelector: UPDATE_SELECTOR,
  identityOf: (pod) => pod.metadata.labels[LABEL_ORDINAL] ?? pod.metadata.name,
  async run(ctx: MethodContext) {
    // The clock starts at the patch, not when the rollout is created.
    const operator = await startRollout({ ...ctx, markStart: () => undefined }, ctx.n, "update-batchrollout", template("update-batchrollout", "v1"));
    const path = `${rolloutsPath(ctx.namespace)}/${ROLLOUT_NAME}`;
    try {
      await waitReady(ctx.admin, path, ctx.n, "BatchRollout");
      ctx.markStart();
      await ctx.admin.patch(path, patchLabels("v2"));
    } catch (err) {
      await operator.stop();
      throw err;
    }
    return { stop: operator.stop, notes: [`${ctx.n} pods Ready on template v1 before the clock; the clock starts at the patch to v2; spec.updateStrategy left to its defaults`] };
  },
};
