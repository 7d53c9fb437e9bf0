import type { TestProject } from "vitest/node";
import { down, up } from "../cluster/cluster.ts";
import { runningProcess } from "../cluster/processes.ts";

// Integration tests run against the real local control plane. A cluster a developer already
// started (npm run cluster:up) is reused and left running; one started here is torn down after,
// unless BATCHROLLOUT_KEEP_CLUSTER=1.

/** Nodes for the integration suite: room for 3,000-pod rollouts at 110 pods a node, and more. */
export const TEST_NODES = Number(process.env.BATCHROLLOUT_TEST_NODES ?? 100);

declare module "vitest" {
  export interface ProvidedContext {
    cluster: { server: string; adminKubeconfig: string; operatorKubeconfig: string; binDir: string; nodes: number };
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const reused = runningProcess("kube-apiserver") !== undefined;
  const info = await up({ nodes: TEST_NODES });
  project.provide("cluster", { ...info, nodes: TEST_NODES });
  return async () => {
    if (!reused && process.env.BATCHROLLOUT_KEEP_CLUSTER !== "1") await down();
  };
}
