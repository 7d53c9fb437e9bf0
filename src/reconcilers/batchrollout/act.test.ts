import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { BatchRolloutSpec, type BatchRollout } from "../../api/batchrollout.ts";
import type { RequestOptions } from "../../kube/client.ts";
import { ApiError, RequestTimeoutError } from "../../kube/errors.ts";
import { FencedError } from "../../kube/fence.ts";
import { MAX_WRITE_ATTEMPTS, classifyWrite, executeWrites } from "./act.ts";
import { Expectations } from "./expectations.ts";

const KEY = "sims/sim";
const rollout: BatchRollout = {
  apiVersion: "batchrollout.dev/v1alpha1",
  kind: "BatchRollout",
  metadata: { name: "sim", namespace: "sims", uid: "u-1", generation: 1 },
  spec: BatchRolloutSpec.parse({ replicas: 10, template: { spec: { containers: [{ name: "sim", image: "pause" }] } } }),
};

/** Answers each request with 201, unless `answer` throws the API server's error; records every request. */
function fakeClient(answer: (req: RequestOptions, attempt: number) => void = () => undefined) {
  const requests: RequestOptions[] = [];
  const attempts = new Map<string, number>();
  const client = {
    request: async (req: RequestOptions) => {
      // As KubeClient does: a write whose fence says no as it is sent fails, and nothing is sent.
      if (req.fence?.() === false) throw new FencedError(req.method, req.path);
      requests.push(req);
      const id = `${req.method} ${req.path} ${podNameIn(req)}`;
      const attempt = (attempts.get(id) ?? 0) + 1;
      attempts.set(id, attempt);
      await Promise.resolve();
      answer(req, attempt);
      return { code: 201, headers: {}, body: undefined as never };
    },
  };
  return { client, requests };
}

function podNameIn(req: RequestOptions): string {
  const body = req.body as { metadata?: { name?: string } } | undefined;
  return body?.metadata?.name ?? req.path.split("/").pop() ?? "";
}

/** Runs writes one at a time, in order, a turn of the event loop apart, as a pacer spacing them would. */
function serialPacer() {
  let chain: Promise<unknown> = Promise.resolve();
  return {
    schedule<T>(fn: () => Promise<T>): Promise<T> {
      const run = chain.then(() => new Promise((resolve) => setImmediate(resolve))).then(fn);
      chain = run.catch(() => undefined);
      return run;
    },
  };
}

function apiError(code: number, reason: string, message = "") {
  return new ApiError({ method: "POST", path: "/api/v1/namespaces/sims/pods", code, status: { reason, message } });
}

function run(opts: {
  creates?: number[];
  deletes?: string[];
  answer?: (req: RequestOptions, attempt: number) => void;
  uids?: Map<string, string>;
  signal?: AbortSignal;
  mayWrite?: () => boolean;
}) {
  const { client, requests } = fakeClient(opts.answer);
  const expectations = new Expectations();
  const result = executeWrites({
    client,
    pacer: serialPacer(),
    expectations,
    key: KEY,
    rollout,
    plan: { creates: opts.creates ?? [], deletes: opts.deletes ?? [] },
    templateHash: "h1",
    podUids: opts.uids ?? new Map(),
    signal: opts.signal ?? new AbortController().signal,
    logger: pino({ level: "silent" }),
    ...(opts.mayWrite ? { mayWrite: opts.mayWrite } : {}),
  });
  return { result, requests, expectations };
}

describe("executeWrites", () => {
  it("creates each planned ordinal as a pod of the rollout and keeps the creates expected until the cache shows them", async () => {
    const { result, requests, expectations } = run({ creates: [0, 1, 2] });
    expect(await result).toEqual({ created: 3, existed: 0, deleted: 0, refused: 0, failed: 0 });
    expect(requests.map((r) => [r.method, r.path, podNameIn(r)])).toEqual([
      ["POST", "/api/v1/namespaces/sims/pods", "sim-0"],
      ["POST", "/api/v1/namespaces/sims/pods", "sim-1"],
      ["POST", "/api/v1/namespaces/sims/pods", "sim-2"],
    ]);
    // The controller's client must not retry 429s itself: the pacer and its gate do.
    expect(requests.every((r) => r.retryThrottled === false)).toBe(true);
    expect([...expectations.pending(KEY).creates]).toEqual([0, 1, 2]);
  });

  it("counts 409 AlreadyExists as a create that happened and keeps its expectation", async () => {
    const { result, expectations } = run({
      creates: [0, 1],
      answer: (req) => {
        if (podNameIn(req) === "sim-1") throw apiError(409, "AlreadyExists");
      },
    });
    expect(await result).toMatchObject({ created: 1, existed: 1, failed: 0 });
    expect([...expectations.pending(KEY).creates]).toEqual([0, 1]);
  });

  it("does not count a 409 for a name an old pod still holds (an update's replacement) as created, nor send it again", async () => {
    // The old pod of ordinal 4 was deleted and is still terminating on the server when its
    // replacement is created. The expectation holds the ordinal until the cache shows a pod event for
    // it (pod-events.ts clears it on the old pod's DELETED), so the next wave creates it once.
    const { result, requests, expectations } = run({
      creates: [4],
      deletes: ["sim-9"],
      uids: new Map([["sim-9", "uid-9"]]),
      answer: (req) => {
        if (req.method === "POST") throw apiError(409, "AlreadyExists", 'pods "sim-4" already exists');
      },
    });
    expect(await result).toMatchObject({ created: 0, existed: 1, deleted: 1, failed: 0 });
    expect(requests.filter((r) => r.method === "POST")).toHaveLength(1);
    expect([...expectations.pending(KEY).creates]).toEqual([4]);
  });

  it("stops creating after the API server rejects the template, and says which pod and why", async () => {
    const { result, requests, expectations } = run({
      creates: [0, 1, 2, 3],
      answer: (req) => {
        if (podNameIn(req) === "sim-1") throw apiError(422, "Invalid", "spec.containers[0].image: Required value");
      },
    });
    const outcome = await result;
    expect(outcome).toMatchObject({ created: 1, refused: 1, failed: 2 });
    expect(outcome.rejected).toEqual({ code: 422, reason: "Invalid", message: "spec.containers[0].image: Required value", podName: "sim-1" });
    expect(outcome.firstFailure).toBeUndefined();
    // sim-2 and sim-3 were never sent, and nothing is left expected but the pod that was created.
    expect(requests.map(podNameIn)).toEqual(["sim-0", "sim-1"]);
    expect([...expectations.pending(KEY).creates]).toEqual([0]);
  });

  it("treats 400 Bad Request like 422: the same create cannot succeed until the spec changes", async () => {
    const { result } = run({ creates: [0], answer: () => { throw apiError(400, "BadRequest", "bad body"); } });
    expect((await result).rejected).toMatchObject({ code: 400, podName: "sim-0" });
  });

  it("retries 429, 5xx and timeouts through the pacer until one succeeds", async () => {
    const failures = [apiError(429, "TooManyRequests"), apiError(503, "ServiceUnavailable"), new RequestTimeoutError("POST", "/pods", 30_000)];
    const { result, requests } = run({
      creates: [0],
      answer: (_req, attempt) => {
        const failure = failures[attempt - 1];
        if (failure) throw failure;
      },
    });
    expect(await result).toMatchObject({ created: 1, failed: 0 });
    expect(requests).toHaveLength(failures.length + 1);
  });

  it(`gives up after ${MAX_WRITE_ATTEMPTS} attempts, clears the expectation and reports the failure`, async () => {
    const throttled = apiError(429, "TooManyRequests");
    const { result, requests, expectations } = run({
      creates: [0, 1],
      answer: (req) => {
        if (podNameIn(req) === "sim-0") throw throttled;
      },
    });
    const outcome = await result;
    expect(outcome).toMatchObject({ created: 1, failed: 1 });
    expect(outcome.firstFailure).toBe(throttled);
    expect(requests.filter((r) => podNameIn(r) === "sim-0")).toHaveLength(MAX_WRITE_ATTEMPTS);
    expect([...expectations.pending(KEY).creates]).toEqual([1]);
  });

  it("does not retry a create the server refused (403 quota), and reports it as the wave's refusal", async () => {
    const forbidden = apiError(403, "Forbidden");
    const { result, requests } = run({ creates: [0], answer: () => { throw forbidden; } });
    const outcome = await result;
    expect(outcome).toMatchObject({ failed: 0, refused: 1, rejected: { code: 403, reason: "Forbidden", podName: "sim-0" } });
    expect(outcome.firstFailure).toBeUndefined();
    expect(requests).toHaveLength(1);
  });

  it("stops the wave's creates at the first refusal, whatever its kind (403, 422, a webhook's 500)", async () => {
    const refusals = [
      apiError(403, "Forbidden"),
      apiError(422, "Invalid"),
      new ApiError({ method: "POST", path: "/api/v1/namespaces/sims/pods", code: 500, status: { reason: "InternalError", message: 'Internal error occurred: failed calling webhook "deny.example.com": context deadline exceeded' } }),
    ];
    for (const refusal of refusals) {
      const { result, requests } = run({ creates: [0, 1, 2, 3], answer: () => { throw refusal; } });
      const outcome = await result;
      expect(outcome, `${refusal.code}`).toMatchObject({ created: 0, refused: 1, failed: 3 });
      expect(requests, `${refusal.code}`).toHaveLength(1);
    }
  });

  it("retries a 5xx that is not a webhook's (the server's own trouble is a load signal, not a refusal)", async () => {
    const { result, requests } = run({ creates: [0], answer: () => { throw apiError(500, "InternalError"); } });
    const outcome = await result;
    expect(outcome).toMatchObject({ refused: 0, failed: 1 });
    expect(requests).toHaveLength(MAX_WRITE_ATTEMPTS);
  });

  it("sends no write once this replica may no longer write (its Lease went stale), counting them as not written", async () => {
    let leading = true;
    const { result, requests, expectations } = run({ creates: [0, 1, 2], answer: () => void (leading = false), mayWrite: () => leading });
    expect(await result).toMatchObject({ created: 1, failed: 2 });
    expect(requests).toHaveLength(1);
    expect([...expectations.pending(KEY).creates]).toEqual([0]);
  });

  it("hands the Lease check to the client as the write's fence, and takes a write it fenced off as not written", async () => {
    // Fresh as the pacer releases each write, stale by the time the client opens its stream.
    let asked = 0;
    const { result, requests, expectations } = run({ creates: [0, 1], mayWrite: () => ++asked % 2 === 1 });
    const outcome = await result;
    expect(asked).toBe(4);
    expect(requests).toEqual([]);
    expect(outcome).toMatchObject({ created: 0, failed: 2 });
    expect(outcome.firstFailure).toBeUndefined();
    expect(expectations.pending(KEY).creates.size).toBe(0);
  });

  it("deletes with the pod's UID as a precondition and keeps the delete expected until the cache shows it", async () => {
    const { result, requests, expectations } = run({ deletes: ["sim-12", "sim-11"], uids: new Map([["sim-12", "uid-12"]]) });
    expect(await result).toMatchObject({ deleted: 2, failed: 0 });
    expect(requests.map((r) => [r.method, r.path])).toEqual([
      ["DELETE", "/api/v1/namespaces/sims/pods/sim-12"],
      ["DELETE", "/api/v1/namespaces/sims/pods/sim-11"],
    ]);
    expect(requests[0]?.body).toMatchObject({ preconditions: { uid: "uid-12" }, propagationPolicy: "Background" });
    expect(requests[1]?.body).not.toHaveProperty("preconditions");
    expect([...expectations.pending(KEY).deletes].sort()).toEqual(["sim-11", "sim-12"]);
  });

  it("takes a pod already gone (404) or replaced under the same name (409) as nothing to delete", async () => {
    const { result, expectations } = run({
      deletes: ["sim-12", "sim-11"],
      answer: (req) => {
        if (req.path.endsWith("sim-12")) throw apiError(404, "NotFound");
        throw apiError(409, "Conflict", "Precondition failed: UID in precondition");
      },
    });
    expect(await result).toMatchObject({ deleted: 0, failed: 0 });
    expect(expectations.pending(KEY).deletes.size).toBe(0);
  });

  it("sends nothing once shutdown has begun, and leaves no expectation behind", async () => {
    const aborted = new AbortController();
    aborted.abort();
    const { result, requests, expectations } = run({ creates: [0, 1], deletes: ["sim-12"], signal: aborted.signal });
    expect(await result).toMatchObject({ created: 0, deleted: 0, failed: 3 });
    expect(requests).toHaveLength(0);
    expect(expectations.pending(KEY)).toEqual({ creates: new Set(), deletes: new Set() });
  });
});

describe("classifyWrite", () => {
  it("records a success as 201 and a timeout as such", () => {
    expect(classifyWrite({ value: {} })).toEqual({ status: 201 });
    expect(classifyWrite({ error: new RequestTimeoutError("POST", "/pods", 30_000) })).toEqual({ timedOut: true });
  });

  it("keeps a 429's Retry-After and the priority level APF put it in", () => {
    const err = new ApiError({
      method: "POST",
      path: "/pods",
      code: 429,
      headers: { "retry-after": "3", "x-kubernetes-pf-prioritylevel-uid": "pl-1" },
    });
    expect(classifyWrite({ error: err })).toEqual({ status: 429, retryAfter: "3", priorityLevel: "pl-1" });
    expect(classifyWrite({ error: apiError(500, "InternalError") })).toEqual({ status: 500 });
  });

  it("leaves errors that never reached the server unrecorded", () => {
    expect(classifyWrite({ error: new TypeError("socket hang up") })).toBeUndefined();
  });
});
