import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createTlsServer, type Server as TlsServer } from "node:https";
import type { Registry } from "prom-client";
import type { Logger } from "pino";
import type { MetricsAuthorizer } from "./metrics-auth.ts";

// /metrics, /healthz and /readyz, as controller-runtime serves them: liveness says the process
// answers, readiness says its caches are synced (or it is a healthy standby).

export interface Probes {
  /** Names of checks that are not ready yet; empty means ready. */
  notReady(): string[];
}

export function startHttpServer(opts: {
  port: number;
  host: string;
  logger: Logger;
  registry?: Registry;
  probes?: Probes;
  /** Set: /metrics answers only authenticated, authorized scrapers (probes stay open). Unset: plain. */
  metricsAuth?: Pick<MetricsAuthorizer, "authorize">;
  /** Set: HTTPS with this PEM certificate and key (swap them later with setSecureContext). Unset: HTTP. */
  tls?: { cert: string; key: string };
}): Promise<Server | TlsServer> {
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path === "/metrics" && opts.registry) {
      const registry = opts.registry;
      const allowed = opts.metricsAuth ? opts.metricsAuth.authorize(req.headers.authorization, path) : Promise.resolve({ status: 200, reason: "" });
      allowed
        .then(async ({ status, reason }) => {
          if (status !== 200) {
            res.writeHead(status, { "content-type": "text/plain" });
            res.end(reason);
            return;
          }
          const text = await registry.metrics();
          res.writeHead(200, { "content-type": registry.contentType });
          res.end(text);
        })
        .catch((err: unknown) => {
          res.writeHead(500);
          res.end(String(err));
        });
      return;
    }
    if (path === "/healthz" || path === "/livez") {
      res.writeHead(200, { "content-type": "text/plain" });
      res.end("ok");
      return;
    }
    if (path === "/readyz" && opts.probes) {
      const waiting = opts.probes.notReady();
      res.writeHead(waiting.length === 0 ? 200 : 503, { "content-type": "text/plain" });
      res.end(waiting.length === 0 ? "ok" : `not ready: ${waiting.join(", ")}`);
      return;
    }
    res.writeHead(404);
    res.end();
  };
  const server = opts.tls ? createTlsServer({ cert: opts.tls.cert, key: opts.tls.key }, handle) : createServer(handle);
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      const address = server.address();
      const paths = [...(opts.registry ? ["/metrics"] : []), ...(opts.probes ? ["/healthz", "/readyz"] : [])];
      opts.logger.info({ address, paths, authenticated: opts.metricsAuth !== undefined }, opts.tls ? "serving https" : "serving http");
      resolve(server);
    });
  });
}
