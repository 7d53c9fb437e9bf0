import { Counter, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { UNKNOWN_PRIORITY_LEVEL, type WriteResponse, WritePacer, limiterSettings } from "./pacer.ts";
import { RetryAfterGate } from "./retry-after.ts";
import { WriteLatencyWindow } from "./write-latency.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A write whose result carries its own status, as the lead's kube client edge would return. */
function write(status: number, delayMs = 5, extra: Omit<WriteResponse, "status"> = {}) {
  return async (): Promise<WriteResponse> => {
    await sleep(delayMs);
    return { status, ...extra };
  };
}

const classify = ({ value, error }: { value?: unknown; error?: unknown }): WriteResponse | undefined =>
  (value as WriteResponse | undefined) ?? (error ? { timedOut: true } : undefined);

describe("limiterSettings", () => {
  it("maps the sizer's rate limit onto bottleneck", () => {
    expect(limiterSettings({ concurrency: 12.7, perSecond: 400 })).toEqual({ maxConcurrent: 12, minTime: 2 });
    expect(limiterSettings({ concurrency: 0, perSecond: 0 })).toEqual({ maxConcurrent: 1, minTime: 0 });
  });

  it("spaces a wave's writes at its send pace, which makes room for the cycle's overhead", () => {
    expect(limiterSettings({ concurrency: 8, perSecond: 100, sendPerSecond: 160 })).toEqual({ maxConcurrent: 8, minTime: 6 });
  });
});

describe("WritePacer", () => {
  it("never runs more writes at once than the concurrency, and follows updates", async () => {
    const pacer = new WritePacer({ rateLimit: { concurrency: 2, perSecond: 1_000 }, gate: new RetryAfterGate() });
    let running = 0;
    let peak = 0;
    // Jobs hold their slot until released, so the bound is measured, not raced against a timer.
    let release: () => void = () => undefined;
    let held = new Promise<void>((resolve) => (release = resolve));
    const job = async () => {
      running += 1;
      peak = Math.max(peak, running);
      await held;
      running -= 1;
    };
    const settleUntil = async (n: number) => {
      for (let i = 0; i < 200 && running < n; i++) await sleep(5);
      await sleep(20); // time for a job beyond the bound to start, if the pacer let it
    };
    const first = Promise.all(Array.from({ length: 6 }, () => pacer.schedule(job)));
    await settleUntil(2);
    expect(running).toBe(2);
    release();
    await first;
    expect(peak).toBe(2);

    pacer.update({ concurrency: 4, perSecond: 1_000 });
    peak = 0;
    held = new Promise<void>((resolve) => (release = resolve));
    const second = Promise.all(Array.from({ length: 8 }, () => pacer.schedule(job)));
    await settleUntil(4);
    expect(running).toBe(4);
    release();
    await second;
    expect(peak).toBe(4);
    await pacer.stop();
  });

  it("spaces starts by 1000/perSecond", async () => {
    const pacer = new WritePacer({ rateLimit: { concurrency: 10, perSecond: 50 }, gate: new RetryAfterGate() });
    const starts: number[] = [];
    await Promise.all(Array.from({ length: 4 }, () => pacer.schedule(async () => void starts.push(Date.now()))));
    expect(starts.at(-1)! - starts[0]!).toBeGreaterThanOrEqual(3 * 20 - 5);
    await pacer.stop();
  });

  it("stops dispatch while the Retry-After runs, counts 429s by priority level, records outcomes", async () => {
    const gate = new RetryAfterGate(150); // clamp "Retry-After: 2" to 150 ms to keep the test short
    const window = new WriteLatencyWindow({ minTickSamples: 1 });
    const throttled = new Map<string, number>();
    const pacer = new WritePacer({ rateLimit: { concurrency: 1, perSecond: 1_000 }, gate, window, throttled, classify });

    const first = await pacer.schedule(write(429, 5, { retryAfter: "2", priorityLevel: "workload-low" }));
    expect(first.status).toBe(429);
    const rejectedAt = Date.now();
    expect(gate.waitMs(rejectedAt)).toBeGreaterThan(100);

    const started: number[] = [];
    await Promise.all(
      Array.from({ length: 3 }, () =>
        pacer.schedule(async () => {
          started.push(Date.now());
          return { status: 201 };
        }),
      ),
    );
    expect(Math.min(...started) - rejectedAt).toBeGreaterThanOrEqual(140);
    expect(throttled).toEqual(new Map([["workload-low", 1]]));

    const tick = window.tick(Date.now());
    expect(tick).toMatchObject({ count: 4, throttled: 1, maxRetryAfterMs: 150, latencySamples: 3 });
    expect(tick.retryAfterUntil).toBeGreaterThanOrEqual(rejectedAt + 140);
    await pacer.stop();
  });

  it("records failures and rethrows them", async () => {
    const window = new WriteLatencyWindow({ minTickSamples: 1 });
    const pacer = new WritePacer({ rateLimit: { concurrency: 2, perSecond: 1_000 }, gate: new RetryAfterGate(), window, classify });
    await expect(pacer.schedule(() => Promise.reject(new Error("socket hang up")))).rejects.toThrow("socket hang up");
    expect(window.tick(Date.now())).toMatchObject({ count: 1, timeouts: 1 });
    await pacer.stop();
  });

  it("feeds a prom-client counter, and writes made outside schedule() through observe()", async () => {
    const registry = new Registry();
    const counter = new Counter({ name: "batchrollout_throttled_writes_total", help: "429s by APF priority level", labelNames: ["priority_level"], registers: [registry] });
    const gate = new RetryAfterGate(50);
    const pacer = new WritePacer({ rateLimit: { concurrency: 2, perSecond: 1_000 }, gate, throttled: counter });
    pacer.observe({ status: 429, priorityLevel: "workload-low" });
    pacer.observe({ status: 429 });
    pacer.observe({ status: 503, retryAfter: "1" });
    pacer.observe({ status: 201 });
    const values = (await counter.get()).values.map((v) => [v.labels.priority_level, v.value]);
    expect(values).toEqual([
      ["workload-low", 1],
      [UNKNOWN_PRIORITY_LEVEL, 1],
    ]);
    expect(gate.lastRetryAfterMs).toBe(50);
    await pacer.stop();
  });
});
