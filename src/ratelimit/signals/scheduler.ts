// The scheduler signal: pods waiting for kube-scheduler, for one rollout or the whole cluster, split
// by why they wait, and optionally kube-scheduler's own queue gauges.
//
// Why a slim full-object informer and not a metadata-only one, which would be smaller: the split
// into Unschedulable / SchedulingGated / not yet tried lives in status.conditions (PodScheduled) and
// spec.schedulingGates, and PartialObjectMetadata carries neither. The API server sends Pending pods
// and the informer keeps those without a node, dropping a pod once it is bound, so the cache holds
// exactly the scheduler's backlog: its size follows the backlog (which the guard keeps near
// maxPending), not the cluster. Each cached pod keeps a handful of strings (slimUnscheduledPod), so
// even a 10,000-pod backlog costs a few MB.
//
// Why not the field selector `spec.nodeName=`: the API server's watch cache serves an exact
// spec.nodeName match from its per-node index, built for kubelets, and gives such a watch a buffer of
// 10 events however busy the cluster is. Every pod created and bound passes through this one, so a
// 100 pods/s rollout overflows it whenever the operator pauses for some 50 ms, and the server cuts
// it. Any other watch gets a buffer sized from the watch cache when it opens: 10 on a quiet server,
// hundreds once pod traffic has grown the cache, so a watch cut under load comes back with room.
// The price: bound pods that have not started (image pulls, init containers) come too, and their
// updates are decoded and dropped on arrival.

import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import { LABEL_NAME, type SchedulerScope } from "../../api/batchrollout.ts";
import { Informer, type InformerHandlers, type ObjectWithMeta } from "../../controllers/informer.ts";
import type { KubeClient } from "../../kube/client.ts";
import { PODS, resourcePath } from "../../kube/resources.ts";
import type { MetricsEndpoint } from "./metrics-endpoint.ts";
import { parseFamilies } from "./prometheus.ts";

/**
 * Pods not started yet; those without a node (isUnbound) are the scheduler's. A pod that failed before
 * it was bound (e.g. rejected by an admission plugin on the node side) is not Pending: it no longer waits.
 */
export const UNSCHEDULED_PODS_FIELD_SELECTOR = "status.phase=Pending";

/** No node chosen yet: the client-side half of the selector (see the top of this file). */
export function isUnbound(raw: ObjectWithMeta): boolean {
  return !(raw as { spec?: { nodeName?: string } }).spec?.nodeName;
}
/** Index name: unscheduled pods by "<namespace>/<value of batchrollout.dev/name>". */
export const BY_ROLLOUT_NAME = "byRolloutName";
/** kube-scheduler's gauge of pods in its queues, by queue (active, backoff, unschedulable, gated). */
export const SCHEDULER_PENDING_METRIC = "scheduler_pending_pods";
/** How often kube-scheduler's metrics are scraped when a URL is configured; the page is small. */
export const SCHEDULER_METRICS_INTERVAL_MS = 5_000;
/** Longest unschedulable message quoted in status: the scheduler's can list every node's reason. */
export const UNSCHEDULABLE_MESSAGE_MAX_CHARS = 500;

export interface UnscheduledPod extends ObjectWithMeta {
  metadata: { name: string; namespace: string; resourceVersion?: string; deletionTimestamp?: string; labels?: Record<string, string> };
  /** spec.schedulingGates is non-empty: the scheduler will not try until every gate is removed. */
  gated: boolean;
  /** The PodScheduled condition, when the scheduler has written one. */
  scheduled?: { status: string; reason?: string; message?: string };
}

interface RawPod {
  metadata?: { name?: string; namespace?: string; resourceVersion?: string; deletionTimestamp?: string; labels?: Record<string, string> };
  spec?: { schedulingGates?: unknown[] };
  status?: { conditions?: Array<{ type?: string; status?: string; reason?: string; message?: string }> };
}

/** What the cache keeps of an unscheduled pod: identity, our rollout label, gates and PodScheduled. */
export function slimUnscheduledPod(raw: ObjectWithMeta): UnscheduledPod {
  const { metadata, spec, status } = raw as RawPod;
  const rollout = metadata?.labels?.[LABEL_NAME];
  const condition = status?.conditions?.find((c) => c.type === "PodScheduled");
  return {
    metadata: {
      name: metadata?.name ?? "",
      namespace: metadata?.namespace ?? "",
      resourceVersion: metadata?.resourceVersion,
      ...(metadata?.deletionTimestamp ? { deletionTimestamp: metadata.deletionTimestamp } : {}),
      ...(rollout === undefined ? {} : { labels: { [LABEL_NAME]: rollout } }),
    },
    gated: (spec?.schedulingGates?.length ?? 0) > 0,
    ...(condition
      ? { scheduled: { status: condition.status ?? "Unknown", ...(condition.reason ? { reason: condition.reason } : {}), ...(condition.message ? { message: condition.message } : {}) } }
      : {}),
  };
}

export type WaitReason = "Unschedulable" | "SchedulingGated" | "NotYetTried";

/**
 * Why an unbound pod waits. Gates win: a gated pod is never tried. Unschedulable is the scheduler's
 * verdict after a try (PodScheduled=False, reason Unschedulable). Everything else (no condition yet,
 * or another reason such as SchedulerError) is in the scheduler's active or backoff queue.
 * A pod being deleted does not wait for anything.
 */
export function waitReason(pod: UnscheduledPod): WaitReason | undefined {
  if (pod.metadata.deletionTimestamp) return undefined;
  if (pod.gated || pod.scheduled?.reason === "SchedulingGated") return "SchedulingGated";
  if (pod.scheduled?.status === "False" && pod.scheduled.reason === "Unschedulable") return "Unschedulable";
  return "NotYetTried";
}

export interface PendingPods {
  /** Unbound, unfinished pods: all of the below. */
  pending: number;
  unschedulable: number;
  gated: number;
  notYetTried: number;
  /** The scheduler's message for one unschedulable pod (they usually share it), for status. */
  firstUnschedulableMessage?: string;
}

export function countPending(pods: Iterable<UnscheduledPod>): PendingPods {
  const out: PendingPods = { pending: 0, unschedulable: 0, gated: 0, notYetTried: 0 };
  for (const pod of pods) {
    const reason = waitReason(pod);
    if (!reason) continue;
    out.pending += 1;
    if (reason === "Unschedulable") {
      out.unschedulable += 1;
      const message = pod.scheduled?.message;
      if (message && out.firstUnschedulableMessage === undefined) out.firstUnschedulableMessage = message.slice(0, UNSCHEDULABLE_MESSAGE_MAX_CHARS);
    } else if (reason === "SchedulingGated") out.gated += 1;
    else out.notYetTried += 1;
  }
  return out;
}

/** scheduler_pending_pods by queue, as scraped. */
export interface SchedulerQueues {
  at: number;
  active?: number;
  backoff?: number;
  unschedulable?: number;
  gated?: number;
}

/** scheduler_pending_pods{queue} from a kube-scheduler metrics page; undefined when the gauge is absent. */
export function parseSchedulerQueues(text: string, at: number): SchedulerQueues | undefined {
  const samples = parseFamilies(text, [SCHEDULER_PENDING_METRIC]).filter((s) => s.name === SCHEDULER_PENDING_METRIC);
  if (samples.length === 0) return undefined;
  const out: SchedulerQueues = { at };
  for (const s of samples) {
    const queue = s.labels.queue;
    if (queue === "active" || queue === "backoff" || queue === "unschedulable" || queue === "gated") out[queue] = (out[queue] ?? 0) + s.value;
  }
  return out;
}

type PodSource = Pick<Informer<UnscheduledPod>, "list" | "byIndex" | "hasSynced" | "start" | "waitForSync" | "size" | "addHandlers">;

export interface SchedulerSignalOptions {
  client: Pick<KubeClient, "request" | "watch">;
  logger: Logger;
  /** Restrict to one namespace (OperatorConfig.watchNamespace); scope Cluster then means that namespace. */
  namespace?: string;
  /** kube-scheduler's metrics, when configured. */
  metrics?: Pick<MetricsEndpoint, "scrape" | "url">;
  metricsIntervalMs?: number;
  clock?: () => number;
  /** For tests: a ready-made source instead of the informer. */
  source?: PodSource;
}

export class SchedulerSignal {
  /** For the readiness probe's list of caches. */
  readonly name = "unscheduled-pods";
  readonly #log: Logger;
  readonly #pods: PodSource;
  readonly #metrics: SchedulerSignalOptions["metrics"];
  readonly #metricsIntervalMs: number;
  readonly #clock: () => number;
  #queues: SchedulerQueues | undefined;
  #metricsFailing = false;

  constructor(opts: SchedulerSignalOptions) {
    this.#log = opts.logger.child({ signal: "scheduler" });
    this.#metrics = opts.metrics;
    this.#metricsIntervalMs = opts.metricsIntervalMs ?? SCHEDULER_METRICS_INTERVAL_MS;
    this.#clock = opts.clock ?? Date.now;
    this.#pods =
      opts.source ??
      new Informer<UnscheduledPod>({
        name: this.name,
        client: opts.client,
        path: resourcePath(PODS, { namespace: opts.namespace }),
        fieldSelector: UNSCHEDULED_PODS_FIELD_SELECTOR,
        keep: isUnbound,
        transform: slimUnscheduledPod,
        indexers: {
          [BY_ROLLOUT_NAME]: (pod) => {
            const name = pod.metadata.labels?.[LABEL_NAME];
            return name === undefined ? [] : [`${pod.metadata.namespace}/${name}`];
          },
        },
        logger: opts.logger,
      });
  }

  /** Subscribes to the cache's events (OthersCreatingSignal counts its arrivals); call before run(). */
  addHandlers(handlers: InformerHandlers<UnscheduledPod>): void {
    this.#pods.addHandlers(handlers);
  }

  /** Runs the informer (and the metrics scrape, if configured) until the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const informer = this.#pods.start(signal);
    if (this.#metrics) this.#log.info({ url: this.#metrics.url }, "scraping kube-scheduler queue metrics");
    await Promise.all([informer, this.#metrics ? this.#scrapeLoop(signal) : undefined]);
  }

  waitForSync(signal?: AbortSignal): Promise<void> {
    return this.#pods.waitForSync(signal);
  }

  get hasSynced(): boolean {
    return this.#pods.hasSynced;
  }

  /**
   * Pods waiting for the scheduler: of the rollout `rolloutKey` ("<namespace>/<name>", matched by the
   * batchrollout.dev/name label, so pods of a rollout deleted and recreated under the same name count)
   * or of the whole cluster. Undefined until the cache has synced: an empty cache is not an empty queue.
   */
  pending(scope: SchedulerScope, rolloutKey: string): PendingPods | undefined {
    if (!this.#pods.hasSynced) return undefined;
    return countPending(scope === "Cluster" ? this.#pods.list() : this.#pods.byIndex(BY_ROLLOUT_NAME, rolloutKey));
  }


  /** The last scrape of scheduler_pending_pods, if a metrics URL is configured and a scrape worked. */
  queues(): SchedulerQueues | undefined {
    return this.#queues;
  }

  /** One scrape of kube-scheduler's queues; never throws. */
  async scrapeQueues(signal?: AbortSignal): Promise<SchedulerQueues | undefined> {
    if (!this.#metrics) return undefined;
    try {
      const queues = parseSchedulerQueues(await this.#metrics.scrape(signal), this.#clock());
      if (!queues) throw new Error(`${SCHEDULER_PENDING_METRIC} not found at ${this.#metrics.url}`);
      if (this.#metricsFailing) this.#log.info({ url: this.#metrics.url }, "kube-scheduler metrics scrapes work again");
      this.#metricsFailing = false;
      this.#queues = queues;
    } catch (err) {
      if (!this.#metricsFailing) this.#log.warn({ url: this.#metrics.url, err: err instanceof Error ? err.message : String(err) }, "kube-scheduler metrics scrape failed; counting pending pods from the API only");
      this.#metricsFailing = true;
      this.#queues = undefined;
    }
    return this.#queues;
  }

  async #scrapeLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await this.scrapeQueues(signal);
      await sleep(this.#metricsIntervalMs, undefined, { signal }).catch(() => undefined);
    }
  }
}
