import { Counter, Histogram, type Registry } from "prom-client";
import type { KubeClient } from "./client.ts";

// client-go's request metrics, under the names controller-runtime exports them with.

/** Buckets of rest_client_request_duration_seconds, as client-go's. */
export const REQUEST_DURATION_BUCKETS = [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60];

export function instrumentClient(client: KubeClient, registry: Registry): () => void {
  const host = new URL(client.server).host;
  const requests = new Counter({
    name: "rest_client_requests_total",
    help: "Number of HTTP requests, partitioned by status code, method, and host.",
    labelNames: ["code", "method", "host"],
    registers: [registry],
  });
  const duration = new Histogram({
    name: "rest_client_request_duration_seconds",
    help: "Request latency in seconds. Broken down by verb, and host.",
    labelNames: ["verb", "host"],
    buckets: REQUEST_DURATION_BUCKETS,
    registers: [registry],
  });
  return client.onResponse((o) => {
    requests.inc({ code: o.code === 0 ? "<error>" : String(o.code), method: o.method, host });
    duration.observe({ verb: o.method, host }, o.durationMs / 1000);
  });
}
