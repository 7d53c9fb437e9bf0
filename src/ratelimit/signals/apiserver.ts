// The API server signal: which APF FlowSchema and priority level our pod writes land in, and, when
// RBAC allows, kube-apiserver's own APF metrics for that priority level as a guardrail. The client-side
// figures (latency, 429s, Retry-After: write-latency.ts) are primary, being immediate and exactly our
// writes; scraped metrics lag by a scrape interval (docs/architecture.md, "Signals and their sources").

import { setTimeout as sleep } from "node:timers/promises";
import type { IncomingHttpHeaders } from "node:http";
import type { Logger } from "pino";
import type { KubeClient, ResponseObservation } from "../../kube/client.ts";
import { isForbidden } from "../../kube/errors.ts";
import { FLOW_SCHEMAS, PRIORITY_LEVELS, resourcePath } from "../../kube/resources.ts";
import { bucketIncrease, counterIncrease, histogramBuckets, histogramQuantile, parseFamilies, type Bucket } from "./prometheus.ts";

export const FLOW_SCHEMA_UID_HEADER = "x-kubernetes-pf-flowschema-uid";
export const PRIORITY_LEVEL_UID_HEADER = "x-kubernetes-pf-prioritylevel-uid";

/** Gauge: requests waiting in APF queues, by flow_schema and priority_level. */
export const APF_INQUEUE_METRIC = "apiserver_flowcontrol_current_inqueue_requests";
/** Histogram: time requests spent queued, by flow_schema, priority_level and execute. */
export const APF_WAIT_METRIC = "apiserver_flowcontrol_request_wait_duration_seconds";
/** Counter: requests APF rejected, by flow_schema, priority_level and reason (queue-full, concurrency-limit, time-out, cancelled). */
export const APF_REJECTED_METRIC = "apiserver_flowcontrol_rejected_requests_total";
const APF_FAMILIES = [APF_INQUEUE_METRIC, APF_WAIT_METRIC, APF_REJECTED_METRIC] as const;

/**
 * Least time between two lookups of FlowSchema and PriorityLevelConfiguration names. A new UID
 * triggers a lookup, but APF objects rarely change and two LISTs per unknown UID must not become a
 * storm when, say, a FlowSchema is recreated while we write thousands of pods.
 */
export const APF_NAMES_REFRESH_MIN_INTERVAL_MS = 30_000;
/** How often kube-apiserver /metrics is scraped while we write. */
export const APISERVER_METRICS_INTERVAL_MS = 15_000;
/** Deadline for one /metrics scrape: the page is megabytes. */
export const APISERVER_METRICS_TIMEOUT_MS = 10_000;
/**
 * No scrape when no pod write was seen for this long: 3.5 MB per scrape is a cost to the API server
 * we only pay while a rollout is writing.
 */
export const APISERVER_METRICS_IDLE_AFTER_MS = 60_000;
/**
 * A previous scrape older than this many intervals is too old to diff against: its increase would
 * describe a past quiet spell, not now. The next scrape only becomes the new baseline.
 */
export const APISERVER_METRICS_MAX_BASELINE_INTERVALS = 2;
/** Quantile of the APF queue wait reported (the tail is what a 429 follows). */
export const APF_WAIT_QUANTILE = 0.99;

/** Whether a request is a pod write: create, delete, patch or update of a pod itself, no subresource. */
export function isPodWrite(method: string, path: string): boolean {
  if (method === "GET") return false;
  return /^\/api\/v1\/namespaces\/[^/]+\/pods(\/[^/]+)?$/.test(path);
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return (Array.isArray(value) ? value[0] : value) || undefined;
}

export type ApfMetricsState = "Disabled" | "Idle" | "Ok" | "Forbidden" | "Failing";

export interface ApfMetrics {
  /**
   * Disabled: not configured; Idle: no pod write to judge yet or no baseline; Ok: figures below are from the
   * last scrape; Forbidden: RBAC denies /metrics, client-side signals only; Failing: scrapes fail.
   */
  state: ApfMetricsState;
  message?: string;
  /** When the figures were scraped. */
  at?: number;
  /** The priority level the figures are for. */
  priorityLevel?: string;
  /** Requests queued in that priority level at the scrape, over all its flow schemas. */
  inQueue?: number;
  /** APF_WAIT_QUANTILE of queue wait between the last two scrapes. */
  waitP99Ms?: number;
  /** Requests of the priority level APF rejected between the last two scrapes. */
  rejected?: number;
}

export interface ApiServerSnapshot {
  /** Name of the FlowSchema our last pod write matched; undefined until resolved (see the UID). */
  flowSchema?: string;
  priorityLevel?: string;
  flowSchemaUid?: string;
  priorityLevelUid?: string;
  /** True once kube-apiserver /metrics answered 403: status should say client-side signals only. */
  metricsForbidden: boolean;
  metrics: ApfMetrics;
}

export interface ApiServerSignalOptions {
  client: Pick<KubeClient, "request">;
  logger: Logger;
  /** Scrape kube-apiserver /metrics (OperatorConfig.apiServerMetrics). */
  scrapeMetrics?: boolean;
  clock?: () => number;
  namesRefreshMinIntervalMs?: number;
  metricsIntervalMs?: number;
}

interface NamedList {
  items?: Array<{ metadata?: { name?: string; uid?: string } }>;
}

interface ScrapeBaseline {
  at: number;
  priorityLevel: string;
  wait: Bucket[];
  rejected: Map<string, number>;
}

export class ApiServerSignal {
  readonly #client: Pick<KubeClient, "request">;
  readonly #log: Logger;
  readonly #clock: () => number;
  readonly #namesMinIntervalMs: number;
  readonly #metricsIntervalMs: number;
  readonly #flowSchemas = new Map<string, string>();
  readonly #priorityLevels = new Map<string, string>();
  #namesFetchedAt = -Infinity;
  #namesInFlight: Promise<void> | undefined;
  #namesForbidden = false;
  #flowSchemaUid: string | undefined;
  #priorityLevelUid: string | undefined;
  #reportedIdentity = "";
  #lastWriteAt = -Infinity;
  #metrics: ApfMetrics;
  #baseline: ScrapeBaseline | undefined;

  constructor(opts: ApiServerSignalOptions) {
    this.#client = opts.client;
    this.#log = opts.logger.child({ signal: "apiServer" });
    this.#clock = opts.clock ?? Date.now;
    this.#namesMinIntervalMs = opts.namesRefreshMinIntervalMs ?? APF_NAMES_REFRESH_MIN_INTERVAL_MS;
    this.#metricsIntervalMs = opts.metricsIntervalMs ?? APISERVER_METRICS_INTERVAL_MS;
    this.#metrics = opts.scrapeMetrics === false ? { state: "Disabled", message: "apiServerMetrics is off" } : { state: "Idle" };
  }

  /** Subscribes to every response of the client; returns the unsubscribe function. */
  attach(client: Pick<KubeClient, "onResponse">): () => void {
    return client.onResponse((o) => this.observe(o));
  }

  /** Feeds one response (or failure). Only pod writes count: they are what we pace. */
  readonly observe = (o: ResponseObservation): void => {
    if (!isPodWrite(o.method, o.path)) return;
    // Outcomes (429s, 5xx, no answer) are counted where a write's latency is: write-latency.ts.
    this.#lastWriteAt = this.#clock();
    const fs = header(o.headers, FLOW_SCHEMA_UID_HEADER);
    const pl = header(o.headers, PRIORITY_LEVEL_UID_HEADER);
    if (fs) this.#flowSchemaUid = fs;
    if (pl) this.#priorityLevelUid = pl;
    if ((fs && !this.#flowSchemas.has(fs)) || (pl && !this.#priorityLevels.has(pl))) void this.refreshNames();
    else this.#reportIdentity();
  };

  /**
   * Looks the APF object names up again, unless that happened less than the minimum interval ago or
   * RBAC forbids it. Never throws: an unknown name only costs status its readability.
   */
  refreshNames(): Promise<void> {
    if (this.#namesInFlight) return this.#namesInFlight;
    const now = this.#clock();
    if (this.#namesForbidden || now - this.#namesFetchedAt < this.#namesMinIntervalMs) return Promise.resolve();
    this.#namesFetchedAt = now;
    this.#namesInFlight = this.#fetchNames().finally(() => (this.#namesInFlight = undefined));
    return this.#namesInFlight;
  }

  async #fetchNames(): Promise<void> {
    try {
      const [schemas, levels] = await Promise.all([
        this.#client.request<NamedList>({ method: "GET", path: resourcePath(FLOW_SCHEMAS) }),
        this.#client.request<NamedList>({ method: "GET", path: resourcePath(PRIORITY_LEVELS) }),
      ]);
      fill(this.#flowSchemas, schemas.body);
      fill(this.#priorityLevels, levels.body);
      this.#reportIdentity();
    } catch (err) {
      if (isForbidden(err)) {
        this.#namesForbidden = true;
        this.#log.warn({ err: (err as Error).message }, "cannot list FlowSchemas/PriorityLevelConfigurations (forbidden); APF identity shown by UID only");
      } else {
        this.#log.warn({ err: err instanceof Error ? err.message : String(err) }, "APF name lookup failed; retrying on the next unknown UID");
      }
    }
  }

  /** One line when the FlowSchema or priority level our writes land in changes: it decides who we compete with. */
  #reportIdentity(): void {
    const flowSchema = this.#name(this.#flowSchemas, this.#flowSchemaUid);
    const priorityLevel = this.#name(this.#priorityLevels, this.#priorityLevelUid);
    const identity = `${flowSchema ?? this.#flowSchemaUid}/${priorityLevel ?? this.#priorityLevelUid}`;
    if (identity === this.#reportedIdentity || (!flowSchema && !priorityLevel)) return;
    this.#reportedIdentity = identity;
    this.#log.info({ flowSchema, priorityLevel, flowSchemaUid: this.#flowSchemaUid, priorityLevelUid: this.#priorityLevelUid }, "pod writes land in this APF flow schema and priority level");
  }

  #name(map: Map<string, string>, uid: string | undefined): string | undefined {
    return uid === undefined ? undefined : map.get(uid);
  }

  get metricsForbidden(): boolean {
    return this.#metrics.state === "Forbidden";
  }

  snapshot(): ApiServerSnapshot {
    const flowSchema = this.#name(this.#flowSchemas, this.#flowSchemaUid);
    const priorityLevel = this.#name(this.#priorityLevels, this.#priorityLevelUid);
    return {
      ...(flowSchema ? { flowSchema } : {}),
      ...(priorityLevel ? { priorityLevel } : {}),
      ...(this.#flowSchemaUid ? { flowSchemaUid: this.#flowSchemaUid } : {}),
      ...(this.#priorityLevelUid ? { priorityLevelUid: this.#priorityLevelUid } : {}),
      metricsForbidden: this.metricsForbidden,
      metrics: { ...this.#metrics },
    };
  }

  /**
   * Scrapes kube-apiserver /metrics every interval while pod writes are being made, until the
   * signal aborts or the API server answers 403. Never throws.
   */
  async run(signal: AbortSignal): Promise<void> {
    if (this.#metrics.state === "Disabled") return;
    while (!signal.aborted && this.#metrics.state !== "Forbidden") {
      await sleep(this.#metricsIntervalMs, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) break;
      if (this.#clock() - this.#lastWriteAt > APISERVER_METRICS_IDLE_AFTER_MS) continue;
      await this.scrape(signal);
    }
  }

  /** One scrape of the APF figures for our priority level. */
  async scrape(signal?: AbortSignal): Promise<ApfMetrics> {
    if (this.#metrics.state === "Disabled" || this.#metrics.state === "Forbidden") return this.#metrics;
    const priorityLevel = this.#name(this.#priorityLevels, this.#priorityLevelUid);
    if (!priorityLevel) {
      this.#metrics = { state: "Idle", message: "our priority level is not known yet (no pod write seen, or its name not resolved)" };
      return this.#metrics;
    }
    let text: string;
    try {
      const res = await this.#client.request<string[]>({
        method: "GET",
        path: "/metrics",
        accept: "text/plain;version=0.0.4",
        // Megabytes every interval, of which the APF families are a few hundred lines: keep only
        // those as the body streams in, so the page is never in memory whole.
        responseType: "lines",
        keepLine: (line) => APF_FAMILIES.some((family) => line.startsWith(family)),
        timeoutMs: APISERVER_METRICS_TIMEOUT_MS,
        // A throttled scrape is skipped, not retried: the next interval brings a fresh one.
        retryThrottled: false,
        signal,
      });
      text = res.body.join("\n");
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (isForbidden(err)) {
        this.#metrics = { state: "Forbidden", message: "kube-apiserver /metrics is forbidden (RBAC nonResourceURLs /metrics, get); using client-side signals only" };
        this.#log.warn({ err: message }, "kube-apiserver /metrics forbidden; using client-side signals only");
      } else {
        if (this.#metrics.state !== "Failing") this.#log.warn({ err: message }, "kube-apiserver /metrics scrape failed; APF guardrail figures are stale until one succeeds");
        this.#metrics = { ...this.#metrics, state: "Failing", message: `scrape failed: ${message}` };
      }
      return this.#metrics;
    }
    const wasFailing = this.#metrics.state === "Failing";
    this.#metrics = this.#evaluate(text, priorityLevel, this.#clock());
    if (wasFailing) this.#log.info({ priorityLevel }, "kube-apiserver /metrics scrapes work again");
    return this.#metrics;
  }

  #evaluate(text: string, priorityLevel: string, now: number): ApfMetrics {
    const samples = parseFamilies(text, APF_FAMILIES);
    const ours = (labels: Record<string, string>) => labels.priority_level === priorityLevel;
    let inQueue = 0;
    const rejected = new Map<string, number>();
    for (const s of samples) {
      if (!ours(s.labels)) continue;
      if (s.name === APF_INQUEUE_METRIC) inQueue += s.value;
      else if (s.name === APF_REJECTED_METRIC) {
        const reason = s.labels.reason ?? "unknown";
        rejected.set(reason, (rejected.get(reason) ?? 0) + s.value);
      }
    }
    const wait = histogramBuckets(samples, APF_WAIT_METRIC, ours);
    const previous = this.#baseline;
    this.#baseline = { at: now, priorityLevel, wait, rejected };
    const fresh = previous && previous.priorityLevel === priorityLevel && now - previous.at <= APISERVER_METRICS_MAX_BASELINE_INTERVALS * this.#metricsIntervalMs;
    if (!previous || !fresh) {
      return { state: "Idle", message: "first scrape of this priority level: its figures are the baseline for the next", at: now, priorityLevel, inQueue };
    }
    let rejectedTotal = 0;
    for (const [reason, value] of rejected) rejectedTotal += counterIncrease(previous.rejected.get(reason) ?? 0, value);
    const waitSeconds = histogramQuantile(APF_WAIT_QUANTILE, bucketIncrease(previous.wait, wait));
    return {
      state: "Ok",
      at: now,
      priorityLevel,
      inQueue,
      ...(waitSeconds === undefined ? {} : { waitP99Ms: Math.round(waitSeconds * 1_000) }),
      rejected: rejectedTotal,
    };
  }
}

function fill(map: Map<string, string>, list: NamedList): void {
  map.clear();
  for (const item of list.items ?? []) {
    const { uid, name } = item.metadata ?? {};
    if (uid && name) map.set(uid, name);
  }
}
