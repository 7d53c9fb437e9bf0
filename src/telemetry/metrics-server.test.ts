import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { Counter, Registry } from "prom-client";
import { Agent, request } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { startMetricsServer, type MetricsServer } from "./metrics-server.ts";
import { CERT_FILE, KEY_FILE, selfSignedCert } from "./serving-cert.ts";

// The operator's /metrics server as --metrics-secure chooses it. The TokenReview and
// SubjectAccessReview are answered by a stand-in here; test/integration/metrics-secure.test.ts
// runs the operator against the real API server.

const logger = pino({ level: "silent" });

/** An API server that knows one token, whose user may get /metrics. */
const api = {
  create: <T>(path: string, body: unknown): Promise<T> => {
    const spec = (body as { spec: { token?: string; user?: string } }).spec;
    if (path.endsWith("/tokenreviews")) {
      return Promise.resolve((spec.token === "scraper" ? { status: { authenticated: true, user: { username: "prometheus" } } } : { status: { authenticated: false } }) as T);
    }
    return Promise.resolve({ status: { allowed: spec.user === "prometheus" } } as T);
  },
};

function registry(): Registry {
  const r = new Registry();
  new Counter({ name: "batchrollout_test_total", help: "a sample", registers: [r] }).inc();
  return r;
}

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function start(opts: { secure: boolean; certDir?: string }): Promise<MetricsServer> {
  const server = await startMetricsServer({ port: 0, host: "127.0.0.1", client: api, registry: registry(), logger, ...opts });
  cleanups.push(() => server.close());
  return server;
}

function certDir(pair: { cert: string; key: string }): string {
  const dir = mkdtempSync(join(tmpdir(), "metrics-cert-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, CERT_FILE), pair.cert);
  writeFileSync(join(dir, KEY_FILE), pair.key);
  return dir;
}

/** The certificate the server presents to a new connection. */
function presented(port: number): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, rejectUnauthorized: false }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.end();
      if (cert) resolve(cert);
      else reject(new Error("no certificate presented"));
    });
    socket.once("error", reject);
  });
}

async function get(url: string, opts: { token?: string; ca?: string } = {}): Promise<{ status: number; text: string }> {
  const dispatcher = new Agent({ connect: opts.ca ? { ca: opts.ca } : { rejectUnauthorized: false } });
  try {
    const res = await request(url, { dispatcher, ...(opts.token ? { headers: { authorization: `Bearer ${opts.token}` } } : {}) });
    return { status: res.statusCode, text: await res.body.text() };
  } finally {
    await dispatcher.close();
  }
}

describe("startMetricsServer", () => {
  it("secure: serves https to an authorized bearer token only, with a self-signed certificate by default", async () => {
    const server = await start({ secure: true });
    const url = `https://127.0.0.1:${server.port}/metrics`;
    expect(await get(url)).toMatchObject({ status: 401 });
    expect(await get(url, { token: "forged" })).toMatchObject({ status: 401 });
    const ok = await get(url, { token: "scraper" });
    expect(ok.status).toBe(200);
    expect(ok.text).toContain("batchrollout_test_total 1");
    // Plain http to the TLS port gets no metrics.
    expect(await get(`http://127.0.0.1:${server.port}/metrics`).catch(() => ({ status: 0 }))).not.toMatchObject({ status: 200 });
    expect((await presented(server.port)).subjectAltName).toContain("IP Address:127.0.0.1");
  });

  it("secure with a certificate directory: presents its certificate (a client can verify it) and picks up a rotation", async () => {
    const first = selfSignedCert({ now: Date.now(), hosts: ["localhost"] });
    const dir = certDir(first);
    const server = await start({ secure: true, certDir: dir });
    const verified = await get(`https://localhost:${server.port}/metrics`, { token: "scraper", ca: first.cert });
    expect(verified.status).toBe(200);
    expect((await presented(server.port)).fingerprint256).toBe(new X509Certificate(first.cert).fingerprint256);

    expect(server.reloadCertificate()).toBe(false);
    const second = selfSignedCert({ now: Date.now(), hosts: ["localhost"] });
    writeFileSync(join(dir, CERT_FILE), second.cert);
    writeFileSync(join(dir, KEY_FILE), second.key);
    expect(server.reloadCertificate()).toBe(true);
    expect((await presented(server.port)).fingerprint256).toBe(new X509Certificate(second.cert).fingerprint256);
  });

  it("plain: serves http to anyone", async () => {
    const server = await start({ secure: false });
    const res = await get(`http://127.0.0.1:${server.port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.text).toContain("batchrollout_test_total 1");
  });
});
