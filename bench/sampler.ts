import { Agent, request } from "undici";
import type { KubeClient } from "../src/kube/client.ts";
import { PORTS } from "../test/cluster/layout.ts";
import type { PodTracker } from "./pod-tracker.ts";
import { readProcUsage } from "./scrape/proc.ts";
import { type PromSample, histogramBuckets, parseFamilies, sumBy, sumOf } from "./scrape/prometheus-text.ts";
import type { Sample, WriterRecord } from "./samples.ts";

// The per-second sampler: once a second it records what only a live read can tell (kube-apiserver's
// APF gauges and rejections, kube-scheduler's queue, the operator's own metrics and status, CPU and
// memory from /proc) next to the pod counts of the method's watch. Scrapes run concurrently with the
// tick and land in the sample of the second that started them; a scrape still running when the next
// second starts is not doubled up (that second then has no such reading).

export const SAMPLE_INTERVAL_MS = 1_000;
/** A scrape slower than this is abandoned: it would only describe a second long gone. */
export const SCRAPE_TIMEOUT_MS = 5_000;
const MS_PER_S = 1_000;
/** Memory is reported in MB (10^6 bytes), the unit of the targets. */
const BYTES_PER_MB = 1_000_000;

/** APF's per-priority-level table: cheap enough to read every second, unlike /metrics. */
const APF_DUMP_PATH = "/debug/api_priority_and_fairness/dump_priority_levels";
/** kube-apiserver's /metrics is ~3 MB and takes over a second to render under load: read it every this many samples. */
export const FULL_SCRAPE_EVERY = 5;
const REJECTED = "apiserver_flowcontrol_rejected_requests_total";
const APISERVER_FAMILIES = [
  REJECTED,
  "apiserver_flowcontrol_current_inqueue_requests",
  "apiserver_flowcontrol_current_executing_requests",
  "apiserver_flowcontrol_dispatched_requests_total",
] as const;
/** Only POST pods lines of this (very large) histogram family are parsed. */
const REQUEST_DURATION = "apiserver_request_duration_seconds";
const OPERATOR_FAMILIES = [
  "rest_client_requests_total",
  "rest_client_request_duration_seconds",
  "nodejs_eventloop_lag_p99_seconds",
  "nodejs_eventloop_lag_max_seconds",
  "batchrollout_write_rate_per_second",
  "batchrollout_write_concurrency",
  "batchrollout_wave_size",
  "batchrollout_signal_write_latency_p90_seconds",
] as const;

export interface ApfIdentity {
  flowSchema: string;
  priorityLevel: string;
}

/** What the method's first and last kube-apiserver scrapes held, for figures over the whole window. */
export interface ApiServerWindow {
  first?: PromSample[];
  last?: PromSample[];
}

export interface SamplerTargets {
  trackers: PodTracker[];
  /** The identity whose rejections count as the writer's (for a Deployment: the replicaset controller). */
  writer: ApfIdentity;
  /** Shared priority level of writer and bystander. */
  sharedLevel: string;
  pids: () => Map<string, number>;
}

function quantile(sorted: readonly number[], q: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

export class Sampler {
  readonly #admin: KubeClient;
  readonly #insecure = new Agent({ connect: { rejectUnauthorized: false } });
  #targets?: SamplerTargets;
  #timer?: ReturnType<typeof setInterval>;
  #t0 = 0;
  #samples: Sample[] = [];
  #writer: WriterRecord[] = [];
  #writerCursor = 0;
  #busy = new Set<string>();
  #prevDump?: { shared: number; writer: number };
  #prevWriterRejected?: number;
  #prevOperator?: { requests: number; throttled: number };
  #operatorMetricsUrl?: string;
  #rolloutPath?: string;
  #api: ApiServerWindow = {};
  #pending = new Set<Promise<void>>();

  constructor(admin: KubeClient) {
    this.#admin = admin;
  }

  /** Starts a method's samples; the first covers [t0, t0 + 1 s). */
  begin(targets: SamplerTargets, t0: number): void {
    this.#targets = targets;
    this.#t0 = t0;
    this.#samples = [];
    this.#writer = [];
    this.#writerCursor = 0;
    this.#prevDump = undefined;
    this.#prevWriterRejected = undefined;
    this.#prevOperator = undefined;
    this.#api = {};
    this.#scrapeApiServer(undefined);
    this.#timer = setInterval(() => this.#tick(), SAMPLE_INTERVAL_MS);
  }

  watchOperator(metricsUrl: string): void {
    this.#operatorMetricsUrl = metricsUrl;
  }

  watchRollout(path: string): void {
    this.#rolloutPath = path;
  }

  writerResponse(r: WriterRecord): void {
    this.#writer.push(r);
  }

  /** Stops sampling, waits for scrapes in flight, and takes a last kube-apiserver reading. */
  async end(): Promise<{ samples: Sample[]; apiServer: ApiServerWindow; writer: WriterRecord[] }> {
    clearInterval(this.#timer);
    await Promise.allSettled([...this.#pending]);
    this.#scrapeApiServer(undefined);
    await Promise.allSettled([...this.#pending]);
    // Set by the method before its clock started; they belong to this method only.
    this.#operatorMetricsUrl = undefined;
    this.#rolloutPath = undefined;
    this.#targets = undefined;
    return { samples: this.#samples, apiServer: this.#api, writer: this.#writer };
  }

  async close(): Promise<void> {
    await this.#insecure.close();
  }

  #tick(): void {
    const targets = this.#targets;
    if (!targets) return;
    const at = Date.now();
    const t = Math.round((at - this.#t0) / MS_PER_S);
    const proc: Sample["proc"] = {};
    for (const [name, pid] of targets.pids()) {
      const u = readProcUsage(pid);
      if (u) proc[name] = { cpuS: u.cpuSeconds, rssMB: Math.round((u.rssBytes / BYTES_PER_MB) * 10) / 10 };
    }
    const primary = targets.trackers[0];
    const sample: Sample = { t, at, proc, ...(primary ? { pods: this.#podCounts(primary) } : {}) };
    sample.writer = this.#writerSecond();
    this.#samples.push(sample);
    this.#scrapeApiServer(sample);
    this.#run("scheduler", async () => {
      sample.scheduler = await this.#schedulerPending();
    });
    if (this.#operatorMetricsUrl) {
      const url = this.#operatorMetricsUrl;
      this.#run("operator", async () => {
        sample.operator = await this.#operator(url);
      });
    }
    if (this.#rolloutPath) {
      const path = this.#rolloutPath;
      this.#run("rollout", async () => {
        sample.rollout = await this.#rollout(path);
      });
    }
  }

  #podCounts(tracker: PodTracker): Sample["pods"] {
    const { created, scheduled, running, unscheduled } = tracker.counts();
    return { created, scheduled, running, unscheduled };
  }

  /** Responses that arrived since the previous tick (records come in arrival order, so a cursor suffices). */
  #writerSecond(): Sample["writer"] {
    const recent = this.#writer.slice(this.#writerCursor);
    this.#writerCursor = this.#writer.length;
    if (recent.length === 0) return undefined;
    const posts = recent.filter((r) => r.method === "POST").map((r) => r.ms).sort((a, b) => a - b);
    const throttled = recent.filter((r) => r.code === 429);
    const p99 = quantile(posts, 0.99);
    return {
      responses: recent.length,
      throttled: throttled.length,
      retryAfterS: throttled.map((r) => r.retryAfter).filter((v): v is number => v !== undefined),
      ...(p99 === undefined ? {} : { postP99Ms: p99 }),
    };
  }

  /** Runs one scrape unless the same kind is still running from an earlier second. */
  #run(kind: string, fn: () => Promise<void>): void {
    if (this.#busy.has(kind)) return;
    this.#busy.add(kind);
    const p = fn()
      .catch(() => undefined)
      .finally(() => {
        this.#busy.delete(kind);
        this.#pending.delete(p);
      });
    this.#pending.add(p);
  }

  /**
   * Every second: APF's own per-priority-level table (a few hundred bytes). Every FULL_SCRAPE_EVERY
   * seconds, and at the method's start and end: the full /metrics, whose flow-schema labels tell the
   * writer's rejections apart and whose histograms give POST pods latency over the whole window.
   */
  #scrapeApiServer(sample: Sample | undefined): void {
    const targets = this.#targets;
    if (!targets) return;
    {
      this.#run("apf-dump", async () => {
        const res = await this.#admin.request<string>({ method: "GET", path: APF_DUMP_PATH, responseType: "text", timeoutMs: SCRAPE_TIMEOUT_MS });
        const levels = parseApfDump(res.body);
        const shared = levels.get(targets.sharedLevel);
        const writer = levels.get(targets.writer.priorityLevel);
        const prev = this.#prevDump;
        this.#prevDump = { shared: shared?.rejected ?? 0, writer: writer?.rejected ?? 0 };
        if (!shared || !prev || !sample) return;
        sample.apf = {
          workloadLowWaiting: shared.waiting,
          workloadLowExecuting: shared.executing,
          workloadLowRejected: Math.max(0, shared.rejected - prev.shared),
          ...(writer && targets.writer.priorityLevel !== targets.sharedLevel
            ? { writerLevelWaiting: writer.waiting, writerLevelRejected: Math.max(0, writer.rejected - prev.writer) }
            : {}),
        };
      });
    }
    if (sample && sample.t % FULL_SCRAPE_EVERY !== 0) return;
    this.#run("apiserver", async () => {
      const res = await this.#admin.request<string>({ method: "GET", path: "/metrics", responseType: "text", timeoutMs: SCRAPE_TIMEOUT_MS });
      const text = res.body;
      const parsed = parseFamilies(text, APISERVER_FAMILIES);
      const durations = parseFamilies(
        text.split("\n").filter((l) => l.startsWith(REQUEST_DURATION) && l.includes('verb="POST"') && l.includes('resource="pods"') && l.includes('subresource=""')).join("\n"),
        [REQUEST_DURATION],
      );
      const all = [...parsed, ...durations];
      this.#api.first ??= all;
      this.#api.last = all;
      const writerRejected = sumOf(parsed, REJECTED, { flow_schema: targets.writer.flowSchema, priority_level: targets.writer.priorityLevel });
      const prev = this.#prevWriterRejected;
      this.#prevWriterRejected = writerRejected;
      if (!sample || prev === undefined) return;
      sample.apfWriterFlow = {
        rejected: Math.max(0, writerRejected - prev),
        inQueue: sumOf(parsed, "apiserver_flowcontrol_current_inqueue_requests", { flow_schema: targets.writer.flowSchema, priority_level: targets.writer.priorityLevel }),
      };
    });
  }

  async #schedulerPending(): Promise<Sample["scheduler"]> {
    const res = await request(`https://127.0.0.1:${PORTS.scheduler}/metrics`, {
      dispatcher: this.#insecure,
      headersTimeout: SCRAPE_TIMEOUT_MS,
      bodyTimeout: SCRAPE_TIMEOUT_MS,
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) return undefined;
    const byQueue = Object.fromEntries(sumBy(parseFamilies(text, ["scheduler_pending_pods"]), "scheduler_pending_pods", ["queue"]));
    return { pending: Object.values(byQueue).reduce((a, b) => a + b, 0), byQueue };
  }

  async #operator(url: string): Promise<Sample["operator"]> {
    const res = await request(url, { headersTimeout: SCRAPE_TIMEOUT_MS, bodyTimeout: SCRAPE_TIMEOUT_MS });
    const text = await res.body.text();
    if (res.statusCode !== 200) return undefined;
    const m = parseFamilies(text, OPERATOR_FAMILIES);
    const requests = sumOf(m, "rest_client_requests_total");
    const throttled = sumOf(m, "rest_client_requests_total", { code: "429" });
    const prev = this.#prevOperator ?? { requests: 0, throttled: 0 };
    this.#prevOperator = { requests, throttled };
    const ms = (name: string) => {
      const found = m.find((s) => s.name === name);
      return found === undefined ? undefined : Math.round(found.value * MS_PER_S * 10) / 10;
    };
    const value = (name: string) => m.find((s) => s.name === name)?.value;
    return {
      requests: requests - prev.requests,
      throttled: throttled - prev.throttled,
      eventLoopLagP99Ms: ms("nodejs_eventloop_lag_p99_seconds"),
      eventLoopLagMaxMs: ms("nodejs_eventloop_lag_max_seconds"),
      writeRatePerS: value("batchrollout_write_rate_per_second"),
      writeConcurrency: value("batchrollout_write_concurrency"),
      waveSize: value("batchrollout_wave_size"),
      writeLatencyP90Ms: ms("batchrollout_signal_write_latency_p90_seconds"),
    };
  }

  async #rollout(path: string): Promise<Sample["rollout"]> {
    interface Status {
      replicas?: number;
      wave?: { number?: number; size?: number; limitedBy?: string; message?: string };
      signals?: { apiServer?: { writeLatencyP90Ms?: number; throttled?: number; retryAfterSeconds?: number }; scheduler?: { pending?: number } };
    }
    const br = await this.#admin.get<{ status?: Status }>(path);
    const s = br.status;
    const api = s?.signals?.apiServer;
    return {
      replicas: s?.replicas ?? 0,
      wave: s?.wave?.number ?? 0,
      waveSize: s?.wave?.size ?? 0,
      limitedBy: s?.wave?.limitedBy ?? "",
      ...(s?.wave?.message ? { message: s.wave.message } : {}),
      ...(api?.writeLatencyP90Ms === undefined ? {} : { writeLatencyP90Ms: api.writeLatencyP90Ms }),
      ...(api?.throttled === undefined ? {} : { throttled: api.throttled }),
      ...(api?.retryAfterSeconds === undefined ? {} : { retryAfterS: api.retryAfterSeconds }),
      ...(s?.signals?.scheduler?.pending === undefined ? {} : { schedulerPending: s.signals.scheduler.pending }),
    };
  }
}

/** Buckets of POST pods latency in a scrape, for a p99 over the method's window. */
export function postPodBuckets(samples: readonly PromSample[]): Map<number, number> {
  return histogramBuckets(samples, REQUEST_DURATION, { verb: "POST", resource: "pods" });
}

interface LevelState {
  waiting: number;
  executing: number;
  rejected: number;
}

/** Parses APF's dump_priority_levels table (a header line, then one comma-separated row per level). */
export function parseApfDump(text: string): Map<string, LevelState> {
  const [header, ...rows] = text.trim().split("\n");
  const columns = (header ?? "").split(",").map((c) => c.trim());
  const col = (name: string) => columns.indexOf(name);
  const out = new Map<string, LevelState>();
  for (const row of rows) {
    const cells = row.split(",").map((c) => c.trim());
    const name = cells[col("PriorityLevelName")];
    if (!name) continue;
    out.set(name, {
      waiting: Number(cells[col("WaitingRequests")]) || 0,
      executing: Number(cells[col("ExecutingRequests")]) || 0,
      rejected: Number(cells[col("RejectedRequests")]) || 0,
    });
  }
  return out;
}
