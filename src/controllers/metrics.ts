// The work-queue and reconcile metrics controller-runtime exports, with its exact names, help texts
// and labels, so existing dashboards and alerts for Go controllers work unchanged on this operator.
import { Counter, Gauge, Histogram } from "prom-client";
import type { Registry } from "prom-client";
import type { Clock } from "./rate-limiter.ts";

/** Reconcile outcomes, the `result` label of controller_runtime_reconcile_total. */
export const RECONCILE_RESULT_SUCCESS = "success";
/** The reconciler threw (terminal or not). */
export const RECONCILE_RESULT_ERROR = "error";
/** The reconciler asked for a rate-limited requeue. */
export const RECONCILE_RESULT_REQUEUE = "requeue";
/** The reconciler asked to be called again after a fixed delay. */
export const RECONCILE_RESULT_REQUEUE_AFTER = "requeue_after";

export type ReconcileResultLabel =
  | typeof RECONCILE_RESULT_SUCCESS
  | typeof RECONCILE_RESULT_ERROR
  | typeof RECONCILE_RESULT_REQUEUE
  | typeof RECONCILE_RESULT_REQUEUE_AFTER;

/** Every `result` label value, for zero-initialising the series when a controller starts. */
export const RECONCILE_RESULTS: readonly ReconcileResultLabel[] = [
  RECONCILE_RESULT_ERROR,
  RECONCILE_RESULT_REQUEUE_AFTER,
  RECONCILE_RESULT_REQUEUE,
  RECONCILE_RESULT_SUCCESS,
];

/**
 * Buckets of workqueue_queue_duration_seconds and workqueue_work_duration_seconds: 10 ns to 1000 s
 * in decades, as controller-runtime's ExponentialBuckets(10e-9, 10, 12), written out so the `le`
 * labels carry no floating-point noise.
 */
export const WORKQUEUE_DURATION_BUCKETS_SECONDS: readonly number[] = [
  1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10, 100, 1000,
];

/** Buckets of controller_runtime_reconcile_time_seconds (controller-runtime's list, 5 ms to 60 s). */
export const RECONCILE_TIME_BUCKETS_SECONDS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5,
  1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
];

/**
 * controller-runtime sets the `priority` label of workqueue_depth only for its priority queue; a plain
 * queue reports the empty string, which Prometheus treats as the label being absent.
 */
export const WORKQUEUE_DEPTH_NO_PRIORITY = "";

type QueueLabel = "name" | "controller";

/**
 * Hooks a work queue calls as items move through it. The handle keeps the add and start times
 * itself, as client-go's queue metrics do, so the queue only reports events.
 */
export interface WorkqueueMetrics {
  /** A key entered the dirty set. */
  add(key: string): void;
  /** A worker took the key. */
  get(key: string): void;
  /** The worker finished the key. */
  done(key: string): void;
  /** AddAfter or AddRateLimited was called. */
  retry(): void;
  /** The queue shut down; stop reporting in-flight work for it. */
  release(): void;
}

/**
 * The controller-runtime metric families, registered on one Registry. Make one per Registry (tests:
 * one per test, on a fresh Registry) and hand it to every queue and controller of that process.
 */
export class ControllerMetrics {
  readonly workqueueDepth: Gauge<QueueLabel | "priority">;
  readonly workqueueAdds: Counter<QueueLabel>;
  readonly workqueueQueueDuration: Histogram<QueueLabel>;
  readonly workqueueWorkDuration: Histogram<QueueLabel>;
  readonly workqueueUnfinishedWork: Gauge<QueueLabel>;
  readonly workqueueLongestRunningProcessor: Gauge<QueueLabel>;
  readonly workqueueRetries: Counter<QueueLabel>;

  readonly reconcileTotal: Counter<"controller" | "result">;
  readonly reconcileErrors: Counter<"controller">;
  readonly terminalReconcileErrors: Counter<"controller">;
  readonly reconcilePanics: Counter<"controller">;
  readonly reconcileTime: Histogram<"controller">;
  readonly maxConcurrentReconciles: Gauge<"controller">;
  readonly activeWorkers: Gauge<"controller">;

  // In-flight work is only interesting when someone scrapes, so it is computed in `collect` from the
  // live queues instead of on a ticker: no timer keeps the process alive and the value is never stale.
  readonly #liveQueues = new Map<string, QueueMetricsHandle>();

  constructor(registry: Registry) {
    const registers = [registry];
    const queueLabels: QueueLabel[] = ["name", "controller"];
    const live = this.#liveQueues;

    this.workqueueDepth = new Gauge({
      name: "workqueue_depth",
      help: "Current depth of workqueue by workqueue and priority",
      labelNames: ["name", "controller", "priority"],
      registers,
    });
    this.workqueueAdds = new Counter({
      name: "workqueue_adds_total",
      help: "Total number of adds handled by workqueue",
      labelNames: queueLabels,
      registers,
    });
    this.workqueueQueueDuration = new Histogram({
      name: "workqueue_queue_duration_seconds",
      help: "How long in seconds an item stays in workqueue before being requested",
      labelNames: queueLabels,
      buckets: [...WORKQUEUE_DURATION_BUCKETS_SECONDS],
      registers,
    });
    this.workqueueWorkDuration = new Histogram({
      name: "workqueue_work_duration_seconds",
      help: "How long in seconds processing an item from workqueue takes.",
      labelNames: queueLabels,
      buckets: [...WORKQUEUE_DURATION_BUCKETS_SECONDS],
      registers,
    });
    this.workqueueUnfinishedWork = new Gauge({
      name: "workqueue_unfinished_work_seconds",
      help:
        "How many seconds of work has been done that is in progress and hasn't been observed by work_duration. " +
        "Large values indicate stuck threads. One can deduce the number of stuck threads by observing the rate at which this increases.",
      labelNames: queueLabels,
      registers,
      collect() {
        for (const [name, handle] of live) this.set({ name, controller: name }, handle.unfinishedWorkSeconds());
      },
    });
    this.workqueueLongestRunningProcessor = new Gauge({
      name: "workqueue_longest_running_processor_seconds",
      help: "How many seconds has the longest running processor for workqueue been running.",
      labelNames: queueLabels,
      registers,
      collect() {
        for (const [name, handle] of live) this.set({ name, controller: name }, handle.longestRunningSeconds());
      },
    });
    this.workqueueRetries = new Counter({
      name: "workqueue_retries_total",
      help: "Total number of retries handled by workqueue",
      labelNames: queueLabels,
      registers,
    });

    this.reconcileTotal = new Counter({
      name: "controller_runtime_reconcile_total",
      help: "Total number of reconciliations per controller",
      labelNames: ["controller", "result"],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: "controller_runtime_reconcile_errors_total",
      help: "Total number of reconciliation errors per controller",
      labelNames: ["controller"],
      registers,
    });
    this.terminalReconcileErrors = new Counter({
      name: "controller_runtime_terminal_reconcile_errors_total",
      help: "Total number of terminal reconciliation errors per controller",
      labelNames: ["controller"],
      registers,
    });
    this.reconcilePanics = new Counter({
      name: "controller_runtime_reconcile_panics_total",
      help: "Total number of reconciliation panics per controller",
      labelNames: ["controller"],
      registers,
    });
    this.reconcileTime = new Histogram({
      name: "controller_runtime_reconcile_time_seconds",
      help: "Length of time per reconciliation per controller",
      labelNames: ["controller"],
      buckets: [...RECONCILE_TIME_BUCKETS_SECONDS],
      registers,
    });
    this.maxConcurrentReconciles = new Gauge({
      name: "controller_runtime_max_concurrent_reconciles",
      help: "Maximum number of concurrent reconciles per controller",
      labelNames: ["controller"],
      registers,
    });
    this.activeWorkers = new Gauge({
      name: "controller_runtime_active_workers",
      help: "Number of currently used workers per controller",
      labelNames: ["controller"],
      registers,
    });
  }

  /**
   * Metrics for one named queue. controller-runtime names a controller's queue after the controller
   * and sets both `name` and `controller` to that name; so does this. Names must be unique among
   * live queues, or their in-flight figures would silently mix.
   */
  workqueue(name: string, clock: Clock): WorkqueueMetrics {
    if (this.#liveQueues.has(name)) {
      throw new Error(`workqueue metrics: a live queue named "${name}" already reports on this registry; queue names must be unique`);
    }
    const handle = new QueueMetricsHandle(this, name, clock, () => {
      if (this.#liveQueues.get(name) === handle) this.#liveQueues.delete(name);
    });
    this.#liveQueues.set(name, handle);
    return handle;
  }

  /** Sets every series of a controller to its starting value, so rates exist before the first event. */
  initController(controller: string, maxConcurrentReconciles: number): void {
    for (const result of RECONCILE_RESULTS) this.reconcileTotal.inc({ controller, result }, 0);
    this.reconcileErrors.inc({ controller }, 0);
    this.terminalReconcileErrors.inc({ controller }, 0);
    this.reconcilePanics.inc({ controller }, 0);
    this.maxConcurrentReconciles.set({ controller }, maxConcurrentReconciles);
    this.activeWorkers.set({ controller }, 0);
  }
}

class QueueMetricsHandle implements WorkqueueMetrics {
  readonly #metrics: ControllerMetrics;
  readonly #labels: Record<QueueLabel, string>;
  readonly #depthLabels: Record<QueueLabel | "priority", string>;
  readonly #clock: Clock;
  readonly #onRelease: () => void;
  readonly #addedAt = new Map<string, number>();
  readonly #startedAt = new Map<string, number>();

  constructor(metrics: ControllerMetrics, name: string, clock: Clock, onRelease: () => void) {
    this.#metrics = metrics;
    this.#labels = { name, controller: name };
    this.#depthLabels = { name, controller: name, priority: WORKQUEUE_DEPTH_NO_PRIORITY };
    this.#clock = clock;
    this.#onRelease = onRelease;
    // Series exist from the start, so a dashboard shows 0 rather than "no data" for an idle queue.
    metrics.workqueueDepth.set(this.#depthLabels, 0);
    metrics.workqueueAdds.inc(this.#labels, 0);
    metrics.workqueueRetries.inc(this.#labels, 0);
  }

  add(key: string): void {
    this.#metrics.workqueueAdds.inc(this.#labels);
    this.#metrics.workqueueDepth.inc(this.#depthLabels);
    // A key re-added while being processed keeps its first add time: the wait is measured from then.
    if (!this.#addedAt.has(key)) this.#addedAt.set(key, this.#clock.now());
  }

  get(key: string): void {
    const now = this.#clock.now();
    this.#metrics.workqueueDepth.dec(this.#depthLabels);
    this.#startedAt.set(key, now);
    const addedAt = this.#addedAt.get(key);
    if (addedAt !== undefined) {
      this.#metrics.workqueueQueueDuration.observe(this.#labels, (now - addedAt) / 1000);
      this.#addedAt.delete(key);
    }
  }

  done(key: string): void {
    const startedAt = this.#startedAt.get(key);
    if (startedAt !== undefined) {
      this.#metrics.workqueueWorkDuration.observe(this.#labels, (this.#clock.now() - startedAt) / 1000);
      this.#startedAt.delete(key);
    }
  }

  retry(): void {
    this.#metrics.workqueueRetries.inc(this.#labels);
  }

  release(): void {
    this.#onRelease();
    // The gauges are filled from live queues at scrape time; zero them so a stopped queue does not
    // report its last in-flight figures forever.
    this.#metrics.workqueueUnfinishedWork.set(this.#labels, 0);
    this.#metrics.workqueueLongestRunningProcessor.set(this.#labels, 0);
  }

  unfinishedWorkSeconds(): number {
    const now = this.#clock.now();
    let total = 0;
    for (const startedAt of this.#startedAt.values()) total += (now - startedAt) / 1000;
    return total;
  }

  longestRunningSeconds(): number {
    const now = this.#clock.now();
    let oldest = 0;
    for (const startedAt of this.#startedAt.values()) oldest = Math.max(oldest, (now - startedAt) / 1000);
    return oldest;
  }
}

/**
 * client-go's leader_election_master_status, which controller-runtime exports: 1 while this process
 * holds the Lease `name`, 0 while it waits. The sum over replicas says whether anyone leads.
 */
export class LeaderElectionMetrics {
  readonly masterStatus: Gauge<"name">;

  constructor(registry: Registry) {
    this.masterStatus = new Gauge({
      name: "leader_election_master_status",
      help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name.",
      labelNames: ["name"],
      registers: [registry],
    });
  }

  setLeading(name: string, leading: boolean): void {
    this.masterStatus.set({ name }, leading ? 1 : 0);
  }
}
