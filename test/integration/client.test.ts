import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { KubeClient } from "../../src/kube/client.ts";
import { WatchIdleError, isNotFound } from "../../src/kube/errors.ts";
import { FencedError } from "../../src/kube/fence.ts";
import { PODS, resourcePath } from "../../src/kube/resources.ts";
import { adminClient, createTestNamespace, deleteNamespace, operatorClient } from "./support/cluster.ts";

// The API client on the real API server, as the operator's ServiceAccount. A fenced pod create: a
// new client has no connection yet, so the create waits for its TLS handshake, the window a paused
// leader used to send a create on resume, long after its Lease had passed to the standby. A watch
// with nothing on it: kube-apiserver's bookmarks come a minute apart, so a shorter idle timeout
// shows how a stalled stream ends.

const pod = (name: string) => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name },
  spec: { containers: [{ name: "main", image: "registry.k8s.io/pause:3.10" }] },
});

/** Well under the API server's one-minute bookmarks, so a quiet namespace's watch falls silent. */
const SHORT_IDLE_MS = 1_500;

describe("the API client", () => {
  let admin: KubeClient;
  let ns: string;

  beforeAll(async () => {
    admin = await adminClient();
    ns = await createTestNamespace(admin, "fence");
  });
  afterAll(async () => {
    await deleteNamespace(admin, ns);
    await admin.close();
  });

  it("is not sent when its fence turns while it waits for a connection; the same write goes out while the fence holds", async () => {
    const podPath = (name: string) => resourcePath(PODS, { namespace: ns, name });
    const fresh = await operatorClient();
    try {
      let leading = true;
      const fenced = fresh.request({ method: "POST", path: resourcePath(PODS, { namespace: ns }), body: pod("late"), fence: () => leading });
      // Handed over with the fence open; it turns before the connection is up.
      leading = false;
      await expect(fenced).rejects.toBeInstanceOf(FencedError);
      await expect(admin.request({ method: "GET", path: podPath("late") })).rejects.toSatisfy(isNotFound);

      leading = true;
      const sent = await fresh.request({ method: "POST", path: resourcePath(PODS, { namespace: ns }), body: pod("on-time"), fence: () => leading });
      expect(sent.code).toBe(201);
    } finally {
      await fresh.close();
    }
  });

  it("cuts a watch that carries nothing for its idle timeout with a WatchIdleError", async () => {
    const stop = new AbortController();
    const started = Date.now();
    const events: string[] = [];
    const watching = (async () => {
      for await (const e of admin.watch<{ metadata?: { name?: string } }>(resourcePath(PODS, { namespace: ns }), { labelSelector: "nothing=here" }, stop.signal, undefined, SHORT_IDLE_MS)) {
        events.push(e.type);
      }
    })();
    try {
      await expect(watching).rejects.toBeInstanceOf(WatchIdleError);
      expect(Date.now() - started).toBeGreaterThanOrEqual(SHORT_IDLE_MS);
      expect(events.filter((t) => t !== "BOOKMARK")).toEqual([]);
    } finally {
      stop.abort();
    }
  });
});
