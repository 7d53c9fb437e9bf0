import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import {
  LeaderElectionMetrics,
  ControllerMetrics,
  RECONCILE_RESULTS,
  RECONCILE_TIME_BUCKETS_SECONDS,
  WORKQUEUE_DURATION_BUCKETS_SECONDS,
} from "./metrics.ts";

describe("ControllerMetrics", () => {
  it("registers controller-runtime's metric names, types and labels on the given registry", async () => {
    const registry = new Registry();
    const metrics = new ControllerMetrics(registry);
    metrics.initController("ctl", 4);
    metrics.workqueue("ctl", { now: () => 0 });

    const byName = new Map((await registry.getMetricsAsJSON()).map((m) => [m.name, m]));
    const expected: [string, string][] = [
      ["workqueue_depth", "gauge"],
      ["workqueue_adds_total", "counter"],
      ["workqueue_queue_duration_seconds", "histogram"],
      ["workqueue_work_duration_seconds", "histogram"],
      ["workqueue_unfinished_work_seconds", "gauge"],
      ["workqueue_longest_running_processor_seconds", "gauge"],
      ["workqueue_retries_total", "counter"],
      ["controller_runtime_reconcile_total", "counter"],
      ["controller_runtime_reconcile_errors_total", "counter"],
      ["controller_runtime_terminal_reconcile_errors_total", "counter"],
      ["controller_runtime_reconcile_panics_total", "counter"],
      ["controller_runtime_reconcile_time_seconds", "histogram"],
      ["controller_runtime_max_concurrent_reconciles", "gauge"],
      ["controller_runtime_active_workers", "gauge"],
    ];
    expect([...byName.keys()].sort()).toEqual(expected.map(([name]) => name).sort());
    for (const [name, type] of expected) expect(byName.get(name)?.type, name).toBe(type);

    const text = await registry.metrics();
    expect(text).toContain('workqueue_depth{name="ctl",controller="ctl",priority=""} 0');
    expect(text).toContain('workqueue_adds_total{name="ctl",controller="ctl"} 0');
    expect(text).toContain('workqueue_retries_total{name="ctl",controller="ctl"} 0');
    expect(text).toContain('workqueue_unfinished_work_seconds{name="ctl",controller="ctl"} 0');
    expect(text).toContain('controller_runtime_max_concurrent_reconciles{controller="ctl"} 4');
    expect(text).toContain('controller_runtime_active_workers{controller="ctl"} 0');
    for (const result of ["success", "error", "requeue", "requeue_after"]) {
      expect(text).toContain(`controller_runtime_reconcile_total{controller="ctl",result="${result}"} 0`);
    }
    expect(text).toContain('controller_runtime_reconcile_errors_total{controller="ctl"} 0');
    expect(text).toContain('controller_runtime_terminal_reconcile_errors_total{controller="ctl"} 0');
    expect(text).toContain('controller_runtime_reconcile_panics_total{controller="ctl"} 0');
  });

  it("uses controller-runtime's buckets", () => {
    expect(WORKQUEUE_DURATION_BUCKETS_SECONDS).toEqual(Array.from({ length: 12 }, (_, i) => Number(`1e${i - 8}`)));
    expect(RECONCILE_TIME_BUCKETS_SECONDS).toHaveLength(40);
    expect(RECONCILE_TIME_BUCKETS_SECONDS[0]).toBe(0.005);
    expect(RECONCILE_TIME_BUCKETS_SECONDS.at(-1)).toBe(60);
    expect([...RECONCILE_TIME_BUCKETS_SECONDS].sort((a, b) => a - b)).toEqual(RECONCILE_TIME_BUCKETS_SECONDS);
    expect(RECONCILE_RESULTS).toEqual(["error", "requeue_after", "requeue", "success"]);
  });

  it("registers only on the registry it is given, so each test can use a fresh one", async () => {
    const first = new Registry();
    const second = new Registry();
    new ControllerMetrics(first).initController("a", 1);
    new ControllerMetrics(second).initController("b", 1);
    expect(await first.metrics()).not.toContain('controller="b"');
    expect(await second.metrics()).not.toContain('controller="a"');
    // The same families twice on one registry is a wiring mistake and fails loudly.
    expect(() => new ControllerMetrics(first)).toThrow(/already been registered/);
  });

  it("stops reporting in-flight work for a released queue", async () => {
    const registry = new Registry();
    const metrics = new ControllerMetrics(registry);
    let now = 0;
    const queue = metrics.workqueue("q", { now: () => now });
    queue.add("k");
    queue.get("k");
    now = 5000;
    expect(await registry.metrics()).toContain('workqueue_longest_running_processor_seconds{name="q",controller="q"} 5');
    queue.release();
    now = 9000;
    expect(await registry.metrics()).toContain('workqueue_longest_running_processor_seconds{name="q",controller="q"} 0');
  });

  it("measures the queue wait from the first add of a key, even when re-added", async () => {
    const registry = new Registry();
    const metrics = new ControllerMetrics(registry);
    let now = 0;
    const queue = metrics.workqueue("q", { now: () => now });
    queue.add("k");
    now = 1000;
    // The queue reports an add for a key re-added while it was being processed; simulate it here.
    queue.add("k");
    now = 3000;
    queue.get("k");
    expect(await registry.metrics()).toContain('workqueue_queue_duration_seconds_sum{name="q",controller="q"} 3');
  });
});

describe("LeaderElectionMetrics", () => {
  it("reports leader_election_master_status as client-go does: 1 leading, 0 standing by, by lease name", async () => {
    const registry = new Registry();
    const metrics = new LeaderElectionMetrics(registry);
    metrics.setLeading("batchrollout-operator", false);
    expect(await registry.metrics()).toContain('leader_election_master_status{name="batchrollout-operator"} 0');
    metrics.setLeading("batchrollout-operator", true);
    expect(await registry.metrics()).toContain('leader_election_master_status{name="batchrollout-operator"} 1');
  });
});
