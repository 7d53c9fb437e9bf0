import type { Logger } from "pino";
import { Informer, type ObjectWithMeta } from "../../controllers/informer.ts";
import type { RateLimitingQueue } from "../../controllers/workqueue.ts";
import type { KubeClient } from "../../kube/client.ts";
import { RESOURCE_QUOTAS, resourcePath } from "../../kube/resources.ts";

// ResourceQuotas, watched only to know when they change: a create refused for a quota may go through
// once the quota is raised or pods are freed, so a change ends the refusal's wait for its next probe
// (refusal.ts) and enqueues the namespace's rollouts.

interface CachedQuota {
  metadata: { name: string; namespace: string; resourceVersion: string };
}

const BY_NAMESPACE = "namespace";

function slimQuota(raw: ObjectWithMeta): CachedQuota {
  const m = raw.metadata ?? {};
  return { metadata: { name: m.name ?? "", namespace: m.namespace ?? "", resourceVersion: m.resourceVersion ?? "" } };
}

export class QuotaCache {
  readonly informer: Informer<CachedQuota>;

  constructor(opts: { client: Pick<KubeClient, "request" | "watch">; namespace?: string; logger: Logger }) {
    this.informer = new Informer<CachedQuota>({
      name: "resourcequotas",
      client: opts.client,
      path: resourcePath(RESOURCE_QUOTAS, { namespace: opts.namespace }),
      transform: slimQuota,
      indexers: { [BY_NAMESPACE]: (q) => [q.metadata.namespace] },
      logger: opts.logger,
    });
  }

  /** Changes whenever a ResourceQuota of the namespace is added, changed (spec or usage) or removed. */
  fingerprint(namespace: string): string {
    return this.informer
      .byIndex(BY_NAMESPACE, namespace)
      .map((q) => `${q.metadata.name}@${q.metadata.resourceVersion}`)
      .sort()
      .join(",");
  }

  /** Enqueues every rollout of a namespace whose quotas changed. */
  enqueueOnChange(queue: Pick<RateLimitingQueue, "add">, rolloutKeys: () => Iterable<string>): void {
    const onQuota = (q: CachedQuota) => {
      const prefix = `${q.metadata.namespace}/`;
      for (const key of rolloutKeys()) if (key.startsWith(prefix)) queue.add(key);
    };
    this.informer.addHandlers({ onAdd: onQuota, onUpdate: (_, q) => onQuota(q), onDelete: onQuota });
  }
}
