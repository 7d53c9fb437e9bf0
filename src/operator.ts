import { Registry, collectDefaultMetrics } from "prom-client";
import type { Logger } from "pino";
import { LABEL_NAME } from "./api/batchrollout.ts";
import type { OperatorConfig } from "./api/config.ts";
import { Controller } from "./controllers/controller.ts";
import { EventRecorder } from "./controllers/event-recorder.ts";
import { Informer } from "./controllers/informer.ts";
import { LeaderElector, defaultIdentity } from "./controllers/leader-election.ts";
import { ControllerMetrics, LeaderElectionMetrics } from "./controllers/metrics.ts";
import { WorkQueue } from "./controllers/workqueue.ts";
import { KubeClient } from "./kube/client.ts";
import { instrumentClient } from "./kube/metrics.ts";
import { PODS, resourcePath } from "./kube/resources.ts";
import { ClusterPace } from "./ratelimit/cluster-pace.ts";
import { RetryAfterGate } from "./ratelimit/retry-after.ts";
import { ApiServerSignal } from "./ratelimit/signals/apiserver.ts";
import { IpamSignals } from "./ratelimit/signals/ipam.ts";
import { OthersCreatingSignal } from "./ratelimit/signals/others-creating.ts";
import { MetricsEndpoint } from "./ratelimit/signals/metrics-endpoint.ts";
import { SchedulerSignal } from "./ratelimit/signals/scheduler.ts";
import { Expectations } from "./reconcilers/batchrollout/expectations.ts";
import { type CachedPod, podIndexers, slimPod } from "./reconcilers/batchrollout/pod-cache.ts";
import { podEventHandlers } from "./reconcilers/batchrollout/pod-events.ts";
import { QuotaCache } from "./reconcilers/batchrollout/quotas.ts";
import { BATCHROLLOUTS, BatchRolloutReconciler, type RawRollout } from "./reconcilers/batchrollout/reconciler.ts";
import { startHttpServer } from "./telemetry/http-server.ts";
import { startMetricsServer } from "./telemetry/metrics-server.ts";
import { RolloutMetrics } from "./telemetry/rollout-metrics.ts";

// Wiring: informers → handlers that only enqueue keys → workqueue → controller workers →
// reconciler. Caches and workers run only while this replica holds the leader Lease.

export const CONTROLLER_NAME = "batchrollout";
export const REPORTING_CONTROLLER = "batchrollout.dev/operator";

interface Running {
  informers: Pick<Informer<object>, "name" | "hasSynced">[];
}

/** Runs the operator until `signal` aborts (then drains in-flight writes) or leadership is lost. */
export async function runOperator(config: OperatorConfig, logger: Logger, signal: AbortSignal): Promise<void> {
  const client = await KubeClient.fromKubeconfig(config.kubeconfig);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  instrumentClient(client, registry);
  const metrics = new ControllerMetrics(registry);
  const rolloutMetrics = new RolloutMetrics(registry);
  const identity = defaultIdentity();
  const log = logger.child({ identity });
  let running: Running | undefined;

  const servers: { close(): unknown }[] = [];
  if (config.metricsPort > 0) {
    const { metricsPort: port, bindAddress: host, metricsSecure: secure, metricsCertDir: certDir } = config;
    servers.push(await startMetricsServer({ port, host, secure, certDir, client, registry, logger: log }));
  }
  if (config.healthPort > 0) {
    servers.push(
      await startHttpServer({
        port: config.healthPort,
        host: config.bindAddress,
        logger: log,
        // A standby replica is ready: it is healthy and waiting for the Lease.
        probes: { notReady: () => (running?.informers ?? []).filter((i) => !i.hasSynced).map((i) => `informer ${i.name}`) },
      }),
    );
  }

  const recorder = new EventRecorder({ client, reportingController: REPORTING_CONTROLLER, reportingInstance: identity, logger: log });
  // Which APF FlowSchema and priority level our pod writes land in, and (when RBAC allows) that
  // level's queueing from kube-apiserver /metrics.
  const apiServer = new ApiServerSignal({ client, logger: log, scrapeMetrics: config.apiServerMetrics });
  apiServer.attach(client);

  /** `mayWrite`: whether the Lease is fresh enough for a pod write; absent without leader election. */
  const runControllers = async (leaderSignal: AbortSignal, mayWrite?: () => boolean): Promise<void> => {
    const rolloutsPath = resourcePath(BATCHROLLOUTS, { namespace: config.watchNamespace });
    const rollouts = new Informer<RawRollout>({ name: "batchrollouts", client, path: rolloutsPath, logger: log });
    const pods = new Informer<CachedPod>({
      name: "pods",
      client,
      path: resourcePath(PODS, { namespace: config.watchNamespace }),
      labelSelector: LABEL_NAME,
      transform: slimPod,
      indexers: podIndexers,
      logger: log,
    });
    const schedulerMetrics = config.schedulerMetricsUrl
      ? new MetricsEndpoint({ url: config.schedulerMetricsUrl, insecureSkipTLSVerify: config.schedulerMetricsInsecure })
      : undefined;
    // Cluster-wide: scope Cluster counts every unbound pod, scope Rollout uses its index.
    const scheduler = new SchedulerSignal({ client, logger: log, ...(schedulerMetrics ? { metrics: schedulerMetrics } : {}) });
    // Subscribes to the scheduler's unscheduled-pod cache, so it is made before that cache starts.
    const othersCreating = new OthersCreatingSignal({ pods: scheduler });
    const ipam = new IpamSignals({ client, logger: log, signal: leaderSignal });
    const gate = new RetryAfterGate();
    const pace = new ClusterPace({ gate, logger: log, now: Date.now() });
    const quotas = new QuotaCache({ client, ...(config.watchNamespace ? { namespace: config.watchNamespace } : {}), logger: log });
    running = { informers: [rollouts, pods, scheduler, quotas.informer] };

    const queue = new WorkQueue({ name: CONTROLLER_NAME, metrics });
    const expectations = new Expectations();
    const enqueueRollout = (r: RawRollout) => queue.add(`${r.metadata.namespace}/${r.metadata.name}`);
    rollouts.addHandlers({
      onAdd: enqueueRollout,
      // Our own status patches change only status; they need no reconcile.
      onUpdate: (old, cur) => {
        const o = old.metadata;
        const c = cur.metadata;
        if (o.generation !== c.generation || o.deletionTimestamp !== c.deletionTimestamp || String(o.finalizers) !== String(c.finalizers)) {
          enqueueRollout(cur);
        }
      },
      onDelete: enqueueRollout,
    });
    pods.addHandlers(podEventHandlers(queue, expectations));
    quotas.enqueueOnChange(queue, () => rollouts.list().map((r) => `${r.metadata.namespace}/${r.metadata.name}`));

    const reconciler = new BatchRolloutReconciler({
      client,
      rollouts,
      pods,
      expectations,
      events: recorder,
      gate,
      logger: log,
      metrics: rolloutMetrics,
      apiServer,
      scheduler,
      othersCreating,
      ipam,
      pace,
      quotas,
      ...(mayWrite ? { mayWrite } : {}),
    });
    const controller = new Controller({ name: CONTROLLER_NAME, queue, reconcile: reconciler.reconcile, workers: config.workers, logger: log, metrics });

    const informersStopped = Promise.all([
      rollouts.start(leaderSignal),
      pods.start(leaderSignal),
      scheduler.run(leaderSignal),
      apiServer.run(leaderSignal),
      quotas.informer.start(leaderSignal),
      ipam.run(),
    ]);
    await Promise.all([
      rollouts.waitForSync(leaderSignal),
      pods.waitForSync(leaderSignal),
      scheduler.waitForSync(leaderSignal),
      quotas.informer.waitForSync(leaderSignal),
      ipam.waitForSync(leaderSignal),
    ]);
    log.info({ rollouts: rollouts.size, pods: pods.size }, "caches synced; starting workers");
    const workers = controller.run();
    await new Promise<void>((resolve) => {
      if (leaderSignal.aborted) resolve();
      leaderSignal.addEventListener("abort", () => resolve(), { once: true });
    });
    log.info("stopping: no new work, finishing writes in flight");
    await controller.stop();
    await workers;
    await informersStopped;
    await ipam.close();
    await schedulerMetrics?.close();
  };

  try {
    if (config.leaderElect) {
      const elector = new LeaderElector({ client, namespace: config.leaderElectionNamespace, name: config.leaderElectionId, identity, logger: log, metrics: new LeaderElectionMetrics(registry) });
      await elector.run(signal, {
        onStartedLeading: (leaderSignal) =>
          runControllers(leaderSignal, () => elector.leadsAt()).catch((err: unknown) => log.error({ err }, "controllers failed")),
        onStoppedLeading: () => {
          if (!signal.aborted) {
            // As controller-runtime does: a replica that lost the Lease exits, so it restarts clean.
            log.error("leadership lost; exiting");
            process.exitCode = 1;
          }
        },
      });
    } else {
      await runControllers(signal).catch((err: unknown) => {
        if (!signal.aborted) throw err;
      });
    }
  } finally {
    await recorder.flush();
    for (const server of servers) server.close();
    await client.close();
  }
}
