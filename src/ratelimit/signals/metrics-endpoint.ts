// A Prometheus endpoint that is not the API server: kube-scheduler's /metrics, AWS VPC CNI's ipamd.
// The API server's own /metrics goes through KubeClient (its credentials, its one agent); these are
// other hosts, so they get a small keep-alive agent of their own.

import { readFile } from "node:fs/promises";
import { Agent, request } from "undici";

/** Deadline for one scrape: a metrics page that takes longer is no live signal. */
export const METRICS_SCRAPE_TIMEOUT_MS = 5_000;
/** Keep-alive connections per endpoint: scrapes are periodic and sequential. */
export const METRICS_MAX_CONNECTIONS = 2;
/** Bytes of an error body quoted in the error message. */
export const METRICS_ERROR_BODY_CHARS = 200;

export interface MetricsEndpointOptions {
  url: string;
  /** Accept a self-signed serving certificate (kube-scheduler's default on its secure port). */
  insecureSkipTLSVerify?: boolean;
  /** CA bundle (PEM) for the endpoint's certificate. */
  caFile?: string;
  /**
   * Bearer token file, re-read on every scrape so a rotated ServiceAccount token keeps working.
   * kube-scheduler authorizes /metrics through the API server (nonResourceURLs /metrics, get).
   */
  bearerTokenFile?: string;
  timeoutMs?: number;
}

export class MetricsEndpointError extends Error {
  override readonly name = "MetricsEndpointError";
  readonly url: string;
  readonly status: number | undefined;
  constructor(url: string, message: string, status?: number) {
    super(`GET ${url}: ${message}`);
    this.url = url;
    this.status = status;
  }
}

export class MetricsEndpoint {
  readonly url: string;
  readonly #opts: MetricsEndpointOptions;
  #agent: Agent | undefined;

  constructor(opts: MetricsEndpointOptions) {
    const parsed = new URL(opts.url);
    // Only plain scrapes: a URL from a spec must not make the operator speak other protocols.
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new MetricsEndpointError(opts.url, `unsupported scheme ${parsed.protocol}`);
    this.url = opts.url;
    this.#opts = opts;
  }

  async #dispatcher(): Promise<Agent> {
    if (!this.#agent) {
      const ca = this.#opts.caFile ? await readFile(this.#opts.caFile) : undefined;
      this.#agent = new Agent({
        connect: { ca, rejectUnauthorized: !this.#opts.insecureSkipTLSVerify },
        connections: METRICS_MAX_CONNECTIONS,
      });
    }
    return this.#agent;
  }

  /** The exposition text; throws MetricsEndpointError on a non-2xx answer, timeouts and connection errors. */
  async scrape(signal?: AbortSignal): Promise<string> {
    const timeoutMs = this.#opts.timeoutMs ?? METRICS_SCRAPE_TIMEOUT_MS;
    const timeout = AbortSignal.timeout(timeoutMs);
    const headers: Record<string, string> = { accept: "text/plain;version=0.0.4" };
    if (this.#opts.bearerTokenFile) headers.authorization = `Bearer ${(await readFile(this.#opts.bearerTokenFile, "utf8")).trim()}`;
    try {
      const res = await request(this.url, {
        method: "GET",
        headers,
        dispatcher: await this.#dispatcher(),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
      const text = await res.body.text();
      if (res.statusCode >= 300) throw new MetricsEndpointError(this.url, `HTTP ${res.statusCode}: ${text.slice(0, METRICS_ERROR_BODY_CHARS)}`, res.statusCode);
      return text;
    } catch (err) {
      if (err instanceof MetricsEndpointError) throw err;
      if (timeout.aborted) throw new MetricsEndpointError(this.url, `no answer within ${timeoutMs} ms`);
      throw new MetricsEndpointError(this.url, err instanceof Error ? err.message : String(err));
    }
  }

  async close(): Promise<void> {
    await this.#agent?.close();
    this.#agent = undefined;
  }
}
