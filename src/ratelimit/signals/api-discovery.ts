// Which API groups the API server serves (GET /apis), asked at start and then every few minutes:
// IPAM's Auto picks a provider from it, and a CNI's caches start once its group shows up.

import { setTimeout as sleep } from "node:timers/promises";
import type { Logger } from "pino";
import type { KubeClient } from "../../kube/client.ts";

/** How long a discovery answer is trusted: a CNI is installed rarely, and Auto must notice eventually. */
export const DISCOVERY_REFRESH_INTERVAL_MS = 5 * 60_000;
/** Wait before asking again after a failure while there is no answer yet: IPAM readings wait on one. */
export const DISCOVERY_RETRY_INTERVAL_MS = 5_000;

interface ApiGroupList {
  groups?: Array<{ name?: string }>;
}

export interface ApiDiscoveryOptions {
  client: Pick<KubeClient, "request">;
  logger: Logger;
  refreshIntervalMs?: number;
  retryIntervalMs?: number;
  /** Called with every answer, as soon as it is stored. */
  onAnswer?: (groups: ReadonlySet<string>) => void;
}

export class ApiDiscovery {
  readonly #client: Pick<KubeClient, "request">;
  readonly #log: Logger;
  readonly #refreshMs: number;
  readonly #retryMs: number;
  readonly #onAnswer: ((groups: ReadonlySet<string>) => void) | undefined;
  #groups: ReadonlySet<string> | undefined;

  constructor(opts: ApiDiscoveryOptions) {
    this.#client = opts.client;
    this.#log = opts.logger;
    this.#refreshMs = opts.refreshIntervalMs ?? DISCOVERY_REFRESH_INTERVAL_MS;
    this.#retryMs = opts.retryIntervalMs ?? DISCOVERY_RETRY_INTERVAL_MS;
    this.#onAnswer = opts.onAnswer;
  }

  /** The groups of the last answer; undefined until one came. */
  get groups(): ReadonlySet<string> | undefined {
    return this.#groups;
  }

  /** Asks now. A failure keeps the previous answer: CNIs are not installed and removed between two asks. */
  async refresh(signal?: AbortSignal): Promise<ReadonlySet<string> | undefined> {
    try {
      const res = await this.#client.request<ApiGroupList>({ method: "GET", path: "/apis", ...(signal ? { signal } : {}) });
      this.#groups = new Set((res.body.groups ?? []).map((g) => g.name ?? "").filter(Boolean));
      this.#onAnswer?.(this.#groups);
    } catch (err) {
      if (signal?.aborted) return this.#groups;
      const message = err instanceof Error ? err.message : String(err);
      if (this.#groups) this.#log.warn({ err: message }, "API discovery failed; using the previous answer until the next refresh");
      else this.#log.warn({ err: message, retryInMs: this.#retryMs }, "API discovery failed; IPAM readings wait for an answer");
    }
    return this.#groups;
  }

  /** Asks at once, then every refresh interval (sooner while there is no answer), until the signal aborts. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const groups = await this.refresh(signal);
      await sleep(groups ? this.#refreshMs : this.#retryMs, undefined, { signal }).catch(() => undefined);
    }
  }
}
