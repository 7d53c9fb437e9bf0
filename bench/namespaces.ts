import { setTimeout as sleep } from "node:timers/promises";
import type { KubeClient } from "../src/kube/client.ts";
import { isNotFound } from "../src/kube/errors.ts";

// Each method runs in a fresh namespace, and the next method starts only once the previous
// namespace and every pod in it are gone, so no method inherits another's load.

/** Label on every namespace the benchmark creates, so a crashed run's leftovers can be found. */
export const BENCH_NAMESPACE_LABEL = "bench.batchrollout.dev/run";
/** Deleting 10,000 pods in one DeleteCollection takes a while; 100,000 much longer. */
export const DELETE_COLLECTION_TIMEOUT_MS = 20 * 60_000;
export const NAMESPACE_GONE_TIMEOUT_MS = 20 * 60_000;
const POLL_MS = 1_000;

export async function createNamespace(admin: KubeClient, name: string, runId: string): Promise<void> {
  await admin.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name, labels: { [BENCH_NAMESPACE_LABEL]: runId } } });
  // Pods need the namespace's default ServiceAccount, which kube-controller-manager creates.
  for (;;) {
    try {
      await admin.get(`/api/v1/namespaces/${name}/serviceaccounts/default`);
      return;
    } catch (err) {
      if (!isNotFound(err)) throw err;
      await sleep(200);
    }
  }
}

const ignoreNotFound = (err: unknown) => {
  if (!isNotFound(err)) throw err;
};

/**
 * Removes every pod at once (grace 0: kwok's pods have nothing to stop), then the namespace, and
 * waits until both are gone. Controllers that would recreate pods must be removed first (method teardown).
 */
export async function deleteNamespace(admin: KubeClient, name: string, say: (line: string) => void = () => undefined): Promise<void> {
  try {
    await admin.request({
      method: "DELETE",
      path: `/api/v1/namespaces/${name}/pods`,
      body: { apiVersion: "v1", kind: "DeleteOptions", gracePeriodSeconds: 0 },
      timeoutMs: DELETE_COLLECTION_TIMEOUT_MS,
      discardBody: true,
    });
  } catch (err) {
    // Only a shortcut: 10,000 deletions outlast kube-apiserver's 60 s request timeout, which resets the
    // stream while it carries on deleting. The namespace controller removes whatever is left.
    if (!isNotFound(err)) say(`  pod DeleteCollection in ${name} ended early (${err instanceof Error ? err.message : String(err)}); the namespace controller finishes it`);
  }
  await admin.delete(`/api/v1/namespaces/${name}`).catch(ignoreNotFound);
  const deadline = Date.now() + NAMESPACE_GONE_TIMEOUT_MS;
  for (;;) {
    try {
      await admin.get(`/api/v1/namespaces/${name}`);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    if (Date.now() > deadline) throw new Error(`namespace ${name} still exists after ${NAMESPACE_GONE_TIMEOUT_MS / 60_000} min`);
    await sleep(POLL_MS);
  }
}

/** Namespaces a previous (perhaps interrupted) benchmark run left behind. */
export async function leftoverNamespaces(admin: KubeClient): Promise<string[]> {
  const list = await admin.get<{ items: { metadata: { name: string } }[] }>("/api/v1/namespaces", { labelSelector: BENCH_NAMESPACE_LABEL });
  return list.items.map((n) => n.metadata.name);
}

/**
 * Removes what would recreate pods or block the namespace's deletion: Deployments and ReplicaSets,
 * and BatchRollouts, whose finalizer only a running operator would clear.
 */
export async function removeControllers(admin: KubeClient, name: string, rolloutsPath: string | undefined): Promise<void> {
  const background = { apiVersion: "v1", kind: "DeleteOptions", propagationPolicy: "Background" };
  for (const plural of ["deployments", "replicasets"]) {
    await admin.request({ method: "DELETE", path: `/apis/apps/v1/namespaces/${name}/${plural}`, body: background, discardBody: true }).catch(ignoreNotFound);
  }
  if (!rolloutsPath) return;
  const rollouts = await admin.get<{ items: { metadata: { name: string } }[] }>(rolloutsPath).catch((err: unknown) => {
    ignoreNotFound(err);
    return { items: [] };
  });
  for (const r of rollouts.items) {
    await admin.patch(`${rolloutsPath}/${r.metadata.name}`, { metadata: { finalizers: null } }).catch(ignoreNotFound);
    await admin.delete(`${rolloutsPath}/${r.metadata.name}`).catch(ignoreNotFound);
  }
}
