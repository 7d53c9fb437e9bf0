// IP headroom and node slots with I/O: API discovery picks the provider (Auto), informers or a metrics
// scrape feed the pure arithmetic in ../ipam/, and the result is what the wave sizer caps a wave at.
//
// Every provider also reports node slots (allocatable pods minus pods on nodes the template may use),
// so the node and active-pod caches run whatever the provider. Pods are read as counts per node,
// kept up to date from the active-pod informer's notifications: a reading walks the nodes, never the
// cluster's pods, and the informer keeps of each pod only its key and a placement shared by all
// pods on its node. The CNI's own objects (Calico pools and blocks, CiliumNodes, Whereabouts pools)
// are watched only once a rollout asks for that provider.

import type { Logger } from "pino";
import type { IpamProvider, PodTemplate } from "../../api/batchrollout.ts";
import { Informer, type InformerHandlers, type ObjectWithMeta } from "../../controllers/informer.ts";
import { InternPool } from "../../controllers/intern-pool.ts";
import type { KubeClient } from "../../kube/client.ts";
import { NODES, PODS, type ResourceType, resourcePath } from "../../kube/resources.ts";
import { awsVpcCniHeadroom } from "../ipam/aws-vpc-cni.ts";
import { type CalicoIpPool, type CalicoIpamBlock, calicoHeadroom } from "../ipam/calico.ts";
import { type CiliumNode, ciliumHeadroom } from "../ipam/cilium.ts";
import { type ConcreteIpamProvider, IPAM_API_GROUPS, type IpHeadroom, type ProviderChoice, selectProvider } from "../ipam/index.ts";
import { type NodeLike, NodePodCounter, type PodCountsByNode, type PodLike, nodeCapacity, nodePodCidrHeadroom, schedulingConstraints } from "../ipam/node-pod-cidr.ts";
import { type WhereaboutsIpPool, whereaboutsHeadroom } from "../ipam/whereabouts.ts";
import { MetricsEndpoint, MetricsEndpointError } from "./metrics-endpoint.ts";

/** How long a discovery answer (GET /apis) is trusted: a CNI is installed rarely, and Auto must notice eventually. */
export const DISCOVERY_REFRESH_INTERVAL_MS = 5 * 60_000;
/**
 * Longest a read waits for a cache's first list. A read that times out throws, so the reconcile is
 * retried with backoff instead of sizing a wave from an empty cache (which reads as "no room" or,
 * worse for some providers, "unknown, no cap").
 */
export const IPAM_SYNC_TIMEOUT_MS = 20_000;
/** Least time between two scrapes of one ipamd metrics URL; every rollout's reconcile asks. */
export const AWS_VPC_CNI_SCRAPE_MIN_INTERVAL_MS = 5_000;
/**
 * Pods holding a slot and an address: bound to a node and not finished. Unbound pods hold neither
 * yet (the scheduler guard counts them); finished pods have released both.
 */
export const ACTIVE_PODS_FIELD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed,spec.nodeName!=";

export const CALICO_IPPOOLS: ResourceType = { group: "crd.projectcalico.org", version: "v1", plural: "ippools", namespaced: false };
export const CALICO_IPAMBLOCKS: ResourceType = { group: "crd.projectcalico.org", version: "v1", plural: "ipamblocks", namespaced: false };
export const CILIUM_NODES: ResourceType = { group: "cilium.io", version: "v2", plural: "ciliumnodes", namespaced: false };
export const WHEREABOUTS_IPPOOLS: ResourceType = { group: "whereabouts.cni.cncf.io", version: "v1alpha1", plural: "ippools", namespaced: true };

// ---- what the caches keep ----

type Meta = { name: string; namespace?: string; resourceVersion?: string };

export interface CachedNode extends ObjectWithMeta {
  metadata: Meta & { labels?: Record<string, string> };
  spec: NonNullable<NodeLike["spec"]>;
  status: { allocatable?: Record<string, string>; conditions?: Array<{ type: string; status: string }> };
}

export interface ActivePod extends ObjectWithMeta {
  metadata: Meta;
  spec: { nodeName?: string; hostNetwork?: boolean };
}

export type CachedCalicoPool = CalicoIpPool & { metadata: Meta };
export type CachedCalicoBlock = CalicoIpamBlock & { metadata: Meta };
export type CachedCiliumNode = CiliumNode & { metadata: Meta };
export type CachedWhereaboutsPool = WhereaboutsIpPool & { metadata: Meta };

function meta(raw: ObjectWithMeta): Meta {
  const m = raw.metadata ?? {};
  return { name: m.name ?? "", ...(m.namespace ? { namespace: m.namespace } : {}), ...(m.resourceVersion ? { resourceVersion: m.resourceVersion } : {}) };
}

/** Labels, taints, cordon, podCIDRs, allocatable pods and Ready: what eligibility and headroom read. */
export function slimNode(raw: ObjectWithMeta): CachedNode {
  const node = raw as NodeLike & ObjectWithMeta;
  const ready = node.status?.conditions?.find((c) => c.type === "Ready");
  const pods = node.status?.allocatable?.pods;
  const spec = node.spec ?? {};
  return {
    metadata: { ...meta(raw), ...(node.metadata?.labels ? { labels: node.metadata.labels } : {}) },
    spec: {
      ...(spec.podCIDR ? { podCIDR: spec.podCIDR } : {}),
      ...(spec.podCIDRs ? { podCIDRs: spec.podCIDRs } : {}),
      ...(spec.unschedulable ? { unschedulable: true } : {}),
      ...(spec.taints?.length ? { taints: spec.taints.map(({ key, value, effect }) => ({ key, ...(value === undefined ? {} : { value }), effect })) } : {}),
    },
    status: {
      ...(pods === undefined ? {} : { allocatable: { pods } }),
      ...(ready ? { conditions: [{ type: ready.type, status: ready.status }] } : {}),
    },
  };
}

/** Namespaces and placements (node, hostNetwork), repeated by every cached active pod. */
const activePodShared = new InternPool();

/** A pod as the slot and address count needs it: where it runs and whether it uses the pod network. */
export function slimActivePod(raw: ObjectWithMeta): ActivePod {
  const spec = (raw as PodLike).spec;
  const m = meta(raw);
  if (m.namespace) m.namespace = activePodShared.intern(m.namespace);
  const nodeName = spec?.nodeName || undefined;
  const hostNetwork = spec?.hostNetwork === true;
  const placement = activePodShared.share(`${nodeName ?? ""}\u0000${hostNetwork}`, () => ({ ...(nodeName ? { nodeName } : {}), ...(hostNetwork ? { hostNetwork } : {}) }));
  return { metadata: m, spec: placement };
}

/** IPAMBlock without spec.attributes (handles and pod names: most of its bytes, none of its headroom). */
export function slimCalicoBlock(raw: ObjectWithMeta): CachedCalicoBlock {
  const spec = (raw as CalicoIpamBlock).spec;
  return {
    metadata: meta(raw),
    spec: {
      cidr: spec.cidr,
      ...(spec.allocations ? { allocations: spec.allocations } : { unallocated: spec.unallocated ?? [] }),
      ...(spec.affinity ? { affinity: spec.affinity } : {}),
      ...(spec.deleted ? { deleted: true } : {}),
    },
  };
}

export function slimCalicoPool(raw: ObjectWithMeta): CachedCalicoPool {
  const { cidr, blockSize, disabled, allowedUses } = (raw as CalicoIpPool).spec;
  return {
    metadata: meta(raw),
    spec: { cidr, ...(blockSize === undefined ? {} : { blockSize }), ...(disabled ? { disabled } : {}), ...(allowedUses ? { allowedUses } : {}) },
  };
}

/** CiliumNode's IPAM pool and usage only; its ENI and health sections are large and unused. */
export function slimCiliumNode(raw: ObjectWithMeta): CachedCiliumNode {
  const node = raw as CiliumNode;
  const ipam = node.spec?.ipam;
  const used = node.status?.ipam;
  return {
    metadata: meta(raw),
    spec: { ipam: { ...(ipam?.pool ? { pool: ipam.pool } : {}), ...(ipam?.["ipv6-pool"] ? { "ipv6-pool": ipam["ipv6-pool"] } : {}), ...(ipam?.podCIDRs ? { podCIDRs: ipam.podCIDRs } : {}) } },
    status: {
      ipam: {
        ...(used?.used ? { used: used.used } : {}),
        ...(used?.["ipv6-used"] ? { "ipv6-used": used["ipv6-used"] } : {}),
        ...(used?.["release-ips"] ? { "release-ips": used["release-ips"] } : {}),
        ...(used?.["release-ipv6s"] ? { "release-ipv6s": used["release-ipv6s"] } : {}),
      },
    },
  };
}

/** A Whereabouts pool's range and the offsets in use; which pod holds each is not our concern. */
export function slimWhereaboutsPool(raw: ObjectWithMeta): CachedWhereaboutsPool {
  const spec = (raw as WhereaboutsIpPool).spec;
  return { metadata: meta(raw), spec: { range: spec.range, allocations: Object.fromEntries(Object.keys(spec.allocations ?? {}).map((k) => [k, {}])) } };
}

// ---- discovery ----

interface ApiGroupList {
  groups?: Array<{ name?: string }>;
}

/** The API group served for each provider that has one. */
export function apiGroupOf(provider: ConcreteIpamProvider): string | undefined {
  return IPAM_API_GROUPS.find(([, p]) => p === provider)?.[0];
}

// ---- the signal ----

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
  /** Why nodeSlots is what it is (eligible nodes, what was skipped). */
  nodeSlotsMessage: string;
}

export class IpamNotReadyError extends Error {
  override readonly name = "IpamNotReadyError";
}

type MetricsSource = Pick<MetricsEndpoint, "scrape" | "url" | "close">;

export interface IpamSignalsOptions {
  client: Pick<KubeClient, "request" | "watch">;
  logger: Logger;
  /** Lifetime of the informers started on demand (the leader's signal). */
  signal: AbortSignal;
  clock?: () => number;
  syncTimeoutMs?: number;
  /** How an ipamd metrics URL is fetched; tests replace it. */
  metricsEndpoint?: (url: string) => MetricsSource;
}

/** The CNI objects a provider's arithmetic reads, by provider. */
type CniObjects =
  | { provider: "Calico"; pools: () => CachedCalicoPool[]; blocks: () => CachedCalicoBlock[] }
  | { provider: "Cilium"; nodes: () => CachedCiliumNode[] }
  | { provider: "Whereabouts"; pools: () => CachedWhereaboutsPool[] }
  | { provider: "none" };

/** Informers of every type kept in one map; only their lifecycle is used through this type. */
function erase<T extends ObjectWithMeta>(informer: Informer<T>): Informer<ObjectWithMeta> {
  return informer as unknown as Informer<ObjectWithMeta>;
}

export class IpamSignals {
  readonly #client: Pick<KubeClient, "request" | "watch">;
  readonly #log: Logger;
  readonly #signal: AbortSignal;
  readonly #clock: () => number;
  readonly #syncTimeoutMs: number;
  readonly #endpointFor: (url: string) => MetricsSource;
  readonly #watched = new Map<string, Informer<ObjectWithMeta>>();
  /** Non-terminal pods per node, fed by the active-pod informer. */
  readonly #podCounter = new NodePodCounter();
  /** Bumped on every cache event: a memoised reading is valid while it is unchanged. */
  #version = 0;
  #memoVersion = -1;
  /** Readings by provider and scheduling constraints, valid for #memoVersion. */
  readonly #memo = new Map<string, IpamReading>();
  #groups: { at: number; names: Set<string> } | undefined;
  readonly #reportedChoice = new Map<string, string>();
  readonly #endpoints = new Map<string, { source: MetricsSource; at: number; text?: string; error?: string }>();

  constructor(opts: IpamSignalsOptions) {
    this.#client = opts.client;
    this.#log = opts.logger.child({ signal: "ipam" });
    this.#signal = opts.signal;
    this.#clock = opts.clock ?? Date.now;
    this.#syncTimeoutMs = opts.syncTimeoutMs ?? IPAM_SYNC_TIMEOUT_MS;
    this.#endpointFor = opts.metricsEndpoint ?? ((url) => new MetricsEndpoint({ url }));
  }

  /** API groups the server serves, from discovery, refreshed every DISCOVERY_REFRESH_INTERVAL_MS. */
  async apiGroups(): Promise<Set<string>> {
    const now = this.#clock();
    if (this.#groups && now - this.#groups.at < DISCOVERY_REFRESH_INTERVAL_MS) return this.#groups.names;
    try {
      const res = await this.#client.request<ApiGroupList>({ method: "GET", path: "/apis", signal: this.#signal });
      this.#groups = { at: now, names: new Set((res.body.groups ?? []).map((g) => g.name ?? "").filter(Boolean)) };
    } catch (err) {
      // A stale answer beats none: CNIs are not installed and removed between two reconciles.
      if (!this.#groups) throw err;
      this.#groups.at = now;
      this.#log.warn({ err: err instanceof Error ? err.message : String(err) }, "API discovery failed; using the previous answer until the next refresh");
    }
    return this.#groups.names;
  }

  /** The provider a request resolves to; Auto asks discovery. Logs when a request's choice changes. */
  async choose(requested: IpamProvider): Promise<ProviderChoice> {
    const choice = selectProvider(requested === "Auto" ? await this.apiGroups() : [], requested);
    if (this.#reportedChoice.get(requested) !== choice.provider) {
      this.#reportedChoice.set(requested, choice.provider);
      this.#log.info({ requested, provider: choice.provider, reason: choice.reason }, "IPAM provider chosen");
    }
    return choice;
  }

  /**
   * IP headroom and node slots for one rollout's template. Waits (at most the sync timeout) for the
   * caches it needs, starting them on first use; throws IpamNotReadyError when they do not sync.
   * The reading is shared with other callers until a cache changes: treat it as read-only.
   */
  async read(request: IpamRequest, signal?: AbortSignal): Promise<IpamReading> {
    const choice = await this.choose(request.provider);
    const { provider } = choice;
    const group = apiGroupOf(provider);
    if (group && request.provider !== "Auto" && !(await this.apiGroups()).has(group)) {
      // An explicit provider whose CRDs are absent: watching them would only fail and retry forever.
      const slots = await this.#nodeSlots(request.template, signal);
      return { choice, headroom: { provider, free: undefined, message: `API group ${group} is not served (is ${provider} installed?); IP headroom unknown` }, ...slots };
    }
    const nodes = this.#nodes();
    const pods = this.#activePods();
    const cni = this.#cniCaches(provider);
    await this.#waitForSync([nodes, pods.informer, ...cni.informers], signal);

    if (provider === "AwsVpcCni") {
      const slots = await this.#nodeSlots(request.template, signal);
      return { choice, headroom: await this.#awsVpcCni(request.metricsURL), ...slots };
    }
    if (this.#memoVersion !== this.#version) {
      this.#memo.clear();
      this.#memoVersion = this.#version;
    }
    const key = `${request.provider}|${provider}|${JSON.stringify(schedulingConstraints(request.template))}`;
    let reading = this.#memo.get(key);
    if (!reading) {
      reading = this.#compute(choice, request.template, nodes.list(), pods.counts, cni.read);
      this.#memo.set(key, reading);
    }
    return reading;
  }

  #compute(choice: ProviderChoice, template: PodTemplate, nodes: CachedNode[], pods: PodCountsByNode, cni: CniObjects): IpamReading {
    const { provider } = choice;
    if (provider === "NodePodCIDR") {
      const h = nodePodCidrHeadroom(nodes, pods, template);
      return {
        choice,
        headroom: {
          provider,
          free: h.free,
          ...(h.capacity === undefined ? {} : { capacity: h.capacity }),
          message: h.message,
          ...(h.overflow ? { overflow: h.overflow } : {}),
        },
        nodeSlots: h.nodeSlots,
        nodeSlotsMessage: `${h.nodeSlots} pod slots with a free address on ${h.eligibleNodes} eligible nodes`,
      };
    }
    const capacity = nodeCapacity(nodes, pods, template, { perNode: true });
    const eligible = new Set((capacity.perNode ?? []).filter((r) => r.eligibility.eligible).map((r) => r.name));
    const slots = { nodeSlots: capacity.nodeSlots, nodeSlotsMessage: capacity.message };
    switch (cni.provider) {
      case "Calico": {
        const { pools: _pools, ...headroom } = calicoHeadroom(cni.pools(), cni.blocks(), { eligibleHosts: eligible });
        return { choice, headroom, ...slots };
      }
      case "Cilium": {
        const withIp = new Map([...pods].map(([node, c]) => [node, c.withIp]));
        const { nodes: _nodes, ...headroom } = ciliumHeadroom(cni.nodes(), { eligibleNodes: eligible, podsWithIpByNode: withIp });
        return { choice, headroom, ...slots };
      }
      case "Whereabouts": {
        // The pools of the networks the template attaches are not told apart (their range_start and
        // exclude live in NetworkAttachmentDefinitions): all pools are summed.
        const { pools: _pools, ...headroom } = whereaboutsHeadroom(cni.pools());
        return { choice, headroom, ...slots };
      }
      default:
        return { choice, ...slots };
    }
  }

  #nodes(): Informer<CachedNode> {
    return this.#watch("nodes", resourcePath(NODES), slimNode);
  }

  /**
   * Whether the node counts already include this pod. The reconciler's own pod cache and this one are
   * separate watches; a pod the first shows bound may not be counted here yet, and must then be
   * subtracted from the headroom by the caller, or a wave could take its address twice.
   */
  counts(namespace: string, name: string): boolean {
    return this.#watched.get("active-pods")?.get(`${namespace}/${name}`) !== undefined;
  }

  /** The active-pod informer and the per-node counts its notifications keep. */
  #activePods(): { informer: Informer<ActivePod>; counts: PodCountsByNode } {
    const counter = this.#podCounter;
    const informer = this.#watch("active-pods", resourcePath(PODS), slimActivePod, {
      fieldSelector: ACTIVE_PODS_FIELD_SELECTOR,
      handlers: {
        onAdd: (pod) => counter.add(pod),
        onUpdate: (old, cur) => {
          counter.remove(old);
          counter.add(cur);
        },
        onDelete: (pod) => counter.remove(pod),
      },
    });
    return { informer, counts: counter.counts };
  }

  /** The CNI's own caches for a provider, started on first use. */
  #cniCaches(provider: ConcreteIpamProvider): { informers: Informer<ObjectWithMeta>[]; read: CniObjects } {
    switch (provider) {
      case "Calico": {
        const pools = this.#watch("calico-ippools", resourcePath(CALICO_IPPOOLS), slimCalicoPool);
        const blocks = this.#watch("calico-ipamblocks", resourcePath(CALICO_IPAMBLOCKS), slimCalicoBlock);
        return { informers: [erase(pools), erase(blocks)], read: { provider, pools: () => pools.list(), blocks: () => blocks.list() } };
      }
      case "Cilium": {
        const nodes = this.#watch("ciliumnodes", resourcePath(CILIUM_NODES), slimCiliumNode);
        return { informers: [erase(nodes)], read: { provider, nodes: () => nodes.list() } };
      }
      case "Whereabouts": {
        const pools = this.#watch("whereabouts-ippools", resourcePath(WHEREABOUTS_IPPOOLS), slimWhereaboutsPool);
        return { informers: [erase(pools)], read: { provider, pools: () => pools.list() } };
      }
      default:
        return { informers: [], read: { provider: "none" } };
    }
  }

  async #nodeSlots(template: PodTemplate, signal?: AbortSignal): Promise<Pick<IpamReading, "nodeSlots" | "nodeSlotsMessage">> {
    const nodes = this.#nodes();
    const pods = this.#activePods();
    await this.#waitForSync([nodes, pods.informer], signal);
    const c = nodeCapacity(nodes.list(), pods.counts, template);
    return { nodeSlots: c.nodeSlots, nodeSlotsMessage: c.message };
  }

  /** The informer for a resource, started on first use and kept for the signal's lifetime. */
  #watch<T extends ObjectWithMeta>(
    name: string,
    path: string,
    transform: (raw: ObjectWithMeta) => T,
    opts: { fieldSelector?: string; handlers?: InformerHandlers<T> } = {},
  ): Informer<T> {
    let watched = this.#watched.get(name);
    if (!watched) {
      const { fieldSelector, handlers } = opts;
      const informer = new Informer<T>({ name, client: this.#client, path, transform, logger: this.#log, ...(fieldSelector ? { fieldSelector } : {}) });
      if (handlers) informer.addHandlers(handlers);
      const bump = () => void (this.#version += 1);
      informer.addHandlers({ onAdd: bump, onUpdate: bump, onDelete: bump });
      this.#log.info({ informer: name, path, fieldSelector }, "watching for IP headroom and node slots");
      void informer.start(this.#signal);
      watched = erase(informer);
      this.#watched.set(name, watched);
    }
    return watched as unknown as Informer<T>;
  }

  async #waitForSync(informers: Array<Pick<Informer<ObjectWithMeta>, "waitForSync" | "hasSynced" | "name">>, signal?: AbortSignal): Promise<void> {
    const pending = informers.filter((i) => !i.hasSynced);
    if (pending.length === 0) return;
    const timeout = AbortSignal.timeout(this.#syncTimeoutMs);
    const wait = AbortSignal.any([this.#signal, timeout, ...(signal ? [signal] : [])]);
    try {
      await Promise.all(pending.map((i) => i.waitForSync(wait)));
    } catch (err) {
      if (!timeout.aborted) throw err;
      const names = pending.filter((i) => !i.hasSynced).map((i) => i.name);
      throw new IpamNotReadyError(`IPAM: cache ${names.join(", ")} not synced after ${this.#syncTimeoutMs} ms (see the informer's list/watch errors in the log); no wave until it is`);
    }
  }

  async #awsVpcCni(url: string | undefined): Promise<IpHeadroom> {
    if (!url) return { provider: "AwsVpcCni", free: undefined, message: "spec.guards.ipam.metricsURL is required for provider AwsVpcCni; IP headroom unknown" };
    let entry = this.#endpoints.get(url);
    const now = this.#clock();
    if (!entry) {
      try {
        entry = { source: this.#endpointFor(url), at: -Infinity };
      } catch (err) {
        return { provider: "AwsVpcCni", free: undefined, message: `spec.guards.ipam.metricsURL ${url}: ${err instanceof Error ? err.message : String(err)}` };
      }
      this.#endpoints.set(url, entry);
    }
    if (now - entry.at >= AWS_VPC_CNI_SCRAPE_MIN_INTERVAL_MS) {
      entry.at = now;
      try {
        entry.text = await entry.source.scrape(this.#signal);
        if (entry.error) this.#log.info({ url }, "ipamd metrics scrapes work again");
        delete entry.error;
      } catch (err) {
        // Only the status code: the URL comes from a rollout's spec, and status must not echo what
        // some other service behind it answers.
        const error = err instanceof MetricsEndpointError && err.status !== undefined ? `HTTP ${err.status}` : err instanceof Error ? err.message : String(err);
        if (!entry.error) this.#log.warn({ url, err: error }, "ipamd metrics scrape failed; IP headroom unknown until one succeeds");
        entry.error = error;
        delete entry.text;
      }
    }
    if (entry.text === undefined) return { provider: "AwsVpcCni", free: undefined, message: `ipamd metrics at ${url} unavailable (${entry.error ?? "not scraped yet"}); IP headroom unknown` };
    const { perSource: _perSource, ...headroom } = awsVpcCniHeadroom([{ source: url, text: entry.text }]);
    return headroom;
  }

  /** Closes the ipamd metrics connections; the informers stop with the lifetime signal. */
  async close(): Promise<void> {
    await Promise.all([...this.#endpoints.values()].map((e) => e.source.close()));
    this.#endpoints.clear();
  }
}
