import { join } from "node:path";
import { API_VERSION, KIND, LABEL_ORDINAL, PLURAL } from "../../src/api/batchrollout.ts";
import { startOperator } from "../operator-process.ts";
import { podTemplate } from "../pod-template.ts";
import type { Method, MethodContext } from "./method.ts";

// The product with default settings: the compiled operator (dist/main.js) watching the method's namespace, and
// one BatchRollout of N replicas with nothing but the template set. The admin creates the rollout
// object (the writer identity may not); every pod is written by the operator as the writer.

export const ROLLOUT_NAME = "bench";

export function rolloutsPath(namespace: string): string {
  return `/apis/${API_VERSION}/namespaces/${namespace}/${PLURAL}`;
}

/** Starts the operator, waits until it is ready, then creates the rollout (the clock starts there). */
export async function startRollout(ctx: MethodContext, replicas: number, method: string, template: object = podTemplate(method)): Promise<{ stop(): Promise<void> }> {
  const operator = await startOperator({ kubeconfig: ctx.writerKubeconfig, namespace: ctx.namespace, logFile: join(ctx.workDir, "operator.log") });
  ctx.addProcess("operator", operator.pid);
  ctx.watchOperatorMetrics(operator.metricsUrl);
  const path = rolloutsPath(ctx.namespace);
  const rollout = { apiVersion: API_VERSION, kind: KIND, metadata: { name: ROLLOUT_NAME, namespace: ctx.namespace }, spec: { replicas, template } };
  ctx.markStart();
  try {
    await ctx.admin.create(path, rollout);
  } catch (err) {
    await operator.stop();
    throw err;
  }
  ctx.watchRollout(`${path}/${ROLLOUT_NAME}`);
  return operator;
}

export const batchRollout: Method = {
  id: "batchrollout",
  label: "BatchRollout (defaults)",
  writerIdentity: "writer",
  pods: (n) => n,
  identityOf: (pod) => pod.metadata.labels[LABEL_ORDINAL] ?? pod.metadata.name,
  async run(ctx) {
    const operator = await startRollout(ctx, ctx.n, "batchrollout");
    return { stop: operator.stop, notes: ["operator dist/main.js (compiled as in the image), default flags, --watch-namespace set, writer kubeconfig; rollout spec: replicas + template only"] };
  },
};
