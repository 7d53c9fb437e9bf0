import { Registry } from "prom-client";
import { describe, expect, it, vi } from "vitest";
import { ControllerMetrics } from "./metrics.ts";
import { ItemExponentialFailureRateLimiter } from "./rate-limiter.ts";
import { WorkQueue, realTimers } from "./workqueue.ts";
import type { WorkQueueOptions } from "./workqueue.ts";
import { ManualScheduler } from "../../test/support/manual-scheduler.ts";

function newQueue(overrides: Partial<WorkQueueOptions> = {}): { queue: WorkQueue; scheduler: ManualScheduler } {
  const scheduler = new ManualScheduler();
  const queue = new WorkQueue({ name: "test", clock: scheduler, timers: scheduler, ...overrides });
  return { queue, scheduler };
}

/** Lets every pending promise continuation run; nothing in these tests waits on real time. */
function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Takes everything currently queued, marking each key done. */
async function drainKeys(queue: WorkQueue): Promise<string[]> {
  const keys: string[] = [];
  while (queue.len() > 0) {
    const key = await queue.get();
    if (key === undefined) break;
    keys.push(key);
    queue.done(key);
  }
  return keys;
}

describe("WorkQueue: adds and the dirty set", () => {
  it("hands keys out in the order they were first added and dedupes repeated adds", async () => {
    const { queue } = newQueue();
    queue.add("a");
    queue.add("b");
    queue.add("a");
    queue.add("c");
    queue.add("b");
    expect(queue.len()).toBe(3);
    expect(await drainKeys(queue)).toEqual(["a", "b", "c"]);
    expect(queue.len()).toBe(0);
  });

  it("a waiting get resolves as soon as a key is added", async () => {
    const { queue } = newQueue();
    let got: string | undefined | null = null;
    void queue.get().then((key) => (got = key));
    await settle();
    expect(got).toBeNull();
    queue.add("a");
    await settle();
    expect(got).toBe("a");
    // Handed out synchronously inside add: it is already processing, not queued.
    expect(queue.len()).toBe(0);
  });

  it("waiting gets are served in the order they asked", async () => {
    const { queue } = newQueue();
    const order: string[] = [];
    void queue.get().then((key) => order.push(`first:${key}`));
    void queue.get().then((key) => order.push(`second:${key}`));
    queue.add("x");
    queue.add("y");
    await settle();
    expect(order).toEqual(["first:x", "second:y"]);
  });
});

describe("WorkQueue: the processing set", () => {
  it("does not queue a key that is being processed; done() queues it again exactly once", async () => {
    const { queue } = newQueue();
    queue.add("a");
    const key = await queue.get();
    expect(key).toBe("a");
    queue.add("a");
    queue.add("a");
    expect(queue.len()).toBe(0);
    queue.done("a");
    expect(queue.len()).toBe(1);
    expect(await queue.get()).toBe("a");
    queue.done("a");
    expect(queue.len()).toBe(0);
  });

  it("a done() without a change does not queue the key again", async () => {
    const { queue } = newQueue();
    queue.add("a");
    await queue.get();
    queue.done("a");
    expect(queue.len()).toBe(0);
  });

  it("ignores done() for a key that was never handed out", () => {
    const { queue } = newQueue();
    queue.add("a");
    queue.done("a");
    queue.done("never-added");
    expect(queue.len()).toBe(1);
  });

  it("never hands one key to two workers; a re-add during processing runs once more after done", async () => {
    const { queue } = newQueue();
    const releases: (() => void)[] = [];
    const log: string[] = [];
    let concurrent = 0;
    let maxConcurrent = 0;

    const worker = async (id: number): Promise<void> => {
      for (;;) {
        const key = await queue.get();
        if (key === undefined) return;
        concurrent++;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        log.push(`w${id}:${key}`);
        await new Promise<void>((resolve) => releases.push(resolve));
        concurrent--;
        queue.done(key);
      }
    };
    const workers = [worker(1), worker(2), worker(3)];

    queue.add("k");
    await settle();
    expect(log).toEqual(["w1:k"]);
    // Re-added twice while w1 holds it: the idle workers must not get it.
    queue.add("k");
    queue.add("k");
    await settle();
    expect(log).toEqual(["w1:k"]);
    expect(queue.len()).toBe(0);

    releases.shift()?.();
    await settle();
    expect(log).toHaveLength(2);
    expect(log[1]).toMatch(/^w\d:k$/);

    releases.shift()?.();
    await settle();
    expect(log).toHaveLength(2);
    expect(maxConcurrent).toBe(1);

    queue.shutDown();
    await Promise.all(workers);
  });

  it("under random adds with concurrent workers, no key is ever processed twice at once and none is lost", async () => {
    const { queue } = newQueue();
    // Deterministic PRNG (mulberry32) so the interleaving is the same on every run.
    let seed = 42;
    const random = (): number => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = seed;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const keys = ["a", "b", "c", "d", "e"];
    const active = new Set<string>();
    const lastAddTick = new Map<string, number>();
    const lastStartTick = new Map<string, number>();
    let tick = 0;
    let violations = 0;
    let maxActive = 0;

    const worker = async (): Promise<void> => {
      for (;;) {
        const key = await queue.get();
        if (key === undefined) return;
        if (active.has(key)) violations++;
        active.add(key);
        maxActive = Math.max(maxActive, active.size);
        lastStartTick.set(key, ++tick);
        const yields = Math.floor(random() * 4);
        for (let i = 0; i < yields; i++) await settle();
        active.delete(key);
        queue.done(key);
      }
    };
    const workers = Array.from({ length: 4 }, () => worker());

    for (let round = 0; round < 200; round++) {
      const key = keys[Math.floor(random() * keys.length)] ?? "a";
      queue.add(key);
      lastAddTick.set(key, ++tick);
      if (random() < 0.5) await settle();
    }
    for (let i = 0; i < 20; i++) await settle();

    expect(violations).toBe(0);
    // The workers did overlap on different keys, so the check above means something.
    expect(maxActive).toBeGreaterThan(1);
    expect(queue.len()).toBe(0);
    // Every key was processed after its last add: adds during processing were not dropped.
    for (const [key, addedAt] of lastAddTick) expect(lastStartTick.get(key)).toBeGreaterThan(addedAt);

    queue.shutDown();
    await Promise.all(workers);
  });
});

describe("WorkQueue: addAfter", () => {
  it("adds keys when their delay has passed, earliest first", async () => {
    const { queue, scheduler } = newQueue();
    queue.addAfter("slow", 300);
    queue.addAfter("fast", 100);
    queue.addAfter("middle", 200);
    expect(queue.len()).toBe(0);

    scheduler.advance(99);
    expect(queue.len()).toBe(0);
    scheduler.advance(1);
    expect(await drainKeys(queue)).toEqual(["fast"]);
    scheduler.advance(100);
    expect(await drainKeys(queue)).toEqual(["middle"]);
    scheduler.advance(100);
    expect(await drainKeys(queue)).toEqual(["slow"]);
  });

  it("keys due at the same time come out in the order they were scheduled", async () => {
    const { queue, scheduler } = newQueue();
    for (const key of ["c", "a", "d", "b"]) queue.addAfter(key, 50);
    scheduler.advance(50);
    expect(await drainKeys(queue)).toEqual(["c", "a", "d", "b"]);
  });

  it("a later, shorter addAfter for the same key wins, and the key is added only once", async () => {
    const { queue, scheduler } = newQueue();
    queue.addAfter("a", 500);
    queue.addAfter("a", 100);
    scheduler.advance(100);
    expect(await drainKeys(queue)).toEqual(["a"]);
    scheduler.advance(1000);
    expect(queue.len()).toBe(0);
  });

  it("a later, longer addAfter does not push the key back", async () => {
    const { queue, scheduler } = newQueue();
    queue.addAfter("a", 100);
    queue.addAfter("a", 500);
    scheduler.advance(100);
    expect(await drainKeys(queue)).toEqual(["a"]);
    scheduler.advance(1000);
    expect(queue.len()).toBe(0);
  });

  it("moving a key earlier reorders it among other delayed keys", async () => {
    const { queue, scheduler } = newQueue();
    queue.addAfter("a", 100);
    queue.addAfter("b", 200);
    queue.addAfter("c", 300);
    queue.addAfter("c", 50);
    scheduler.advance(300);
    expect(await drainKeys(queue)).toEqual(["c", "a", "b"]);
  });

  it("a ready key dedupes with the same key already queued", async () => {
    const { queue, scheduler } = newQueue();
    queue.add("a");
    queue.addAfter("a", 100);
    scheduler.advance(100);
    expect(queue.len()).toBe(1);
    expect(await drainKeys(queue)).toEqual(["a"]);
  });

  it("a key that becomes ready while processing is queued after done", async () => {
    const { queue, scheduler } = newQueue();
    queue.add("a");
    await queue.get();
    queue.addAfter("a", 50);
    scheduler.advance(50);
    expect(queue.len()).toBe(0);
    queue.done("a");
    expect(queue.len()).toBe(1);
  });

  it("treats zero, negative and NaN delays as an immediate add", () => {
    const { queue, scheduler } = newQueue();
    queue.addAfter("zero", 0);
    queue.addAfter("negative", -5);
    queue.addAfter("nan", Number.NaN);
    expect(queue.len()).toBe(3);
    expect(scheduler.pendingTimers).toBe(0);
  });

  it("keeps a single timer armed, for the earliest key", () => {
    const { queue, scheduler } = newQueue();
    for (let i = 1; i <= 50; i++) queue.addAfter(`k${i}`, i * 10);
    expect(scheduler.pendingTimers).toBe(1);
    scheduler.advance(250);
    expect(queue.len()).toBe(25);
    expect(scheduler.pendingTimers).toBe(1);
    scheduler.advance(250);
    expect(queue.len()).toBe(50);
    expect(scheduler.pendingTimers).toBe(0);
  });

  it("works on vitest fake timers with the default clock and timers", async () => {
    vi.useFakeTimers();
    try {
      const queue = new WorkQueue({ name: "fake-timers" });
      queue.addAfter("a", 1000);
      vi.advanceTimersByTime(999);
      expect(queue.len()).toBe(0);
      vi.advanceTimersByTime(1);
      expect(queue.len()).toBe(1);
      queue.addAfter("b", 5000);
      queue.shutDown();
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("WorkQueue: rate limiting", () => {
  it("addRateLimited waits for the limiter's delay and counts requeues; forget resets them", async () => {
    const { queue, scheduler } = newQueue({ rateLimiter: new ItemExponentialFailureRateLimiter(5, 1000) });
    queue.addRateLimited("a");
    expect(queue.numRequeues("a")).toBe(1);
    scheduler.advance(4);
    expect(queue.len()).toBe(0);
    scheduler.advance(1);
    expect(await drainKeys(queue)).toEqual(["a"]);

    queue.addRateLimited("a");
    scheduler.advance(9);
    expect(queue.len()).toBe(0);
    scheduler.advance(1);
    expect(await drainKeys(queue)).toEqual(["a"]);
    expect(queue.numRequeues("a")).toBe(2);

    queue.forget("a");
    expect(queue.numRequeues("a")).toBe(0);
    queue.addRateLimited("a");
    scheduler.advance(5);
    expect(queue.len()).toBe(1);
  });

  it("uses client-go's default controller rate limiter when none is given", async () => {
    const { queue, scheduler } = newQueue();
    queue.addRateLimited("a");
    scheduler.advance(5);
    expect(await drainKeys(queue)).toEqual(["a"]);
    queue.addRateLimited("a");
    scheduler.advance(9);
    expect(queue.len()).toBe(0);
    scheduler.advance(1);
    expect(queue.len()).toBe(1);
  });
});

describe("WorkQueue: shutdown", () => {
  it("resolves waiting gets with undefined and ignores every later add", async () => {
    const { queue, scheduler } = newQueue();
    const pending = [queue.get(), queue.get()];
    queue.shutDown();
    expect(await Promise.all(pending)).toEqual([undefined, undefined]);
    queue.add("a");
    queue.addAfter("b", 10);
    queue.addRateLimited("c");
    scheduler.advance(1000);
    expect(queue.len()).toBe(0);
    expect(queue.numRequeues("c")).toBe(0);
    expect(await queue.get()).toBeUndefined();
    expect(queue.isShuttingDown()).toBe(true);
  });

  it("still hands out keys queued before shutdown, then undefined", async () => {
    const { queue } = newQueue();
    queue.add("a");
    queue.add("b");
    queue.shutDown();
    expect(await queue.get()).toBe("a");
    expect(await queue.get()).toBe("b");
    expect(await queue.get()).toBeUndefined();
  });

  it("drops delayed keys and cancels the timer so nothing keeps the process alive", () => {
    const { queue, scheduler } = newQueue();
    queue.addAfter("a", 1000);
    expect(scheduler.pendingTimers).toBe(1);
    queue.shutDown();
    expect(scheduler.pendingTimers).toBe(0);
    scheduler.advance(2000);
    expect(queue.len()).toBe(0);
  });

  it("shutDownWithDrain waits until every key handed out is done", async () => {
    const { queue } = newQueue();
    queue.add("a");
    queue.add("b");
    await queue.get();
    await queue.get();
    let drained = false;
    const drain = queue.shutDownWithDrain().then(() => (drained = true));
    await settle();
    expect(drained).toBe(false);
    queue.done("a");
    await settle();
    expect(drained).toBe(false);
    queue.done("b");
    await drain;
    expect(drained).toBe(true);
  });

  it("shutDownWithDrain resolves at once when nothing is in flight", async () => {
    const { queue } = newQueue();
    queue.add("queued-but-not-taken");
    await expect(queue.shutDownWithDrain()).resolves.toBeUndefined();
  });

  it("shutDown forces a drain that is still waiting", async () => {
    const { queue } = newQueue();
    queue.add("stuck");
    await queue.get();
    let drained = false;
    const drain = queue.shutDownWithDrain().then(() => (drained = true));
    await settle();
    expect(drained).toBe(false);
    queue.shutDown();
    await drain;
    expect(drained).toBe(true);
  });

  it("a key re-added during processing before shutdown is still handed out after done", async () => {
    const { queue } = newQueue();
    queue.add("a");
    await queue.get();
    queue.add("a");
    const drain = queue.shutDownWithDrain();
    queue.done("a");
    await drain;
    expect(await queue.get()).toBe("a");
  });
});

describe("realTimers", () => {
  it("unrefs its timers", () => {
    const handle = realTimers.setTimeout(() => {}, 60_000) as NodeJS.Timeout;
    try {
      expect(handle.hasRef()).toBe(false);
    } finally {
      realTimers.clearTimeout(handle);
    }
  });
});

describe("WorkQueue metrics", () => {
  async function sample(registry: Registry, metricName: string, labels: Record<string, string>): Promise<number | undefined> {
    for (const metric of await registry.getMetricsAsJSON()) {
      for (const value of metric.values as { metricName?: string; labels: Record<string, unknown>; value: number }[]) {
        if ((value.metricName ?? metric.name) !== metricName) continue;
        if (Object.entries(labels).every(([k, v]) => value.labels[k] === v)) return value.value;
      }
    }
    return undefined;
  }

  it("reports adds, depth, waits, work time and retries under the queue's name", async () => {
    const registry = new Registry();
    const metrics = new ControllerMetrics(registry);
    const { queue, scheduler } = newQueue({ name: "pods", metrics });
    const labels = { name: "pods", controller: "pods" };

    queue.add("a");
    queue.add("a");
    queue.add("b");
    expect(await sample(registry, "workqueue_adds_total", labels)).toBe(2);
    expect(await sample(registry, "workqueue_depth", { ...labels, priority: "" })).toBe(2);

    scheduler.advance(1500);
    await queue.get();
    expect(await sample(registry, "workqueue_depth", { ...labels, priority: "" })).toBe(1);
    expect(await sample(registry, "workqueue_queue_duration_seconds_count", labels)).toBe(1);
    expect(await sample(registry, "workqueue_queue_duration_seconds_sum", labels)).toBeCloseTo(1.5);

    scheduler.advance(2000);
    expect(await sample(registry, "workqueue_unfinished_work_seconds", labels)).toBeCloseTo(2);
    expect(await sample(registry, "workqueue_longest_running_processor_seconds", labels)).toBeCloseTo(2);
    await queue.get();
    scheduler.advance(1000);
    // a has run 3 s, b 1 s.
    expect(await sample(registry, "workqueue_unfinished_work_seconds", labels)).toBeCloseTo(4);
    expect(await sample(registry, "workqueue_longest_running_processor_seconds", labels)).toBeCloseTo(3);

    queue.done("a");
    queue.done("b");
    expect(await sample(registry, "workqueue_work_duration_seconds_count", labels)).toBe(2);
    expect(await sample(registry, "workqueue_work_duration_seconds_sum", labels)).toBeCloseTo(4);
    expect(await sample(registry, "workqueue_unfinished_work_seconds", labels)).toBe(0);

    queue.addAfter("c", 10);
    queue.addRateLimited("d");
    queue.addAfter("e", 0);
    expect(await sample(registry, "workqueue_retries_total", labels)).toBe(3);

    queue.shutDown();
  });

  it("refuses a second live queue of the same name, and frees the name on shutdown", () => {
    const metrics = new ControllerMetrics(new Registry());
    const { queue } = newQueue({ name: "dup", metrics });
    expect(() => newQueue({ name: "dup", metrics })).toThrow(/"dup" already reports/);
    queue.shutDown();
    expect(() => newQueue({ name: "dup", metrics })).not.toThrow();
  });
});
