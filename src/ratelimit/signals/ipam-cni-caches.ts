// The CNI's own caches (Calico pools and blocks, CiliumNodes, Whereabouts pools), started once API
// discovery finds that CNI's group served and kept until the operator stops. A reconcile only reads
// them: it never starts one nor waits for one.

import type { Logger } from "pino";
import { Informer, type ObjectWithMeta } from "../../controllers/informer.ts";
import type { KubeClient } from "../../kube/client.ts";
import { type ResourceType, resourcePath } from "../../kube/resources.ts";
import { type ConcreteIpamProvider, IPAM_API_GROUPS } from "../ipam/index.ts";
import {
  CALICO_IPAMBLOCKS,
  CALICO_IPPOOLS,
  CILIUM_NODES,
  type CachedCalicoBlock,
  type CachedCalicoPool,
  type CachedCiliumNode,
  type CachedWhereaboutsPool,
  WHEREABOUTS_IPPOOLS,
  slimCalicoBlock,
  slimCalicoPool,
  slimCiliumNode,
  slimWhereaboutsPool,
} from "./ipam-cni-objects.ts";

/** The CNI objects a provider's arithmetic reads, by provider. */
export type CniObjects =
  | { provider: "Calico"; pools: () => CachedCalicoPool[]; blocks: () => CachedCalicoBlock[] }
  | { provider: "Cilium"; nodes: () => CachedCiliumNode[] }
  | { provider: "Whereabouts"; pools: () => CachedWhereaboutsPool[] };

export interface CniCache {
  /** When its informers were started, for how long a cache has failed to sync. */
  startedAt: number;
  informers: ReadonlyArray<Pick<Informer<ObjectWithMeta>, "name" | "hasSynced" | "waitForSync">>;
  objects: CniObjects;
}

export interface CniCachesOptions {
  client: Pick<KubeClient, "request" | "watch">;
  logger: Logger;
  clock: () => number;
  /** Called on every event of any CNI cache. */
  onChange?: () => void;
}

export class CniCaches {
  readonly #opts: CniCachesOptions;
  readonly #started = new Map<ConcreteIpamProvider, CniCache>();

  constructor(opts: CniCachesOptions) {
    this.#opts = opts;
  }

  /** Starts the caches of each CNI whose API group is served, once; they run until the signal aborts. */
  startServed(groups: ReadonlySet<string>, signal: AbortSignal): void {
    for (const [group, provider] of IPAM_API_GROUPS) {
      if (groups.has(group) && !this.#started.has(provider)) this.#started.set(provider, this.#start(provider, signal));
    }
  }

  /** A provider's caches, if discovery has started them. */
  get(provider: ConcreteIpamProvider): CniCache | undefined {
    return this.#started.get(provider);
  }

  get all(): CniCache[] {
    return [...this.#started.values()];
  }

  #start(provider: ConcreteIpamProvider, signal: AbortSignal): CniCache {
    const startedAt = this.#opts.clock();
    const watch = <T extends ObjectWithMeta>(name: string, type: ResourceType, transform: (raw: ObjectWithMeta) => T): Informer<T> => {
      const { client, logger, onChange } = this.#opts;
      const path = resourcePath(type);
      const informer = new Informer<T>({ name, client, path, transform, logger });
      if (onChange) informer.addHandlers({ onAdd: onChange, onUpdate: onChange, onDelete: onChange });
      logger.info({ informer: name, path }, "watching for IP headroom");
      void informer.start(signal);
      return informer;
    };
    switch (provider) {
      case "Calico": {
        const pools = watch("calico-ippools", CALICO_IPPOOLS, slimCalicoPool);
        const blocks = watch("calico-ipamblocks", CALICO_IPAMBLOCKS, slimCalicoBlock);
        return { startedAt, informers: [pools, blocks], objects: { provider, pools: () => pools.list(), blocks: () => blocks.list() } };
      }
      case "Cilium": {
        const nodes = watch("ciliumnodes", CILIUM_NODES, slimCiliumNode);
        return { startedAt, informers: [nodes], objects: { provider, nodes: () => nodes.list() } };
      }
      case "Whereabouts": {
        const pools = watch("whereabouts-ippools", WHEREABOUTS_IPPOOLS, slimWhereaboutsPool);
        return { startedAt, informers: [pools], objects: { provider, pools: () => pools.list() } };
      }
      default:
        throw new Error(`IPAM provider ${provider} has no API group to watch`);
    }
  }
}
