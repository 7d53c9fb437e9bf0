import type { Logger } from "pino";
import { API_VERSION, BatchRolloutSpec, FINALIZER, GROUP, KIND } from "../../api/batchrollout.ts";
import type { BatchRollout } from "../../api/batchrollout.ts";
import { NAME_RULE, describeSpecIssues } from "../../api/crd-rules.ts";
import type { ReconcileContext, Result } from "../../controllers/controller.ts";
import type { EventSink } from "../../controllers/event-recorder.ts";
import type { Informer } from "../../controllers/informer.ts";
import type { KubeClient } from "../../kube/client.ts";
import { isConflict, isNotFound } from "../../kube/errors.ts";
import { resourcePath } from "../../kube/resources.ts";
import type { ClusterPace } from "../../ratelimit/cluster-pace.ts";
import type { RetryAfterGate } from "../../ratelimit/retry-after.ts";
import type { WaveDecision, WaveSignals } from "../../ratelimit/sizer/index.ts";
import type { RolloutMetrics } from "../../telemetry/rollout-metrics.ts";
import { executeWrites, type WaveWriteResult } from "./act.ts";
import { census } from "./census.ts";
import { ConditionStatus, ConditionType, EventReason, EventType, StallReason } from "./conditions.ts";
import type { Expectations } from "./expectations.ts";
import { toObservedPod, type ObservedPod } from "./observed.ts";
import { heldByRefusal, plan, waveGate, type Observation, type Plan, type PlanInput } from "./plan.ts";
import { BY_ROLLOUT, type CachedPod } from "./pod-cache.ts";
import { templateHash } from "./pod-template.ts";
import type { QuotaCache } from "./quotas.ts";
import { readSignals, type SignalSources } from "./read-signals.ts";
import type { CreateHold, RefusalBackoff, RefusalReason } from "./refusal.ts";
import { newRolloutState, type RolloutState } from "./rollout-state.ts";
import { computeStatus, invalidSpecStatus, statusChanged } from "./status.ts";
import { BATCHROLLOUTS } from "./resource.ts";
import { StatusWriter } from "./status-writer.ts";

// The BatchRollout reconciler, as sample-controller's syncHandler reads: observe (once, from the
// caches) → size the wave → plan (pure) → act (paced pod writes) → persist status (once). Every
// call starts from what the caches say, so a missed event, a duplicate event or a restart changes
// nothing. docs/architecture.md walks through it.

export { BATCHROLLOUTS } from "./resource.ts";
export { STATUS_PROGRESS_INTERVAL_MS } from "./status-writer.ts";

/** A rollout object as the informer caches it: not yet validated. */
export type RawRollout = Omit<BatchRollout, "spec"> & { spec?: unknown };

export interface ReconcilerDeps extends SignalSources {
  client: Pick<KubeClient, "request">;
  rollouts: Pick<Informer<RawRollout>, "get">;
  pods: Pick<Informer<CachedPod>, "byIndex">;
  expectations: Expectations;
  events: EventSink;
  gate: RetryAfterGate;
  logger: Logger;
  metrics?: RolloutMetrics;
  pace?: Pick<ClusterPace, "grant" | "release" | "forget" | "record" | "learn" | "controller">;
  /** The namespaces' ResourceQuotas: a change ends a refusal's wait for its next probe. */
  quotas?: Pick<QuotaCache, "fingerprint">;
  /** Whether this replica's Lease is still fresh enough to write (LeaderElector.leadsAt); absent without leader election. */
  mayWrite?: () => boolean;
  now?: () => number;
}

/** One reconcile's observation: what plan and status read, plus what act and the sizer need. */
interface Observed extends Observation {
  key: string;
  rollout: BatchRollout;
  /** A reconcile that may start a wave (minInterval passed): a decision the sizer learns from. */
  deciding: boolean;
  createHold?: CreateHold;
  sizerSignals: WaveSignals;
}

/** The cluster budget a wave may spend: granted before sizing, its unused part handed back once. */
interface BudgetGrant {
  size: number | undefined;
  settle(used: number): void;
}

export class BatchRolloutReconciler {
  readonly #deps: ReconcilerDeps;
  readonly #now: () => number;
  readonly #state = new Map<string, RolloutState>();
  readonly #status: StatusWriter;

  constructor(deps: ReconcilerDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
    this.#status = new StatusWriter(deps.client, this.#now, deps.mayWrite);
  }

  /** For the controller: `reconcile(key, ctx)`. */
  readonly reconcile = async (key: string, ctx: ReconcileContext): Promise<Result> => {
    const raw = this.#deps.rollouts.get(key);
    if (!raw) {
      this.#forget(key);
      return {};
    }
    const parsed = BatchRolloutSpec.safeParse(raw.spec);
    // The CRD's rules, for a rollout that an older CRD let in.
    const invalid = NAME_RULE.violated(raw) ? NAME_RULE.message : parsed.success ? undefined : describeSpecIssues(parsed.error.issues).join("; ");
    if (invalid !== undefined || !parsed.success) return this.#reportInvalidSpec(raw, invalid ?? "", ctx.logger);
    const state = this.#stateFor(key, raw.metadata.uid, parsed.data);
    const log = ctx.logger.child({ rollout: key, generation: raw.metadata.generation });

    const observed = await this.#observe(key, { ...raw, spec: parsed.data, status: state.written ?? raw.status }, state, ctx.signal);
    const grant = this.#grant(observed);
    let planned: Plan;
    let decision: WaveDecision;
    try {
      decision = this.#size(observed, state, grant);
      planned = plan(this.#planInput(observed, decision));
      grant.settle(planned.creates.length + planned.deletes.length);
    } finally {
      grant.settle(0);
    }
    const acted = await this.#act(observed, planned, state, log, ctx.signal);
    const { status, againInMs } = await this.#persist(observed, acted.plan, state, acted.waveStart);

    this.#deps.metrics?.observe(
      { namespace: observed.rollout.metadata.namespace ?? "", name: observed.rollout.metadata.name },
      { waveStarted: acted.plan.waveStarted, limitedBy: decision.limitedBy, size: decision.size, rateLimit: decision.rateLimit, throttled: observed.sizerSignals.writes?.throttled ?? 0 },
      status,
    );
    if (acted.plan.removeFinalizer) await this.#setFinalizer(observed.rollout, false);
    if (acted.writeFailure) throw acted.writeFailure;
    const requeueAfterMs = minDefined(minDefined(acted.plan.requeueAfterMs, againInMs), this.#deps.expectations.expiresInMs(key));
    return requeueAfterMs !== undefined ? { requeueAfterMs } : {};
  };

  /** Observe: the rollout's pods counted once, the writes in flight, the refusal hold, the signals. */
  async #observe(key: string, rollout: BatchRollout, state: RolloutState, signal: AbortSignal): Promise<Observed> {
    const now = this.#now();
    const cached = this.#deps.pods.byIndex(BY_ROLLOUT, key);
    const expectations = this.#deps.expectations.pending(key);
    const deleting = rollout.metadata.deletionTimestamp !== undefined;
    const hash = templateHash(rollout.spec.template);
    const pods = census({
      name: rollout.metadata.name,
      desired: deleting ? 0 : rollout.spec.replicas,
      pods: cached.map(toObservedPod).filter((p): p is ObservedPod => p !== undefined),
      expectations,
      templateHash: hash,
      ...(rollout.spec.updateStrategy.type === "RollingRecreate" ? { partition: rollout.spec.updateStrategy.partition } : {}),
      uids: new Map(cached.map((p) => [p.metadata.name, p.metadata.uid])),
    });
    if (!state.restored) {
      restoreRefusal(state.refusals, rollout, this.#refusalAt(rollout));
      state.restored = true;
    }
    const createHold = state.refusals.hold(this.#refusalAt(rollout));
    const deciding = waveGate(rollout, now).open;
    const readings = await readSignals(this.#deps, state, { key, rollout, pods, creating: expectations.creates.size, now, deciding, signal });
    return {
      key,
      rollout,
      pods,
      expectations,
      templateHash: hash,
      signals: readings.status,
      now,
      deciding,
      ...(createHold ? { createHold } : {}),
      sizerSignals: readings.sizer,
    };
  }

  /** This rollout's share of the cluster's write budget, as a scope that hands back what it did not use. */
  #grant(observed: Observed): BudgetGrant {
    const { key, rollout, now } = observed;
    const pace = this.#deps.pace;
    const remaining = rollout.spec.paused ? 0 : observed.sizerSignals.remaining;
    const size = pace?.grant(key, rollout.spec.priority, remaining, now);
    let settled = size === undefined;
    return {
      size,
      settle: (used) => {
        if (settled || size === undefined) return;
        settled = true;
        pace?.release(key, size - used, now);
      },
    };
  }

  /** Size: the sizer's decision for this reconcile; only one that may start a wave teaches it. */
  #size(observed: Observed, state: RolloutState, grant: BudgetGrant): WaveDecision {
    const signals = grant.size === undefined ? observed.sizerSignals : { ...observed.sizerSignals, budget: grant.size };
    const decision = observed.deciding ? state.sizer.next(signals) : state.sizer.peek(signals);
    state.pacer.update(decision.rateLimit);
    return decision;
  }

  #planInput(observed: Observed, decision: WaveDecision): PlanInput {
    const { rollout, pods, expectations, templateHash: hash, signals, now, createHold } = observed;
    return { rollout, pods, expectations, templateHash: hash, now, decision, ...(signals ? { signals } : {}), ...(createHold ? { createHold } : {}) };
  }

  /**
   * Act: the finalizer, the plan's events, and the wave's writes with its opening status beside
   * them. A refusal met by the writes holds creation, and the plan says so for the status.
   */
  async #act(observed: Observed, planned: Plan, state: RolloutState, log: Logger, signal: AbortSignal) {
    const { rollout } = observed;
    if (planned.addFinalizer) await this.#setFinalizer(rollout, true);
    if (planned.waveStarted) {
      const { number, size, limitedBy, message } = planned.wave;
      log.info({ wave: number, size, creates: planned.creates.length, deletes: planned.deletes.length, replaced: planned.replaced, limitedBy, why: message }, "wave started");
    }
    this.#emit(rollout, planned.events);
    const waveStart = planned.waveStarted
      ? this.#status.begin(rollout, state, computeStatus(observed, planned, observed.now), (err) => log.debug({ err }, "status patch at wave start failed; sending it after the writes"))
      : Promise.resolve();
    if (planned.creates.length + planned.deletes.length === 0) return { plan: planned, waveStart };

    const outcome = await this.#writeWave(observed, planned, state, log, signal);
    if (!outcome.rejected) {
      if (outcome.created + outcome.existed > 0) state.refusals.accepted();
      return { plan: planned, waveStart, writeFailure: outcome.firstFailure };
    }
    state.refusals.refused(outcome.rejected, LABEL_PREFIX, this.#refusalAt(rollout));
    const hold = state.refusals.hold(this.#refusalAt(rollout));
    const pending = this.#deps.expectations.pending(observed.key);
    const held = hold ? heldByRefusal(observed, planned, hold, pending.creates.size + pending.deletes.size > 0) : planned;
    this.#emit(rollout, held.events);
    return { plan: held, waveStart, writeFailure: outcome.firstFailure };
  }

  /** Persist: the status computed once from this reconcile's observation and plan. */
  async #persist(observed: Observed, planned: Plan, state: RolloutState, waveStart: Promise<void>) {
    await waveStart;
    if (planned.blocker && !planned.waveStarted && planned.events.length > 0) {
      const { reason, stalled, message } = planned.blocker;
      this.#deps.logger.child({ rollout: observed.key }).info({ reason, stalled, why: message }, "rollout held");
    }
    const status = computeStatus(observed, planned, this.#now());
    return { status, ...(await this.#status.settle(observed.rollout, state, status)) };
  }

  /** Sends one wave's pod writes and reports how it went, in the log and as events. */
  async #writeWave(observed: Observed, planned: Plan, state: RolloutState, log: Logger, signal: AbortSignal): Promise<WaveWriteResult> {
    const { rollout } = observed;
    const started = this.#now();
    const outcome = await executeWrites({
      client: this.#deps.client,
      pacer: state.pacer,
      expectations: this.#deps.expectations,
      key: observed.key,
      rollout,
      plan: planned,
      templateHash: observed.templateHash,
      podUids: observed.pods.uids,
      signal,
      logger: log,
      ...(this.#deps.mayWrite ? { mayWrite: this.#deps.mayWrite } : {}),
    });
    const seconds = ((this.#now() - started) / 1000).toFixed(1);
    const { created, existed, deleted, refused, failed } = outcome;
    log.info({ wave: planned.wave.number, created, existed, deleted, refused, failed, seconds }, "wave writes done");
    const refusedNote = refused > 0 ? `, ${refused} refused by the API server` : "";
    this.#event(rollout, EventType.Normal, EventReason.WaveFinished, "Reconcile",
      `wave ${planned.wave.number}: ${created} pods created, ${existed} already existed, ${deleted} deleted${refusedNote}, ${failed} not written, in ${seconds} s`);
    if (outcome.rejected) {
      const { code, reason, message } = outcome.rejected;
      log.warn({ code, reason, message, refused }, "API server refused a pod create; creation holds, probing with one create after a backoff");
    }
    if (outcome.firstFailure) {
      this.#event(rollout, EventType.Warning, EventReason.WriteFailed, "CreatePods",
        `${failed} pod writes failed; retrying with backoff: ${outcome.firstFailure.message}`);
    }
    return outcome;
  }

  #refusalAt(rollout: BatchRollout): { now: number; generation: number; quotas: string } {
    return { now: this.#now(), generation: rollout.metadata.generation ?? 0, quotas: this.#deps.quotas?.fingerprint(rollout.metadata.namespace ?? "") ?? "" };
  }

  #stateFor(key: string, uid: string | undefined, spec: BatchRolloutSpec): RolloutState {
    let state = this.#state.get(key);
    // A rollout deleted and created again under the same name starts afresh.
    if (state && state.uid !== uid) {
      this.#forget(key);
      state = undefined;
    }
    if (state) {
      state.sizer.updateSpec(spec);
      return state;
    }
    state = newRolloutState(uid, spec, { gate: this.#deps.gate, ...(this.#deps.pace ? { pace: this.#deps.pace } : {}), now: this.#now });
    this.#state.set(key, state);
    return state;
  }

  #forget(key: string): void {
    const [namespace = "", name = ""] = key.split("/");
    this.#deps.metrics?.forget({ namespace, name });
    this.#deps.pace?.forget(key);
    void this.#state.get(key)?.pacer.stop();
    this.#state.delete(key);
    this.#deps.expectations.forget(key);
  }

  /** Adds or removes our finalizer; the resourceVersion makes a stale view fail (409) instead of clobbering. */
  async #setFinalizer(rollout: BatchRollout, present: boolean): Promise<void> {
    const current = rollout.metadata.finalizers ?? [];
    const finalizers = present ? [...new Set([...current, FINALIZER])] : current.filter((f) => f !== FINALIZER);
    const { name, namespace, resourceVersion } = rollout.metadata;
    try {
      await this.#deps.client.request({
        method: "PATCH",
        path: resourcePath(BATCHROLLOUTS, { namespace, name }),
        body: { metadata: { finalizers, resourceVersion } },
        contentType: "application/merge-patch+json",
      });
    } catch (err) {
      if (isNotFound(err)) return;
      if (isConflict(err)) throw new Error(`finalizer update on ${namespace}/${name} raced another writer; retrying`, { cause: err });
      throw err;
    }
  }

  async #reportInvalidSpec(raw: RawRollout, message: string, logger: Logger): Promise<Result> {
    logger.warn({ rollout: `${raw.metadata.namespace}/${raw.metadata.name}`, why: message }, "invalid spec; nothing is created until it is fixed");
    const status = invalidSpecStatus(raw, message, this.#now());
    if (statusChanged(raw.status, status)) {
      this.#event(raw, EventType.Warning, EventReason.InvalidSpec, "Validate", message);
      await this.#status.patch(raw, raw.status, status);
    }
    // The spec has to change for anything to happen, and that change enqueues the rollout again.
    return {};
  }

  #emit(rollout: Pick<BatchRollout, "metadata">, events: Plan["events"]): void {
    for (const e of events) this.#event(rollout, e.type, e.reason, "Reconcile", e.message);
  }

  #event(rollout: Pick<BatchRollout, "metadata">, type: "Normal" | "Warning", reason: string, action: string, note: string): void {
    const { name, namespace, uid } = rollout.metadata;
    this.#deps.events.event({ apiVersion: API_VERSION, kind: KIND, name, namespace, uid: uid ?? "" }, type, reason, action, note);
  }
}

const LABEL_PREFIX = `${GROUP}/`;
const REFUSAL_REASONS: ReadonlySet<string> = new Set<RefusalReason>([StallReason.TemplateRejected, StallReason.CreateRefused]);

/** A refusal that status records for this generation (written by a leader before this one) holds creation here too. */
function restoreRefusal(refusals: RefusalBackoff, rollout: BatchRollout, at: { now: number; generation: number; quotas: string }): void {
  const stalled = rollout.status?.conditions?.find((c) => c.type === ConditionType.Stalled);
  if (stalled?.status !== ConditionStatus.True || !REFUSAL_REASONS.has(stalled.reason) || stalled.observedGeneration !== at.generation) return;
  refusals.restore(stalled.reason as RefusalReason, stalled.message, at);
}

function minDefined(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}
