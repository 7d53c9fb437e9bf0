// IP headroom and node slots for a rollout's template: API discovery picks the provider (Auto), the
// CNI's caches or an ipamd metrics scrape feed the pure arithmetic in ../ipam/, and the reading is what
// the wave sizer caps a wave at. run() starts every cache when the operator starts (a CNI's once
// discovery finds its API group); read() only reads them, and a cache that has not synced yet makes
// it throw IpamNotReadyError (no wave) rather than wait.

import type { Logger } from "pino";
import type { IpamProvider, PodTemplate } from "../../api/batchrollout.ts";
import type { Informer, ObjectWithMeta } from "../../controllers/informer.ts";
import type { KubeClient } from "../../kube/client.ts";
import { calicoHeadroom } from "../ipam/calico.ts";
import { ciliumHeadroom } from "../ipam/cilium.ts";
import { type ConcreteIpamProvider, IPAM_API_GROUPS, type IpHeadroom, type ProviderChoice, selectProvider } from "../ipam/index.ts";
import { nodeCapacity, nodePodCidrHeadroom, schedulingConstraints } from "../ipam/node-pod-cidr.ts";
import { whereaboutsHeadroom } from "../ipam/whereabouts.ts";
import { ApiDiscovery } from "./api-discovery.ts";
import { type CniCache, CniCaches, type CniObjects } from "./ipam-cni-caches.ts";
import { IpamdScrapes, type MetricsSource } from "./ipamd-scrape.ts";
import { NodeSlots } from "./node-slots.ts";

/**
 * Longest waitForSync holds the operator's start for the IPAM caches' first lists. After it, start-up
 * goes on and readings that need a cache still missing throw IpamNotReadyError, so those rollouts
 * wait (retried with backoff) instead of sizing a wave from an empty cache, which reads as "no room"
 * or, worse for some providers, "unknown, no cap".
 */
export const IPAM_SYNC_TIMEOUT_MS = 20_000;

export interface IpamRequest {
  /** spec.guards.ipam.provider */
  provider: IpamProvider;
  /** spec.template: nodeSelector, tolerations and node affinity decide which nodes count. */
  template: PodTemplate;
  /** spec.guards.ipam.metricsURL, for AwsVpcCni. */
  metricsURL?: string;
}

export interface IpamReading {
  choice: ProviderChoice;
  /** Undefined for provider None. */
  headroom?: IpHeadroom;
  /** Free pod slots on nodes the template may use (for NodePodCIDR: slots that also have an address). */
  nodeSlots: number;
}

export class IpamNotReadyError extends Error {
  override readonly name = "IpamNotReadyError";
}

export interface IpamSignalsOptions {
  client: Pick<KubeClient, "request" | "watch">;
  logger: Logger;
  /** Lifetime of the caches, discovery and scrapes (the leader's signal). */
  signal: AbortSignal;
  clock?: () => number;
  syncTimeoutMs?: number;
  /** How an ipamd metrics URL is fetched; tests replace it. */
  metricsEndpoint?: (url: string) => MetricsSource;
}

type SyncSource = Pick<Informer<ObjectWithMeta>, "name" | "hasSynced" | "waitForSync">;

/** The API group served for each provider that has one. */
export function apiGroupOf(provider: ConcreteIpamProvider): string | undefined {
  return IPAM_API_GROUPS.find(([, p]) => p === provider)?.[0];
}

export class IpamSignals {
  /** For the readiness probe's list of caches. */
  readonly name = "ipam";
  readonly #log: Logger;
  readonly #signal: AbortSignal;
  readonly #clock: () => number;
  readonly #syncTimeoutMs: number;
  readonly #nodeSlots: NodeSlots;
  readonly #cni: CniCaches;
  readonly #discovery: ApiDiscovery;
  readonly #ipamd: IpamdScrapes;
  readonly #answered = Promise.withResolvers<void>();
  #running: Promise<void> | undefined;
  #startedAt = 0;
  /** Bumped on every cache event: a memoised reading is valid while it is unchanged. */
  #version = 0;
  #memoVersion = -1;
  /** Readings by provider and scheduling constraints, valid for #memoVersion. */
  readonly #memo = new Map<string, IpamReading>();
  readonly #reportedChoice = new Map<string, string>();

  constructor(opts: IpamSignalsOptions) {
    const { client } = opts;
    this.#log = opts.logger.child({ signal: "ipam" });
    this.#signal = opts.signal;
    this.#clock = opts.clock ?? Date.now;
    this.#syncTimeoutMs = opts.syncTimeoutMs ?? IPAM_SYNC_TIMEOUT_MS;
    const onChange = () => void (this.#version += 1);
    this.#nodeSlots = new NodeSlots({ client, logger: this.#log, onChange });
    this.#cni = new CniCaches({ client, logger: this.#log, clock: this.#clock, onChange });
    this.#discovery = new ApiDiscovery({
      client,
      logger: this.#log,
      onAnswer: (groups) => {
        this.#cni.startServed(groups, this.#signal);
        this.#answered.resolve();
      },
    });
    this.#ipamd = new IpamdScrapes({ logger: this.#log, clock: this.#clock, signal: this.#signal, ...(opts.metricsEndpoint ? { metricsEndpoint: opts.metricsEndpoint } : {}) });
  }

  /**
   * Starts the node and active-pod caches and API discovery, which starts a CNI's caches once it
   * finds the CNI's group; all run until the lifetime signal aborts. Call once, at operator start-up.
   */
  run(): Promise<void> {
    this.#running ??= this.#run();
    return this.#running;
  }

  async #run(): Promise<void> {
    this.#startedAt = this.#clock();
    this.#log.info("watching nodes and active pods for node slots and IP headroom");
    await Promise.all([this.#nodeSlots.run(this.#signal), this.#discovery.run(this.#signal)]);
  }

  /** Discovery has answered and every cache started so far has synced. */
  get hasSynced(): boolean {
    return this.#discovery.groups !== undefined && this.#caches().every((i) => i.hasSynced);
  }

  /**
   * Resolves once discovery has answered and the caches it started have synced, or after the sync
   * timeout (logging what is missing: readings that need it throw until it syncs). Rejects only when
   * `signal` or the lifetime signal aborts first.
   */
  async waitForSync(signal?: AbortSignal): Promise<void> {
    const timeout = AbortSignal.timeout(this.#syncTimeoutMs);
    const wait = AbortSignal.any([this.#signal, timeout, ...(signal ? [signal] : [])]);
    const aborted = new Promise<never>((_, reject) => {
      if (wait.aborted) reject(wait.reason);
      wait.addEventListener("abort", () => reject(wait.reason), { once: true });
    });
    aborted.catch(() => undefined);
    try {
      await Promise.race([this.#answered.promise, aborted]);
      await Promise.all(this.#caches().map((i) => i.waitForSync(wait)));
    } catch (err) {
      if (!timeout.aborted) throw err;
      const pending = [...(this.#discovery.groups ? [] : ["API discovery"]), ...this.#caches().filter((i) => !i.hasSynced).map((i) => i.name)];
      this.#log.warn({ pending, timeoutMs: this.#syncTimeoutMs }, "IPAM caches not synced in time; rollouts that need them wait until they are");
    }
  }

  #caches(): SyncSource[] {
    return [...this.#nodeSlots.informers, ...this.#cni.all.flatMap((c) => c.informers)];
  }

  /** The provider a request resolves to; Auto reads discovery's last answer. Logs when a request's choice changes. */
  #choose(requested: IpamProvider, groups: ReadonlySet<string> | undefined): ProviderChoice {
    const choice = selectProvider(requested === "Auto" ? (groups ?? []) : [], requested);
    if (this.#reportedChoice.get(requested) !== choice.provider) {
      this.#reportedChoice.set(requested, choice.provider);
      this.#log.info({ requested, provider: choice.provider, reason: choice.reason }, "IPAM provider chosen");
    }
    return choice;
  }

  /**
   * IP headroom and node slots for one rollout's template, from the caches run() started. Throws
   * IpamNotReadyError while a cache it needs (or discovery's first answer) is missing; only AwsVpcCni
   * does I/O here, a scrape at most every AWS_VPC_CNI_SCRAPE_MIN_INTERVAL_MS per URL.
   * The reading is shared with other callers until a cache changes: treat it as read-only.
   */
  async read(request: IpamRequest, _signal?: AbortSignal): Promise<IpamReading> {
    const groups = this.#discovery.groups;
    const needsDiscovery = request.provider === "Auto" || apiGroupOf(request.provider) !== undefined;
    if (needsDiscovery && groups === undefined) throw new IpamNotReadyError("IPAM: API discovery has not answered yet (see its errors in the log); no wave until it does");
    const choice = this.#choose(request.provider, groups);
    const { provider } = choice;
    this.#ensureSynced(this.#nodeSlots.informers, this.#startedAt);
    const group = apiGroupOf(provider);
    if (group && !groups?.has(group)) {
      // An explicit provider whose CRDs are absent: there is nothing to watch.
      const headroom: IpHeadroom = { provider, free: undefined, message: `API group ${group} is not served (is ${provider} installed?); IP headroom unknown` };
      return { choice, headroom, nodeSlots: this.#nodeSlots.free(request.template) };
    }
    if (provider === "AwsVpcCni") return { choice, headroom: await this.#ipamd.headroom(request.metricsURL), nodeSlots: this.#nodeSlots.free(request.template) };
    const cni = group ? this.#cniCache(provider) : undefined;

    if (this.#memoVersion !== this.#version) {
      this.#memo.clear();
      this.#memoVersion = this.#version;
    }
    const key = `${request.provider}|${provider}|${JSON.stringify(schedulingConstraints(request.template))}`;
    let reading = this.#memo.get(key);
    if (!reading) {
      reading = this.#compute(choice, request.template, cni?.objects);
      this.#memo.set(key, reading);
    }
    return reading;
  }

  #cniCache(provider: ConcreteIpamProvider): CniCache {
    const cache = this.#cni.get(provider);
    if (!cache) throw new IpamNotReadyError(`IPAM: the ${provider} caches are not started yet; no wave until they are`);
    this.#ensureSynced(cache.informers, cache.startedAt);
    return cache;
  }

  #ensureSynced(informers: readonly SyncSource[], startedAt: number): void {
    if (!this.#running) throw new IpamNotReadyError("IPAM: caches not started (IpamSignals.run() was not called); no wave until they are");
    const pending = informers.filter((i) => !i.hasSynced).map((i) => i.name);
    if (pending.length === 0) return;
    throw new IpamNotReadyError(
      `IPAM: cache ${pending.join(", ")} not synced after ${this.#clock() - startedAt} ms (see the informer's list/watch errors in the log); no wave until it is`,
    );
  }

  #compute(choice: ProviderChoice, template: PodTemplate, cni: CniObjects | undefined): IpamReading {
    const { provider } = choice;
    const nodes = this.#nodeSlots.nodes.list();
    const pods = this.#nodeSlots.podCounts;
    if (provider === "NodePodCIDR") {
      const h = nodePodCidrHeadroom(nodes, pods, template);
      const headroom: IpHeadroom = {
        provider,
        free: h.free,
        ...(h.capacity === undefined ? {} : { capacity: h.capacity }),
        message: h.message,
        ...(h.overflow ? { overflow: h.overflow } : {}),
      };
      return { choice, headroom, nodeSlots: h.nodeSlots };
    }
    const capacity = nodeCapacity(nodes, pods, template, { perNode: true });
    const eligible = new Set((capacity.perNode ?? []).filter((r) => r.eligibility.eligible).map((r) => r.name));
    const nodeSlots = capacity.nodeSlots;
    switch (cni?.provider) {
      case "Calico": {
        const { pools: _pools, ...headroom } = calicoHeadroom(cni.pools(), cni.blocks(), { eligibleHosts: eligible });
        return { choice, headroom, nodeSlots };
      }
      case "Cilium": {
        const withIp = new Map([...pods].map(([node, c]) => [node, c.withIp]));
        const { nodes: _nodes, ...headroom } = ciliumHeadroom(cni.nodes(), { eligibleNodes: eligible, podsWithIpByNode: withIp });
        return { choice, headroom, nodeSlots };
      }
      case "Whereabouts": {
        // The pools of the networks the template attaches are not told apart (their range_start and
        // exclude live in NetworkAttachmentDefinitions): all pools are summed.
        const { pools: _pools, ...headroom } = whereaboutsHeadroom(cni.pools());
        return { choice, headroom, nodeSlots };
      }
      default:
        return { choice, nodeSlots };
    }
  }

  /**
   * Whether the node counts already include this pod. The reconciler's own pod cache and this one are
   * separate watches; a pod the first shows bound may not be counted here yet, and must then be
   * subtracted from the headroom by the caller, or a wave could take its address twice.
   */
  counts(namespace: string, name: string): boolean {
    return this.#nodeSlots.includes(namespace, name);
  }

  /** Closes the ipamd metrics connections; the caches and discovery stop with the lifetime signal. */
  async close(): Promise<void> {
    await this.#ipamd.close();
  }
}
