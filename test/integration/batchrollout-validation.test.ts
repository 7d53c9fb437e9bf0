import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { ApiError } from "../../src/kube/errors.ts";
import { eventually } from "./support/cluster.ts";
import {
  PAUSE_IMAGE,
  POD_REQUESTS,
  auditOrdinals,
  cleanAudit,
  conditionOf,
  createRollout,
  eventsAbout,
  getRollout,
  listPods,
  podTemplate,
  rolloutManifest,
  rolloutPath,
  rolloutsPath,
  seconds,
  useTestBed,
  waitForReady,
  type TestRollout,
} from "./support/batchrollout.ts";

// What is wrong with a spec is said where it can be: the API server refuses what the CRD schema
// and its CEL rules can judge (422, naming the field), and the operator reports what only a pod
// create can reveal (Stalled, TemplateRejected, with the API server's own words) until it is fixed.

const NAME = "fleet";

const VALIDATION_TEST_TIMEOUT_MS = 60_000;
const REJECTED_TEST_TIMEOUT_MS = 120_000;
const STALLED_TIMEOUT_MS = 30_000;
/** Long enough for a few more reconciles of the stalled rollout, had it kept trying. */
const STALL_HOLD_MS = 3_000;
const FIXED_READY_TIMEOUT_MS = 60_000;
const REPLICAS = 100;

/** A container name the CRD passes through and the API server refuses in a Pod (not an RFC 1123 label). */
const BAD_CONTAINER_NAME = "Main_Container";

interface InvalidCase {
  what: string;
  spec: Record<string, unknown> & { replicas: number };
  /** The field the API server's message must name. */
  field: string;
}

const INVALID: InvalidCase[] = [
  { what: "negative replicas", spec: { replicas: -1 }, field: "spec.replicas" },
  { what: "minSize > maxSize", spec: { replicas: 10, waves: { minSize: 100, maxSize: 10 } }, field: "spec.waves" },
  { what: "a template without containers", spec: { replicas: 10, template: { spec: { containers: [] } } }, field: "spec.template.spec.containers" },
  { what: "an unknown strategy", spec: { replicas: 10, waves: { strategy: "Bogus" } }, field: "spec.waves.strategy" },
];

describe("BatchRollout validation", () => {
  const bed = useTestBed();

  it(
    "has the API server refuse invalid specs with 422 and a message naming the field",
    async () => {
      const ns = await bed.namespace("br-invalid");
      const { admin } = bed;
      bed.operator();
      const outcomes = [];
      for (const c of INVALID) {
        const err: unknown = await admin.create(rolloutsPath(ns), rolloutManifest(NAME, c.spec)).then(
          () => undefined,
          (e: unknown) => e,
        );
        const apiError = err instanceof ApiError ? err : undefined;
        outcomes.push({ what: c.what, code: apiError?.code, reason: apiError?.reason, namesField: apiError?.serverMessage.includes(c.field) ?? false });
        console.log(`${c.what}: ${apiError?.serverMessage ?? String(err)}`);
      }
      expect(outcomes).toEqual(INVALID.map((c) => ({ what: c.what, code: 422, reason: "Invalid", namesField: true })));
      const left = await admin.get<{ items: unknown[] }>(rolloutsPath(ns));
      expect(left.items).toEqual([]);
    },
    VALIDATION_TEST_TIMEOUT_MS,
  );

  it(
    "stalls with TemplateRejected and the API server's message when no pod can be created, and completes once the template is fixed",
    async () => {
      const ns = await bed.namespace("br-rejected");
      const { admin } = bed;
      const watch = await bed.watch();
      bed.operator();
      const created = await createRollout(admin, ns, NAME, { replicas: REPLICAS, template: podTemplate(BAD_CONTAINER_NAME) });
      const started = Date.now();

      const stalled = await eventually(
        "Stalled=True with reason TemplateRejected",
        async () => {
          const r = await getRollout(admin, ns, NAME);
          const c = conditionOf(r, "Stalled");
          return c?.status === "True" && c.observedGeneration === created.metadata.generation ? r : undefined;
        },
        STALLED_TIMEOUT_MS,
      );
      console.log(`[figure] template rejected: Stalled=True ${seconds(Date.now() - started)} s after create`);
      const condition = conditionOf(stalled, "Stalled");
      console.log(`Stalled message: ${condition?.message}`);
      expect(condition?.reason).toBe("TemplateRejected");
      expect(condition?.message).toContain("spec.containers[0].name");
      expect(condition?.message).toContain(BAD_CONTAINER_NAME);
      expect(stalled.status?.observedGeneration).toBe(created.metadata.generation);
      expect(stalled.status?.wave?.limitedBy).toBe("TemplateRejected");
      expect(conditionOf(stalled, "Ready")).toMatchObject({ status: "False" });
      expect(conditionOf(stalled, "Progressing")).toMatchObject({ status: "False", reason: "TemplateRejected" });

      const warnings = await eventually(
        "a TemplateRejected Event",
        async () => {
          const found = await eventsAbout(admin, ns, created.metadata.uid, "TemplateRejected");
          return found.length > 0 ? found : undefined;
        },
        STALLED_TIMEOUT_MS,
      );
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ type: "Warning", regarding: { kind: "BatchRollout", name: NAME, namespace: ns } });
      expect(warnings[0]?.note).toContain("spec.containers[0].name");
      // The wave that met the rejection keeps its number, its start and its finish.
      expect(stalled.status?.wave?.number).toBe(1);
      const waveEvents = await eventually(
        "WaveStarted and WaveFinished for wave 1",
        async () => {
          const [starts, finishes] = await Promise.all(
            ["WaveStarted", "WaveFinished"].map((reason) => eventsAbout(admin, ns, created.metadata.uid, reason)),
          );
          return starts?.length && finishes?.length ? { starts, finishes } : undefined;
        },
        STALLED_TIMEOUT_MS,
      );
      expect(waveEvents.starts.map((e) => e.note)).toEqual([expect.stringMatching(/^wave 1: creating \d+ pods/)]);
      expect(waveEvents.finishes.map((e) => e.note)).toEqual([expect.stringMatching(/^wave 1: 0 pods created, .* [1-9]\d* refused by the API server/)]);

      await sleep(STALL_HOLD_MS);
      expect(await listPods(admin, ns)).toEqual([]);
      expect(watch.changes("ADDED")).toEqual([]);
      expect(conditionOf(await getRollout(admin, ns, NAME), "Stalled")).toMatchObject({ status: "True", reason: "TemplateRejected" });

      const fixedAt = Date.now();
      const fixed = await admin.patch<TestRollout>(rolloutPath(ns, NAME), {
        spec: { template: { spec: { containers: [{ name: "main", image: PAUSE_IMAGE, resources: { requests: POD_REQUESTS } }] } } },
      });
      expect(fixed.metadata.generation).toBe((created.metadata.generation ?? 0) + 1);
      const ready = await waitForReady(admin, ns, NAME, FIXED_READY_TIMEOUT_MS);
      console.log(`[figure] template fixed: Ready with ${REPLICAS} pods ${seconds(Date.now() - fixedAt)} s after the fix`);
      expect(conditionOf(ready, "Stalled")).toMatchObject({ status: "False", observedGeneration: fixed.metadata.generation });
      const pods = await listPods(admin, ns);
      expect(auditOrdinals(pods, NAME, REPLICAS)).toEqual(cleanAudit(REPLICAS));
      expect(pods.filter((p) => p.spec?.containers?.[0]?.name !== "main").map((p) => p.metadata.name)).toEqual([]);
      expect(ready.status?.updatedReplicas).toBe(REPLICAS);
    },
    REJECTED_TEST_TIMEOUT_MS,
  );
});
