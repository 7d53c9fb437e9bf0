import { randomBytes } from "node:crypto";
import { inject } from "vitest";
import { KubeClient } from "../../../src/kube/client.ts";
import { isNotFound } from "../../../src/kube/errors.ts";

// What integration tests share: the cluster's kubeconfigs and a fresh namespace per test.

export const cluster = () => inject("cluster");

export const adminClient = () => KubeClient.fromKubeconfig(cluster().adminKubeconfig);
export const operatorClient = () => KubeClient.fromKubeconfig(cluster().operatorKubeconfig);

/** Polls until `check` returns a value other than undefined/false, or fails with `what`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 60_000, intervalMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Creates a namespace named after the test, with its default ServiceAccount ready for pods. */
export async function createTestNamespace(admin: KubeClient, prefix: string): Promise<string> {
  const name = `${prefix.toLowerCase().replace(/[^a-z0-9-]/g, "-").slice(0, 40)}-${randomBytes(3).toString("hex")}`;
  await admin.create("/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name, labels: { "batchrollout.dev/test": "true" } } });
  await eventually(`ServiceAccount default in ${name}`, () =>
    admin.get(`/api/v1/namespaces/${name}/serviceaccounts/default`).then(() => true),
  );
  return name;
}

export async function deleteNamespace(admin: KubeClient, name: string): Promise<void> {
  await admin.delete(`/api/v1/namespaces/${name}`).catch((err: unknown) => {
    if (!isNotFound(err)) throw err;
  });
}
