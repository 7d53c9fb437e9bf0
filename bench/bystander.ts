import type { KubeClient } from "../src/kube/client.ts";
import { ApiError, RequestTimeoutError } from "../src/kube/errors.ts";
import type { BystanderLine, BystanderOp } from "./writer-protocol.ts";

// The bystander: another tenant of the cluster doing ordinary work at a steady ~10 requests/s
// (GET a pod, LIST configmaps, CREATE then DELETE a configmap), in its own FlowSchema that maps to
// the writer's priority level (workload-low). It is open-loop: a request is sent on schedule whether
// or not the previous one has answered, so a slow server shows up as latency rather than as a
// politely lower request rate. Every request's latency and outcome is recorded.

export const BYSTANDER_REQUESTS_PER_S = 10;
/** Kubernetes' SLO for mutating API calls, which the targets hold the bystander to. */
export const BYSTANDER_P99_TARGET_MS = 1_000;
/** The bystander's kubeconfig, ServiceAccount, namespace and FlowSchema all carry this name. */
export const BYSTANDER_NAME = "bench-bystander";
/** The pod it reads, created once in its namespace. */
export const BYSTANDER_TARGET_POD = "bystander-target";

const OPS: readonly BystanderOp[] = ["get-pod", "list-configmaps", "create-configmap", "delete-configmap"];

export interface BystanderOptions {
  client: KubeClient;
  namespace: string;
  emit: (line: BystanderLine) => void;
  signal: AbortSignal;
  /** The pod the GETs read. */
  podName: string;
  ratePerSecond?: number;
}

function codeOf(err: unknown): number {
  return err instanceof ApiError ? err.code : 0;
}

export async function runBystander(opts: BystanderOptions): Promise<void> {
  const { client, namespace, emit, signal } = opts;
  const intervalMs = 1_000 / (opts.ratePerSecond ?? BYSTANDER_REQUESTS_PER_S);
  const base = `/api/v1/namespaces/${namespace}`;
  let seq = 0;
  let lastCreate: { name: string; done: Promise<boolean> } | undefined;
  const inFlight = new Set<Promise<unknown>>();

  const timed = async (op: BystanderOp, send: () => Promise<unknown>): Promise<boolean> => {
    const at = Date.now();
    const started = performance.now();
    try {
      await send();
      emit({ type: "request", at, ms: Math.round(performance.now() - started), op, code: 200 });
      return true;
    } catch (err) {
      const error = err instanceof RequestTimeoutError ? "timeout" : err instanceof Error ? err.message.slice(0, 200) : String(err);
      emit({ type: "request", at, ms: Math.round(performance.now() - started), op, code: codeOf(err), error });
      return false;
    }
  };

  const fire = (k: number): void => {
    const op = OPS[k % OPS.length]!;
    let p: Promise<unknown>;
    switch (op) {
      case "get-pod":
        p = timed(op, () => client.request({ method: "GET", path: `${base}/pods/${opts.podName}`, retryThrottled: false, discardBody: true }));
        break;
      case "list-configmaps":
        p = timed(op, () => client.request({ method: "GET", path: `${base}/configmaps`, retryThrottled: false, discardBody: true }));
        break;
      case "create-configmap": {
        const name = `${BYSTANDER_NAME}-${process.pid}-${seq++}`;
        const body = { apiVersion: "v1", kind: "ConfigMap", metadata: { name }, data: { seq: String(seq) } };
        const done = timed(op, () => client.request({ method: "POST", path: `${base}/configmaps`, body, retryThrottled: false, discardBody: true }));
        lastCreate = { name, done };
        p = done;
        break;
      }
      case "delete-configmap": {
        const created = lastCreate;
        lastCreate = undefined;
        // The delete goes out once its create has answered; a failed create has nothing to delete.
        p = created
          ? created.done.then((ok) => (ok ? timed(op, () => client.request({ method: "DELETE", path: `${base}/configmaps/${created.name}`, retryThrottled: false, discardBody: true })) : false))
          : Promise.resolve();
        break;
      }
    }
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };

  const started = performance.now();
  for (let k = 0; !signal.aborted; k++) {
    fire(k);
    // Scheduled against the start, so timer drift never lowers the rate.
    const wait = started + (k + 1) * intervalMs - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  await Promise.allSettled([...inFlight]);
}
