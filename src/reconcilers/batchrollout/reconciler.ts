import type { Logger } from "pino";
import { API_VERSION, BatchRolloutSpec, BatchRolloutStatus, FINALIZER, KIND, PLURAL, GROUP, VERSION } from "../../api/batchrollout.ts";
import type { BatchRollout, SignalsStatus } from "../../api/batchrollout.ts";
import { NAME_RULE, describeSpecIssues } from "../../api/crd-rules.ts";
import type { ReconcileContext, Result } from "../../controllers/controller.ts";
import type { EventSink } from "../../controllers/event-recorder.ts";
import type { Informer } from "../../controllers/informer.ts";
import type { KubeClient } from "../../kube/client.ts";
import { isConflict, isNotFound } from "../../kube/errors.ts";
import type { ResourceType } from "../../kube/resources.ts";
import { resourcePath } from "../../kube/resources.ts";
import { WritePacer } from "../../ratelimit/pacer.ts";
import type { RetryAfterGate } from "../../ratelimit/retry-after.ts";
import { createWaveSizer, type WaveSignals, type WaveSizer } from "../../ratelimit/wave-sizer.ts";
import { WriteLatencyWindow, apiServerSignals, type WriteOutcome, type WriteTick } from "../../ratelimit/write-latency.ts";
import type { ClusterPace } from "../../ratelimit/cluster-pace.ts";
import type { ApfMetrics, ApiServerSignal } from "../../ratelimit/signals/apiserver.ts";
import type { IpamSignals } from "../../ratelimit/signals/ipam.ts";
import type { SchedulerSignal } from "../../ratelimit/signals/scheduler.ts";
import type { RolloutMetrics } from "../../telemetry/rollout-metrics.ts";
import { classifyWrite, executeWrites, type WaveWriteResult } from "./act.ts";
import { ConditionStatus, ConditionType, EventReason, EventType, StallReason } from "./conditions.ts";
import type { Expectations } from "./expectations.ts";
import { toObservedPod, type ObservedPod } from "./observed.ts";
import { plan, waveGate, type Plan, type PlanInput } from "./plan.ts";
import { BY_ROLLOUT, type CachedPod } from "./pod-cache.ts";
import { templateHash } from "./pod-template.ts";
import type { QuotaCache } from "./quotas.ts";
import { RefusalBackoff, type RefusalReason } from "./refusal.ts";
import { computeStatus, invalidSpecStatus, materialChange, statusChanged } from "./status.ts";

// The BatchRollout reconciler: observe (from the caches) → size the wave → plan (pure) → act
// (paced pod writes) → persist status once. Every call starts from what the caches say, so a
// missed event, a duplicate event or a restart changes nothing.

/**
 * Least time between two status patches that only report progress (pod counts, signal readings).
 * Every pod event triggers a reconcile, so without it a rollout of 10,000 pods would patch its
 * status tens of times a second, in the same APF flow as its pod creates. Changes of wave,
 * condition or generation are patched at once.
 */
export const STATUS_PROGRESS_INTERVAL_MS = 1_000;

export const BATCHROLLOUTS: ResourceType = { group: GROUP, version: VERSION, plural: PLURAL, namespaced: true };

/** A rollout object as the informer caches it: not yet validated. */
export type RawRollout = Omit<BatchRollout, "spec"> & { spec?: unknown };

/** What one rollout keeps between reconciles: what was learned about the cluster's pace. */
interface RolloutState {
  uid: string | undefined;
  sizer: WaveSizer;
  window: WriteLatencyWindow;
  pacer: WritePacer;
  /** Creates the API server refused: creation holds, probing with one create now and then. */
  refusals: RefusalBackoff;
  /** Whether a refusal recorded in status (by an earlier leader) was carried over. */
  restored: boolean;
  /**
   * The status this replica last wrote. The operator is the only writer of status, and the cache
   * lags its own patches, so planning from the cached status could start a wave twice.
   */
  written?: BatchRolloutStatus;
  /** 429s this rollout's writes have met, for status. */
  throttled: number;
  /** The writes weighed at the last wave decision, for status between decisions. */
  lastTick?: WriteTick;
  /** When this replica last patched status. */
  patchedAt?: number;
}

export interface ReconcilerDeps {
  client: Pick<KubeClient, "request">;
  rollouts: Pick<Informer<RawRollout>, "get">;
  pods: Pick<Informer<CachedPod>, "byIndex">;
  expectations: Expectations;
  events: EventSink;
  /** The cluster's Retry-After, shared by every rollout: a 429 to one slows them all. */
  gate: RetryAfterGate;
  logger: Logger;
  metrics?: RolloutMetrics;
  /** Cluster-wide signal sources; one that is absent does not bound waves. */
  apiServer?: Pick<ApiServerSignal, "snapshot">;
  scheduler?: Pick<SchedulerSignal, "pending" | "othersCreating">;
  ipam?: Pick<IpamSignals, "read" | "counts">;
  pace?: Pick<ClusterPace, "grant" | "release" | "forget" | "record">;
  /** The namespaces' ResourceQuotas: a change ends a refusal's wait for its next probe. */
  quotas?: Pick<QuotaCache, "fingerprint">;
  now?: () => number;
}

export class BatchRolloutReconciler {
  readonly #deps: ReconcilerDeps;
  readonly #now: () => number;
  readonly #state = new Map<string, RolloutState>();

  constructor(deps: ReconcilerDeps) {
    this.#deps = deps;
    this.#now = deps.now ?? Date.now;
  }

  /** For the controller: `reconcile(key, ctx)`. */
  readonly reconcile = async (key: string, ctx: ReconcileContext): Promise<Result> => {
    const raw = this.#deps.rollouts.get(key);
    if (!raw) {
      this.#forget(key);
      return {};
    }
    // The CRD's rule, for a rollout that an older CRD let in.
    if (NAME_RULE.violated(raw)) return this.#reportInvalidSpec(raw, NAME_RULE.message, ctx.logger);
    const parsed = BatchRolloutSpec.safeParse(raw.spec);
    if (!parsed.success) return this.#reportInvalidSpec(raw, describeSpecIssues(parsed.error.issues).join("; "), ctx.logger);
    const state = this.#stateFor(key, raw.metadata.uid, parsed.data);
    const rollout: BatchRollout = { ...raw, spec: parsed.data, status: state.written ?? raw.status };
    const now = this.#now();
    const refusalAt = () => ({ now: this.#now(), generation: rollout.metadata.generation ?? 0, quotas: this.#deps.quotas?.fingerprint(rollout.metadata.namespace ?? "") ?? "" });
    if (!state.restored) {
      restoreRefusal(state.refusals, rollout, refusalAt());
      state.restored = true;
    }
    const createHold = state.refusals.hold(refusalAt());

    // Observe.
    const cached = this.#deps.pods.byIndex(BY_ROLLOUT, key);
    const pods = cached.map(toObservedPod).filter((p): p is ObservedPod => p !== undefined);
    const pending = this.#deps.expectations.pending(key);
    const hash = templateHash(rollout.spec.template);

    // Size the wave, then plan it. Only a reconcile that may start a wave is a decision the sizer
    // learns from; the many reconciles between two waves (pod events) only re-read the guards.
    const deciding = waveGate(rollout, now).open;
    const { signals, statusSignals, grant } = await this.#readSignals(key, rollout, pods, pending, state, now, deciding, ctx.signal);
    const decision = deciding ? state.sizer.next(signals) : state.sizer.peek(signals);
    state.pacer.update(decision.rateLimit);
    let input: PlanInput = {
      rollout,
      pods,
      expectations: pending,
      capacity: decision,
      templateHash: hash,
      signals: statusSignals,
      now,
      ...(createHold ? { createHold } : {}),
    };
    let planned = plan(input);
    if (grant !== undefined) this.#deps.pace?.release(key, grant - (planned.creates.length + planned.deletes.length), now);
    const log = ctx.logger.child({ rollout: key, generation: rollout.metadata.generation });

    // Act.
    if (planned.addFinalizer) await this.#setFinalizer(rollout, true);
    if (planned.waveStarted) {
      log.info(
        { wave: planned.wave.number, size: planned.wave.size, creates: planned.creates.length, deletes: planned.deletes.length, limitedBy: planned.wave.limitedBy, why: planned.wave.message },
        "wave started",
      );
    }
    for (const e of planned.events) this.#event(rollout, e.type, e.reason, "Reconcile", e.message);
    // A new wave's status goes out beside its writes, not after them: under load the patch waits in the
    // same APF queue as the creates, and sent after them it would hold the next wave back by its latency.
    // What the writes change is progress, which the patch below batches.
    const startStatus = planned.waveStarted ? computeStatus(input, planned, now) : undefined;
    const patchingStart: Promise<BatchRollout> = !startStatus
      ? Promise.resolve(rollout)
      : this.#persistStatus(rollout, startStatus).then(
          (sent) => {
            if (sent) state.patchedAt = this.#now();
            state.written = startStatus;
            return { ...rollout, status: startStatus };
          },
          // Not lost: the status is then still unpersisted, so the patch after the writes sends it again.
          (err: unknown) => {
            ctx.logger.debug({ err }, "status patch at wave start failed; sending it after the writes");
            return rollout;
          },
        );
    let writeFailure: Error | undefined;
    if (planned.creates.length + planned.deletes.length > 0) {
      const outcome = await this.#writeWave(key, rollout, planned, hash, cached, state, ctx.signal, log);
      writeFailure = outcome.firstFailure;
      if (outcome.rejected) {
        state.refusals.refused(outcome.rejected, LABEL_PREFIX, refusalAt());
        // Plan again with what the API server said, so this very status reports the stall. The
        // wave that met the refusal did start: the new plan carries on from it.
        const started = { ...rollout, status: BatchRolloutStatus.parse({ ...rollout.status, wave: planned.wave }) };
        const held = state.refusals.hold(refusalAt());
        input = { ...input, rollout: started, expectations: this.#deps.expectations.pending(key), ...(held ? { createHold: held } : {}) };
        planned = plan(input);
        for (const e of planned.events) this.#event(rollout, e.type, e.reason, "Reconcile", e.message);
      } else if (outcome.created + outcome.existed > 0) {
        state.refusals.accepted();
      }
    }
    const persisted = await patchingStart;
    if (planned.blocker && planned.waveStarted === false && planned.events.length > 0) {
      log.info({ reason: planned.blocker.reason, stalled: planned.blocker.stalled, why: planned.blocker.message }, "rollout held");
    }

    // Persist status once, and only when it changed (a new wave's was sent with its writes).
    const status = computeStatus(input, planned, this.#now());
    const progressOnly = !materialChange(persisted.status, status);
    const sincePatch = this.#now() - (state.patchedAt ?? -Infinity);
    let requeueAfterMs = planned.requeueAfterMs;
    if (progressOnly && sincePatch < STATUS_PROGRESS_INTERVAL_MS && statusChanged(persisted.status, status)) {
      // Batched: the reconcile this requeue brings patches it, unless a pod event does so first.
      const wait = STATUS_PROGRESS_INTERVAL_MS - sincePatch;
      requeueAfterMs = requeueAfterMs === undefined ? wait : Math.min(requeueAfterMs, wait);
    } else {
      if (await this.#persistStatus(persisted, status)) state.patchedAt = this.#now();
      state.written = status;
    }
    this.#deps.metrics?.observe(
      { namespace: rollout.metadata.namespace ?? "", name: rollout.metadata.name },
      { waveStarted: planned.waveStarted, limitedBy: decision.limitedBy, size: decision.size, rateLimit: decision.rateLimit, throttled: signals.writes?.throttled ?? 0 },
      status,
    );
    if (planned.removeFinalizer) await this.#setFinalizer(rollout, false);

    if (writeFailure) throw writeFailure;
    return requeueAfterMs !== undefined ? { requeueAfterMs } : {};
  };

  /** Sends one wave's pod writes and reports how it went, in the log and as events. */
  async #writeWave(
    key: string,
    rollout: BatchRollout,
    planned: Plan,
    hash: string,
    cached: readonly CachedPod[],
    state: RolloutState,
    signal: AbortSignal,
    log: Logger,
  ): Promise<WaveWriteResult> {
    const started = this.#now();
    const outcome = await executeWrites({
      client: this.#deps.client,
      pacer: state.pacer,
      expectations: this.#deps.expectations,
      key,
      rollout,
      plan: planned,
      templateHash: hash,
      podUids: new Map(cached.map((p) => [p.metadata.name, p.metadata.uid])),
      signal,
      logger: log,
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

  /**
   * Everything the sizer weighs for this rollout's next wave: its own writes, the shared
   * Retry-After, the scheduler's backlog and its own unschedulable pods, how fast others create
   * pods, its pods waiting for their nodes to start them, IP headroom and node slots (only while it
   * has pods to create), and its share of the cluster's write budget.
   */
  async #readSignals(
    key: string,
    rollout: BatchRollout,
    pods: readonly ObservedPod[],
    pending: { creates: ReadonlySet<number>; deletes: ReadonlySet<string> },
    state: RolloutState,
    now: number,
    deciding: boolean,
    signal: AbortSignal,
  ): Promise<{ signals: WaveSignals; statusSignals: SignalsStatus; grant: number | undefined }> {
    const { spec } = rollout;
    const deleting = rollout.metadata.deletionTimestamp !== undefined;
    // Creates and deletes alike: the sizer paces scale-down and deletion too (all pods go when deleting).
    const desired = deleting ? 0 : spec.replicas;
    const missing = missingPods(desired, pods, pending);
    const remaining = missing + extraPods(desired, pods, pending);
    const signals: WaveSignals = { now, remaining, retryAfterUntil: this.#deps.gate.notBefore };
    if (deciding) {
      signals.writes = state.window.tick(now);
      state.lastTick = signals.writes;
      state.throttled += signals.writes.throttled;
    }
    const apf = this.#deps.apiServer?.snapshot();
    const statusSignals: SignalsStatus = {
      apiServer: {
        ...apiServerSignals(state.lastTick, {
          ...(apf?.flowSchema ? { flowSchema: apf.flowSchema } : {}),
          ...(apf?.priorityLevel ? { priorityLevel: apf.priorityLevel } : {}),
          throttledTotal: state.throttled,
          ...(this.#deps.gate.lastRetryAfterMs === undefined ? {} : { retryAfterMs: this.#deps.gate.lastRetryAfterMs }),
        }),
        ...apfMetricsStatus(apf?.metrics),
      },
    };

    const waiting = this.#deps.scheduler?.pending(spec.guards.scheduler.scope, key);
    const othersCreating = this.#deps.scheduler?.othersCreating();
    if (othersCreating !== undefined) signals.othersCreating = othersCreating;
    const unschedulable = pods.filter((p) => p.unschedulableMessage !== undefined && !p.deleting);
    signals.unschedulable = { count: unschedulable.length, ...(unschedulable[0] ? { message: unschedulable[0].unschedulableMessage } : {}) };
    if (waiting) {
      signals.pending = waiting.pending;
      statusSignals.scheduler = {
        pending: waiting.pending,
        unschedulable: waiting.unschedulable,
        gated: waiting.gated,
        notYetTried: waiting.notYetTried,
        ...(waiting.firstUnschedulableMessage ? { message: waiting.firstUnschedulableMessage } : {}),
      };
    }

    // Creates in flight count too: the cache has not shown them yet, and a wave sized without them
    // overshoots maxStarting whenever the watch lags the writes.
    signals.starting = countStarting(pods) + pending.creates.size;
    statusSignals.kubelet = { starting: signals.starting };

    if (this.#deps.ipam && missing > 0 && !spec.paused) {
      const ip = await this.#deps.ipam.read({ provider: spec.guards.ipam.provider, template: spec.template, metricsURL: spec.guards.ipam.metricsURL }, signal);
      // Headroom counts the pods the IPAM cache holds (bound, not finished). This rollout's other
      // live pods (not yet bound, or bound but not yet seen by that cache) and its creates in flight
      // will take an address and a slot too, so they come off before the next wave is sized.
      const namespace = rollout.metadata.namespace ?? "";
      const ipam = this.#deps.ipam;
      const uncounted = pods.filter((p) => !p.deleting && p.phase !== "Succeeded" && p.phase !== "Failed" && !ipam.counts(namespace, p.name));
      const claimed = uncounted.length + pending.creates.size;
      signals.nodeSlots = Math.max(0, ip.nodeSlots - claimed);
      if (ip.headroom) {
        signals.ipam = ip.headroom.free === undefined ? ip.headroom : { ...ip.headroom, free: Math.max(0, ip.headroom.free - claimed) };
      }
      statusSignals.ipam = {
        provider: ip.choice.provider,
        nodeSlots: ip.nodeSlots,
        ...(ip.headroom?.free === undefined ? {} : { free: ip.headroom.free }),
        ...(ip.headroom?.capacity === undefined ? {} : { capacity: ip.headroom.capacity }),
        ...(ip.headroom?.message ? { message: ip.headroom.message } : {}),
      };
    }

    const grant = this.#deps.pace?.grant(key, spec.priority, spec.paused ? 0 : remaining, now);
    if (grant !== undefined) signals.budget = grant;
    return { signals, statusSignals, grant };
  }

  #stateFor(key: string, uid: string | undefined, spec: BatchRolloutSpec): RolloutState {
    let state = this.#state.get(key);
    // A rollout deleted and created again under the same name starts afresh.
    if (state && state.uid !== uid) {
      this.#forget(key);
      state = undefined;
    }
    if (!state) {
      const window = new WriteLatencyWindow();
      const sizer = createWaveSizer(spec);
      const decision = sizer.next({ now: this.#now(), remaining: 0 });
      const pace = this.#deps.pace;
      // The cluster's pace sees every rollout's writes too.
      const record = pace ? { record: (o: WriteOutcome) => (window.record(o), pace.record(o)) } : window;
      state = {
        uid,
        sizer,
        window,
        throttled: 0,
        refusals: new RefusalBackoff(),
        restored: false,
        pacer: new WritePacer({ rateLimit: decision.rateLimit, gate: this.#deps.gate, window: record, classify: classifyWrite, clock: this.#now }),
      };
      this.#state.set(key, state);
    } else {
      state.sizer.updateSpec(spec);
    }
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

  /** Patches /status when it changed; says whether it sent a patch. */
  async #persistStatus(rollout: Pick<BatchRollout, "metadata" | "status">, status: BatchRolloutStatus): Promise<boolean> {
    if (!statusChanged(rollout.status, status)) return false;
    const { name, namespace } = rollout.metadata;
    try {
      await this.#deps.client.request({
        method: "PATCH",
        path: resourcePath(BATCHROLLOUTS, { namespace, name, subresource: "status" }),
        body: { status },
        contentType: "application/merge-patch+json",
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    return true;
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
      await this.#persistStatus(raw, status);
    }
    // The spec has to change for anything to happen, and that change enqueues the rollout again.
    return {};
  }

  #event(rollout: Pick<BatchRollout, "metadata">, type: "Normal" | "Warning", reason: string, action: string, note: string): void {
    const { name, namespace, uid } = rollout.metadata;
    this.#deps.events.event({ apiVersion: API_VERSION, kind: KIND, name, namespace, uid: uid ?? "" }, type, reason, action, note);
  }
}

/** Pods bound to a node whose kubelet has not started them yet (phase still Pending). */
function countStarting(pods: readonly ObservedPod[]): number {
  let starting = 0;
  for (const pod of pods) if (pod.scheduled && pod.phase === "Pending" && !pod.deleting) starting++;
  return starting;
}

/** Desired ordinals with neither a pod nor a create in flight: the creates still to do. */
function missingPods(replicas: number, pods: readonly ObservedPod[], pending: { creates: ReadonlySet<number> }): number {
  let present = 0;
  for (const pod of pods) if (pod.ordinal < replicas) present++;
  return Math.max(0, replicas - present - pending.creates.size);
}

/** Live pods at or above `replicas` with no delete in flight: the deletes still to do. */
function extraPods(replicas: number, pods: readonly ObservedPod[], pending: { deletes: ReadonlySet<string> }): number {
  let extra = 0;
  for (const pod of pods) if (pod.ordinal >= replicas && !pod.deleting && !pending.deletes.has(pod.name)) extra++;
  return extra;
}

const LABEL_PREFIX = `${GROUP}/`;
const REFUSAL_REASONS: ReadonlySet<string> = new Set<RefusalReason>([StallReason.TemplateRejected, StallReason.CreateRefused]);

/** A refusal that status records for this generation (written by a leader before this one) holds creation here too. */
function restoreRefusal(refusals: RefusalBackoff, rollout: BatchRollout, at: { now: number; generation: number; quotas: string }): void {
  const stalled = rollout.status?.conditions?.find((c) => c.type === ConditionType.Stalled);
  if (stalled?.status !== ConditionStatus.True || !REFUSAL_REASONS.has(stalled.reason) || stalled.observedGeneration !== at.generation) return;
  refusals.restore(stalled.reason as RefusalReason, stalled.message, at);
}

/** What status says of the kube-apiserver /metrics guardrail. */
function apfMetricsStatus(metrics: ApfMetrics | undefined): NonNullable<SignalsStatus["apiServer"]> {
  if (!metrics) return {};
  return {
    metrics: metrics.state,
    ...(metrics.inQueue === undefined ? {} : { inQueue: metrics.inQueue }),
    ...(metrics.waitP99Ms === undefined ? {} : { waitP99Ms: Math.round(metrics.waitP99Ms) }),
    ...(metrics.rejected === undefined ? {} : { rejected: metrics.rejected }),
    ...(metrics.state === "Forbidden" ? { message: "kube-apiserver /metrics is forbidden: client-side signals only" } : {}),
  };
}

export type { Plan };
