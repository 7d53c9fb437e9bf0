import type { AddressInfo } from "node:net";
import { pino } from "pino";
import { Registry } from "prom-client";
import { request } from "undici";
import { describe, expect, it } from "vitest";
import { startHttpServer } from "./http-server.ts";
import { METRICS_AUTH_CACHE_TTL_MS, MetricsAuthorizer } from "./metrics-auth.ts";

const logger = pino({ level: "silent" });

/** An API server that knows two tokens: a scraper bound to /metrics, and a user who is not. */
function fakeApi() {
  const calls: string[] = [];
  const users: Record<string, string> = { "scraper-token": "system:serviceaccount:monitoring:prometheus", "other-token": "alice" };
  const client = {
    create: <T>(path: string, body: unknown): Promise<T> => {
      calls.push(path.split("/").pop() ?? "");
      const spec = (body as { spec: { token?: string; user?: string; nonResourceAttributes?: { path: string; verb: string } } }).spec;
      if (path.endsWith("/tokenreviews")) {
        const username = spec.token === undefined ? undefined : users[spec.token];
        return Promise.resolve((username ? { status: { authenticated: true, user: { username, groups: ["system:authenticated"] } } } : { status: { authenticated: false, error: "invalid bearer token" } }) as T);
      }
      const allowed = spec.user === users["scraper-token"] && spec.nonResourceAttributes?.path === "/metrics" && spec.nonResourceAttributes.verb === "get";
      return Promise.resolve({ status: { allowed } } as T);
    },
  };
  return { client, calls };
}

describe("MetricsAuthorizer", () => {
  it("serves a scraper whose token is valid and whose RBAC allows get on the path, and no one else", async () => {
    const { client } = fakeApi();
    const auth = new MetricsAuthorizer({ client, logger });
    expect(await auth.authorize("Bearer scraper-token", "/metrics")).toEqual({ status: 200, reason: "system:serviceaccount:monitoring:prometheus" });
    expect((await auth.authorize("Bearer other-token", "/metrics")).status).toBe(403);
    expect(await auth.authorize("Bearer forged", "/metrics")).toEqual({ status: 401, reason: "invalid bearer token" });
    expect((await auth.authorize(undefined, "/metrics")).status).toBe(401);
    expect((await auth.authorize("Basic dXNlcjpwdw==", "/metrics")).status).toBe(401);
  });

  it("reuses a verdict for METRICS_AUTH_CACHE_TTL_MS, then asks again", async () => {
    const { client, calls } = fakeApi();
    let now = 0;
    const auth = new MetricsAuthorizer({ client, logger, now: () => now });
    await auth.authorize("Bearer scraper-token", "/metrics");
    await auth.authorize("Bearer scraper-token", "/metrics");
    expect(calls).toEqual(["tokenreviews", "subjectaccessreviews"]);
    now += METRICS_AUTH_CACHE_TTL_MS;
    await auth.authorize("Bearer scraper-token", "/metrics");
    expect(calls).toHaveLength(4);
  });

  it("refuses when the API server cannot be asked", async () => {
    const auth = new MetricsAuthorizer({ client: { create: () => Promise.reject(new Error("connection refused")) }, logger });
    expect((await auth.authorize("Bearer scraper-token", "/metrics")).status).toBe(403);
  });
});

describe("startHttpServer with metricsAuth", () => {
  it("answers /metrics by the verdict and leaves the probes open", async () => {
    const registry = new Registry();
    const server = await startHttpServer({ port: 0, host: "127.0.0.1", logger, registry, metricsAuth: new MetricsAuthorizer({ client: fakeApi().client, logger }) });
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const get = async (path: string, token?: string) => {
        const res = await request(`${base}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
        await res.body.text();
        return res.statusCode;
      };
      expect(await get("/metrics")).toBe(401);
      expect(await get("/metrics", "other-token")).toBe(403);
      expect(await get("/metrics", "scraper-token")).toBe(200);
      expect(await get("/healthz")).toBe(200);
    } finally {
      server.close();
    }
  });
});
