import { pino } from "pino";
import { describe, expect, it } from "vitest";
import type { KubeResponse, RequestOptions, ResponseObservation } from "../../kube/client.ts";
import { ApiError } from "../../kube/errors.ts";
import { APISERVER_METRICS_INTERVAL_MS, APF_NAMES_REFRESH_MIN_INTERVAL_MS, ApiServerSignal, isPodWrite } from "./apiserver.ts";

interface LogLine {
  level: number;
  msg: string;
}

const FS_UID = "fs-uid-1";
const PL_UID = "pl-uid-1";

function lists() {
  return {
    "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas": { items: [{ metadata: { name: "service-accounts", uid: FS_UID } }] },
    "/apis/flowcontrol.apiserver.k8s.io/v1/prioritylevelconfigurations": { items: [{ metadata: { name: "workload-low", uid: PL_UID } }] },
  } as Record<string, unknown>;
}

function metricsText(inQueue: number, fast: number, slow: number, rejected: number): string {
  const pl = 'flow_schema="service-accounts",priority_level="workload-low"';
  return [
    `apiserver_flowcontrol_current_inqueue_requests{${pl}} ${inQueue}`,
    `apiserver_flowcontrol_current_inqueue_requests{flow_schema="other",priority_level="workload-high"} 500`,
    `apiserver_flowcontrol_request_wait_duration_seconds_bucket{execute="true",${pl},le="0.1"} ${fast}`,
    `apiserver_flowcontrol_request_wait_duration_seconds_bucket{execute="true",${pl},le="1"} ${fast + slow}`,
    `apiserver_flowcontrol_request_wait_duration_seconds_bucket{execute="true",${pl},le="+Inf"} ${fast + slow}`,
    `apiserver_flowcontrol_rejected_requests_total{${pl},reason="queue-full"} ${rejected}`,
    `apiserver_flowcontrol_rejected_requests_total{flow_schema="other",priority_level="workload-high",reason="queue-full"} 999`,
  ].join("\n");
}

function setup(opts: { metrics?: () => string | ApiError; lists?: () => Record<string, unknown> | ApiError } = {}) {
  const requests: RequestOptions[] = [];
  const lines: LogLine[] = [];
  let now = 1_000_000;
  const client = {
    request: async <T>(o: RequestOptions): Promise<KubeResponse<T>> => {
      requests.push(o);
      if (o.path === "/metrics") {
        const text = opts.metrics?.() ?? "";
        if (text instanceof ApiError) throw text;
        const body = o.responseType === "lines" ? text.split("\n").filter(o.keepLine ?? (() => true)) : text;
        return { code: 200, headers: {}, body: body as T };
      }
      const all = opts.lists?.() ?? lists();
      if (all instanceof ApiError) throw all;
      return { code: 200, headers: {}, body: all[o.path] as T };
    },
  };
  const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  const signal = new ApiServerSignal({ client, logger, clock: () => now });
  return {
    signal,
    requests,
    lines,
    advance: (ms: number) => (now += ms),
  };
}

function write(code: number, extra: Partial<ResponseObservation> = {}): ResponseObservation {
  return {
    method: "POST",
    path: "/api/v1/namespaces/sims/pods",
    code,
    durationMs: 12,
    headers: { "x-kubernetes-pf-flowschema-uid": FS_UID, "x-kubernetes-pf-prioritylevel-uid": PL_UID },
    ...extra,
  };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("isPodWrite", () => {
  it("matches pod creates, deletes and patches, not reads, subresources or other kinds", () => {
    expect(isPodWrite("POST", "/api/v1/namespaces/a/pods")).toBe(true);
    expect(isPodWrite("DELETE", "/api/v1/namespaces/a/pods/p-1")).toBe(true);
    expect(isPodWrite("GET", "/api/v1/namespaces/a/pods")).toBe(false);
    expect(isPodWrite("PATCH", "/api/v1/namespaces/a/pods/p-1/status")).toBe(false);
    expect(isPodWrite("POST", "/apis/events.k8s.io/v1/namespaces/a/events")).toBe(false);
  });
});

describe("ApiServerSignal", () => {
  it("resolves the UIDs of pod writes to names once", async () => {
    const t = setup();
    t.signal.observe(write(201));
    t.signal.observe(write(429, { retryAfterSeconds: 2 }));
    t.signal.observe(write(503));
    t.signal.observe(write(0, { headers: {} }));
    t.signal.observe({ ...write(201), method: "GET", path: "/api/v1/pods" });
    await settle();
    const s = t.signal.snapshot();
    expect(s).toMatchObject({
      flowSchema: "service-accounts",
      priorityLevel: "workload-low",
      flowSchemaUid: FS_UID,
      priorityLevelUid: PL_UID,
      metricsForbidden: false,
    });
    // Two LISTs for the first unknown UIDs, none after: names are cached.
    expect(t.requests.map((r) => r.path)).toHaveLength(2);
    expect(t.lines.filter((l) => l.msg.includes("APF flow schema"))).toHaveLength(1);
  });

  it("looks names up again for a new UID, but not more often than the minimum interval", async () => {
    const t = setup();
    t.signal.observe(write(201));
    await settle();
    t.signal.observe(write(201, { headers: { "x-kubernetes-pf-prioritylevel-uid": "new-uid" } }));
    await settle();
    expect(t.requests).toHaveLength(2);
    t.advance(APF_NAMES_REFRESH_MIN_INTERVAL_MS);
    t.signal.observe(write(201, { headers: { "x-kubernetes-pf-prioritylevel-uid": "new-uid" } }));
    await settle();
    expect(t.requests).toHaveLength(4);
    // Still unknown: the name is left out and the UID is what there is.
    expect(t.signal.snapshot().priorityLevel).toBeUndefined();
    expect(t.signal.snapshot().priorityLevelUid).toBe("new-uid");
  });

  it("keeps UIDs when RBAC forbids the lookup, and stops asking", async () => {
    const forbidden = new ApiError({ method: "GET", path: "/apis/flowcontrol.apiserver.k8s.io/v1/flowschemas", code: 403 });
    const t = setup({ lists: () => forbidden });
    t.signal.observe(write(201));
    await settle();
    t.advance(APF_NAMES_REFRESH_MIN_INTERVAL_MS);
    t.signal.observe(write(201, { headers: { "x-kubernetes-pf-prioritylevel-uid": "other" } }));
    await settle();
    expect(t.requests).toHaveLength(2);
    expect(t.signal.snapshot()).toMatchObject({ flowSchemaUid: FS_UID, priorityLevelUid: "other" });
    expect(t.lines.filter((l) => l.msg.includes("forbidden"))).toHaveLength(1);
  });

  it("reports queue, wait p99 and rejections of our priority level between two scrapes", async () => {
    let text = metricsText(3, 100, 0, 5);
    const t = setup({ metrics: () => text });
    t.signal.observe(write(201));
    await settle();
    const first = await t.signal.scrape();
    expect(first).toMatchObject({ state: "Idle", priorityLevel: "workload-low", inQueue: 3 });
    t.advance(APISERVER_METRICS_INTERVAL_MS);
    // 100 more requests waited: 90 under 0.1 s, 10 between 0.1 and 1 s; 7 more rejected.
    text = metricsText(4, 190, 10, 12);
    const second = await t.signal.scrape();
    expect(second).toMatchObject({ state: "Ok", inQueue: 4, rejected: 7 });
    expect(second.waitP99Ms).toBe(910);
    expect(t.requests.find((r) => r.path === "/metrics")).toMatchObject({ responseType: "lines", retryThrottled: false });
  });

  it("diffs only against a recent baseline", async () => {
    let text = metricsText(0, 10, 0, 0);
    const t = setup({ metrics: () => text });
    t.signal.observe(write(201));
    await settle();
    await t.signal.scrape();
    t.advance(10 * APISERVER_METRICS_INTERVAL_MS);
    text = metricsText(0, 20, 0, 50);
    expect((await t.signal.scrape()).state).toBe("Idle");
  });

  it("waits for a priority level before scraping", async () => {
    const t = setup({ metrics: () => metricsText(0, 0, 0, 0) });
    expect((await t.signal.scrape()).state).toBe("Idle");
    expect(t.requests).toHaveLength(0);
  });

  it("stops for good on 403, says so once, and keeps client-side figures", async () => {
    const forbidden = new ApiError({ method: "GET", path: "/metrics", code: 403 });
    const t = setup({ metrics: () => forbidden });
    t.signal.observe(write(201));
    await settle();
    expect((await t.signal.scrape()).state).toBe("Forbidden");
    expect((await t.signal.scrape()).state).toBe("Forbidden");
    expect(t.requests.filter((r) => r.path === "/metrics")).toHaveLength(1);
    expect(t.lines.filter((l) => l.msg === "kube-apiserver /metrics forbidden; using client-side signals only")).toHaveLength(1);
    expect(t.signal.snapshot()).toMatchObject({ metricsForbidden: true, priorityLevel: "workload-low" });
  });

  it("keeps scraping after other failures and logs the streak once", async () => {
    let fail = true;
    const t = setup({ metrics: () => (fail ? new ApiError({ method: "GET", path: "/metrics", code: 503 }) : metricsText(1, 1, 0, 0)) });
    t.signal.observe(write(201));
    await settle();
    expect((await t.signal.scrape()).state).toBe("Failing");
    expect((await t.signal.scrape()).state).toBe("Failing");
    fail = false;
    expect((await t.signal.scrape()).state).toBe("Idle");
    expect(t.lines.filter((l) => l.msg.startsWith("kube-apiserver /metrics scrape failed"))).toHaveLength(1);
    expect(t.lines.filter((l) => l.msg.includes("work again"))).toHaveLength(1);
  });

  it("does not scrape when disabled", async () => {
    const requests: RequestOptions[] = [];
    const client = { request: async (o: RequestOptions) => (requests.push(o), Promise.reject(new Error("unexpected request"))) };
    const off = new ApiServerSignal({ client, logger: pino({ level: "silent" }), scrapeMetrics: false });
    off.observe(write(201));
    await settle();
    requests.length = 0;
    expect((await off.scrape()).state).toBe("Disabled");
    await off.run(new AbortController().signal);
    expect(requests).toEqual([]);
  });
});
