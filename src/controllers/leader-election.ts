// Leader election on a coordination.k8s.io/v1 Lease, with client-go's protocol and defaults so our
// replicas interoperate with the usual tooling and expectations:
//   - a candidate creates the Lease if it is missing (409 AlreadyExists: another candidate won);
//   - it takes over a Lease whose holder let it expire, by an update carrying the resourceVersion it
//     read (409 Conflict: another candidate won the race). Expired means the holder's renewTime +
//     leaseDurationSeconds has passed on our clock, and, because remote timestamps cannot be
//     trusted alone (client-go's rule), that we have not seen the record change for leaseDuration
//     and have watched it for at least one retryPeriod: a holder that keeps renewing is never taken
//     over however far its clock lags ours;
//   - the leader renews every retryPeriod; a renewal round that has not succeeded within
//     renewDeadline ends its leadership, before leaseDuration could let another candidate in;
//   - on a graceful stop the leader's work is stopped first, then the Lease is released (empty
//     holder, 1 s duration; client-go's ReleaseOnCancel) so a successor takes over at once.
// Like client-go it does not fence the API server: for a short time two processes may believe they
// lead, so work guarded by the Lease must stay safe under that. Pod writes narrow the time to the
// last moment before sending by asking leadsAt() as their stream opens (kube/fence.ts).
import type { Logger } from "pino";
import type { KubeClient } from "../kube/client.ts";
import { isAlreadyExists, isConflict, isNotFound } from "../kube/errors.ts";
import { LEASES, resourcePath } from "../kube/resources.ts";
import type { LeaderElectionMetrics } from "./metrics.ts";
import { defaultIdentity, formatMicroTime, parseMicroTime, realElectionClock, recordOf, type Lease, type LeaderElectionClock, type LeaseSpec } from "./lease.ts";

export { defaultIdentity, formatMicroTime, parseMicroTime, realElectionClock, type Lease, type LeaderElectionClock, type LeaseSpec } from "./lease.ts";

/** How long a Lease stays valid after its last renewal (client-go's LeaseDuration default). */
export const LEASE_DURATION_MS = 15_000;
/** A leader whose renewal round has not succeeded for this long stops leading (client-go's RenewDeadline). */
export const RENEW_DEADLINE_MS = 10_000;
/** Wait between acquire attempts and between renewals (client-go's RetryPeriod). */
export const RETRY_PERIOD_MS = 2_000;
/** Acquire attempts wait up to this fraction of retryPeriod more, so standbys do not poll in step (client-go's JitterFactor). */
export const ACQUIRE_JITTER_FACTOR = 1.2;
/** leaseDurationSeconds written on release, so even a candidate that ignores the empty holder sees it expire at once (client-go). */
export const RELEASED_LEASE_DURATION_S = 1;
/**
 * On a graceful stop, how long the leader keeps renewing while onStartedLeading's work winds down
 * before releasing anyway (controller-runtime's GracefulShutdownTimeout default).
 */
export const LEADER_DRAIN_TIMEOUT_MS = 30_000;


export interface LeaderCallbacks {
  /**
   * Called once leadership is acquired. `leaderSignal` aborts when leadership ends (lost, or the
   * run stopping). A returned promise is awaited on a graceful stop before the Lease is released.
   */
  onStartedLeading(leaderSignal: AbortSignal): void | Promise<void>;
  /** Called once, after onStartedLeading, when leadership ended; the operator exits here. */
  onStoppedLeading(): void;
}

export interface LeaderElectorOptions {
  client: Pick<KubeClient, "request">;
  namespace: string;
  /** Lease name. */
  name: string;
  /** Defaults to hostname + "_" + a random UUID, as controller-runtime does. */
  identity?: string;
  logger: Logger;
  clock?: LeaderElectionClock;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** leader_election_master_status, as client-go reports it; absent in tests that do not scrape. */
  metrics?: LeaderElectionMetrics;
}

/** Outcome of one acquire-or-renew attempt. */
type Attempt = "ok" | "held-by-other" | "failed";

export class LeaderElector {
  readonly identity: string;
  readonly namespace: string;
  readonly name: string;
  readonly #client: Pick<KubeClient, "request">;
  readonly #log: Logger;
  readonly #clock: LeaderElectionClock;
  readonly #metrics: LeaderElectionMetrics | undefined;
  readonly #leaseDurationMs: number;
  readonly #renewDeadlineMs: number;
  readonly #retryPeriodMs: number;
  /** The Lease as last read or written: its resourceVersion guards our next update. */
  #lease: Lease | undefined;
  /** The Lease's record (spec) as last seen, to notice when it changes. */
  #observedRecord: string | undefined;
  /**
   * When, on our own clock, we last saw the record change. Only a change between two of our reads
   * counts: it proves the holder is alive however skewed its clock is (client-go's rule).
   */
  #observedChangeAt: number | undefined;
  /** When, on our own clock, we first saw the record as it is now (first sight or last change). */
  #recordSeenAt = 0;
  /** Our clock when our last write as holder succeeded; undefined while we do not hold the Lease. */
  #renewedAt: number | undefined;
  #lastHolder: string | undefined;
  #running = false;

  constructor(opts: LeaderElectorOptions) {
    this.identity = opts.identity ?? defaultIdentity();
    this.namespace = opts.namespace;
    this.name = opts.name;
    this.#client = opts.client;
    this.#clock = opts.clock ?? realElectionClock;
    this.#metrics = opts.metrics;
    this.#leaseDurationMs = opts.leaseDurationMs ?? LEASE_DURATION_MS;
    this.#renewDeadlineMs = opts.renewDeadlineMs ?? RENEW_DEADLINE_MS;
    this.#retryPeriodMs = opts.retryPeriodMs ?? RETRY_PERIOD_MS;
    this.#log = opts.logger.child({ lease: `${opts.namespace}/${opts.name}`, identity: this.identity });
    // client-go's own checks: a leader must give up before its Lease can expire for others, and
    // must get more than one renewal attempt in before it gives up.
    if (this.#leaseDurationMs < 1000 || this.#leaseDurationMs % 1000 !== 0) {
      throw new Error(`leader election ${this.name}: leaseDurationMs must be whole seconds, got ${this.#leaseDurationMs}`);
    }
    if (this.#leaseDurationMs <= this.#renewDeadlineMs) {
      throw new Error(`leader election ${this.name}: leaseDurationMs (${this.#leaseDurationMs}) must be greater than renewDeadlineMs (${this.#renewDeadlineMs})`);
    }
    if (this.#renewDeadlineMs <= ACQUIRE_JITTER_FACTOR * this.#retryPeriodMs) {
      throw new Error(
        `leader election ${this.name}: renewDeadlineMs (${this.#renewDeadlineMs}) must be greater than retryPeriodMs × ${ACQUIRE_JITTER_FACTOR} (${ACQUIRE_JITTER_FACTOR * this.#retryPeriodMs})`,
      );
    }
  }

  /** Whether this elector holds the Lease right now, as far as it knows. */
  get isLeader(): boolean {
    return this.#renewedAt !== undefined;
  }

  /**
   * Whether work guarded by the Lease may act: the last renewal is younger than renewDeadline on our
   * clock. A process woken from a pause (SIGSTOP, a frozen VM) has writes due before its renewal
   * loop runs; checked before each write, this stops them before another candidate may lead.
   */
  leadsAt(now: number = this.#clock.now()): boolean {
    return this.#renewedAt !== undefined && now - this.#renewedAt < this.#renewDeadlineMs;
  }

  /**
   * Campaigns until it leads, leads until leadership is lost or `signal` aborts, then resolves.
   * Never throws for API errors: they are logged and retried.
   */
  async run(signal: AbortSignal, callbacks: LeaderCallbacks): Promise<void> {
    if (this.#running) throw new Error(`leader election ${this.name}: run() is already running`);
    this.#running = true;
    // A standby reports 0 rather than nothing, so "no replica leads" is a query, not an absence.
    this.#metrics?.setLeading(this.name, false);
    try {
      this.#log.info("waiting to acquire leader lease");
      if (!(await this.#acquire(signal))) return;
      if (signal.aborted) {
        // Won the Lease just as we were told to stop: hand it straight back.
        await this.#release();
        return;
      }
      this.#log.info("acquired leader lease");
      this.#metrics?.setLeading(this.name, true);

      const leader = new AbortController();
      const work = this.#startLeading(callbacks, leader.signal);
      // Renewal outlives `signal` on a graceful stop: the Lease stays ours until the work stopped.
      const renewing = new AbortController();
      const drainTimeout = new AbortController();
      const stopLeading = () => {
        leader.abort(signal.reason);
        void this.#drain(work, renewing, drainTimeout.signal);
      };
      signal.addEventListener("abort", stopLeading, { once: true });

      let lost: boolean;
      try {
        lost = await this.#renew(renewing.signal);
      } finally {
        signal.removeEventListener("abort", stopLeading);
        drainTimeout.abort();
      }
      this.#metrics?.setLeading(this.name, false);
      if (lost) {
        this.#log.error("leader lease lost; stopping leading");
        leader.abort(new Error(`leader election ${this.name}: lease lost`));
        this.#renewedAt = undefined;
      } else {
        await this.#release();
      }
      try {
        callbacks.onStoppedLeading();
      } catch (err) {
        this.#log.error({ err: errorMessage(err) }, "onStoppedLeading threw");
      }
    } finally {
      this.#running = false;
    }
  }

  #startLeading(callbacks: LeaderCallbacks, leaderSignal: AbortSignal): Promise<void> {
    try {
      return Promise.resolve(callbacks.onStartedLeading(leaderSignal)).catch((err: unknown) => {
        this.#log.error({ err: errorMessage(err) }, "onStartedLeading failed");
      });
    } catch (err) {
      this.#log.error({ err: errorMessage(err) }, "onStartedLeading threw");
      return Promise.resolve();
    }
  }

  /** Ends renewal once the leader's work has settled, or after LEADER_DRAIN_TIMEOUT_MS. */
  async #drain(work: Promise<void>, renewing: AbortController, cancelled: AbortSignal): Promise<void> {
    let settled = false;
    await Promise.race([
      work.then(() => {
        settled = true;
      }),
      this.#clock.sleep(LEADER_DRAIN_TIMEOUT_MS, cancelled),
    ]);
    if (!settled && !cancelled.aborted) {
      this.#log.warn({ timeoutMs: LEADER_DRAIN_TIMEOUT_MS }, "leader work did not stop in time; releasing the lease anyway");
    }
    renewing.abort();
  }

  async #acquire(signal: AbortSignal): Promise<boolean> {
    while (!signal.aborted) {
      const attempt = await this.#tryAcquireOrRenew(signal);
      if (attempt === "ok") return true;
      const wait = this.#retryPeriodMs * (1 + Math.random() * ACQUIRE_JITTER_FACTOR);
      await this.#clock.sleep(wait, signal);
    }
    return false;
  }

  /** Renews every retryPeriod until `stop` aborts (returns false) or a round fails (returns true: lost). */
  async #renew(stop: AbortSignal): Promise<boolean> {
    for (;;) {
      await this.#clock.sleep(this.#retryPeriodMs, stop);
      if (stop.aborted) return false;
      const deadline = this.#clock.now() + this.#renewDeadlineMs;
      // A request that hangs must not hold leadership past the deadline.
      const expired = new AbortController();
      const roundOver = new AbortController();
      void this.#clock.sleep(this.#renewDeadlineMs, roundOver.signal).then(() => {
        if (!roundOver.signal.aborted) expired.abort(new Error(`leader election ${this.name}: renew deadline passed`));
      });
      try {
        for (;;) {
          const attempt = await this.#tryAcquireOrRenew(expired.signal);
          if (attempt === "ok") break;
          // Someone else holds a valid Lease: waiting out the deadline cannot bring it back.
          if (attempt === "held-by-other") return true;
          const left = deadline - this.#clock.now();
          if (left <= 0 || expired.signal.aborted) return true;
          // A graceful stop while renewals fail: release (if we still can) rather than keep trying.
          if (stop.aborted) return false;
          await this.#clock.sleep(Math.min(this.#retryPeriodMs, left), AbortSignal.any([expired.signal, stop]));
          if (stop.aborted && !expired.signal.aborted) return false;
        }
      } finally {
        roundOver.abort();
      }
    }
  }

  async #tryAcquireOrRenew(signal: AbortSignal): Promise<Attempt> {
    const now = this.#clock.now();
    const nowMicro = formatMicroTime(now);
    const leaseDurationSeconds = this.#leaseDurationMs / 1000;

    // Fast path: the leader updates the Lease it last wrote without reading it first; any change
    // by someone else since shows up as a 409 and sends us down the slow path.
    if (this.#lease && this.#renewedAt !== undefined && this.#renewedAt + this.#leaseDurationMs > now) {
      const spec: LeaseSpec = { ...this.#lease.spec, holderIdentity: this.identity, leaseDurationSeconds, renewTime: nowMicro };
      try {
        this.#wrote(await this.#update({ ...this.#lease, spec }, signal), now);
        return "ok";
      } catch (err) {
        if (signal.aborted) return "failed";
        this.#log.debug({ err: errorMessage(err) }, "optimistic lease renewal failed; reading the lease");
      }
    }

    let current: Lease;
    try {
      current = await this.#get(signal);
    } catch (err) {
      if (!isNotFound(err)) {
        // An aborted request is the stop or the deadline speaking, not the API server.
        if (!signal.aborted) this.#log.warn({ err: errorMessage(err) }, "could not read leader lease");
        return "failed";
      }
      const lease: Lease = {
        apiVersion: "coordination.k8s.io/v1",
        kind: "Lease",
        metadata: { name: this.name, namespace: this.namespace },
        spec: { holderIdentity: this.identity, leaseDurationSeconds, acquireTime: nowMicro, renewTime: nowMicro, leaseTransitions: 0 },
      };
      try {
        this.#wrote(await this.#create(lease, signal), now);
        return "ok";
      } catch (createErr) {
        if (isAlreadyExists(createErr)) this.#log.debug("another candidate created the lease first");
        else if (!signal.aborted) this.#log.warn({ err: errorMessage(createErr) }, "could not create leader lease");
        return "failed";
      }
    }

    this.#observe(current, now);
    const spec = current.spec ?? {};
    const holder = spec.holderIdentity ?? "";
    if (holder !== "" && holder !== this.identity && this.#heldByOther(spec, now)) {
      this.#renewedAt = undefined;
      return "held-by-other";
    }

    const next: LeaseSpec =
      holder === this.identity
        ? { ...spec, holderIdentity: this.identity, leaseDurationSeconds, acquireTime: spec.acquireTime ?? nowMicro, renewTime: nowMicro }
        : {
            ...spec,
            holderIdentity: this.identity,
            leaseDurationSeconds,
            acquireTime: nowMicro,
            renewTime: nowMicro,
            leaseTransitions: (spec.leaseTransitions ?? 0) + 1,
          };
    try {
      this.#wrote(await this.#update({ ...current, spec: next }, signal), now);
      if (holder !== this.identity) this.#log.info({ previousHolder: holder || undefined }, "took over leader lease");
      return "ok";
    } catch (err) {
      if (isConflict(err)) this.#log.debug("lost the race to update the leader lease");
      else if (!signal.aborted) this.#log.warn({ err: errorMessage(err) }, "could not update leader lease");
      return "failed";
    }
  }

  /** Whether another holder's Lease is still valid (see the rule at the top of this file). */
  #heldByOther(spec: LeaseSpec, now: number): boolean {
    const durationMs = (spec.leaseDurationSeconds ?? this.#leaseDurationMs / 1000) * 1000;
    const renewedAt = parseMicroTime(spec.renewTime) ?? parseMicroTime(spec.acquireTime);
    // The holder's own claim.
    if (renewedAt !== undefined && renewedAt + durationMs > now) return true;
    // Seen alive, whatever its clock says.
    if (this.#observedChangeAt !== undefined && this.#observedChangeAt + durationMs > now) return true;
    // At first sight a live holder and a silent one look alike until it had a chance to renew.
    return now - this.#recordSeenAt < this.#retryPeriodMs;
  }

  #observe(lease: Lease, now: number): void {
    const record = recordOf(lease);
    if (record !== this.#observedRecord) {
      if (this.#observedRecord !== undefined) this.#observedChangeAt = now;
      this.#recordSeenAt = now;
    }
    this.#observedRecord = record;
    this.#lease = lease;
    const holder = lease.spec?.holderIdentity ?? "";
    if (holder !== this.#lastHolder) {
      if (holder && holder !== this.identity) this.#log.info({ leader: holder }, "observed leader");
      this.#lastHolder = holder;
    }
  }

  #wrote(lease: Lease, now: number): void {
    this.#observedRecord = recordOf(lease);
    this.#observedChangeAt = now;
    this.#recordSeenAt = now;
    this.#lease = lease;
    this.#lastHolder = lease.spec?.holderIdentity ?? "";
    this.#renewedAt = this.#lastHolder === this.identity ? now : undefined;
  }

  /** Hands the Lease back so a successor does not wait for it to expire (client-go's release()). */
  async #release(): Promise<void> {
    if (this.#renewedAt === undefined || !this.#lease) return;
    const now = this.#clock.now();
    const nowMicro = formatMicroTime(now);
    const spec: LeaseSpec = {
      ...this.#lease.spec,
      holderIdentity: "",
      leaseDurationSeconds: RELEASED_LEASE_DURATION_S,
      acquireTime: nowMicro,
      renewTime: nowMicro,
    };
    const expired = new AbortController();
    const done = new AbortController();
    void this.#clock.sleep(this.#renewDeadlineMs, done.signal).then(() => expired.abort());
    try {
      this.#wrote(await this.#update({ ...this.#lease, spec }, expired.signal), now);
      this.#log.info("released leader lease");
    } catch (err) {
      this.#log.warn({ err: errorMessage(err) }, "could not release leader lease; a successor waits for it to expire");
    } finally {
      done.abort();
      this.#renewedAt = undefined;
    }
  }

  #get(signal: AbortSignal): Promise<Lease> {
    return this.#client
      .request<Lease>({ method: "GET", path: resourcePath(LEASES, { namespace: this.namespace, name: this.name }), signal, timeoutMs: this.#renewDeadlineMs })
      .then((r) => r.body);
  }

  #create(lease: Lease, signal: AbortSignal): Promise<Lease> {
    return this.#client
      .request<Lease>({ method: "POST", path: resourcePath(LEASES, { namespace: this.namespace }), body: lease, signal, timeoutMs: this.#renewDeadlineMs })
      .then((r) => r.body);
  }

  #update(lease: Lease, signal: AbortSignal): Promise<Lease> {
    return this.#client
      .request<Lease>({
        method: "PUT",
        path: resourcePath(LEASES, { namespace: this.namespace, name: this.name }),
        body: lease,
        signal,
        timeoutMs: this.#renewDeadlineMs,
      })
      .then((r) => r.body);
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
