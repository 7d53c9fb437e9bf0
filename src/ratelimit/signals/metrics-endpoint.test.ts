import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MetricsEndpoint, MetricsEndpointError } from "./metrics-endpoint.ts";

// A loopback HTTP server stands in for an exporter: what is tested is our HTTP handling, not a cluster.

let server: Server | undefined;
const endpoints: MetricsEndpoint[] = [];

async function serve(handler: Parameters<typeof createServer>[1]): Promise<string> {
  server = createServer(handler);
  await new Promise<void>((resolve) => server!.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
}

function endpoint(url: string, extra: Partial<ConstructorParameters<typeof MetricsEndpoint>[0]> = {}): MetricsEndpoint {
  const e = new MetricsEndpoint({ url, ...extra });
  endpoints.push(e);
  return e;
}

afterEach(async () => {
  for (const e of endpoints.splice(0)) await e.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

describe("MetricsEndpoint", () => {
  it("returns the text and sends the bearer token read from its file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "metrics-endpoint-"));
    writeFileSync(join(dir, "token"), "s3cret\n");
    let auth: string | undefined;
    const url = await serve((req, res) => {
      auth = req.headers.authorization;
      res.end('scheduler_pending_pods{queue="active"} 3\n');
    });
    const text = await endpoint(url, { bearerTokenFile: join(dir, "token") }).scrape();
    expect(text).toContain("scheduler_pending_pods");
    expect(auth).toBe("Bearer s3cret");
  });

  it("reports the status and the start of the body on an error", async () => {
    const url = await serve((_req, res) => {
      res.statusCode = 403;
      res.end("forbidden: User cannot get path /metrics");
    });
    const err = await endpoint(url).scrape().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MetricsEndpointError);
    expect((err as MetricsEndpointError).status).toBe(403);
    expect((err as Error).message).toContain("HTTP 403: forbidden");
  });

  it("gives up after its timeout", async () => {
    const url = await serve(() => undefined);
    const err = await endpoint(url, { timeoutMs: 50 }).scrape().catch((e: unknown) => e);
    expect((err as Error).message).toContain("no answer within 50 ms");
  });

  it("refuses schemes other than http and https", () => {
    expect(() => new MetricsEndpoint({ url: "file:///etc/passwd" })).toThrow(/unsupported scheme file:/);
  });
});
