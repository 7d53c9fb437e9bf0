// Records events.k8s.io/v1 Events about objects, the way client-go's events broadcaster does, with
// a tighter leash on writes: an event that repeats is one Event whose `series` counts the repeats,
// and each Event is written at most once per SERIES_PATCH_INTERVAL_MS however hot the loop that
// emits it. Recording never blocks and never throws: an Event is worth less than the work around it,
// so failures are logged and dropped.
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import type { KubeClient } from "../kube/client.ts";
import { isAlreadyExists, isNotFound } from "../kube/errors.ts";
import { EVENTS, resourcePath } from "../kube/resources.ts";
import { formatMicroTime } from "./lease.ts";
import { realClock } from "./rate-limiter.ts";
import type { Clock } from "./rate-limiter.ts";
import { realTimers } from "./workqueue.ts";
import type { Timers } from "./workqueue.ts";

/** A repeat within this long of the previous occurrence joins its series (client-go's finishTime). */
export const SERIES_WINDOW_MS = 6 * 60_000;
/** At most one write (create or series patch) per Event in this long; repeats in between are counted in memory. */
export const SERIES_PATCH_INTERVAL_MS = 10_000;
/** Series remembered for deduplication; the least recently seen is forgotten first. */
export const MAX_TRACKED_SERIES = 4096;
/** The API server rejects a longer note (bytes of UTF-8). */
export const NOTE_MAX_BYTES = 1024;
/** The API server rejects a longer reason, action or reportingInstance (bytes). */
export const FIELD_MAX_BYTES = 128;
/** Longest object name (a DNS subdomain), which bounds the Event's own name. */
export const NAME_MAX_LENGTH = 253;
/** Random bytes in an Event name's suffix: enough that two Events about one object never collide. */
export const NAME_SUFFIX_BYTES = 8;

const TRUNCATION_MARK = "…";

export type EventType = "Normal" | "Warning";

/** The object an Event is about. Cluster-scoped objects have no namespace; their Events go to "default". */
export interface EventRegarding {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
  uid: string;
}

/** An events.k8s.io/v1 Event, as far as we write it. */
export interface EventObject {
  apiVersion: "events.k8s.io/v1";
  kind: "Event";
  metadata: { name: string; namespace: string };
  eventTime: string;
  series?: { count: number; lastObservedTime: string };
  reportingController: string;
  reportingInstance: string;
  action: string;
  reason: string;
  regarding: EventRegarding;
  note: string;
  type: EventType;
}

export interface EventRecorderOptions {
  client: Pick<KubeClient, "create" | "patch">;
  /** Who reports, as a qualified name, e.g. "batchrollout.dev/operator". */
  reportingController: string;
  /** Which replica reports: the leader election identity. */
  reportingInstance: string;
  logger: Logger;
  clock?: Clock;
  timers?: Timers;
  seriesWindowMs?: number;
  seriesPatchIntervalMs?: number;
  maxTrackedSeries?: number;
}

/** What a controller needs to record events; lets reconcilers take a fake in tests. */
export interface EventSink {
  event(regarding: EventRegarding, type: EventType, reason: string, action: string, note: string): void;
}

/** One Event on the server and the repeats of it not yet written there. */
interface Series {
  readonly key: string;
  readonly regarding: EventRegarding;
  readonly namespace: string;
  readonly type: EventType;
  readonly reason: string;
  readonly action: string;
  readonly note: string;
  readonly firstObservedAt: number;
  /** The Event's name; a new one if the Event vanished (the API server's event TTL). */
  name: string;
  count: number;
  lastObservedAt: number;
  /** The Event exists on the server. */
  persisted: boolean;
  /** Repeats arrived since the last write started. */
  dirty: boolean;
  lastWriteAt: number;
  timer: unknown;
  writing: Promise<void> | undefined;
}

/** Cuts `text` to at most `maxBytes` of UTF-8 without splitting a character, marking the cut. */
export function truncateUtf8(text: string, maxBytes: number): string {
  const encoder = new TextEncoder();
  if (encoder.encode(text).length <= maxBytes) return text;
  const room = new Uint8Array(Math.max(0, maxBytes - encoder.encode(TRUNCATION_MARK).length));
  const { read } = encoder.encodeInto(text, room);
  return text.slice(0, read) + TRUNCATION_MARK;
}

/** `<regarding.name>.<hex>`, shortened so the whole stays a valid DNS subdomain. */
export function eventName(regardingName: string): string {
  const suffix = randomBytes(NAME_SUFFIX_BYTES).toString("hex");
  const base = regardingName.slice(0, NAME_MAX_LENGTH - suffix.length - 1).replace(/[^a-z0-9]+$/, "");
  return `${base || "event"}.${suffix}`;
}

export class EventRecorder implements EventSink {
  readonly #client: Pick<KubeClient, "create" | "patch">;
  readonly #reportingController: string;
  readonly #reportingInstance: string;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #timers: Timers;
  readonly #windowMs: number;
  readonly #intervalMs: number;
  readonly #maxTracked: number;
  /** Series by key, least recently observed first. */
  readonly #series = new Map<string, Series>();
  /** Series with a write waiting or under way, including ones already forgotten for deduplication. */
  readonly #pending = new Set<Series>();

  constructor(opts: EventRecorderOptions) {
    this.#client = opts.client;
    this.#reportingController = opts.reportingController;
    this.#reportingInstance = truncateUtf8(opts.reportingInstance, FIELD_MAX_BYTES);
    this.#log = opts.logger.child({ component: "event-recorder" });
    this.#clock = opts.clock ?? realClock;
    this.#timers = opts.timers ?? realTimers;
    this.#windowMs = opts.seriesWindowMs ?? SERIES_WINDOW_MS;
    this.#intervalMs = opts.seriesPatchIntervalMs ?? SERIES_PATCH_INTERVAL_MS;
    this.#maxTracked = opts.maxTrackedSeries ?? MAX_TRACKED_SERIES;
  }

  /** Series tracked for deduplication (for tests and metrics). */
  get trackedSeries(): number {
    return this.#series.size;
  }

  /** Records that `action` happened to `regarding` for `reason`. Returns at once; never throws. */
  event(regarding: EventRegarding, type: EventType, reason: string, action: string, note: string): void {
    try {
      const now = this.#clock.now();
      const fields = {
        type,
        reason: truncateUtf8(reason, FIELD_MAX_BYTES),
        action: truncateUtf8(action, FIELD_MAX_BYTES),
        note: truncateUtf8(note, NOTE_MAX_BYTES),
      };
      // Action is part of the identity too: a series must not relabel what was done.
      const key = JSON.stringify([regarding.uid, fields.type, fields.reason, fields.action, fields.note]);
      let series = this.#series.get(key);
      if (series && now - series.lastObservedAt <= this.#windowMs) {
        series.count += 1;
        series.lastObservedAt = now;
        series.dirty = true;
        this.#series.delete(key);
      } else {
        series = {
          key,
          regarding: { ...regarding },
          namespace: regarding.namespace || "default",
          ...fields,
          firstObservedAt: now,
          name: eventName(regarding.name),
          count: 1,
          lastObservedAt: now,
          persisted: false,
          dirty: true,
          lastWriteAt: -Infinity,
          timer: undefined,
          writing: undefined,
        };
        this.#series.delete(key);
      }
      this.#series.set(key, series);
      this.#evict();
      this.#schedule(series);
    } catch (err) {
      this.#log.warn({ err: errorMessage(err), regarding: describe(regarding), reason }, "could not record event");
    }
  }

  /** Writes every repeat still held in memory and waits for all writes under way, e.g. at shutdown. */
  async flush(): Promise<void> {
    // Twice: a write under way when flush starts may have gathered repeats that need one more.
    for (const _pass of [1, 2]) {
      for (const series of [...this.#pending]) {
        if (series.timer !== undefined) {
          this.#timers.clearTimeout(series.timer);
          series.timer = undefined;
          this.#startWrite(series);
        }
      }
      await Promise.all([...this.#pending].map((s) => s.writing));
    }
  }

  #evict(): void {
    while (this.#series.size > this.#maxTracked) {
      const oldest = this.#series.keys().next();
      if (oldest.done) return;
      // A pending write still happens: #pending and its timer keep the series alive until then.
      this.#series.delete(oldest.value);
    }
  }

  #schedule(series: Series): void {
    if (!series.dirty || series.writing !== undefined || series.timer !== undefined) return;
    this.#pending.add(series);
    const delay = series.lastWriteAt + this.#intervalMs - this.#clock.now();
    if (delay <= 0) {
      this.#startWrite(series);
      return;
    }
    series.timer = this.#timers.setTimeout(() => {
      series.timer = undefined;
      this.#startWrite(series);
    }, delay);
  }

  #startWrite(series: Series): void {
    series.dirty = false;
    series.lastWriteAt = this.#clock.now();
    series.writing = this.#write(series, series.count, series.lastObservedAt).finally(() => {
      series.writing = undefined;
      if (series.dirty) this.#schedule(series);
      else this.#pending.delete(series);
    });
  }

  async #write(series: Series, count: number, lastObservedAt: number): Promise<void> {
    try {
      if (series.persisted) {
        try {
          await this.#client.patch(resourcePath(EVENTS, { namespace: series.namespace, name: series.name }), {
            series: { count, lastObservedTime: formatMicroTime(lastObservedAt) },
          });
          return;
        } catch (err) {
          if (!isNotFound(err)) throw err;
          // The API server's event TTL removed it while the series went on: start a new Event.
          series.persisted = false;
          series.name = eventName(series.regarding.name);
        }
      }
      try {
        await this.#client.create(resourcePath(EVENTS, { namespace: series.namespace }), this.#eventObject(series, count, lastObservedAt), {
          discardBody: true,
        });
      } catch (err) {
        // Our own earlier create that timed out on the way back: the Event is there.
        if (!isAlreadyExists(err)) throw err;
      }
      series.persisted = true;
    } catch (err) {
      this.#log.warn(
        { err: errorMessage(err), regarding: describe(series.regarding), reason: series.reason, event: `${series.namespace}/${series.name}`, count },
        "could not write event",
      );
    }
  }

  #eventObject(series: Series, count: number, lastObservedAt: number): EventObject {
    return {
      apiVersion: "events.k8s.io/v1",
      kind: "Event",
      metadata: { name: series.name, namespace: series.namespace },
      eventTime: formatMicroTime(series.firstObservedAt),
      // The API server accepts a series only from its second occurrence on.
      ...(count > 1 ? { series: { count, lastObservedTime: formatMicroTime(lastObservedAt) } } : {}),
      reportingController: this.#reportingController,
      reportingInstance: this.#reportingInstance,
      action: series.action,
      reason: series.reason,
      regarding: series.regarding,
      note: series.note,
      type: series.type,
    };
  }
}

/** "Kind ns/name" for logs; tolerant of malformed input, since it also describes what failed. */
function describe(r: EventRegarding | undefined): string {
  if (!r) return String(r);
  return `${r.kind} ${r.namespace ? `${r.namespace}/` : ""}${r.name}`;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
