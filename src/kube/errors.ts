import type { IncomingHttpHeaders } from "node:http";

// Errors from the API server, carrying what a person needs to act: the request, the HTTP code,
// the Status reason and the server's own message.

export interface KubeStatusBody {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: { name?: string; kind?: string; causes?: { field?: string; message?: string; reason?: string }[]; retryAfterSeconds?: number };
}

export class ApiError extends Error {
  override readonly name = "ApiError";
  readonly code: number;
  readonly reason: string;
  readonly method: string;
  readonly path: string;
  readonly status: KubeStatusBody | undefined;
  readonly retryAfterSeconds: number | undefined;
  /** Response headers, e.g. X-Kubernetes-PF-PriorityLevel-UID of a 429. */
  readonly headers: IncomingHttpHeaders;

  constructor(opts: {
    method: string;
    path: string;
    code: number;
    status?: KubeStatusBody;
    retryAfterSeconds?: number;
    text?: string;
    headers?: IncomingHttpHeaders;
  }) {
    const reason = opts.status?.reason ?? `HTTP${opts.code}`;
    const message = opts.status?.message ?? opts.text?.slice(0, 500) ?? "";
    super(`${opts.method} ${opts.path}: ${opts.code} ${reason}${message ? `: ${message}` : ""}`);
    this.code = opts.code;
    this.reason = reason;
    this.method = opts.method;
    this.path = opts.path;
    this.status = opts.status;
    this.retryAfterSeconds = opts.retryAfterSeconds;
    this.headers = opts.headers ?? {};
  }

  /** The API server's message alone, for status conditions and events. */
  get serverMessage(): string {
    return this.status?.message ?? this.message;
  }
}

/** The request never got an HTTP answer in time (or the connection broke). */
export class RequestTimeoutError extends Error {
  override readonly name = "RequestTimeoutError";
  readonly method: string;
  readonly path: string;
  readonly timeoutMs: number;
  constructor(method: string, path: string, timeoutMs: number) {
    super(`${method} ${path}: no response within ${timeoutMs} ms`);
    this.method = method;
    this.path = path;
    this.timeoutMs = timeoutMs;
  }
}

/** A watch that carried nothing, not even a bookmark, for too long: it is cut, to be resumed. */
export class WatchIdleError extends Error {
  override readonly name = "WatchIdleError";
  readonly path: string;
  readonly idleMs: number;
  constructor(path: string, idleMs: number) {
    super(`WATCH ${path}: nothing received for ${Math.round(idleMs / 1000)} s`);
    this.path = path;
    this.idleMs = idleMs;
  }
}

export const isNotFound = (err: unknown): boolean => err instanceof ApiError && err.code === 404;
export const isAlreadyExists = (err: unknown): boolean => err instanceof ApiError && err.code === 409 && err.reason === "AlreadyExists";
export const isConflict = (err: unknown): boolean => err instanceof ApiError && err.code === 409 && err.reason === "Conflict";
export const isGone = (err: unknown): boolean => err instanceof ApiError && err.code === 410;
export const isForbidden = (err: unknown): boolean => err instanceof ApiError && err.code === 403;
export const isTooManyRequests = (err: unknown): boolean => err instanceof ApiError && err.code === 429;

/**
 * Whether retrying the same request can succeed: throttling, server-side trouble, timeouts and
 * broken connections. A 4xx the server judged (422 Invalid, 403 Forbidden, 400) will fail again.
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof RequestTimeoutError) return true;
  if (err instanceof ApiError) return err.code === 429 || err.code >= 500;
  return err instanceof Error && "code" in err && typeof err.code === "string" && /^(ECONN|EPIPE|ETIMEDOUT|UND_ERR|ERR_HTTP2_STREAM)/.test(err.code);
}
