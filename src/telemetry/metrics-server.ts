import type { Server as TlsServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { KubeClient } from "../kube/client.ts";
import { startHttpServer } from "./http-server.ts";
import { MetricsAuthorizer } from "./metrics-auth.ts";
import { CERT_RELOAD_INTERVAL_MS, ServingCert } from "./serving-cert.ts";

// /metrics as the operator serves it (OperatorConfig.metricsSecure): over HTTPS, to bearer tokens
// whose user may `get` the nonResourceURL /metrics (TokenReview, then SubjectAccessReview, as
// controller-runtime's WithAuthenticationAndAuthorization filter), or over plain HTTP to anyone.

export interface MetricsServer {
  /** The port it listens on (the one asked for, or the one the system chose for 0). */
  port: number;
  /** Re-reads the certificate now, as the timer does every CERT_RELOAD_INTERVAL_MS; true when it changed. */
  reloadCertificate(): boolean;
  close(): void;
}

export async function startMetricsServer(opts: {
  port: number;
  host: string;
  secure: boolean;
  /** tls.crt and tls.key; absent: a self-signed certificate made now. */
  certDir?: string | undefined;
  /** Makes the TokenReviews and SubjectAccessReviews (the operator's own identity). */
  client: Pick<KubeClient, "create">;
  registry: Registry;
  logger: Logger;
  /** The certificate's clock; the reload timer runs on real time. */
  now?: () => number;
}): Promise<MetricsServer> {
  const now = opts.now ?? Date.now;
  const log = opts.logger;
  if (!opts.secure) {
    log.warn({ port: opts.port }, "metrics: plain http with no authentication (--metrics-secure=false); restrict who reaches the port");
    const server = await startHttpServer({ port: opts.port, host: opts.host, logger: log, registry: opts.registry });
    return { port: (server.address() as AddressInfo).port, reloadCertificate: () => false, close: () => server.close() };
  }
  const cert = new ServingCert({ certDir: opts.certDir, now: now(), logger: log });
  log.info({ port: opts.port, certificate: cert.current.source, notAfter: new Date(cert.current.notAfter).toISOString() }, "metrics: https, bearer token checked by TokenReview and SubjectAccessReview");
  const server = (await startHttpServer({
    port: opts.port,
    host: opts.host,
    logger: log,
    registry: opts.registry,
    metricsAuth: new MetricsAuthorizer({ client: opts.client, logger: log }),
    tls: { cert: cert.current.cert, key: cert.current.key },
  })) as TlsServer;
  // New connections get the new certificate; open ones keep theirs until they close.
  const reloadCertificate = () => {
    const next = cert.refresh(now());
    if (next) server.setSecureContext({ cert: next.cert, key: next.key });
    return next !== undefined;
  };
  const timer = setInterval(reloadCertificate, CERT_RELOAD_INTERVAL_MS);
  timer.unref();
  return {
    port: (server.address() as AddressInfo).port,
    reloadCertificate,
    close: () => {
      clearInterval(timer);
      server.close();
    },
  };
}
