// The one pod template every method creates: the pause image with small requests, so kwok's fake
// nodes fit 110 each and the test measures the control plane, not a workload.

export const PAUSE_IMAGE = "registry.k8s.io/pause:3.10";
export const POD_REQUESTS = { cpu: "10m", memory: "16Mi" } as const;
/** Label every benchmark pod carries, whatever created it. */
export const BENCH_LABEL = "bench.batchrollout.dev/method";

export interface PodTemplateSpec {
  metadata: { labels: Record<string, string> };
  spec: { containers: { name: string; image: string; resources: { requests: Record<string, string> } }[]; terminationGracePeriodSeconds: number };
}

/** No grace: cleanup between methods must not wait for fake containers to "stop". */
const TERMINATION_GRACE_S = 0;

export function podTemplate(method: string): PodTemplateSpec {
  return {
    metadata: { labels: { app: "bench", [BENCH_LABEL]: method } },
    spec: {
      containers: [{ name: "pause", image: PAUSE_IMAGE, resources: { requests: { ...POD_REQUESTS } } }],
      terminationGracePeriodSeconds: TERMINATION_GRACE_S,
    },
  };
}

/** A bare pod from the template, as our own writers (storm, seed batches) send it. */
export function podManifest(method: string, namespace: string, name: string): object {
  const t = podTemplate(method);
  return { apiVersion: "v1", kind: "Pod", metadata: { name, namespace, labels: t.metadata.labels }, spec: t.spec };
}
