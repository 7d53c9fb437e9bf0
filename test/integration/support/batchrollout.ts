import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { pino } from "pino";
import { API_VERSION, KIND, LABEL_NAME, LABEL_ORDINAL, LABEL_TEMPLATE_HASH } from "../../../src/api/batchrollout.ts";
import type { BatchRolloutStatus, Condition } from "../../../src/api/batchrollout.ts";
import type { EventObject } from "../../../src/controllers/event-recorder.ts";
import { Informer } from "../../../src/controllers/informer.ts";
import type { KubeClient } from "../../../src/kube/client.ts";
import { isNotFound } from "../../../src/kube/errors.ts";
import { EVENTS, PODS, resourcePath } from "../../../src/kube/resources.ts";
import { BATCHROLLOUTS } from "../../../src/reconcilers/batchrollout/reconciler.ts";
import { OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, paths } from "../../cluster/layout.ts";
import { afterAll, afterEach, beforeAll, beforeEach } from "vitest";
import { adminClient, cluster, createTestNamespace, deleteNamespace, eventually } from "./cluster.ts";
import { ensureCrd } from "./crd.ts";
import { startOperator, type OperatorProcess } from "./operator.ts";

// What the BatchRollout acceptance tests share: manifests, reads of the rollout and its pods, a pod
// watch that checks invariants at every event, kubectl with the admin kubeconfig, and teardown.

const execFileAsync = promisify(execFile);
const logger = pino({ level: process.env.BATCHROLLOUT_TEST_LOG ?? "silent" });

export const PAUSE_IMAGE = "registry.k8s.io/pause:3.10";
/** Small requests, so 3,000 pods fit the test bed's 100 nodes by slots, never by CPU or memory. */
export const POD_REQUESTS = { cpu: "10m", memory: "16Mi" } as const;
/** Pods per list page when the tests read a namespace's pods. */
export const TEST_LIST_PAGE_SIZE = 1_000;
/** How often a wait re-reads the rollout: fine enough for the time-to-Ready figures. */
export const STATUS_POLL_MS = 200;
/** Pod deletes in flight at once when a teardown purges a namespace (admin is exempt from APF). */
export const POD_PURGE_CONCURRENCY = 32;
/**
 * How long a test waits for another test's FlowSchema on the operator's ServiceAccount to go: test
 * files sharing a control plane may run side by side, and a squeezed operator measures nothing.
 */
export const FOREIGN_APF_WAIT_MS = 300_000;
export const FOREIGN_APF_POLL_MS = 5_000;
/** A torn-down namespace with thousands of pods takes a while; kwok confirms each delete. */
export const NAMESPACE_GONE_TIMEOUT_MS = 360_000;

export interface TestPod {
  metadata: {
    name: string;
    namespace: string;
    uid: string;
    resourceVersion?: string;
    creationTimestamp?: string;
    deletionTimestamp?: string;
    labels?: Record<string, string>;
  };
  spec?: { containers?: { name: string }[]; nodeName?: string };
  status?: { phase?: string };
}

export interface TestRollout {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; uid: string; generation?: number; finalizers?: string[]; deletionTimestamp?: string };
  spec: Record<string, unknown> & { replicas: number; paused?: boolean };
  status?: BatchRolloutStatus;
}

export const rolloutsPath = (ns: string) => resourcePath(BATCHROLLOUTS, { namespace: ns });
export const rolloutPath = (ns: string, name: string) => resourcePath(BATCHROLLOUTS, { namespace: ns, name });
export const podsPath = (ns: string) => resourcePath(PODS, { namespace: ns });
export const podPath = (ns: string, name: string) => resourcePath(PODS, { namespace: ns, name });

export function podTemplate(containerName = "main", resources: Record<string, unknown> = { requests: POD_REQUESTS }): Record<string, unknown> {
  return { spec: { containers: [{ name: containerName, image: PAUSE_IMAGE, resources }] } };
}

export function rolloutManifest(name: string, spec: Record<string, unknown> & { replicas: number }): Record<string, unknown> {
  return { apiVersion: API_VERSION, kind: KIND, metadata: { name }, spec: { template: podTemplate(), ...spec } };
}

export async function createRollout(client: KubeClient, ns: string, name: string, spec: Record<string, unknown> & { replicas: number }): Promise<TestRollout> {
  return client.create<TestRollout>(rolloutsPath(ns), rolloutManifest(name, spec));
}

export function getRollout(client: KubeClient, ns: string, name: string): Promise<TestRollout> {
  return client.get<TestRollout>(rolloutPath(ns, name));
}

export function conditionOf(rollout: TestRollout, type: string): Condition | undefined {
  return rollout.status?.conditions?.find((c) => c.type === type);
}

/** Ready=True for the rollout's current generation, as kstatus reads it. */
export function isReadyNow(rollout: TestRollout): boolean {
  const generation = rollout.metadata.generation;
  const ready = conditionOf(rollout, "Ready");
  return rollout.status?.observedGeneration === generation && ready?.status === "True" && ready.observedGeneration === generation;
}

/** Waits for Ready=True at the current generation; the error names the last status seen. */
export async function waitForReady(client: KubeClient, ns: string, name: string, timeoutMs: number): Promise<TestRollout> {
  let last: TestRollout | undefined;
  try {
    return await eventually(
      `BatchRollout ${ns}/${name} Ready`,
      async () => {
        last = await getRollout(client, ns, name);
        return isReadyNow(last) ? last : undefined;
      },
      timeoutMs,
      STATUS_POLL_MS,
    );
  } catch (err) {
    throw new Error(`${String(err)}; last status: ${JSON.stringify(last?.status)}`, { cause: err });
  }
}

export async function listPods(client: KubeClient, ns: string): Promise<TestPod[]> {
  const pods: TestPod[] = [];
  let continueToken: string | undefined;
  do {
    const page = await client.get<{ items: TestPod[]; metadata: { continue?: string } }>(podsPath(ns), { limit: TEST_LIST_PAGE_SIZE, continue: continueToken });
    pods.push(...page.items);
    continueToken = page.metadata.continue || undefined;
  } while (continueToken);
  return pods;
}

export function ordinalOf(pod: Pick<TestPod, "metadata">): number | undefined {
  const text = pod.metadata.labels?.[LABEL_ORDINAL];
  return text === undefined || !/^(0|[1-9][0-9]*)$/.test(text) ? undefined : Number(text);
}

export interface OrdinalAudit {
  total: number;
  /** Ordinals in 0..replicas-1 without a pod. */
  missing: number[];
  /** Ordinals held by more than one pod. */
  duplicated: number[];
  /** Pods whose ordinal is outside 0..replicas-1 or absent. */
  unexpected: string[];
  /** Pods not named `<rollout>-<ordinal label>` or not labelled with the rollout's name. */
  misnamed: string[];
  /** Pods not in phase Running. */
  notRunning: string[];
  /** Pods with a deletionTimestamp. */
  terminating: string[];
}

/** Everything that differs from "exactly ordinals 0..replicas-1, one Running pod each, named after it". */
export function auditOrdinals(pods: readonly TestPod[], rollout: string, replicas: number): OrdinalAudit {
  const seen = new Map<number, number>();
  const audit: OrdinalAudit = { total: pods.length, missing: [], duplicated: [], unexpected: [], misnamed: [], notRunning: [], terminating: [] };
  for (const pod of pods) {
    const ordinal = ordinalOf(pod);
    const name = pod.metadata.name;
    if (ordinal === undefined || ordinal >= replicas) audit.unexpected.push(name);
    else seen.set(ordinal, (seen.get(ordinal) ?? 0) + 1);
    if (ordinal === undefined || name !== `${rollout}-${ordinal}` || pod.metadata.labels?.[LABEL_NAME] !== rollout) audit.misnamed.push(name);
    if (pod.status?.phase !== "Running") audit.notRunning.push(name);
    if (pod.metadata.deletionTimestamp !== undefined) audit.terminating.push(name);
  }
  for (let ordinal = 0; ordinal < replicas; ordinal++) {
    const count = seen.get(ordinal) ?? 0;
    if (count === 0) audit.missing.push(ordinal);
    if (count > 1) audit.duplicated.push(ordinal);
  }
  return audit;
}

/** What auditOrdinals reports for a healthy rollout of `replicas` pods, for toEqual. */
export function cleanAudit(replicas: number): OrdinalAudit {
  return { total: replicas, missing: [], duplicated: [], unexpected: [], misnamed: [], notRunning: [], terminating: [] };
}

/** Events about one object, as the operator recorded them (events.k8s.io/v1). */
export async function eventsAbout(client: KubeClient, ns: string, uid: string, reason?: string): Promise<EventObject[]> {
  const list = await client.get<{ items: EventObject[] }>(resourcePath(EVENTS, { namespace: ns }));
  return list.items.filter((e) => e.regarding.uid === uid && (reason === undefined || e.reason === reason));
}

/** kubectl with the admin kubeconfig (the cluster's own pinned kubectl). */
export async function kubectl(args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(join(cluster().binDir, "kubectl"), ["--kubeconfig", paths.adminKubeconfig, ...args], { maxBuffer: 64 * 1024 * 1024 });
  return stdout;
}

/** `kubectl get` table output as rows of header → cell (cells here never contain spaces). */
export function parseTable(output: string): Record<string, string>[] {
  const [header, ...rows] = output.trim().split("\n");
  const columns = (header ?? "").trim().split(/\s+/);
  return rows.map((row) => {
    const cells = row.trim().split(/\s+/);
    return Object.fromEntries(columns.map((c, i) => [c, cells[i] ?? ""]));
  });
}

export interface PodEvent {
  type: "ADDED" | "MODIFIED" | "DELETED";
  at: number;
  name: string;
  uid: string;
  ordinal: number | undefined;
  /** The pod's batchrollout.dev/template-hash label. */
  templateHash: string | undefined;
  /** Pods in the namespace right after this event. */
  count: number;
  /** From the watch's first list (what existed when it started), not a change seen live. */
  initial: boolean;
}

/**
 * Follows every pod of a namespace (not only the rollout's: a stray pod counts too) through an
 * Informer on the admin client, and checks at each event that the namespace never holds more than
 * `maxPods` pods and that no ordinal is held by two pods at once. Violations are collected, not
 * thrown, so the test sees all of them at the end.
 */
export class PodWatch {
  readonly events: PodEvent[] = [];
  readonly violations: string[] = [];
  maxCount = 0;
  readonly #informer: Informer<TestPod>;
  readonly #stop = new AbortController();
  readonly #holders = new Map<number, Set<string>>();
  readonly #maxPods: number;
  #done: Promise<void> | undefined;

  constructor(client: KubeClient, ns: string, maxPods = Number.POSITIVE_INFINITY) {
    this.#maxPods = maxPods;
    this.#informer = new Informer<TestPod>({ name: `test-pods-${ns}`, client, path: podsPath(ns), logger });
    this.#informer.addHandlers({
      onAdd: (pod) => this.#record("ADDED", pod),
      onUpdate: (old, pod) => {
        if (ordinalOf(old) !== ordinalOf(pod)) this.#release(old);
        this.#record("MODIFIED", pod);
      },
      onDelete: (pod) => {
        this.#release(pod);
        this.#record("DELETED", pod);
      },
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

  get count(): number {
    return this.#informer.size;
  }

  pods(): TestPod[] {
    return this.#informer.list();
  }

  /** Changes seen live, after the first list. */
  changes(type?: PodEvent["type"]): PodEvent[] {
    return this.events.filter((e) => !e.initial && (type === undefined || e.type === type));
  }

  /** DELETED events per second (from `since`), the largest over 1 s buckets from the first of them. */
  peakDeleteRate(since = 0, bucketMs = 1_000): number {
    const deletes = this.changes("DELETED").filter((e) => e.at >= since);
    const first = deletes[0]?.at;
    if (first === undefined) return 0;
    const buckets = new Map<number, number>();
    for (const e of deletes) {
      const bucket = Math.floor((e.at - first) / bucketMs);
      buckets.set(bucket, (buckets.get(bucket) ?? 0) + 1);
    }
    return (Math.max(...buckets.values()) * 1_000) / bucketMs;
  }

  #release(pod: TestPod): void {
    const ordinal = ordinalOf(pod);
    if (ordinal === undefined) return;
    const holders = this.#holders.get(ordinal);
    holders?.delete(pod.metadata.uid);
    if (holders?.size === 0) this.#holders.delete(ordinal);
  }

  #record(type: PodEvent["type"], pod: TestPod): void {
    const ordinal = ordinalOf(pod);
    const count = this.#informer.size;
    // The informer marks itself synced only after its first list is in the cache.
    const templateHash = pod.metadata.labels?.[LABEL_TEMPLATE_HASH];
    this.events.push({ type, at: Date.now(), name: pod.metadata.name, uid: pod.metadata.uid, ordinal, templateHash, count, initial: !this.#informer.hasSynced });
    this.maxCount = Math.max(this.maxCount, count);
    if (count > this.#maxPods) this.violations.push(`${type} ${pod.metadata.name}: ${count} pods in the namespace, more than ${this.#maxPods}`);
    if (type === "DELETED" || ordinal === undefined) return;
    let holders = this.#holders.get(ordinal);
    if (!holders) this.#holders.set(ordinal, (holders = new Set()));
    holders.add(pod.metadata.uid);
    if (holders.size > 1) this.violations.push(`${type} ${pod.metadata.name}: ordinal ${ordinal} held by ${holders.size} pods (${[...holders].join(", ")})`);
  }
}

/**
 * Stops the test's watches and operators, releases the finalizer of any rollout left behind (no
 * operator runs to release it, and it would hold the namespace in Terminating forever), purges the
 * pods and deletes the namespace, waiting until it is gone so the next test starts on an idle
 * control plane.
 */
export async function teardown(admin: KubeClient, ns: string | undefined, operators: OperatorProcess[], watches: PodWatch[] = []): Promise<void> {
  await Promise.all(watches.splice(0).map((w) => w.stop()));
  await Promise.all(operators.splice(0).map((o) => o.stop()));
  if (ns === undefined) return;
  const rollouts = await admin.get<{ items: TestRollout[] }>(rolloutsPath(ns)).catch(() => ({ items: [] as TestRollout[] }));
  for (const r of rollouts.items) {
    if ((r.metadata.finalizers ?? []).length === 0) continue;
    await admin.patch(rolloutPath(ns, r.metadata.name), { metadata: { finalizers: null } }).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }
  // Pods go at once with grace 0; left to the namespace controller, kwok confirms each of them and
  // a 3,000-pod namespace takes minutes on a loaded machine. One deletecollection of 3,000 pods can
  // outlast the API server's 60 s request timeout, so they go one by one, a few dozen at a time.
  // Only a shortcut: whatever fails here, the namespace deletion below still removes.
  const names = (await listPods(admin, ns).catch(() => [])).map((p) => p.metadata.name);
  let failures = 0;
  const worker = async () => {
    for (let name = names.pop(); name !== undefined; name = names.pop()) {
      await admin.delete(podPath(ns, name), { apiVersion: "v1", kind: "DeleteOptions", gracePeriodSeconds: 0 }, { discardBody: true }).catch(() => failures++);
    }
  };
  await Promise.all(Array.from({ length: POD_PURGE_CONCURRENCY }, worker));
  if (failures > 0) console.log(`teardown of ${ns}: ${failures} pod deletes failed; leaving them to the namespace deletion`);
  await deleteNamespace(admin, ns);
  await eventually(
    `namespace ${ns} deleted`,
    () => admin.get(`/api/v1/namespaces/${ns}`).then(() => false, (err: unknown) => isNotFound(err)),
    NAMESPACE_GONE_TIMEOUT_MS,
    1_000,
  );
}

/**
 * Polls a rollout's status in the background and keeps, for each wave number it shows, the wave's
 * startTime (ms precision, unlike the whole seconds of object timestamps).
 */
export function recordWaveStarts(client: KubeClient, ns: string, name: string): { starts: Map<number, string>; stop(): Promise<void> } {
  const starts = new Map<number, string>();
  let stopped = false;
  const poll = async () => {
    const wave = await getRollout(client, ns, name).then((r) => r.status?.wave, () => undefined);
    if (wave?.startTime !== undefined && wave.number > 0 && !starts.has(wave.number)) starts.set(wave.number, wave.startTime);
  };
  const loop = (async () => {
    while (!stopped) {
      await poll();
      await sleep(STATUS_POLL_MS);
    }
  })();
  return {
    starts,
    // The last wave can start and finish between two polls; one read after the end sees it.
    async stop() {
      stopped = true;
      await loop;
      await poll();
    },
  };
}

/** When the operator first logged `msg` (its pino `time`, ms since the epoch), if it has. */
export async function loggedAt(logFile: string, msg: string): Promise<number | undefined> {
  const text = await readFile(logFile, "utf8").catch(() => "");
  for (const line of text.split("\n")) {
    if (!line.includes(`"msg":"${msg}"`)) continue;
    try {
      const entry = JSON.parse(line) as { time?: string | number };
      if (entry.time !== undefined) return typeof entry.time === "number" ? entry.time : Date.parse(entry.time);
    } catch {
      // A line still being written; the next poll reads it whole.
    }
  }
  return undefined;
}

export const seconds = (ms: number) => (ms / 1000).toFixed(1);

interface FlowSchema {
  metadata: { name: string };
  spec: { rules?: { subjects?: { kind: string; serviceAccount?: { name: string; namespace: string } }[] }[] };
}

/** FlowSchemas naming the operator's ServiceAccount: the defaults match it only by group. */
async function flowSchemasOnOperator(admin: KubeClient): Promise<string[]> {
  const list = await admin.get<{ items: FlowSchema[] }>("/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas");
  const isOperator = (s: { kind: string; serviceAccount?: { name: string; namespace: string } }) =>
    s.kind === "ServiceAccount" && s.serviceAccount?.name === OPERATOR_SERVICE_ACCOUNT && s.serviceAccount.namespace === OPERATOR_NAMESPACE;
  return list.items.filter((fs) => (fs.spec.rules ?? []).some((r) => (r.subjects ?? []).some(isOperator))).map((fs) => fs.metadata.name);
}

/** Waits until no FlowSchema routes the operator's identity away from its default priority level. */
export async function waitForDefaultApf(admin: KubeClient): Promise<void> {
  let reported = false;
  await eventually(
    "no FlowSchema of another test on the operator's ServiceAccount",
    async () => {
      const foreign = await flowSchemasOnOperator(admin);
      if (foreign.length > 0 && !reported) {
        console.log(`waiting for FlowSchema ${foreign.join(", ")} on the operator's ServiceAccount to go (another test squeezes it)`);
        reported = true;
      }
      return foreign.length === 0;
    },
    FOREIGN_APF_WAIT_MS,
    FOREIGN_APF_POLL_MS,
  );
}

/** One test's namespace, operators and pod watches; torn down after each test, pass or fail. */
export interface TestBed {
  readonly admin: KubeClient;
  readonly ns: string;
  /** Creates the test's namespace. */
  namespace(prefix: string): Promise<string>;
  /** Starts an operator scoped to the test's namespace. */
  operator(): OperatorProcess;
  /** A started PodWatch on the test's namespace. */
  watch(maxPods?: number): Promise<PodWatch>;
}

/**
 * Registers the hooks of a describe block: the admin client and the CRD before all tests, the
 * operator's default APF level before each, teardown after each (naming the operator logs when the
 * test failed).
 */
export function useTestBed(): TestBed {
  let admin: KubeClient | undefined;
  let ns: string | undefined;
  const operators: OperatorProcess[] = [];
  const watches: PodWatch[] = [];
  const logs: string[] = [];
  const need = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is not set up yet`);
    return value;
  };

  beforeAll(async () => {
    admin = await adminClient();
    await ensureCrd(admin);
  });
  beforeEach(async () => {
    await waitForDefaultApf(need(admin, "the admin client"));
  });
  afterEach(async (ctx) => {
    if (ctx.task.result?.state === "fail" && logs.length > 0) console.log(`operator logs of the failed test: ${logs.join(", ")}`);
    logs.length = 0;
    const toDelete = ns;
    ns = undefined;
    if (admin) await teardown(admin, toDelete, operators, watches);
  });
  afterAll(async () => {
    await admin?.close();
  });

  return {
    get admin() {
      return need(admin, "the admin client");
    },
    get ns() {
      return need(ns, "the test namespace");
    },
    async namespace(prefix) {
      ns = await createTestNamespace(need(admin, "the admin client"), prefix);
      return ns;
    },
    operator() {
      const op = startOperator(need(ns, "the test namespace"));
      operators.push(op);
      logs.push(op.logFile);
      return op;
    },
    async watch(maxPods) {
      const watch = new PodWatch(need(admin, "the admin client"), need(ns, "the test namespace"), maxPods);
      watches.push(watch);
      await watch.start();
      return watch;
    },
  };
}
