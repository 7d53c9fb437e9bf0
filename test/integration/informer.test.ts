import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { Informer } from "../../src/controllers/informer.ts";
import type { ObjectWithMeta } from "../../src/controllers/informer.ts";
import type { KubeClient } from "../../src/kube/client.ts";
import { PODS, resourcePath } from "../../src/kube/resources.ts";
import { adminClient, createTestNamespace, deleteNamespace, eventually, operatorClient } from "./support/cluster.ts";

// An informer on pods as the operator's ServiceAccount (list and watch on pods), against the real
// API server: its list, its watch and its metadata-only mode.

const logger = pino({ level: process.env.BATCHROLLOUT_TEST_LOG ?? "silent" });

interface Pod extends ObjectWithMeta {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace: string; resourceVersion: string; uid: string; labels?: Record<string, string>; managedFields?: unknown };
  spec?: { containers: unknown[] };
}

function podManifest(name: string, labels: Record<string, string> = {}) {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, labels },
    spec: { containers: [{ name: "main", image: "registry.k8s.io/pause:3.10" }] },
  };
}

describe("informer", () => {
  let admin: KubeClient;
  let operator: KubeClient;
  let ns: string;
  const stops: AbortController[] = [];
  const podsPath = () => resourcePath(PODS, { namespace: ns });
  const podPath = (name: string) => resourcePath(PODS, { namespace: ns, name });

  function start(metadataOnly = false) {
    const informer = new Informer<Pod>({
      name: "pods",
      client: operator,
      path: podsPath(),
      metadataOnly,
      logger,
      indexers: { byTier: (p) => (p.metadata.labels?.tier ? [p.metadata.labels.tier] : []) },
    });
    const seen = { adds: [] as Pod[], updates: [] as [Pod, Pod][], deletes: [] as Pod[] };
    informer.addHandlers({
      onAdd: (p) => seen.adds.push(p),
      onUpdate: (o, n) => seen.updates.push([o, n]),
      onDelete: (p) => seen.deletes.push(p),
    });
    const controller = new AbortController();
    stops.push(controller);
    const done = informer.start(controller.signal);
    return { informer, seen, done };
  }

  beforeAll(async () => {
    admin = await adminClient();
    operator = await operatorClient();
  });

  afterEach(async () => {
    for (const c of stops.splice(0)) c.abort();
    await deleteNamespace(admin, ns);
  });

  afterAll(async () => {
    await Promise.all([admin.close(), operator.close()]);
  });

  it("lists what exists, then sees creates, updates and deletes through its watch", async () => {
    ns = await createTestNamespace(admin, "informer");
    await operator.create(podsPath(), podManifest("before", { tier: "web" }));
    const { informer, seen, done } = start();
    await informer.waitForSync();
    expect(informer.get(`${ns}/before`)?.metadata.name).toBe("before");
    expect(seen.adds.map((p) => p.metadata.name)).toEqual(["before"]);
    expect(informer.get(`${ns}/before`)?.metadata.managedFields).toBeUndefined();

    await operator.create(podsPath(), podManifest("after", { tier: "web" }));
    await eventually("the create", async () => informer.get(`${ns}/after`) !== undefined, 20_000, 50);
    expect(seen.adds.map((p) => p.metadata.name)).toContain("after");
    expect(informer.byIndex("byTier", "web").map((p) => p.metadata.name).sort()).toEqual(["after", "before"]);

    await operator.patch(podPath("after"), { metadata: { labels: { tier: "db" } } });
    await eventually("the update", async () => informer.get(`${ns}/after`)?.metadata.labels?.tier === "db", 20_000, 50);
    expect(seen.updates.some(([o, n]) => o.metadata.name === "after" && o.metadata.labels?.tier === "web" && n.metadata.labels?.tier === "db")).toBe(true);
    expect(informer.byIndex("byTier", "web").map((p) => p.metadata.name)).toEqual(["before"]);
    expect(informer.byIndex("byTier", "db").map((p) => p.metadata.name)).toEqual(["after"]);

    await operator.delete(podPath("after"), { apiVersion: "v1", kind: "DeleteOptions", gracePeriodSeconds: 0 });
    await eventually("the delete", async () => informer.get(`${ns}/after`) === undefined, 30_000, 50);
    expect(seen.deletes.map((p) => p.metadata.name)).toContain("after");
    expect(informer.byIndex("byTier", "db")).toEqual([]);
    expect(informer.size).toBe(1);

    stops.at(-1)!.abort();
    await done;
  });

  it("keeps only metadata in metadataOnly mode, from the list and from the watch", async () => {
    ns = await createTestNamespace(admin, "informer-meta");
    await operator.create(podsPath(), podManifest("listed", { tier: "web" }));
    const { informer, seen } = start(true);
    await informer.waitForSync();
    const listed = informer.get(`${ns}/listed`);
    expect(listed?.metadata).toMatchObject({ name: "listed", namespace: ns, labels: { tier: "web" } });
    expect(listed?.metadata.uid).toBeTruthy();
    expect(listed?.metadata.resourceVersion).toBeTruthy();
    expect(listed?.metadata.managedFields).toBeUndefined();
    expect(listed?.spec).toBeUndefined();
    expect(listed).not.toHaveProperty("status");
    expect(listed?.kind).toBe("PartialObjectMetadata");

    await operator.create(podsPath(), podManifest("watched"));
    await eventually("the watched create", async () => informer.get(`${ns}/watched`) !== undefined, 20_000, 50);
    const watched = informer.get(`${ns}/watched`);
    expect(watched?.metadata.name).toBe("watched");
    expect(watched?.spec).toBeUndefined();
    expect(watched?.kind).toBe("PartialObjectMetadata");
    expect(seen.adds.map((p) => p.metadata.name)).toEqual(["listed", "watched"]);
  });
});
