import { readFile } from "node:fs/promises";
import { pino } from "pino";
import { LABEL_NAME } from "../../../src/api/batchrollout.ts";
import { Informer, type ObjectWithMeta } from "../../../src/controllers/informer.ts";
import type { KubeClient } from "../../../src/kube/client.ts";
import { ApiError, isNotFound } from "../../../src/kube/errors.ts";
import { FLOW_SCHEMAS, NODES, PRIORITY_LEVELS, resourcePath } from "../../../src/kube/resources.ts";
import { PRIORITY_LEVEL_UID_HEADER } from "../../../src/ratelimit/signals/apiserver.ts";
import { OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT } from "../../cluster/layout.ts";
import { eventually } from "./cluster.ts";
import { STATUS_POLL_MS, getRollout, podsPath, type TestRollout } from "./batchrollout.ts";

// What the adaptive-guard acceptance tests (issue 4) share on top of support/batchrollout.ts: a pod
// tracker that keeps running counts per rollout (pods, unbound pods, creation times) at every watch
// event, a status recorder that keeps every status it polled, APF objects that squeeze the operator's
// identity, and node taints and extra kwok nodes that are always undone.

const logger = pino({ level: process.env.BATCHROLLOUT_TEST_LOG ?? "silent" });

/** Label every pod of a rollout carries (the operator's own): the tracker counts per value. */
export const ROLLOUT_LABEL = LABEL_NAME;

// ---- pods ----

interface TrackedPod extends ObjectWithMeta {
  metadata: { name: string; namespace: string; resourceVersion?: string; rollout?: string; deleting?: boolean };
  nodeName?: string;
  phase?: string;
}

/** The few fields the counts need: which rollout, which node, whether it is finished or going. */
function slimTrackedPod(raw: ObjectWithMeta): TrackedPod {
  const pod = raw as ObjectWithMeta & {
    metadata?: { labels?: Record<string, string>; deletionTimestamp?: string };
    spec?: { nodeName?: string };
    status?: { phase?: string };
  };
  const rollout = pod.metadata?.labels?.[ROLLOUT_LABEL];
  return {
    metadata: {
      name: pod.metadata?.name ?? "",
      namespace: pod.metadata?.namespace ?? "",
      ...(pod.metadata?.resourceVersion ? { resourceVersion: pod.metadata.resourceVersion } : {}),
      ...(rollout === undefined ? {} : { rollout }),
      ...(pod.metadata?.deletionTimestamp ? { deleting: true } : {}),
    },
    ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}),
    ...(pod.status?.phase ? { phase: pod.status.phase } : {}),
  };
}

/** Waits for the scheduler: no node yet, not finished, not being deleted. */
function isUnbound(pod: TrackedPod): boolean {
  return pod.nodeName === undefined && pod.phase !== "Succeeded" && pod.phase !== "Failed" && !pod.metadata.deleting;
}

export interface RolloutPodCounts {
  /** Pods of the rollout that exist now. */
  count: number;
  /** Of those, pods no node was chosen for. */
  unbound: number;
  maxCount: number;
  maxUnbound: number;
  /** When each pod was first seen (live ADDED events only, not the watch's first list). */
  addedAt: number[];
}

/**
 * Follows every pod of a namespace and keeps, at each event, the counts per rollout and for the
 * namespace as a whole, with their maxima. A cap (setCap) turns "never more than N pods" into a
 * check at every event: a pod beyond it is recorded as a violation even if it is gone again by
 * the time the test looks.
 */
export class PodTracker {
  readonly violations: string[] = [];
  readonly #informer: Informer<TrackedPod>;
  readonly #stop = new AbortController();
  readonly #byRollout = new Map<string, RolloutPodCounts>();
  readonly #total: RolloutPodCounts = { count: 0, unbound: 0, maxCount: 0, maxUnbound: 0, addedAt: [] };
  #cap = Number.POSITIVE_INFINITY;
  #lastAddedAt = Date.now();
  #done: Promise<void> | undefined;

  constructor(admin: KubeClient, ns: string) {
    this.#informer = new Informer<TrackedPod>({ name: `adaptive-pods-${ns}`, client: admin, path: podsPath(ns), transform: slimTrackedPod, logger });
    this.#informer.addHandlers({
      onAdd: (pod) => this.#apply(undefined, pod),
      onUpdate: (old, pod) => this.#apply(old, pod),
      onDelete: (pod) => this.#apply(pod, undefined),
    });
  }

  async start(): Promise<void> {
    this.#done = this.#informer.start(this.#stop.signal);
    await this.#informer.waitForSync(this.#stop.signal);
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#done;
  }

  /** From now on, more than `cap` pods in the namespace is a violation. */
  setCap(cap: number): void {
    this.#cap = cap;
  }

  /** Counts for one rollout (by its batchrollout.dev/name label), or the namespace with no name. */
  counts(rollout?: string): Readonly<RolloutPodCounts> {
    if (rollout === undefined) return this.#total;
    return this.#byRollout.get(rollout) ?? { count: 0, unbound: 0, maxCount: 0, maxUnbound: 0, addedAt: [] };
  }

  /** When a pod was last added to the namespace (or when tracking began). */
  get lastAddedAt(): number {
    return this.#lastAddedAt;
  }

  /** Pods per node, for the nodes given. */
  podsPerNode(nodes: ReadonlySet<string>): Map<string, number> {
    const out = new Map<string, number>();
    for (const pod of this.#informer.list()) {
      if (pod.nodeName !== undefined && nodes.has(pod.nodeName) && !pod.metadata.deleting) out.set(pod.nodeName, (out.get(pod.nodeName) ?? 0) + 1);
    }
    return out;
  }

  #entry(rollout: string | undefined): RolloutPodCounts[] {
    const out = [this.#total];
    if (rollout === undefined) return out;
    let entry = this.#byRollout.get(rollout);
    if (!entry) this.#byRollout.set(rollout, (entry = { count: 0, unbound: 0, maxCount: 0, maxUnbound: 0, addedAt: [] }));
    out.push(entry);
    return out;
  }

  #apply(before: TrackedPod | undefined, after: TrackedPod | undefined): void {
    const now = Date.now();
    const live = this.#informer.hasSynced;
    if (before) {
      for (const e of this.#entry(before.metadata.rollout)) {
        e.count -= 1;
        if (isUnbound(before)) e.unbound -= 1;
      }
    }
    if (after) {
      for (const e of this.#entry(after.metadata.rollout)) {
        e.count += 1;
        if (isUnbound(after)) e.unbound += 1;
        e.maxCount = Math.max(e.maxCount, e.count);
        e.maxUnbound = Math.max(e.maxUnbound, e.unbound);
        if (!before && live) e.addedAt.push(now);
      }
      if (!before) {
        this.#lastAddedAt = now;
        if (this.#total.count > this.#cap) this.violations.push(`pod ${after.metadata.name}: ${this.#total.count} pods in the namespace, cap ${this.#cap}`);
      }
    }
  }
}

/** Pods per second between the first and the last pod seen created; undefined with fewer than 2. */
export function creationRate(addedAt: readonly number[]): number | undefined {
  if (addedAt.length < 2) return undefined;
  const first = Math.min(...addedAt);
  const last = Math.max(...addedAt);
  return last > first ? ((addedAt.length - 1) * 1_000) / (last - first) : undefined;
}

/**
 * Pods per second from creationTimestamp (whole seconds): n pods over the span of their
 * timestamps plus the one second the last timestamp may hide.
 */
export function creationRateFromTimestamps(timestamps: readonly (string | undefined)[]): number | undefined {
  const times = timestamps.map((t) => Date.parse(t ?? "")).filter((t) => Number.isFinite(t));
  if (times.length < 2) return undefined;
  return (times.length * 1_000) / (Math.max(...times) - Math.min(...times) + 1_000);
}

/** Waits until no pod was added for `quietMs`; returns the namespace's pod count then. */
export async function waitForNoNewPods(tracker: PodTracker, quietMs: number, timeoutMs: number): Promise<number> {
  return eventually(
    `no new pod for ${quietMs} ms`,
    async () => (Date.now() - tracker.lastAddedAt >= quietMs ? tracker.counts().count : undefined),
    timeoutMs,
    STATUS_POLL_MS,
  );
}

// ---- rollout status ----

export interface StatusSample {
  at: number;
  rollout: TestRollout;
}

/**
 * Polls rollouts with the admin client (exempt from APF, so polling never competes with the
 * operator) and keeps every sample, so "Stalled was never True" means never at any poll.
 */
export class StatusRecorder {
  readonly #admin: KubeClient;
  readonly #ns: string;
  readonly #names: readonly string[];
  readonly #samples = new Map<string, StatusSample[]>();
  readonly #listeners: ((name: string, sample: StatusSample) => void)[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  #polling: Promise<void> = Promise.resolve();

  constructor(admin: KubeClient, ns: string, names: readonly string[]) {
    this.#admin = admin;
    this.#ns = ns;
    this.#names = names;
    for (const name of names) this.#samples.set(name, []);
  }

  start(): void {
    const tick = () => {
      if (this.#stopped) return;
      this.#polling = this.#poll().finally(() => {
        if (!this.#stopped) this.#timer = setTimeout(tick, STATUS_POLL_MS);
      });
    };
    tick();
  }

  /**
   * Stops polling after one last sample, so a state reached since the previous one is recorded: two
   * rollouts that turn Ready within one poll interval were once seen Ready by waitForReady only.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#polling;
    await this.#poll();
  }

  onSample(listener: (name: string, sample: StatusSample) => void): void {
    this.#listeners.push(listener);
  }

  samples(name: string): readonly StatusSample[] {
    return this.#samples.get(name) ?? [];
  }

  latest(name: string): TestRollout | undefined {
    return this.samples(name).at(-1)?.rollout;
  }

  async #poll(): Promise<void> {
    await Promise.all(
      this.#names.map(async (name) => {
        // Not created yet, or a transient error under load: the next poll tries again.
        const rollout = await getRollout(this.#admin, this.#ns, name).catch(() => undefined);
        if (!rollout) return;
        const sample = { at: Date.now(), rollout };
        this.#samples.get(name)?.push(sample);
        for (const listener of this.#listeners) listener(name, sample);
      }),
    );
  }
}

/** Samples whose Stalled condition was True, as "reason: message" lines for an assertion's diff. */
export function stalledSamples(samples: readonly StatusSample[]): string[] {
  const out: string[] = [];
  for (const s of samples) {
    const stalled = s.rollout.status?.conditions?.find((c) => c.type === "Stalled");
    if (stalled?.status === "True") out.push(`${new Date(s.at).toISOString()} ${stalled.reason}: ${stalled.message}`);
  }
  return out;
}

// ---- operator log ----

export interface OperatorLogSummary {
  /** Waves whose writes ended with failures ("wave writes done" with failed > 0). */
  wavesWithFailures: number;
  /** Pod writes not written in those waves. */
  failedWrites: number;
  /** Lines logged at warn or above, their messages. */
  warnings: string[];
}

/** What the operator's own log says about write failures, independent of the Events it posted. */
export async function summarizeOperatorLog(logFile: string): Promise<OperatorLogSummary> {
  const summary: OperatorLogSummary = { wavesWithFailures: 0, failedWrites: 0, warnings: [] };
  const text = await readFile(logFile, "utf8").catch(() => "");
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    let entry: { level?: string | number; msg?: string; failed?: number };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      continue;
    }
    if (entry.msg === "wave writes done" && (entry.failed ?? 0) > 0) {
      summary.wavesWithFailures += 1;
      summary.failedWrites += entry.failed ?? 0;
    }
    if (entry.level === "warn" || entry.level === "error" || entry.level === "fatal" || (typeof entry.level === "number" && entry.level >= 40)) {
      summary.warnings.push(entry.msg ?? line);
    }
  }
  return summary;
}

// ---- API Priority and Fairness ----

export const FLOW_SCHEMAS_PATH = resourcePath(FLOW_SCHEMAS);
export const PRIORITY_LEVELS_PATH = resourcePath(PRIORITY_LEVELS);

export interface ApfSqueeze {
  /** Name of both the FlowSchema and the PriorityLevelConfiguration. */
  name: string;
  /** Matching precedence of the FlowSchema: ahead of service-accounts (9000), so it wins. */
  matchingPrecedence: number;
  nominalConcurrencyShares: number;
  queues: number;
  queueLengthLimit: number;
  handSize: number;
}

/**
 * A Limited priority level that lends nothing and borrows nothing, and a FlowSchema routing every
 * request of the operator's ServiceAccount to it. borrowingLimitPercent 0: left unset, the limit on
 * borrowing is infinite and the level would borrow the idle seats of workload-low and others within
 * seconds (APF re-divides seats every 10 s), which would undo the squeeze.
 */
export async function createApfSqueeze(admin: KubeClient, squeeze: ApfSqueeze): Promise<{ priorityLevelUid: string }> {
  const level = await admin.create<{ metadata: { uid: string } }>(PRIORITY_LEVELS_PATH, {
    apiVersion: "flowcontrol.apiserver.k8s.io/v1",
    kind: "PriorityLevelConfiguration",
    metadata: { name: squeeze.name, labels: { "batchrollout.dev/test": "adaptive" } },
    spec: {
      type: "Limited",
      limited: {
        nominalConcurrencyShares: squeeze.nominalConcurrencyShares,
        lendablePercent: 0,
        borrowingLimitPercent: 0,
        limitResponse: {
          type: "Queue",
          queuing: { queues: squeeze.queues, queueLengthLimit: squeeze.queueLengthLimit, handSize: squeeze.handSize },
        },
      },
    },
  });
  await admin.create(FLOW_SCHEMAS_PATH, {
    apiVersion: "flowcontrol.apiserver.k8s.io/v1",
    kind: "FlowSchema",
    metadata: { name: squeeze.name, labels: { "batchrollout.dev/test": "adaptive" } },
    spec: {
      priorityLevelConfiguration: { name: squeeze.name },
      matchingPrecedence: squeeze.matchingPrecedence,
      distinguisherMethod: { type: "ByUser" },
      rules: [
        {
          subjects: [{ kind: "ServiceAccount", serviceAccount: { name: OPERATOR_SERVICE_ACCOUNT, namespace: OPERATOR_NAMESPACE } }],
          resourceRules: [{ verbs: ["*"], apiGroups: ["*"], resources: ["*"], clusterScope: true, namespaces: ["*"] }],
          nonResourceRules: [{ verbs: ["*"], nonResourceURLs: ["*"] }],
        },
      ],
    },
  });
  return { priorityLevelUid: level.metadata.uid };
}

/** Deletes the FlowSchema first (so no request is routed to a missing level), then the level; absent is fine. */
export async function deleteApfSqueeze(admin: KubeClient, name: string): Promise<void> {
  for (const path of [`${FLOW_SCHEMAS_PATH}/${name}`, `${PRIORITY_LEVELS_PATH}/${name}`]) {
    await admin.delete(path).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }
}

/**
 * The UID of the priority level a request of `client` lands in, from APF's response header. 429s
 * count too: a throttled answer carries the header as well.
 */
export async function priorityLevelUidOf(client: KubeClient, ns: string): Promise<string | undefined> {
  try {
    const res = await client.request({ method: "GET", path: podsPath(ns), query: { limit: 1 }, retryThrottled: false });
    const value = res.headers[PRIORITY_LEVEL_UID_HEADER];
    return Array.isArray(value) ? value[0] : value;
  } catch (err) {
    if (err instanceof ApiError && err.code === 429) {
      const value = err.headers[PRIORITY_LEVEL_UID_HEADER];
      return Array.isArray(value) ? value[0] : value;
    }
    throw err;
  }
}

// ---- nodes ----

export interface Taint {
  key: string;
  value?: string;
  effect: "NoSchedule" | "PreferNoSchedule" | "NoExecute";
}

interface NodeObject {
  metadata: { name: string; resourceVersion?: string; labels?: Record<string, string> };
  spec?: { taints?: Taint[]; unschedulable?: boolean; podCIDR?: string };
  status?: { conditions?: { type: string; status: string }[] };
}

export const nodePath = (name: string) => resourcePath(NODES, { name });

/**
 * Adds (or removes) one taint on a node, keeping any taint someone else set: spec.taints is an
 * atomic list, so it is rewritten whole under the node's resourceVersion and retried on conflict.
 */
export async function setTaint(admin: KubeClient, node: string, taint: Taint, present: boolean): Promise<void> {
  for (;;) {
    const current = await admin.get<NodeObject>(nodePath(node));
    const taints = current.spec?.taints ?? [];
    const others = taints.filter((t) => !(t.key === taint.key && t.effect === taint.effect));
    if ((others.length < taints.length) === present) return;
    const wanted = present ? [...others, taint] : others;
    try {
      await admin.patch(nodePath(node), { metadata: { resourceVersion: current.metadata.resourceVersion }, spec: { taints: wanted } });
      return;
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 409)) throw err;
    }
  }
}

/** Names of nodes that carry the taint (by key and effect). */
export async function nodesWithTaint(admin: KubeClient, taint: Pick<Taint, "key" | "effect">): Promise<string[]> {
  const list = await admin.get<{ items: NodeObject[] }>(resourcePath(NODES));
  return list.items.filter((n) => (n.spec?.taints ?? []).some((t) => t.key === taint.key && t.effect === taint.effect)).map((n) => n.metadata.name);
}

export function isNodeReady(node: NodeObject): boolean {
  return node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ?? false;
}

/** Runs `fn` over items with at most `limit` running at once. */
export async function inBatches<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
