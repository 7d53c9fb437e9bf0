import { randomBytes } from "node:crypto";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EventRecorder, NOTE_MAX_BYTES } from "../../src/controllers/event-recorder.ts";
import type { EventObject, EventRegarding } from "../../src/controllers/event-recorder.ts";
import type { KubeClient } from "../../src/kube/client.ts";
import { EVENTS, resourcePath } from "../../src/kube/resources.ts";
import { adminClient, createTestNamespace, deleteNamespace, eventually, operatorClient } from "./support/cluster.ts";

// Events written as the operator's ServiceAccount (create and patch on events, nothing more) and
// read back with the admin client, about an object the operator may not even read.

const logger = pino({ level: process.env.BATCHROLLOUT_TEST_LOG ?? "silent" });

interface ConfigMap {
  metadata: { name: string; namespace: string; uid: string };
}

describe("event recorder", () => {
  let admin: KubeClient;
  let operator: KubeClient;
  let ns: string;
  let regarding: EventRegarding;
  const instance = `integration_${randomBytes(4).toString("hex")}`;

  const newRecorder = (seriesPatchIntervalMs?: number) =>
    new EventRecorder({ client: operator, reportingController: "batchrollout.dev/operator", reportingInstance: instance, logger, seriesPatchIntervalMs });

  async function eventsFor(reason: string): Promise<EventObject[]> {
    const list = await admin.get<{ items: EventObject[] }>(resourcePath(EVENTS, { namespace: ns }));
    return list.items.filter((e) => e.regarding.uid === regarding.uid && e.reason === reason);
  }

  beforeAll(async () => {
    admin = await adminClient();
    operator = await operatorClient();
    ns = await createTestNamespace(admin, "event-recorder");
    const cm = await admin.create<ConfigMap>(`/api/v1/namespaces/${ns}/configmaps`, {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "subject" },
      data: { k: "v" },
    });
    regarding = { apiVersion: "v1", kind: "ConfigMap", name: cm.metadata.name, namespace: ns, uid: cm.metadata.uid };
  });

  afterAll(async () => {
    await deleteNamespace(admin, ns);
    await Promise.all([admin.close(), operator.close()]);
  });

  it("creates an events.k8s.io/v1 Event about the object", async () => {
    const recorder = newRecorder();
    recorder.event(regarding, "Normal", "Observed", "Observe", "first sight of the subject");
    const [event] = await eventually("the Event", async () => {
      const found = await eventsFor("Observed");
      return found.length > 0 ? found : undefined;
    });
    expect(event).toMatchObject({
      type: "Normal",
      reason: "Observed",
      action: "Observe",
      note: "first sight of the subject",
      reportingController: "batchrollout.dev/operator",
      reportingInstance: instance,
      regarding: { kind: "ConfigMap", name: "subject", namespace: ns, uid: regarding.uid },
    });
    expect(event!.metadata.name).toMatch(/^subject\.[0-9a-f]{16}$/);
    expect(event!.eventTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    expect(event!.series).toBeUndefined();
    await recorder.flush();
  });

  it("turns repeated identical events into one Event with a series, flushed on shutdown", async () => {
    const recorder = newRecorder();
    for (let i = 0; i < 25; i++) recorder.event(regarding, "Warning", "Throttled", "Create", "API server answered 429");
    await recorder.flush();
    const events = await eventsFor("Throttled");
    expect(events).toHaveLength(1);
    expect(events[0]!.series?.count).toBe(25);
    expect(events[0]!.series?.lastObservedTime).toMatch(/\.\d{6}Z$/);
  });

  it("patches the series on its own once the rate-limit interval has passed", async () => {
    const intervalMs = 500;
    const recorder = newRecorder(intervalMs);
    recorder.event(regarding, "Normal", "Waiting", "Wait", "waiting for nodes");
    await eventually("the Event", async () => (await eventsFor("Waiting")).length === 1);
    for (let i = 0; i < 9; i++) recorder.event(regarding, "Normal", "Waiting", "Wait", "waiting for nodes");
    const [event] = await eventually(
      "series.count 10",
      async () => {
        const found = await eventsFor("Waiting");
        return found[0]?.series?.count === 10 ? found : undefined;
      },
      10_000,
      100,
    );
    expect(event!.series?.count).toBe(10);
    expect(await eventsFor("Waiting")).toHaveLength(1);
  });

  it("truncates a note the API server would reject", async () => {
    const recorder = newRecorder();
    recorder.event(regarding, "Warning", "LongNote", "Report", "ü".repeat(3 * NOTE_MAX_BYTES));
    await recorder.flush();
    const events = await eventsFor("LongNote");
    expect(events).toHaveLength(1);
    expect(Buffer.byteLength(events[0]!.note)).toBeLessThanOrEqual(NOTE_MAX_BYTES);
    expect(events[0]!.note.startsWith("üüü")).toBe(true);
  });
});
