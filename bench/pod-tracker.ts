import type { Logger } from "pino";
import { Informer, type ObjectWithMeta } from "../src/controllers/informer.ts";
import type { KubeClient } from "../src/kube/client.ts";
import { PODS, resourcePath } from "../src/kube/resources.ts";

// Follows every pod of one namespace through a watch (an informer on the admin identity, which APF
// exempts, so measuring never competes with the writer) and stamps the moment each pod was first
// seen, first bound to a node and first Running. Counts per second are derived from these stamps
// afterwards, so they are exact rather than sampled.

interface RawPod extends ObjectWithMeta {
  metadata: { name?: string; namespace?: string; uid?: string; resourceVersion?: string; labels?: Record<string, string>; deletionTimestamp?: string };
  spec?: { nodeName?: string };
  status?: { phase?: string };
}

export interface TrackedPod {
  metadata: { name: string; namespace?: string; uid: string; resourceVersion?: string; labels: Record<string, string>; deletionTimestamp?: string };
  nodeName: string;
  phase: string;
}

export interface PodStamps {
  name: string;
  uid: string;
  /** Key that must be unique per pod for the method (name, or the BatchRollout ordinal label). */
  identity: string;
  seenAt: number;
  scheduledAt?: number;
  runningAt?: number;
  deletedAt?: number;
}

export interface PodCounts {
  /** Distinct pods ever seen. */
  created: number;
  scheduled: number;
  running: number;
  /** Seen, not deleted, not yet bound to a node. */
  unscheduled: number;
  /** In the cache now. */
  existing: number;
}

function slim(raw: ObjectWithMeta): TrackedPod {
  const pod = raw as RawPod;
  return {
    metadata: {
      name: pod.metadata.name ?? "",
      namespace: pod.metadata.namespace,
      uid: pod.metadata.uid ?? "",
      resourceVersion: pod.metadata.resourceVersion,
      labels: pod.metadata.labels ?? {},
      deletionTimestamp: pod.metadata.deletionTimestamp,
    },
    nodeName: pod.spec?.nodeName ?? "",
    phase: pod.status?.phase ?? "",
  };
}

export class PodTracker {
  readonly namespace: string;
  readonly #informer: Informer<TrackedPod>;
  readonly #byUid = new Map<string, PodStamps>();
  readonly #identityOf: (pod: TrackedPod) => string;
  readonly #stop = new AbortController();
  // Kept incrementally: counts() is read on every pod event while a method runs, and a scan of 100,000
  // pods per event would make the harness itself the bottleneck.
  #scheduled = 0;
  #running = 0;
  #deleted = 0;
  #unscheduled = 0;
  #changed: (() => void)[] = [];

  constructor(opts: { client: KubeClient; namespace: string; logger: Logger; identityOf?: (pod: TrackedPod) => string; labelSelector?: string }) {
    this.namespace = opts.namespace;
    this.#identityOf = opts.identityOf ?? ((p) => p.metadata.name);
    this.#informer = new Informer<TrackedPod>({
      name: `bench-pods-${opts.namespace}`,
      client: opts.client,
      path: resourcePath(PODS, { namespace: opts.namespace }),
      transform: slim,
      logger: opts.logger,
      ...(opts.labelSelector ? { labelSelector: opts.labelSelector } : {}),
    });
    this.#informer.addHandlers({
      onAdd: (p) => this.#observe(p),
      onUpdate: (_, p) => this.#observe(p),
      onDelete: (p) => this.#gone(p),
    });
  }

  async start(): Promise<void> {
    void this.#informer.start(this.#stop.signal);
    await this.#informer.waitForSync(this.#stop.signal);
  }

  stop(): void {
    this.#stop.abort();
  }

  #observe(pod: TrackedPod): void {
    const now = Date.now();
    let s = this.#byUid.get(pod.metadata.uid);
    if (!s) {
      s = { name: pod.metadata.name, uid: pod.metadata.uid, identity: this.#identityOf(pod), seenAt: now };
      this.#byUid.set(pod.metadata.uid, s);
      this.#unscheduled++;
    }
    if (pod.nodeName && s.scheduledAt === undefined) {
      s.scheduledAt = now;
      this.#scheduled++;
      this.#unscheduled--;
    }
    if (pod.phase === "Running" && s.runningAt === undefined) {
      s.runningAt = now;
      this.#running++;
    }
    this.#notify();
  }

  #gone(pod: TrackedPod): void {
    const s = this.#byUid.get(pod.metadata.uid);
    if (s && s.deletedAt === undefined) {
      s.deletedAt = Date.now();
      this.#deleted++;
      if (s.scheduledAt === undefined) this.#unscheduled--;
    }
    this.#notify();
  }

  #notify(): void {
    for (const fn of this.#changed.splice(0)) fn();
  }

  counts(): PodCounts {
    const created = this.#byUid.size;
    return { created, scheduled: this.#scheduled, running: this.#running, unscheduled: this.#unscheduled, existing: created - this.#deleted };
  }

  stamps(): PodStamps[] {
    return [...this.#byUid.values()];
  }

  /** Pods in the cache now that are not Running (the "left Pending" check). */
  notRunningNow(): TrackedPod[] {
    return this.#informer.list().filter((p) => p.phase !== "Running");
  }

  /** Resolves at the next pod event or after `ms`, whichever is first. */
  changedOrAfter(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#changed.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
