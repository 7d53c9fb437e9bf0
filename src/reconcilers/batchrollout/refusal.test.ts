import { describe, expect, it } from "vitest";
import { ApiError } from "../../kube/errors.ts";
import { StallReason } from "./conditions.ts";
import {
  REFUSAL_FIRST_RETRY_MS,
  REFUSAL_MAX_RETRY_MS,
  RefusalBackoff,
  describeRefusal,
  faultyField,
  isRefusal,
  refusalReason,
  toWriteError,
} from "./refusal.ts";

const PREFIX = "batchrollout.dev/";
const quota = { code: 403, reason: "Forbidden", message: 'pods "sim-100" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=100, limited: pods=100', podName: "sim-100" };
const at = (now: number, quotas = "pods@1", generation = 1) => ({ now, generation, quotas });

function apiError(code: number, message: string, causes?: { field?: string; message?: string }[]): ApiError {
  return new ApiError({ method: "POST", path: "/api/v1/namespaces/ns/pods", code, status: { reason: "X", message, ...(causes ? { details: { causes } } : {}) } });
}

describe("isRefusal", () => {
  it("is every answer but 409 and 429, and of 5xx only an admission webhook's", () => {
    expect(isRefusal(apiError(403, "exceeded quota"))).toBe(true);
    expect(isRefusal(apiError(422, "invalid"))).toBe(true);
    expect(isRefusal(apiError(400, "bad request"))).toBe(true);
    expect(isRefusal(apiError(404, 'namespaces "gone" not found'))).toBe(true);
    expect(isRefusal(apiError(500, 'Internal error occurred: failed calling webhook "x.example.com"'))).toBe(true);
    expect(isRefusal(apiError(504, "Timeout: request did not complete: webhook deny.example.com timed out"))).toBe(true);
    expect(isRefusal(apiError(409, "already exists"))).toBe(false);
    expect(isRefusal(apiError(429, "too many requests"))).toBe(false);
    expect(isRefusal(apiError(500, "etcdserver: request timed out"))).toBe(false);
    expect(isRefusal(new Error("socket hang up"))).toBe(false);
  });
});

describe("what status says of a refusal", () => {
  it("names the quota in the API server's words, and says creation resumes by itself", () => {
    expect(refusalReason(quota)).toBe(StallReason.CreateRefused);
    const message = describeRefusal(quota, PREFIX);
    expect(message).toContain("exceeded quota: pods, requested: pods=1, used: pods=100, limited: pods=100");
    expect(message).toContain("at once when the namespace's ResourceQuotas change");
  });

  it("names the field at fault for an invalid pod: the template's, or metadata.name for the operator's name label", () => {
    const label = toWriteError(apiError(422, 'Pod "x-0" is invalid: metadata.labels: Invalid value: "xxx": must be no more than 63 characters (batchrollout.dev/name)', [{ field: "metadata.labels" }]), "x-0");
    expect(label.field).toBe("metadata.labels");
    expect(faultyField(label, PREFIX)).toBe("metadata.name");
    expect(describeRefusal(label, PREFIX)).toMatch(/; fix metadata\.name to resume$/);
    expect(faultyField({ field: "metadata.name", message: "too long" }, PREFIX)).toBe("metadata.name");
    expect(faultyField({ field: "spec.containers[0].image", message: "Required value" }, PREFIX)).toBe("spec.template.spec.containers[0].image");
    expect(faultyField({ field: "metadata.labels", message: "app: Invalid value" }, PREFIX)).toBe("spec.template.metadata.labels");
    expect(faultyField({ message: "no cause given" }, PREFIX)).toBe("spec.template");
  });
});

describe("RefusalBackoff", () => {
  it("holds after a refusal, probing after a backoff that doubles up to a minute", () => {
    const backoff = new RefusalBackoff();
    expect(backoff.hold(at(0))).toBeUndefined();
    const waits: number[] = [];
    let now = 0;
    for (let i = 0; i < 9; i++) {
      backoff.refused(quota, PREFIX, at(now));
      const hold = backoff.hold(at(now));
      expect(hold).toMatchObject({ reason: StallReason.CreateRefused, probe: false });
      waits.push(hold?.retryInMs ?? -1);
      now += hold?.retryInMs ?? 0;
      expect(backoff.hold(at(now - 1))?.probe).toBe(false);
      expect(backoff.hold(at(now))).toMatchObject({ probe: true, retryInMs: 0 });
    }
    expect(waits).toEqual([1, 2, 4, 8, 16, 32, 60, 60, 60].map((s) => s * 1_000));
    expect(waits[0]).toBe(REFUSAL_FIRST_RETRY_MS);
    expect(Math.max(...waits)).toBe(REFUSAL_MAX_RETRY_MS);
  });

  it("ends when a create goes through", () => {
    const backoff = new RefusalBackoff();
    backoff.refused(quota, PREFIX, at(0));
    backoff.accepted();
    expect(backoff.hold(at(1))).toBeUndefined();
  });

  it("ends with a new generation: the user changed the spec", () => {
    const backoff = new RefusalBackoff();
    backoff.refused(quota, PREFIX, at(0, "q", 1));
    expect(backoff.hold(at(10, "q", 2))).toBeUndefined();
    expect(backoff.hold(at(20, "q", 1))).toBeUndefined();
  });

  it("probes as soon as the namespace's quotas change, but not sooner than the first retry after the refusal", () => {
    const backoff = new RefusalBackoff();
    for (let now = 0; now < 480_000; now += 60_000) backoff.refused(quota, PREFIX, at(now, "pods@1"));
    const refusedAt = 420_000;
    expect(backoff.hold(at(refusedAt + 500, "pods@1"))?.retryInMs).toBe(REFUSAL_MAX_RETRY_MS - 500);
    expect(backoff.hold(at(refusedAt + 500, "pods@2"))).toMatchObject({ probe: false, retryInMs: REFUSAL_FIRST_RETRY_MS - 500 });
    expect(backoff.hold(at(refusedAt + 1_000, "pods@2"))).toMatchObject({ probe: true });
  });

  it("carries a refusal over from status, probing at once", () => {
    const backoff = new RefusalBackoff();
    backoff.restore(StallReason.TemplateRejected, "refused: bad image", at(5_000));
    expect(backoff.hold(at(5_000))).toEqual({ reason: StallReason.TemplateRejected, message: "refused: bad image", probe: true, retryInMs: 0 });
    backoff.refused({ code: 422, reason: "Invalid", message: "bad image" }, PREFIX, at(5_100));
    expect(backoff.hold(at(5_100))).toMatchObject({ probe: false, retryInMs: REFUSAL_FIRST_RETRY_MS });
  });
});
