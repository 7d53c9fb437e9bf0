import { pino } from "pino";
import { Registry } from "prom-client";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  Controller,
  DEFAULT_DRAIN_TIMEOUT_MS,
  DEFAULT_MAX_CONCURRENT_RECONCILES,
  TerminalError,
  isTerminalError,
} from "./controller.ts";
import type { ReconcileContext, ReconcileFunc, Result } from "./controller.ts";
import { ControllerMetrics } from "./metrics.ts";
import { WorkQueue } from "./workqueue.ts";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// Only timers and Date are faked: setImmediate stays real so settle() can flush promise chains.
beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "Date"] });
});
afterEach(() => {
  vi.useRealTimers();
});

/** Lets every pending promise continuation run. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

async function advance(ms: number): Promise<void> {
  vi.advanceTimersByTime(ms);
  await settle();
}

type LogLine = Record<string, unknown> & { msg?: string; level?: number };

function harness(reconcile: ReconcileFunc, options: { workers?: number; drainTimeoutMs?: number } = {}) {
  const registry = new Registry();
  const metrics = new ControllerMetrics(registry);
  const queue = new WorkQueue({ name: "widgets", metrics });
  const lines: LogLine[] = [];
  const logger = pino({ level: "debug" }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  const controller = new Controller({ name: "widgets", queue, reconcile, logger, metrics, ...options });

  async function sample(metricName: string, labels: Record<string, string> = {}): Promise<number | undefined> {
    for (const metric of await registry.getMetricsAsJSON()) {
      for (const value of metric.values as { metricName?: string; labels: Record<string, unknown>; value: number }[]) {
        if ((value.metricName ?? metric.name) !== metricName) continue;
        const wanted = { controller: "widgets", ...labels };
        if (Object.entries(wanted).every(([k, v]) => value.labels[k] === v)) return value.value;
      }
    }
    return undefined;
  }
  const total = (result: string) => sample("controller_runtime_reconcile_total", { result });

  return { registry, metrics, queue, controller, lines, sample, total };
}

/** A reconciler scripted per call; the last entry repeats. */
function scripted(...steps: (() => Promise<Result>)[]): ReconcileFunc & { calls: { key: string; ctx: ReconcileContext }[] } {
  const calls: { key: string; ctx: ReconcileContext }[] = [];
  const fn = (key: string, ctx: ReconcileContext): Promise<Result> => {
    calls.push({ key, ctx });
    const step = steps[Math.min(calls.length, steps.length) - 1];
    if (step === undefined) throw new Error("scripted reconciler needs at least one step");
    return step();
  };
  return Object.assign(fn, { calls });
}

const ok = (result: Result = {}) => () => Promise.resolve(result);
const fail = (err: unknown) => () => Promise.reject(err);

describe("TerminalError", () => {
  it("is recognised directly and anywhere in the cause chain", () => {
    const terminal = new TerminalError("spec.replicas must be >= 0");
    expect(terminal.name).toBe("TerminalError");
    expect(isTerminalError(terminal)).toBe(true);
    expect(isTerminalError(new Error("outer", { cause: new Error("middle", { cause: terminal }) }))).toBe(true);
    expect(isTerminalError(new Error("plain"))).toBe(false);
    expect(isTerminalError("TerminalError")).toBe(false);
    expect(isTerminalError(undefined)).toBe(false);
  });

  it("stops on a cyclic cause chain", () => {
    const a = new Error("a");
    const b = new Error("b", { cause: a });
    a.cause = b;
    expect(isTerminalError(a)).toBe(false);
  });
});

describe("Controller: reconcile results", () => {
  it("success forgets the key and does not requeue it", async () => {
    const reconcile = scripted(ok());
    const { controller, queue, total } = harness(reconcile);
    const forget = vi.spyOn(queue, "forget");
    const addRateLimited = vi.spyOn(queue, "addRateLimited");
    void controller.run();
    queue.add("ns/a");
    await settle();

    expect(reconcile.calls.map((c) => c.key)).toEqual(["ns/a"]);
    expect(forget).toHaveBeenCalledWith("ns/a");
    expect(addRateLimited).not.toHaveBeenCalled();
    expect(await total("success")).toBe(1);
    await advance(3_600_000);
    expect(reconcile.calls).toHaveLength(1);
    await controller.stop();
  });

  it("an error requeues with the rate limiter's backoff and is counted", async () => {
    const reconcile = scripted(fail(new Error("conflict")), fail(new Error("conflict")), ok());
    const { controller, queue, total, sample, lines } = harness(reconcile);
    void controller.run();
    queue.add("a");
    await settle();
    expect(reconcile.calls).toHaveLength(1);
    expect(queue.numRequeues("a")).toBe(1);
    expect(await sample("controller_runtime_reconcile_errors_total")).toBe(1);

    // Default limiter: 5 ms, then 10 ms.
    await advance(4);
    expect(reconcile.calls).toHaveLength(1);
    await advance(1);
    expect(reconcile.calls).toHaveLength(2);
    expect(queue.numRequeues("a")).toBe(2);
    await advance(9);
    expect(reconcile.calls).toHaveLength(2);
    await advance(1);
    expect(reconcile.calls).toHaveLength(3);
    expect(queue.numRequeues("a")).toBe(0);

    expect(await total("error")).toBe(2);
    expect(await total("success")).toBe(1);
    expect(await sample("controller_runtime_terminal_reconcile_errors_total")).toBe(0);
    const errorLine = lines.find((l) => l.msg === "Reconciler error");
    expect(errorLine).toMatchObject({ level: 50, controller: "widgets", key: "a", terminal: false });
    expect((errorLine?.err as { message?: string } | undefined)?.message).toBe("conflict");
    await controller.stop();
  });

  it("a terminal error is counted but never requeued", async () => {
    const reconcile = scripted(fail(new TerminalError("spec.waveSize must be > 0")));
    const { controller, queue, total, sample } = harness(reconcile);
    const addRateLimited = vi.spyOn(queue, "addRateLimited");
    void controller.run();
    queue.add("a");
    await settle();
    await advance(1_000_000);

    expect(reconcile.calls).toHaveLength(1);
    expect(addRateLimited).not.toHaveBeenCalled();
    expect(await sample("controller_runtime_terminal_reconcile_errors_total")).toBe(1);
    expect(await sample("controller_runtime_reconcile_errors_total")).toBe(1);
    expect(await total("error")).toBe(1);
    await controller.stop();
  });

  it("a terminal error wrapped as the cause of another error is still terminal", async () => {
    const wrapped = new Error("persist status", { cause: new TerminalError("immutable field") });
    const reconcile = scripted(fail(wrapped));
    const { controller, queue, sample } = harness(reconcile);
    void controller.run();
    queue.add("a");
    await settle();
    await advance(1_000_000);
    expect(reconcile.calls).toHaveLength(1);
    expect(await sample("controller_runtime_terminal_reconcile_errors_total")).toBe(1);
    await controller.stop();
  });

  it("requeueAfterMs forgets the backoff, then adds the key after exactly that delay", async () => {
    const reconcile = scripted(fail(new Error("transient")), ok({ requeueAfterMs: 30_000, requeue: true }), ok());
    const { controller, queue, total } = harness(reconcile);
    const forget = vi.spyOn(queue, "forget");
    const addAfter = vi.spyOn(queue, "addAfter");
    void controller.run();
    queue.add("a");
    await settle();
    await advance(5);
    expect(reconcile.calls).toHaveLength(2);

    expect(queue.numRequeues("a")).toBe(0);
    expect(forget).toHaveBeenCalledWith("a");
    expect(addAfter).toHaveBeenLastCalledWith("a", 30_000);
    const forgetOrder = forget.mock.invocationCallOrder[0] ?? Infinity;
    const addAfterOrder = addAfter.mock.invocationCallOrder.at(-1) ?? -Infinity;
    expect(forgetOrder).toBeLessThan(addAfterOrder);
    expect(await total("requeue_after")).toBe(1);
    expect(await total("requeue")).toBe(0);

    await advance(29_999);
    expect(reconcile.calls).toHaveLength(2);
    await advance(1);
    expect(reconcile.calls).toHaveLength(3);
    await controller.stop();
  });

  it("requeue: true requeues with the rate limiter's growing backoff", async () => {
    const reconcile = scripted(ok({ requeue: true }), ok({ requeue: true }), ok());
    const { controller, queue, total } = harness(reconcile);
    void controller.run();
    queue.add("a");
    await settle();
    expect(queue.numRequeues("a")).toBe(1);
    await advance(5);
    expect(reconcile.calls).toHaveLength(2);
    expect(queue.numRequeues("a")).toBe(2);
    await advance(9);
    expect(reconcile.calls).toHaveLength(2);
    await advance(1);
    expect(reconcile.calls).toHaveLength(3);
    expect(await total("requeue")).toBe(2);
    expect(await total("success")).toBe(1);
    await controller.stop();
  });

  it("a zero or negative requeueAfterMs is ignored", async () => {
    const reconcile = scripted(ok({ requeueAfterMs: 0 }), ok({ requeueAfterMs: -5, requeue: true }));
    const { controller, queue, total } = harness(reconcile);
    void controller.run();
    queue.add("a");
    await settle();
    queue.add("b");
    await settle();
    expect(await total("success")).toBe(1);
    expect(await total("requeue")).toBe(1);
    expect(await total("requeue_after")).toBe(0);
    await controller.stop();
  });
});

describe("Controller: panics", () => {
  it("recovers synchronous throws and non-Error values, counts them, and requeues", async () => {
    const syncThrow = (): Promise<Result> => {
      throw new Error("nil map");
    };
    const reconcile = scripted(syncThrow, fail("a string"), fail(undefined), ok());
    const { controller, queue, total, sample, lines } = harness(reconcile);
    void controller.run();
    queue.add("a");
    await settle();
    await advance(5);
    await advance(10);
    await advance(20);

    expect(reconcile.calls).toHaveLength(4);
    expect(await sample("controller_runtime_reconcile_panics_total")).toBe(3);
    expect(await sample("controller_runtime_reconcile_errors_total")).toBe(3);
    expect(await total("error")).toBe(3);
    expect(await total("success")).toBe(1);
    const panics = lines.filter((l) => l.msg === "Observed a panic in reconciler");
    expect(panics).toHaveLength(3);
    const messages = panics.map((l) => (l.err as { message?: string }).message);
    expect(messages[0]).toMatch(/^panic: nil map \[recovered\]/);
    expect(messages[1]).toMatch(/^panic: a string \[recovered\]/);
    expect(messages[2]).toMatch(/^panic: undefined \[recovered\]/);
    await controller.stop();
  });

  it("an ordinary rejected Error is not a panic", async () => {
    const reconcile = scripted(fail(new TypeError("x is undefined")));
    const { controller, queue, sample } = harness(reconcile);
    void controller.run();
    queue.add("a");
    await settle();
    expect(await sample("controller_runtime_reconcile_panics_total")).toBe(0);
    expect(await sample("controller_runtime_reconcile_errors_total")).toBe(1);
    await controller.stop();
  });
});

describe("Controller: logging and timing", () => {
  it("gives every reconcile its own reconcileID, bound in the logger it passes", async () => {
    const reconcile = scripted(fail(new Error("once")), ok());
    const { controller, queue, lines } = harness((key, ctx) => {
      ctx.logger.info("inside");
      return reconcile(key, ctx);
    });
    void controller.run();
    queue.add("ns/a");
    await settle();
    await advance(5);

    const ids = reconcile.calls.map((c) => c.ctx.reconcileID);
    expect(ids).toHaveLength(2);
    for (const id of ids) expect(id).toMatch(UUID);
    expect(ids[0]).not.toBe(ids[1]);

    const inside = lines.filter((l) => l.msg === "inside");
    expect(inside.map((l) => l.reconcileID)).toEqual(ids);
    expect(inside[0]).toMatchObject({ controller: "widgets", key: "ns/a" });
    const error = lines.find((l) => l.msg === "Reconciler error");
    expect(error?.reconcileID).toBe(ids[0]);
    await controller.stop();
  });

  it("observes the reconcile time in seconds", async () => {
    const { controller, queue, sample } = harness(async () => {
      await new Promise((resolve) => setTimeout(resolve, 250));
      return {};
    });
    void controller.run();
    queue.add("a");
    await settle();
    await advance(250);
    expect(await sample("controller_runtime_reconcile_time_seconds_count")).toBe(1);
    expect(await sample("controller_runtime_reconcile_time_seconds_sum")).toBeCloseTo(0.25);
    await controller.stop();
  });
});

describe("Controller: workers", () => {
  it("runs up to N reconciles at once, never two for the same key", async () => {
    const releases = new Map<string, (() => void)[]>();
    let active = 0;
    let maxActive = 0;
    const activeKeys = new Set<string>();
    let sameKeyOverlap = false;
    const processed: string[] = [];
    const { controller, queue, sample } = harness(
      async (key) => {
        if (activeKeys.has(key)) sameKeyOverlap = true;
        activeKeys.add(key);
        active++;
        maxActive = Math.max(maxActive, active);
        await new Promise<void>((resolve) => releases.set(key, [...(releases.get(key) ?? []), resolve]));
        active--;
        activeKeys.delete(key);
        processed.push(key);
        return {};
      },
      { workers: 3 },
    );
    void controller.run();
    for (const key of ["a", "b", "c", "d"]) queue.add(key);
    await settle();

    expect(active).toBe(3);
    expect(await sample("controller_runtime_active_workers")).toBe(3);
    expect(await sample("controller_runtime_max_concurrent_reconciles")).toBe(3);
    expect(queue.len()).toBe(1);

    // "a" changes while it is being reconciled: it must wait for the running pass.
    queue.add("a");
    releases.get("b")?.shift()?.();
    await settle();
    expect(activeKeys).toEqual(new Set(["a", "c", "d"]));

    releases.get("a")?.shift()?.();
    await settle();
    expect(activeKeys).toEqual(new Set(["a", "c", "d"]));
    for (const key of ["a", "c", "d"]) releases.get(key)?.shift()?.();
    await settle();

    expect(sameKeyOverlap).toBe(false);
    expect(maxActive).toBe(3);
    expect(processed.sort()).toEqual(["a", "a", "b", "c", "d"]);
    expect(await sample("controller_runtime_active_workers")).toBe(0);
    await controller.stop();
  });

  it("defaults to one worker and rejects a worker count below one", () => {
    expect(DEFAULT_MAX_CONCURRENT_RECONCILES).toBe(1);
    expect(() => harness(() => Promise.resolve({}), { workers: 0 })).toThrow(/workers must be an integer >= 1, got 0/);
  });

  it("refuses to run twice", async () => {
    const { controller } = harness(() => Promise.resolve({}));
    void controller.run();
    await expect(controller.run()).rejects.toThrow(/"widgets" was started more than once/);
    await controller.stop();
  });

  it("zeroes every result series when it starts, so rates exist before the first reconcile", async () => {
    const { controller, total, sample } = harness(() => Promise.resolve({}));
    void controller.run();
    for (const result of ["success", "error", "requeue", "requeue_after"]) expect(await total(result)).toBe(0);
    expect(await sample("controller_runtime_reconcile_panics_total")).toBe(0);
    expect(await sample("controller_runtime_terminal_reconcile_errors_total")).toBe(0);
    await controller.stop();
  });
});

describe("Controller: shutdown", () => {
  it("stop() stops intake, aborts the reconcile signal, and waits for the reconcile in flight", async () => {
    let release: (() => void) | undefined;
    const reconcile = scripted(() => new Promise<Result>((resolve) => (release = () => resolve({}))));
    const { controller, queue, total } = harness(reconcile);
    let runReturned = false;
    const running = controller.run().then(() => (runReturned = true));
    queue.add("a");
    queue.add("b");
    await settle();
    expect(reconcile.calls.map((c) => c.key)).toEqual(["a"]);

    let stopped = false;
    const stopping = controller.stop().then(() => (stopped = true));
    await settle();
    expect(reconcile.calls[0]?.ctx.signal.aborted).toBe(true);
    expect(queue.isShuttingDown()).toBe(true);
    expect(stopped).toBe(false);
    expect(runReturned).toBe(false);

    release?.();
    await stopping;
    await running;
    expect(stopped).toBe(true);
    // The pass in flight finished and was counted; the queued key was not started.
    expect(await total("success")).toBe(1);
    expect(reconcile.calls).toHaveLength(1);
    // Every later stop() returns the same finished promise.
    expect(controller.stop()).toBe(controller.stop());
  });

  it("stop() gives up after the drain timeout and names the stuck keys", async () => {
    expect(DEFAULT_DRAIN_TIMEOUT_MS).toBe(30_000);
    const { controller, queue, lines } = harness(() => new Promise<Result>(() => {}), { drainTimeoutMs: 1000 });
    const running = controller.run();
    queue.add("stuck");
    await settle();

    let stopped = false;
    void controller.stop().then(() => (stopped = true));
    await advance(999);
    expect(stopped).toBe(false);
    await advance(1);
    expect(stopped).toBe(true);
    await running;
    const warning = lines.find((l) => l.level === 40);
    expect(warning).toMatchObject({ stuckKeys: ["stuck"], drainTimeoutMs: 1000 });
  });

  it("an aborted run signal stops the controller", async () => {
    const reconcile = scripted(ok());
    const { controller, queue } = harness(reconcile);
    const abort = new AbortController();
    const running = controller.run(abort.signal);
    queue.add("a");
    await settle();
    abort.abort();
    await running;
    expect(queue.isShuttingDown()).toBe(true);
    queue.add("b");
    await settle();
    expect(reconcile.calls).toHaveLength(1);
  });

  it("a signal already aborted means no reconcile runs", async () => {
    const reconcile = scripted(ok());
    const { controller, queue } = harness(reconcile);
    queue.add("a");
    await controller.run(AbortSignal.abort());
    expect(reconcile.calls).toHaveLength(0);
  });

  it("a drained stop leaves no timer behind", async () => {
    const { controller } = harness(() => Promise.resolve({}));
    const running = controller.run();
    await controller.stop();
    await running;
    expect(vi.getTimerCount()).toBe(0);
  });
});
