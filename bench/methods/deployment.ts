import { podTemplate } from "../pod-template.ts";
import type { Method } from "./method.ts";

// One Deployment of N replicas, left to kube-controller-manager (default --kube-api-qps 20), whose
// replicaset controller writes the pods under its own identity, as in production. The Deployment
// object itself is one request made by the admin.

export const DEPLOYMENT_NAME = "bench";

export const deployment: Method = {
  id: "deployment",
  label: "Deployment",
  writerIdentity: "replicaset-controller",
  pods: (n) => n,
  async run(ctx) {
    const t = podTemplate("deployment");
    const selector = { app: "bench", "bench.batchrollout.dev/deployment": DEPLOYMENT_NAME };
    const body = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: DEPLOYMENT_NAME, namespace: ctx.namespace },
      spec: {
        replicas: ctx.n,
        selector: { matchLabels: selector },
        template: { metadata: { labels: { ...t.metadata.labels, ...selector } }, spec: t.spec },
      },
    };
    ctx.markStart();
    await ctx.admin.create(`/apis/apps/v1/namespaces/${ctx.namespace}/deployments`, body);
    return { stop: async () => undefined, notes: [] };
  },
};
