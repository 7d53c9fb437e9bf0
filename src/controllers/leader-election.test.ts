import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { KubeResponse, RequestOptions } from "../kube/client.ts";
import { ApiError } from "../kube/errors.ts";
import {
  LEADER_DRAIN_TIMEOUT_MS,
  LEASE_DURATION_MS,
  LeaderElector,
  RENEW_DEADLINE_MS,
  RETRY_PERIOD_MS,
  ACQUIRE_JITTER_FACTOR,
  formatMicroTime,
  parseMicroTime,
} from "./leader-election.ts";
import type { Lease, LeaderElectionClock, LeaderElectorOptions } from "./leader-election.ts";

const logger = pino({ level: "silent" });
const NS = "batchrollout-system";
const NAME = "leader";
/** The longest an acquire attempt can wait for the next one. */
const MAX_ACQUIRE_WAIT_MS = RETRY_PERIOD_MS * (1 + ACQUIRE_JITTER_FACTOR);

/** Lets every pending promise continuation run; the fakes never wait on real time. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Time that only moves when the test says so; sleeps resolve in time order as it passes. */
class FakeClock implements LeaderElectionClock {
  #now = 1_700_000_000_000;
  readonly #sleepers = new Set<{ at: number; resolve: () => void }>();

  now(): number {
    return this.#now;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const sleeper = { at: this.#now + ms, resolve };
      this.#sleepers.add(sleeper);
      signal?.addEventListener(
        "abort",
        () => {
          this.#sleepers.delete(sleeper);
          resolve();
        },
        { once: true },
      );
    });
  }

  async advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    await settle();
    for (;;) {
      let next: { at: number; resolve: () => void } | undefined;
      for (const s of this.#sleepers) if (s.at <= target && (next === undefined || s.at < next.at)) next = s;
      if (next === undefined) break;
      this.#sleepers.delete(next);
      this.#now = Math.max(this.#now, next.at);
      next.resolve();
      await settle();
    }
    this.#now = target;
    await settle();
  }
}

type Fault = "hang" | ApiError | undefined;

/** The Lease endpoint of an API server, in memory, with optimistic concurrency as the real one. */
class FakeLeaseApi {
  lease: Lease | undefined;
  #rv = 0;
  readonly calls: { method: string; body?: Lease }[] = [];
  /** Decides the fate of each request before it reaches the store. */
  fault: (opts: RequestOptions) => Fault = () => undefined;

  readonly request = async <T>(opts: RequestOptions): Promise<KubeResponse<T>> => {
    const body = opts.body === undefined ? undefined : (structuredClone(opts.body) as Lease);
    this.calls.push({ method: opts.method, body });
    const fault = this.fault(opts);
    if (fault === "hang") {
      return new Promise((_, reject) => {
        const abort = () => reject(opts.signal?.reason ?? new Error("aborted"));
        if (opts.signal?.aborted) abort();
        opts.signal?.addEventListener("abort", abort, { once: true });
      });
    }
    if (fault) throw fault;
    const reply = (lease: Lease) => ({ code: 200, headers: {}, body: structuredClone(lease) as T });
    switch (opts.method) {
      case "GET":
        if (!this.lease) throw apiError(opts, 404, "NotFound");
        return reply(this.lease);
      case "POST":
        if (this.lease) throw apiError(opts, 409, "AlreadyExists");
        this.lease = { ...body!, metadata: { ...body!.metadata, resourceVersion: String(++this.#rv) } };
        return reply(this.lease);
      case "PUT":
        if (!this.lease) throw apiError(opts, 404, "NotFound");
        if (body!.metadata.resourceVersion !== this.lease.metadata.resourceVersion) throw apiError(opts, 409, "Conflict");
        this.lease = { ...body!, metadata: { ...body!.metadata, resourceVersion: String(++this.#rv) } };
        return reply(this.lease);
      default:
        throw new Error(`unexpected ${opts.method}`);
    }
  };

  /** Another process writing the Lease directly. */
  put(spec: Lease["spec"]): void {
    this.lease = { metadata: { name: NAME, namespace: NS, resourceVersion: String(++this.#rv) }, spec };
  }

  count(method: string): number {
    return this.calls.filter((c) => c.method === method).length;
  }
}

function apiError(opts: RequestOptions, code: number, reason: string): ApiError {
  return new ApiError({ method: opts.method, path: opts.path, code, status: { kind: "Status", reason, code, message: reason } });
}

interface Run {
  elector: LeaderElector;
  controller: AbortController;
  done: Promise<void>;
  started: number;
  stopped: number;
  leaderSignal?: AbortSignal;
  finished: boolean;
}

function startElector(api: FakeLeaseApi, clock: FakeClock, identity: string, overrides: Partial<LeaderElectorOptions> = {}, work?: (s: AbortSignal) => Promise<void>): Run {
  const elector = new LeaderElector({ client: api, namespace: NS, name: NAME, identity, logger, clock, ...overrides });
  const controller = new AbortController();
  const run: Run = { elector, controller, done: Promise.resolve(), started: 0, stopped: 0, finished: false };
  run.done = elector
    .run(controller.signal, {
      onStartedLeading(signal) {
        run.started++;
        run.leaderSignal = signal;
        return work?.(signal);
      },
      onStoppedLeading() {
        run.stopped++;
      },
    })
    .then(() => {
      run.finished = true;
    });
  return run;
}

describe("MicroTime", () => {
  it("formats with six fractional digits and parses back", () => {
    const ms = Date.UTC(2024, 0, 2, 3, 4, 5, 678);
    expect(formatMicroTime(ms)).toBe("2024-01-02T03:04:05.678000Z");
    expect(parseMicroTime("2024-01-02T03:04:05.678901Z")).toBe(ms);
    expect(parseMicroTime(undefined)).toBeUndefined();
    expect(parseMicroTime("not a time")).toBeUndefined();
  });
});

describe("LeaderElector", () => {
  it("uses client-go's defaults and derives a hostname_suffix identity", () => {
    expect([LEASE_DURATION_MS, RENEW_DEADLINE_MS, RETRY_PERIOD_MS]).toEqual([15_000, 10_000, 2_000]);
    const a = new LeaderElector({ client: new FakeLeaseApi(), namespace: NS, name: NAME, logger });
    const b = new LeaderElector({ client: new FakeLeaseApi(), namespace: NS, name: NAME, logger });
    expect(a.identity).toMatch(/^.+_[0-9a-f-]{36}$/);
    expect(a.identity).not.toBe(b.identity);
  });

  it("rejects timings under which a leader could outlive its lease", () => {
    const base = { client: new FakeLeaseApi(), namespace: NS, name: NAME, logger };
    expect(() => new LeaderElector({ ...base, leaseDurationMs: 10_000, renewDeadlineMs: 10_000 })).toThrow(/greater than renewDeadlineMs/);
    expect(() => new LeaderElector({ ...base, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 })).toThrow(/retryPeriodMs/);
    expect(() => new LeaderElector({ ...base, leaseDurationMs: 1_500 })).toThrow(/whole seconds/);
  });

  it("creates a missing Lease and leads", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const run = startElector(api, clock, "a");
    await clock.advance(0);
    expect(run.started).toBe(1);
    expect(run.elector.isLeader).toBe(true);
    expect(api.lease?.spec).toEqual({
      holderIdentity: "a",
      leaseDurationSeconds: 15,
      acquireTime: formatMicroTime(clock.now()),
      renewTime: formatMicroTime(clock.now()),
      leaseTransitions: 0,
    });
    run.controller.abort();
    await run.done;
  });

  it("lets exactly one of two candidates lead when both find the Lease missing", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const a = startElector(api, clock, "a");
    const b = startElector(api, clock, "b");
    await clock.advance(LEASE_DURATION_MS * 3);
    expect(a.started + b.started).toBe(1);
    expect(api.count("POST")).toBe(2);
    const leader = a.started ? a : b;
    expect(api.lease?.spec?.holderIdentity).toBe(leader.elector.identity);
    a.controller.abort();
    b.controller.abort();
    await Promise.all([a.done, b.done]);
  });

  it("renews every retryPeriod with the resourceVersion it last wrote, keeping acquireTime", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const run = startElector(api, clock, "a");
    await clock.advance(0);
    const acquireTime = api.lease?.spec?.acquireTime;
    const getsBefore = api.count("GET");
    await clock.advance(RETRY_PERIOD_MS * 5);
    expect(api.count("PUT")).toBe(5);
    // The fast path: a leader does not read before it renews.
    expect(api.count("GET")).toBe(getsBefore);
    expect(api.lease?.spec?.acquireTime).toBe(acquireTime);
    expect(api.lease?.spec?.renewTime).toBe(formatMicroTime(clock.now()));
    expect(api.lease?.spec?.leaseTransitions).toBe(0);
    run.controller.abort();
    await run.done;
  });

  it("takes over a Lease once its holder's renewTime + leaseDuration has passed, counting the transition", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const renewedAt = clock.now() - 5_000;
    api.put({ holderIdentity: "ghost", leaseDurationSeconds: 15, acquireTime: formatMicroTime(renewedAt), renewTime: formatMicroTime(renewedAt), leaseTransitions: 3 });
    const run = startElector(api, clock, "b");
    await clock.advance(LEASE_DURATION_MS - 5_000 - 1);
    expect(run.started).toBe(0);
    await clock.advance(MAX_ACQUIRE_WAIT_MS + 1);
    expect(run.started).toBe(1);
    expect(api.lease?.spec?.holderIdentity).toBe("b");
    expect(api.lease?.spec?.leaseTransitions).toBe(4);
    expect(parseMicroTime(api.lease?.spec?.acquireTime)).toBeGreaterThanOrEqual(renewedAt + LEASE_DURATION_MS);
    run.controller.abort();
    await run.done;
  });

  it("takes over from a long-silent holder after watching its record unchanged for one retryPeriod", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const renewedAt = clock.now() - 3_600_000;
    api.put({ holderIdentity: "crashed", leaseDurationSeconds: 15, renewTime: formatMicroTime(renewedAt), leaseTransitions: 0 });
    const run = startElector(api, clock, "b");
    await clock.advance(0);
    expect(run.started).toBe(0);
    await clock.advance(MAX_ACQUIRE_WAIT_MS);
    expect(run.started).toBe(1);
    expect(api.count("GET")).toBe(2);
    run.controller.abort();
    await run.done;
  });

  it("never takes over from a holder it sees renewing, however old its renewTime looks (clock skew)", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const skewedRenew = () => formatMicroTime(clock.now() - 60_000 + Math.random());
    api.put({ holderIdentity: "skewed", leaseDurationSeconds: 15, renewTime: skewedRenew(), leaseTransitions: 0 });
    // The holder renews every retryPeriod with a clock a minute behind ours; its writes go in
    // between our reads, so each of our reads sees a changed record.
    api.fault = (opts) => {
      if (opts.method === "GET" && api.count("GET") > 1) api.put({ ...api.lease!.spec, renewTime: skewedRenew() });
      return undefined;
    };
    const run = startElector(api, clock, "b");
    await clock.advance(LEASE_DURATION_MS * 4);
    expect(run.started).toBe(0);
    expect(api.lease?.spec?.holderIdentity).toBe("skewed");
    run.controller.abort();
    await run.done;
    expect(run.stopped).toBe(0);
  });

  it("takes over a released Lease at the next attempt, without waiting for it to expire", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    api.put({ holderIdentity: "old", leaseDurationSeconds: 15, renewTime: formatMicroTime(clock.now()), leaseTransitions: 1 });
    const run = startElector(api, clock, "b");
    await clock.advance(1_000);
    expect(run.started).toBe(0);
    api.put({ holderIdentity: "", leaseDurationSeconds: 1, renewTime: formatMicroTime(clock.now()), leaseTransitions: 1 });
    await clock.advance(MAX_ACQUIRE_WAIT_MS);
    expect(run.started).toBe(1);
    expect(api.lease?.spec?.leaseTransitions).toBe(2);
    run.controller.abort();
    await run.done;
  });

  it("treats a 409 Conflict on takeover as a lost race and keeps campaigning", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    api.put({ holderIdentity: "", leaseDurationSeconds: 1, renewTime: formatMicroTime(clock.now()), leaseTransitions: 0 });
    let raced = false;
    api.fault = (opts) => {
      if (opts.method === "PUT" && !raced) {
        raced = true;
        // A rival takes it between our read and our write.
        api.put({ holderIdentity: "rival", leaseDurationSeconds: 15, renewTime: formatMicroTime(clock.now()), leaseTransitions: 1 });
      }
      return undefined;
    };
    const run = startElector(api, clock, "b");
    await clock.advance(0);
    expect(raced).toBe(true);
    expect(run.started).toBe(0);
    expect(api.lease?.spec?.holderIdentity).toBe("rival");
    run.controller.abort();
    await run.done;
  });

  it("lets work guarded by the Lease act only while the last renewal is younger than renewDeadline (a paused process wakes unable to write)", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const run = startElector(api, clock, "a");
    await clock.advance(0);
    const renewedAt = clock.now();
    expect(run.elector.leadsAt(renewedAt)).toBe(true);
    expect(run.elector.leadsAt(renewedAt + RENEW_DEADLINE_MS - 1)).toBe(true);
    // As a process woken from SIGSTOP sees it before its renewal loop has run again.
    expect(run.elector.leadsAt(renewedAt + RENEW_DEADLINE_MS)).toBe(false);
    await clock.advance(RETRY_PERIOD_MS);
    expect(run.elector.leadsAt(renewedAt + RENEW_DEADLINE_MS)).toBe(true);
    run.controller.abort();
    await run.done;
    expect(run.elector.leadsAt(clock.now())).toBe(false);
  });

  it("stops leading when renewals fail for renewDeadline, and does not release", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const run = startElector(api, clock, "a");
    await clock.advance(RETRY_PERIOD_MS * 2);
    expect(run.elector.isLeader).toBe(true);
    const lastGood = clock.now();
    api.fault = (opts) => apiError(opts, 503, "ServiceUnavailable");
    await clock.advance(RETRY_PERIOD_MS + RENEW_DEADLINE_MS - 1);
    expect(run.stopped).toBe(0);
    await clock.advance(1);
    expect(run.stopped).toBe(1);
    expect(run.finished).toBe(true);
    expect(run.leaderSignal?.aborted).toBe(true);
    expect(run.elector.isLeader).toBe(false);
    // Lost before its Lease could expire for anyone else.
    expect(clock.now()).toBeLessThan(lastGood + LEASE_DURATION_MS);
    expect(api.lease?.spec?.holderIdentity).toBe("a");
  });

  it("stops leading at renewDeadline even when the renewal request hangs", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const run = startElector(api, clock, "a");
    await clock.advance(0);
    api.fault = () => "hang";
    await clock.advance(RETRY_PERIOD_MS + RENEW_DEADLINE_MS - 1);
    expect(run.stopped).toBe(0);
    await clock.advance(1);
    expect(run.stopped).toBe(1);
    expect(run.leaderSignal?.aborted).toBe(true);
  });

  it("stops leading at once when another holder has taken the Lease", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const run = startElector(api, clock, "a");
    await clock.advance(0);
    api.put({ holderIdentity: "usurper", leaseDurationSeconds: 15, renewTime: formatMicroTime(clock.now()), leaseTransitions: 1 });
    await clock.advance(RETRY_PERIOD_MS);
    expect(run.stopped).toBe(1);
    expect(run.leaderSignal?.aborted).toBe(true);
    expect(api.lease?.spec?.holderIdentity).toBe("usurper");
  });

  it("keeps renewing after a transient failure within renewDeadline", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const run = startElector(api, clock, "a");
    await clock.advance(0);
    let failures = 2;
    api.fault = (opts) => (opts.method === "PUT" && failures-- > 0 ? apiError(opts, 500, "InternalError") : undefined);
    await clock.advance(RETRY_PERIOD_MS * 10);
    expect(run.stopped).toBe(0);
    expect(api.lease?.spec?.renewTime).toBe(formatMicroTime(clock.now()));
    run.controller.abort();
    await run.done;
  });

  it("on a graceful stop, waits for the leader's work while renewing, then releases for a successor", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    let workStopped = false;
    const a = startElector(api, clock, "a", {}, (signal) =>
      new Promise<void>((resolve) =>
        signal.addEventListener("abort", () => {
          // The work takes longer than a Lease to wind down; the Lease must stay ours meanwhile.
          void clock.sleep(LEASE_DURATION_MS * 2).then(() => {
            workStopped = true;
            resolve();
          });
        }),
      ),
    );
    await clock.advance(0);
    const b = startElector(api, clock, "b");
    await clock.advance(RETRY_PERIOD_MS * 3);
    expect(b.started).toBe(0);

    a.controller.abort();
    await clock.advance(0);
    expect(a.leaderSignal?.aborted).toBe(true);
    await clock.advance(LEASE_DURATION_MS * 2 - 1);
    expect(workStopped).toBe(false);
    expect(api.lease?.spec?.holderIdentity).toBe("a");
    expect(b.started).toBe(0);

    await clock.advance(1);
    expect(workStopped).toBe(true);
    await a.done;
    expect(a.stopped).toBe(1);
    expect(api.lease?.spec?.holderIdentity).toBe("");
    expect(api.lease?.spec?.leaseDurationSeconds).toBe(1);

    await clock.advance(MAX_ACQUIRE_WAIT_MS);
    expect(b.started).toBe(1);
    expect(api.lease?.spec?.holderIdentity).toBe("b");
    b.controller.abort();
    await b.done;
  });

  it("releases after LEADER_DRAIN_TIMEOUT_MS when the leader's work never stops", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    const run = startElector(api, clock, "a", {}, () => new Promise<void>(() => undefined));
    await clock.advance(0);
    run.controller.abort();
    await clock.advance(LEADER_DRAIN_TIMEOUT_MS - RETRY_PERIOD_MS);
    expect(run.finished).toBe(false);
    expect(api.lease?.spec?.holderIdentity).toBe("a");
    await clock.advance(RETRY_PERIOD_MS * 2);
    expect(run.finished).toBe(true);
    expect(run.stopped).toBe(1);
    expect(api.lease?.spec?.holderIdentity).toBe("");
  });

  it("returns without callbacks when stopped before it ever leads", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    api.put({ holderIdentity: "other", leaseDurationSeconds: 15, renewTime: formatMicroTime(clock.now()), leaseTransitions: 0 });
    const run = startElector(api, clock, "b");
    await clock.advance(RETRY_PERIOD_MS);
    run.controller.abort();
    await clock.advance(0);
    expect(run.finished).toBe(true);
    expect(run.started + run.stopped).toBe(0);
    expect(api.lease?.spec?.holderIdentity).toBe("other");
  });

  it("keeps campaigning through API errors while acquiring", async () => {
    const api = new FakeLeaseApi();
    const clock = new FakeClock();
    let failures = 3;
    api.fault = (opts) => (failures-- > 0 ? apiError(opts, 500, "InternalError") : undefined);
    const run = startElector(api, clock, "a");
    await clock.advance(MAX_ACQUIRE_WAIT_MS * 3);
    expect(run.started).toBe(1);
    run.controller.abort();
    await run.done;
  });
});
