import type { IncomingHttpHeaders } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, type Client, errors as undiciErrors, request } from "undici";
import { bodyLines } from "./body-lines.ts";
import { ApiError, RequestTimeoutError, WatchIdleError, type KubeStatusBody } from "./errors.ts";
import { FencedError, fenceInterceptor } from "./fence.ts";
import { type ClusterAccess, loadClusterAccess } from "./kubeconfig.ts";

// The one HTTP client every request goes through. @kubernetes/client-node 2.x builds a new undici
// Agent (so a new TLS connection) for every API call and has no timeouts, no 429 handling and no
// request metrics; we load credentials ourselves (kubeconfig.ts) and talk HTTP through a single
// keep-alive Agent.

/** Deadline for one request without a response, as client-go's default for non-watch calls. */
export const REQUEST_TIMEOUT_MS = 30_000;
/** 429 retries per request, honouring Retry-After each time (client-go's maxRetries). */
export const MAX_THROTTLE_RETRIES = 10;
/** Upper bound on a Retry-After we wait for: APF never asks for more than 32 s. */
export const MAX_RETRY_AFTER_S = 32;
/** Wait when a 429 carries no Retry-After. */
export const DEFAULT_RETRY_AFTER_S = 1;
/**
 * Connections to the API server. undici negotiates HTTP/2 by ALPN (as client-go does), so requests
 * multiplex over few of them; the bound matters only where HTTP/1.1 is all that is offered.
 */
export const MAX_CONNECTIONS = 64;
/**
 * HTTP/2 flow-control windows, as client-go's (Go's http2 transport: 4 MiB per stream, 1 GiB per
 * connection). Every watch and write shares a connection or two; with undici's defaults (256 KiB,
 * 512 KiB) a pause of our event loop stops the API server writing to all our watches at once, their
 * buffers there fill, and it cuts them for not keeping up (seen at --v=1 during a 10,000-pod run:
 * our pod and Pending-pod watches cut together, input and result buffers full), and each cut costs a relist.
 */
export const H2_STREAM_WINDOW_BYTES = 4 << 20;
export const H2_CONNECTION_WINDOW_BYTES = 1 << 30;
/** Idle keep-alive connections are closed after this, well before a load balancer would. */
export const KEEP_ALIVE_TIMEOUT_MS = 30_000;
/** Credentials (token files, exec plugins) are re-read this often, as client-go re-reads token files. */
export const CREDENTIALS_REFRESH_MS = 60_000;
/** Server-side timeout of a watch; client-go picks 5–10 minutes at random, as we do. */
export const WATCH_TIMEOUT_S = { min: 300, max: 600 } as const;
/**
 * A watch with nothing on it for this long has stalled: kube-apiserver sends a watch that allows
 * bookmarks one a minute even when nothing changes, so three missed bookmarks mean events are lost too.
 */
export const WATCH_IDLE_TIMEOUT_MS = 3 * 60_000;

export type Query = Record<string, string | number | boolean | undefined>;

/**
 * The windows as undici takes them. undici 8 reads the stream window from h2Options.initialWindowSize,
 * though its types document settings.initialWindowSize: both are set.
 */
export function http2Windows(): Client.H2Options & { initialWindowSize: number } {
  return {
    connectionWindowSize: H2_CONNECTION_WINDOW_BYTES,
    initialWindowSize: H2_STREAM_WINDOW_BYTES,
    settings: { initialWindowSize: H2_STREAM_WINDOW_BYTES },
  };
}

export interface RequestOptions {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  path: string;
  query?: Query;
  body?: unknown;
  /** For PATCH: "application/merge-patch+json" (default), "application/json-patch+json", ... */
  contentType?: string;
  accept?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Retry 429s after Retry-After (default true). Callers with their own pacing may turn it off. */
  retryThrottled?: boolean;
  /** Skip parsing a successful response body (e.g. pod creates, where only the code matters). */
  discardBody?: boolean;
  /**
   * "text" returns the body as a string; "lines" reads it line by line and returns the lines
   * `keepLine` accepts (string[]), never holding the whole body: kube-apiserver /metrics is megabytes,
   * of which a signal needs a few hundred lines. Default "json".
   */
  responseType?: "json" | "text" | "lines";
  /** For responseType "lines": which lines to keep (default: all). */
  keepLine?: (line: string) => boolean;
  /**
   * Asked as the request starts on a connection, the last moment before it is sent; when it says
   * no, the request fails with a FencedError and nothing is sent (fence.ts).
   */
  fence?: () => boolean;
}

export interface KubeResponse<T> {
  code: number;
  headers: IncomingHttpHeaders;
  body: T;
}

/** What observers (metrics, the API-server signal) learn about every response or failure. */
export interface ResponseObservation {
  method: string;
  path: string;
  /** HTTP code, or 0 when no response arrived (timeout, broken connection). */
  code: number;
  durationMs: number;
  headers: IncomingHttpHeaders;
  retryAfterSeconds?: number;
}

export type ResponseObserver = (o: ResponseObservation) => void;

export interface WatchEvent<T> {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: T;
}

export function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined) return undefined;
  const seconds = Number(raw);
  return Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds, MAX_RETRY_AFTER_S) : undefined;
}

function buildQuery(query: Query | undefined): string {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, String(v));
  const s = params.toString();
  return s ? `?${s}` : "";
}

export class KubeClient {
  readonly server: string;
  readonly #access: ClusterAccess;
  readonly #agent: Agent;
  #headers: Record<string, string> = {};
  #credentialsAt = 0;
  readonly #observers = new Set<ResponseObserver>();

  private constructor(access: ClusterAccess, agent: Agent) {
    this.#access = access;
    this.#agent = agent;
    this.server = access.server.replace(/\/$/, "");
  }

  /** From a kubeconfig file, or the default chain (KUBECONFIG, ~/.kube/config, in-cluster). */
  static async fromKubeconfig(file?: string): Promise<KubeClient> {
    const access = await loadClusterAccess(file ? { file } : {});
    const { tls } = access;
    const agent = new Agent({
      connect: { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: tls.rejectUnauthorized, servername: tls.servername },
      connections: MAX_CONNECTIONS,
      allowH2: true,
      h2Options: http2Windows(),
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    });
    const client = new KubeClient(access, agent);
    await client.#refreshCredentials();
    return client;
  }

  /** The user this client authenticates as, as written in the kubeconfig. */
  get userName(): string {
    return this.#access.userName;
  }

  onResponse(observer: ResponseObserver): () => void {
    this.#observers.add(observer);
    return () => this.#observers.delete(observer);
  }

  async #refreshCredentials(): Promise<void> {
    this.#headers = await this.#access.authHeaders();
    this.#credentialsAt = Date.now();
  }

  async #authHeaders(): Promise<Record<string, string>> {
    if (Date.now() - this.#credentialsAt > CREDENTIALS_REFRESH_MS) await this.#refreshCredentials();
    return this.#headers;
  }

  #observe(o: ResponseObservation): void {
    for (const observer of this.#observers) observer(o);
  }

  async request<T = unknown>(opts: RequestOptions): Promise<KubeResponse<T>> {
    const retryThrottled = opts.retryThrottled ?? true;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.#once<T>(opts);
      } catch (err) {
        const throttled = err instanceof ApiError && (err.code === 429 || (err.code >= 500 && err.retryAfterSeconds !== undefined));
        if (!throttled || !retryThrottled || attempt >= MAX_THROTTLE_RETRIES) throw err;
        await sleep((err.retryAfterSeconds ?? DEFAULT_RETRY_AFTER_S) * 1000, undefined, { signal: opts.signal });
      }
    }
  }

  async #once<T>(opts: RequestOptions): Promise<KubeResponse<T>> {
    const timeoutMs = opts.timeoutMs ?? REQUEST_TIMEOUT_MS;
    const headers: Record<string, string> = { ...(await this.#authHeaders()), accept: opts.accept ?? "application/json" };
    let body: string | undefined;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers["content-type"] = opts.contentType ?? (opts.method === "PATCH" ? "application/merge-patch+json" : "application/json");
    }
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
    const url = `${this.server}${opts.path}${buildQuery(opts.query)}`;
    const started = performance.now();
    let res;
    try {
      const dispatcher = opts.fence ? this.#agent.compose(fenceInterceptor(opts.fence, opts.method, opts.path)) : this.#agent;
      res = await request(url, { method: opts.method, headers, body, dispatcher, signal });
    } catch (err) {
      // Never sent: no sample for the API server's signals.
      if (err instanceof FencedError) throw err;
      this.#observe({ method: opts.method, path: opts.path, code: 0, durationMs: performance.now() - started, headers: {} });
      if (timeout.aborted) throw new RequestTimeoutError(opts.method, opts.path, timeoutMs);
      throw err;
    }
    const code = res.statusCode;
    const retryAfterSeconds = parseRetryAfter(res.headers["retry-after"]);
    let text = "";
    let kept: string[] | undefined;
    try {
      if (opts.discardBody && code < 300) await res.body.dump();
      else if (opts.responseType === "lines" && code < 300) {
        const keep = opts.keepLine ?? (() => true);
        kept = [];
        for await (const line of bodyLines(res.body)) if (keep(line)) kept.push(line);
      } else text = await res.body.text();
    } catch (err) {
      if (timeout.aborted) throw new RequestTimeoutError(opts.method, opts.path, timeoutMs);
      throw err;
    }
    this.#observe({ method: opts.method, path: opts.path, code, durationMs: performance.now() - started, headers: res.headers, retryAfterSeconds });
    if (code >= 400) {
      let status: KubeStatusBody | undefined;
      try {
        status = JSON.parse(text) as KubeStatusBody;
      } catch {
        status = undefined;
      }
      throw new ApiError({ method: opts.method, path: opts.path, code, status, retryAfterSeconds, text, headers: res.headers });
    }
    const parsed = kept ?? (opts.responseType === "text" ? text : text ? JSON.parse(text) : undefined);
    return { code, headers: res.headers, body: parsed as T };
  }

  get<T>(path: string, query?: Query, signal?: AbortSignal): Promise<T> {
    return this.request<T>({ method: "GET", path, query, signal }).then((r) => r.body);
  }

  create<T>(path: string, body: unknown, opts: Partial<RequestOptions> = {}): Promise<T> {
    return this.request<T>({ ...opts, method: "POST", path, body }).then((r) => r.body);
  }

  patch<T>(path: string, body: unknown, contentType = "application/merge-patch+json", opts: Partial<RequestOptions> = {}): Promise<T> {
    return this.request<T>({ ...opts, method: "PATCH", path, body, contentType }).then((r) => r.body);
  }

  delete<T>(path: string, body?: unknown, opts: Partial<RequestOptions> = {}): Promise<T> {
    return this.request<T>({ ...opts, method: "DELETE", path, body }).then((r) => r.body);
  }

  /**
   * Streams a watch as events. Ends when the server closes the watch (its timeoutSeconds) or the
   * signal aborts; an HTTP error (410 Gone for an expired resourceVersion) throws an ApiError, and a
   * stream silent for `idleTimeoutMs` a WatchIdleError.
   */
  async *watch<T>(path: string, query: Query, signal: AbortSignal, accept = "application/json", idleTimeoutMs = WATCH_IDLE_TIMEOUT_MS): AsyncGenerator<WatchEvent<T>> {
    const span = WATCH_TIMEOUT_S.max - WATCH_TIMEOUT_S.min;
    const timeoutSeconds = WATCH_TIMEOUT_S.min + Math.floor(Math.random() * span);
    const fullQuery = { ...query, watch: true, allowWatchBookmarks: true, timeoutSeconds };
    const headers = { ...(await this.#authHeaders()), accept };
    const res = await request(`${this.server}${path}${buildQuery(fullQuery)}`, {
      method: "GET",
      headers,
      dispatcher: this.#agent,
      signal,
      headersTimeout: REQUEST_TIMEOUT_MS,
      bodyTimeout: idleTimeoutMs,
    });
    if (res.statusCode >= 400) {
      const text = await res.body.text();
      let status: KubeStatusBody | undefined;
      try {
        status = JSON.parse(text) as KubeStatusBody;
      } catch {
        status = undefined;
      }
      throw new ApiError({ method: "WATCH", path, code: res.statusCode, status, text });
    }
    try {
      for await (const line of bodyLines(res.body)) {
        if (line.trim()) yield JSON.parse(line) as WatchEvent<T>;
      }
    } catch (err) {
      if (signal.aborted) return;
      if (err instanceof undiciErrors.BodyTimeoutError) throw new WatchIdleError(path, idleTimeoutMs);
      throw err;
    } finally {
      if (!res.body.destroyed) res.body.destroy();
    }
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}
