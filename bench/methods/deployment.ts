import { podTemplate } from "../pod-template.ts";
import type { Method } from "./method.ts";

// One Deployment of N replicas, left to kube-controller-manager (default --kube-api-qps 20), whose
// replicaset controller writes the pods under its own identity, as in production. The Deployment
// object itself is one request made by the admin.

export const DEPLOYMENT_NAME = "bench";

/** The bench's Deployment of n pods from template t (its pods also carry the Deployment's selector). */
export function deploymentBody(namespace: string, n: number, t: ReturnType<typeof podTemplate>, strategy?: Record<string, unknown>) {
  const selector = { app: "bench", "bench.batchrollout.dev/deployment": DEPLOYMENT_NAME };
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: DEPLOYMENT_NAME, namespace },
    spec: {
      replicas: n,
      selector: { matchLabels: selector },
      ...(strategy ? { strategy } : {}),
      template: { metadata: { labels: { ...t.metadata.labels, ...selector } }, spec: t.spec },
    },
  };
}

export const deployment: Method = {
  id: "deployment",
  label: "Deployment",
  writerIdentity: "replicaset-controller",
  pods: (n) => n,
  async run(ctx) {
    const body = deploymentBody(ctx.namespace, ctx.n, podTemplate("deployment"));
    ctx.markStart();
    await ctx.admin.create(`/apis/apps/v1/namespaces/${ctx.namespace}/deployments`, body);
    return { stop: async () => undefined, notes: [] };
  },
};
