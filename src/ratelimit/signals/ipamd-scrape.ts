// AWS VPC CNI's IP headroom, from ipamd's metrics page at the URL a rollout names
// (spec.guards.ipam.metricsURL). Every rollout's reading asks, so each URL is scraped at most once per
// interval and the last page is kept between scrapes.

import type { Logger } from "pino";
import { awsVpcCniHeadroom } from "../ipam/aws-vpc-cni.ts";
import type { IpHeadroom } from "../ipam/index.ts";
import { MetricsEndpoint, MetricsEndpointError } from "./metrics-endpoint.ts";

/** Least time between two scrapes of one ipamd metrics URL; every rollout's reconcile asks. */
export const AWS_VPC_CNI_SCRAPE_MIN_INTERVAL_MS = 5_000;

export type MetricsSource = Pick<MetricsEndpoint, "scrape" | "url" | "close">;

export interface IpamdScrapesOptions {
  logger: Logger;
  clock: () => number;
  /** Lifetime of the scrapes. */
  signal: AbortSignal;
  /** How an ipamd metrics URL is fetched; tests replace it. */
  metricsEndpoint?: (url: string) => MetricsSource;
}

interface Entry {
  source: MetricsSource;
  at: number;
  text?: string;
  error?: string;
}

export class IpamdScrapes {
  readonly #log: Logger;
  readonly #clock: () => number;
  readonly #signal: AbortSignal;
  readonly #endpointFor: (url: string) => MetricsSource;
  readonly #endpoints = new Map<string, Entry>();

  constructor(opts: IpamdScrapesOptions) {
    this.#log = opts.logger;
    this.#clock = opts.clock;
    this.#signal = opts.signal;
    this.#endpointFor = opts.metricsEndpoint ?? ((url) => new MetricsEndpoint({ url }));
  }

  /** The headroom ipamd at `url` reports, scraping it when the last scrape is older than the interval. */
  async headroom(url: string | undefined): Promise<IpHeadroom> {
    if (!url) return { provider: "AwsVpcCni", free: undefined, message: "spec.guards.ipam.metricsURL is required for provider AwsVpcCni; IP headroom unknown" };
    let entry = this.#endpoints.get(url);
    if (!entry) {
      try {
        entry = { source: this.#endpointFor(url), at: -Infinity };
      } catch (err) {
        return { provider: "AwsVpcCni", free: undefined, message: `spec.guards.ipam.metricsURL ${url}: ${err instanceof Error ? err.message : String(err)}` };
      }
      this.#endpoints.set(url, entry);
    }
    const now = this.#clock();
    if (now - entry.at >= AWS_VPC_CNI_SCRAPE_MIN_INTERVAL_MS) {
      entry.at = now;
      await this.#scrape(url, entry);
    }
    if (entry.text === undefined) return { provider: "AwsVpcCni", free: undefined, message: `ipamd metrics at ${url} unavailable (${entry.error ?? "not scraped yet"}); IP headroom unknown` };
    const { perSource: _perSource, ...headroom } = awsVpcCniHeadroom([{ source: url, text: entry.text }]);
    return headroom;
  }

  async #scrape(url: string, entry: Entry): Promise<void> {
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

  /** Closes the metrics connections. */
  async close(): Promise<void> {
    await Promise.all([...this.#endpoints.values()].map((e) => e.source.close()));
    this.#endpoints.clear();
  }
}
