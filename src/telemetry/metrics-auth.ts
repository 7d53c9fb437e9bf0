import type { Logger } from "pino";
import type { KubeClient } from "../kube/client.ts";

// Authentication and authorization of /metrics scrapes, as controller-runtime's
// WithAuthenticationAndAuthorization filter does: the bearer token is checked with a TokenReview,
// and the user it names with a SubjectAccessReview for `get` on the nonResourceURL path. A scraper
// needs a ClusterRole with `nonResourceURLs: ["/metrics"], verbs: ["get"]`; the operator needs
// `create` on tokenreviews and subjectaccessreviews.

/**
 * How long a token's verdict is reused. A scraper comes every 15-60 s with the same token, so a
 * short cache saves two API calls per scrape while a revoked token or binding stops working soon.
 */
export const METRICS_AUTH_CACHE_TTL_MS = 10_000;
/** Distinct tokens remembered at once; past it the oldest verdict is dropped (a bound on memory). */
export const METRICS_AUTH_CACHE_MAX_ENTRIES = 256;

export interface AuthVerdict {
  /** HTTP status to answer: 200 to serve, 401 without a valid token, 403 when RBAC says no. */
  status: 200 | 401 | 403;
  reason: string;
}

interface TokenReview {
  status?: { authenticated?: boolean; error?: string; user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> } };
}
interface SubjectAccessReview {
  status?: { allowed?: boolean; reason?: string };
}

export class MetricsAuthorizer {
  readonly #client: Pick<KubeClient, "create">;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #cache = new Map<string, { verdict: AuthVerdict; expires: number }>();

  constructor(opts: { client: Pick<KubeClient, "create">; logger: Logger; now?: () => number }) {
    this.#client = opts.client;
    this.#log = opts.logger;
    this.#now = opts.now ?? Date.now;
  }

  /** The verdict for a request's Authorization header on `path`. Errors from the API server refuse. */
  async authorize(authorization: string | undefined, path: string): Promise<AuthVerdict> {
    const token = /^Bearer\s+(\S+)$/i.exec(authorization ?? "")?.[1];
    if (!token) return { status: 401, reason: "a bearer token is required" };
    const key = `${path} ${token}`;
    const cached = this.#cache.get(key);
    if (cached && cached.expires > this.#now()) return cached.verdict;
    const verdict = await this.#review(token, path).catch((err: unknown): AuthVerdict => {
      this.#log.warn({ err: err instanceof Error ? err.message : String(err) }, "metrics auth: review failed");
      return { status: 403, reason: "the authentication or authorization review failed" };
    });
    this.#cache.delete(key);
    this.#cache.set(key, { verdict, expires: this.#now() + METRICS_AUTH_CACHE_TTL_MS });
    // A Map iterates in insertion order, so the first key is the oldest verdict.
    if (this.#cache.size > METRICS_AUTH_CACHE_MAX_ENTRIES) this.#cache.delete(this.#cache.keys().next().value as string);
    return verdict;
  }

  async #review(token: string, path: string): Promise<AuthVerdict> {
    const review = await this.#client.create<TokenReview>("/apis/authentication.k8s.io/v1/tokenreviews", {
      apiVersion: "authentication.k8s.io/v1",
      kind: "TokenReview",
      spec: { token },
    });
    const user = review.status?.user;
    if (!review.status?.authenticated || !user?.username) return { status: 401, reason: review.status?.error ?? "the token is not valid" };
    const access = await this.#client.create<SubjectAccessReview>("/apis/authorization.k8s.io/v1/subjectaccessreviews", {
      apiVersion: "authorization.k8s.io/v1",
      kind: "SubjectAccessReview",
      spec: { user: user.username, uid: user.uid, groups: user.groups, extra: user.extra, nonResourceAttributes: { path, verb: "get" } },
    });
    if (!access.status?.allowed) return { status: 403, reason: `${user.username} may not get ${path}${access.status?.reason ? `: ${access.status.reason}` : ""}` };
    return { status: 200, reason: user.username };
  }
}
