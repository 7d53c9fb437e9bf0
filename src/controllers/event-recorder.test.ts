import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { RequestOptions } from "../kube/client.ts";
import { ApiError } from "../kube/errors.ts";
import {
  EventRecorder,
  MAX_TRACKED_SERIES,
  NAME_MAX_LENGTH,
  NOTE_MAX_BYTES,
  SERIES_PATCH_INTERVAL_MS,
  SERIES_WINDOW_MS,
  eventName,
  truncateUtf8,
} from "./event-recorder.ts";
import type { EventObject, EventRecorderOptions, EventRegarding } from "./event-recorder.ts";
import { formatMicroTime } from "./lease.ts";
import { ManualScheduler, settle } from "../../test/support/manual-scheduler.ts";



interface Call {
  method: "POST" | "PATCH";
  path: string;
  body: unknown;
  contentType?: string;
}

/** The two calls the recorder makes, in memory, with injectable failures. */
class FakeEventsClient {
  readonly calls: Call[] = [];
  readonly events = new Map<string, EventObject>();
  fault: (call: Call) => Error | "hang" | undefined = () => undefined;

  create = async <T>(path: string, body: unknown, _opts?: Partial<RequestOptions>): Promise<T> => {
    const call: Call = { method: "POST", path, body: structuredClone(body) };
    this.calls.push(call);
    await this.#maybeFail(call);
    const event = structuredClone(body) as EventObject;
    const key = `${event.metadata.namespace}/${event.metadata.name}`;
    if (this.events.has(key)) throw new ApiError({ method: "POST", path, code: 409, status: { reason: "AlreadyExists" } });
    this.events.set(key, event);
    return undefined as T;
  };

  patch = async <T>(path: string, body: unknown, contentType?: string, _opts?: Partial<RequestOptions>): Promise<T> => {
    const call: Call = { method: "PATCH", path, body: structuredClone(body), contentType };
    this.calls.push(call);
    await this.#maybeFail(call);
    const [, ns, name] = /namespaces\/([^/]+)\/events\/([^/]+)$/.exec(path) ?? [];
    const event = this.events.get(`${ns}/${name}`);
    if (!event) throw new ApiError({ method: "PATCH", path, code: 404, status: { reason: "NotFound" } });
    Object.assign(event, body);
    return event as T;
  };

  async #maybeFail(call: Call): Promise<void> {
    const fault = this.fault(call);
    if (fault === "hang") await new Promise(() => undefined);
    if (fault) throw fault;
  }

  creates(): EventObject[] {
    return this.calls.filter((c) => c.method === "POST").map((c) => c.body as EventObject);
  }

  patches(): Call[] {
    return this.calls.filter((c) => c.method === "PATCH");
  }
}

const pod: EventRegarding = { apiVersion: "v1", kind: "Pod", name: "web-0", namespace: "apps", uid: "uid-web-0" };
const other: EventRegarding = { apiVersion: "v1", kind: "Pod", name: "web-1", namespace: "apps", uid: "uid-web-1" };

function setup(overrides: Partial<EventRecorderOptions> = {}) {
  const scheduler = new ManualScheduler(1_700_000_000_000);
  const client = new FakeEventsClient();
  const logs: { level: string | number; msg: string; [k: string]: unknown }[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const recorder = new EventRecorder({
    client,
    reportingController: "batchrollout.dev/operator",
    reportingInstance: "host_1234",
    logger,
    clock: scheduler,
    timers: scheduler,
    ...overrides,
  });
  return { scheduler, client, logs, recorder };
}

describe("truncateUtf8", () => {
  it("keeps short text, and cuts long text on a character boundary within the byte limit", () => {
    expect(truncateUtf8("hello", 5)).toBe("hello");
    const cut = truncateUtf8("é".repeat(600), NOTE_MAX_BYTES);
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(NOTE_MAX_BYTES);
    expect(cut.endsWith("…")).toBe(true);
    expect(cut.slice(0, -1)).toMatch(/^é+$/);
  });
});

describe("eventName", () => {
  it("is <name>.<hex> and stays a valid DNS subdomain for the longest names", () => {
    expect(eventName("web-0")).toMatch(/^web-0\.[0-9a-f]{16}$/);
    expect(eventName("web-0")).not.toBe(eventName("web-0"));
    const long = eventName(`${"a".repeat(NAME_MAX_LENGTH - 17)}-${"b".repeat(20)}`);
    expect(long.length).toBeLessThanOrEqual(NAME_MAX_LENGTH);
    expect(long).toMatch(/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/);
    expect(long).not.toMatch(/-\./);
  });
});

describe("EventRecorder", () => {
  it("creates an events.k8s.io/v1 Event without making the caller wait", async () => {
    const { scheduler, client, recorder } = setup();
    client.fault = () => "hang";
    recorder.event(pod, "Normal", "WaveStarted", "Scale", "wave 1 of 3: 100 pods");
    // The caller got control back while the create is still in flight.
    expect(client.calls).toHaveLength(1);
    const created = client.creates()[0]!;
    expect(created).toEqual({
      apiVersion: "events.k8s.io/v1",
      kind: "Event",
      metadata: { name: expect.stringMatching(/^web-0\.[0-9a-f]{16}$/), namespace: "apps" },
      eventTime: formatMicroTime(scheduler.now()),
      reportingController: "batchrollout.dev/operator",
      reportingInstance: "host_1234",
      action: "Scale",
      reason: "WaveStarted",
      regarding: pod,
      note: "wave 1 of 3: 100 pods",
      type: "Normal",
    });
    expect(created.eventTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
  });

  it("turns repeats into one series patch per interval, counting every repeat", async () => {
    const { scheduler, client, recorder } = setup();
    recorder.event(pod, "Warning", "Throttled", "Create", "API server answered 429");
    await settle();
    for (let i = 0; i < 4; i++) {
      await scheduler.advanceSettled(1_000);
      recorder.event(pod, "Warning", "Throttled", "Create", "API server answered 429");
    }
    const lastRepeat = scheduler.now();
    expect(client.creates()).toHaveLength(1);
    expect(client.patches()).toHaveLength(0);
    await scheduler.advanceSettled(SERIES_PATCH_INTERVAL_MS);
    expect(client.creates()).toHaveLength(1);
    expect(client.patches()).toHaveLength(1);
    const name = client.creates()[0]!.metadata.name;
    expect(client.patches()[0]).toMatchObject({
      path: `/apis/events.k8s.io/v1/namespaces/apps/events/${name}`,
      body: { series: { count: 5, lastObservedTime: formatMicroTime(lastRepeat) } },
    });
    expect(client.events.get(`apps/${name}`)?.series?.count).toBe(5);
  });

  it("limits a hot loop to one write per interval per Event and loses no count", async () => {
    const { scheduler, client, recorder } = setup();
    const writeTimes: number[] = [];
    client.fault = () => void writeTimes.push(scheduler.now());
    const repeats = 3_000;
    const loopMs = 3 * SERIES_PATCH_INTERVAL_MS;
    for (let i = 0; i < repeats; i++) {
      recorder.event(pod, "Warning", "Throttled", "Create", "API server answered 429");
      await scheduler.advanceSettled(loopMs / repeats);
    }
    const writes = client.calls.length;
    expect(writes).toBeLessThanOrEqual(loopMs / SERIES_PATCH_INTERVAL_MS + 1);
    for (let i = 1; i < writeTimes.length; i++) expect(writeTimes[i]! - writeTimes[i - 1]!).toBeGreaterThanOrEqual(SERIES_PATCH_INTERVAL_MS);
    await recorder.flush();
    expect(client.creates()).toHaveLength(1);
    const name = client.creates()[0]!.metadata.name;
    expect(client.events.get(`apps/${name}`)?.series?.count).toBe(repeats);
  });

  it("keeps different objects, types, reasons, actions and notes apart", async () => {
    const { client, recorder } = setup();
    recorder.event(pod, "Normal", "WaveStarted", "Scale", "wave 1");
    recorder.event(other, "Normal", "WaveStarted", "Scale", "wave 1");
    recorder.event(pod, "Warning", "WaveStarted", "Scale", "wave 1");
    recorder.event(pod, "Normal", "WaveDone", "Scale", "wave 1");
    recorder.event(pod, "Normal", "WaveStarted", "Delete", "wave 1");
    recorder.event(pod, "Normal", "WaveStarted", "Scale", "wave 2");
    recorder.event(pod, "Normal", "WaveStarted", "Scale", "wave 1");
    await settle();
    expect(client.creates()).toHaveLength(6);
    expect(new Set(client.creates().map((e) => e.metadata.name)).size).toBe(6);
  });

  it("starts a new Event when a repeat comes after the series window", async () => {
    const { scheduler, client, recorder } = setup();
    recorder.event(pod, "Normal", "Paused", "Pause", "paused by user");
    await scheduler.advanceSettled(SERIES_WINDOW_MS);
    recorder.event(pod, "Normal", "Paused", "Pause", "paused by user");
    await scheduler.advanceSettled(SERIES_PATCH_INTERVAL_MS);
    expect(client.creates()).toHaveLength(1);
    expect(client.patches()).toHaveLength(1);
    // The window runs from the last occurrence, as client-go's series do.
    await scheduler.advanceSettled(SERIES_WINDOW_MS + 1);
    recorder.event(pod, "Normal", "Paused", "Pause", "paused by user");
    await settle();
    expect(client.creates()).toHaveLength(2);
    expect(client.creates()[1]!.metadata.name).not.toBe(client.creates()[0]!.metadata.name);
    expect(client.creates()[1]!.series).toBeUndefined();
  });

  it("truncates a note over 1 KiB, and the same long note still deduplicates", async () => {
    const { scheduler, client, recorder } = setup();
    const note = `${"x".repeat(2_000)}€`;
    recorder.event(pod, "Warning", "Failed", "Create", note);
    recorder.event(pod, "Warning", "Failed", "Create", note);
    await scheduler.advanceSettled(SERIES_PATCH_INTERVAL_MS);
    const created = client.creates();
    expect(created).toHaveLength(1);
    expect(Buffer.byteLength(created[0]!.note)).toBeLessThanOrEqual(NOTE_MAX_BYTES);
    expect(created[0]!.note.startsWith("x".repeat(1_000))).toBe(true);
    expect(client.patches()).toHaveLength(1);
  });

  it("forgets the least recently seen series beyond its bound, still writing what it held", async () => {
    expect(MAX_TRACKED_SERIES).toBeGreaterThan(0);
    const { scheduler, client, recorder } = setup({ maxTrackedSeries: 2 });
    const third: EventRegarding = { ...pod, name: "web-2", uid: "uid-web-2" };
    recorder.event(pod, "Normal", "R", "A", "n");
    recorder.event(other, "Normal", "R", "A", "n");
    await settle();
    recorder.event(pod, "Normal", "R", "A", "n"); // pod is now the most recently seen
    recorder.event(third, "Normal", "R", "A", "n"); // evicts other, not pod
    expect(recorder.trackedSeries).toBe(2);
    await scheduler.advanceSettled(SERIES_PATCH_INTERVAL_MS);
    // pod's repeat, pending when pod was still tracked, was written as a series.
    expect(client.patches()).toHaveLength(1);
    recorder.event(pod, "Normal", "R", "A", "n");
    recorder.event(other, "Normal", "R", "A", "n");
    await scheduler.advanceSettled(SERIES_PATCH_INTERVAL_MS);
    // other was forgotten, so its repeat is a new Event; pod's joins its series.
    expect(client.creates().map((e) => e.regarding.name)).toEqual(["web-0", "web-1", "web-2", "web-1"]);
    expect(client.patches()).toHaveLength(2);
    expect(recorder.trackedSeries).toBe(2);
  });

  it("logs failed writes instead of throwing, and retries with the repeats of the next occurrence", async () => {
    const { scheduler, client, logs, recorder } = setup();
    client.fault = (call) => new ApiError({ method: call.method, path: call.path, code: 403, status: { reason: "Forbidden", message: "events is forbidden" } });
    expect(() => recorder.event(pod, "Warning", "Failed", "Create", "boom")).not.toThrow();
    await settle();
    expect(client.events.size).toBe(0);
    expect(logs.some((l) => l.msg === "could not write event" && String(l.err).includes("events is forbidden"))).toBe(true);
    client.fault = () => undefined;
    recorder.event(pod, "Warning", "Failed", "Create", "boom");
    await settle();
    // Still within the interval of the failed write.
    expect(client.calls).toHaveLength(1);
    await scheduler.advanceSettled(SERIES_PATCH_INTERVAL_MS);
    expect(client.creates()).toHaveLength(2);
    expect(client.creates()[1]!.series?.count).toBe(2);
  });

  it("never throws even when the client throws synchronously or the input is malformed", async () => {
    const { recorder, logs } = setup({
      client: {
        create: () => {
          throw new Error("sync failure");
        },
        patch: () => {
          throw new Error("sync failure");
        },
      },
    });
    expect(() => recorder.event(pod, "Normal", "R", "A", "n")).not.toThrow();
    expect(() => recorder.event(null as unknown as EventRegarding, "Normal", "R", "A", "n")).not.toThrow();
    await settle();
    expect(logs.filter((l) => l.msg === "could not write event" || l.msg === "could not record event")).toHaveLength(2);
  });

  it("recreates an Event the API server expired while its series went on", async () => {
    const { scheduler, client, recorder } = setup();
    recorder.event(pod, "Normal", "R", "A", "n");
    await settle();
    const first = client.creates()[0]!.metadata.name;
    client.events.clear();
    recorder.event(pod, "Normal", "R", "A", "n");
    await scheduler.advanceSettled(SERIES_PATCH_INTERVAL_MS);
    expect(client.patches()).toHaveLength(1);
    expect(client.creates()).toHaveLength(2);
    const second = client.creates()[1]!;
    expect(second.metadata.name).not.toBe(first);
    expect(second.series?.count).toBe(2);
  });

  it("flush() writes held repeats at once and waits for writes under way", async () => {
    const { scheduler, client, recorder } = setup();
    recorder.event(pod, "Normal", "R", "A", "n");
    recorder.event(pod, "Normal", "R", "A", "n");
    recorder.event(pod, "Normal", "R", "A", "n");
    expect(scheduler.pendingTimers).toBe(0); // the create is in flight; repeats wait for it
    await recorder.flush();
    expect(client.creates()).toHaveLength(1);
    expect(client.patches()).toHaveLength(1);
    expect(client.patches()[0]!.body).toMatchObject({ series: { count: 3 } });
    expect(scheduler.pendingTimers).toBe(0);
    await recorder.flush();
    expect(client.calls).toHaveLength(2);
  });

  it("files Events about cluster-scoped objects in the default namespace", async () => {
    const { client, recorder } = setup();
    const node: EventRegarding = { apiVersion: "v1", kind: "Node", name: "node-1", uid: "uid-node-1" };
    recorder.event(node, "Warning", "NoIPs", "Schedule", "podCIDR exhausted");
    await settle();
    expect(client.creates()[0]!.metadata.namespace).toBe("default");
    expect(client.calls[0]!.path).toBe("/apis/events.k8s.io/v1/namespaces/default/events");
  });
});
