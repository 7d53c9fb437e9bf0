import { rmSync } from "node:fs";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isNotFound } from "../../src/kube/errors.ts";
import { LEASES, resourcePath } from "../../src/kube/resources.ts";
import { OPERATOR_NAMESPACE } from "../cluster/layout.ts";
import { auditOrdinals, cleanAudit, createRollout, listPods, rolloutPath, useTestBed, waitForReady } from "./support/batchrollout.ts";
import {
  IMAGE_BUILD_TIMEOUT_MS,
  buildImage,
  processIds,
  rootMountOptions,
  runHelmTestHook,
  scrapeMetrics,
  serviceAccountVolume,
  startImageOperator,
  type ChartOperator,
  type ImageBuild,
} from "./support/chart-operator.ts";
import { eventually } from "./support/cluster.ts";
import { dashboardExpressions, exposedNames, metricNames, ruleExpressions } from "../prometheus/metric-names.ts";

// The image as a kubelet would run it, minus the kubelet: built from scratch by scripts/image.sh,
// its root filesystem under chroot as 65532:65532 with the root read-only, the chart's args and
// environment, the chart's ServiceAccount token where a pod finds it. The core scenario must pass,
// and the metrics that the chart's dashboard and alerts query must be on its /metrics.

const NAME = "core";
/** Small enough to be quick, several waves at the default initial size of 50. */
const REPLICAS = 120;
const READY_TIMEOUT_MS = 90_000;
const UP_TIMEOUT_MS = 30_000;
/** The image's user and group (Dockerfile, scripts/image.sh, the chart's runAsUser). */
const IMAGE_UID = 65532;

describe("the operator image, run from its root filesystem", () => {
  const bed = useTestBed();
  let image: ImageBuild;
  let saDir: string;
  const operators: ChartOperator[] = [];

  beforeAll(async () => {
    const started = Date.now();
    image = await buildImage();
    console.log(`[figure] image: ${image.summary}, built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    saDir = await serviceAccountVolume();
  }, IMAGE_BUILD_TIMEOUT_MS + 30_000);

  afterAll(async () => {
    for (const op of operators) await op.stop();
    if (saDir) rmSync(saDir, { recursive: true, force: true });
  });

  it(
    "runs as 65532 on a read-only root with the chart's args and ServiceAccount, and a rollout becomes Ready",
    async () => {
      const ns = await bed.namespace("image-core");
      const lease = `image-${ns}`;
      const op = await startImageOperator(image.rootfs, saDir, { extraArgs: [`--watch-namespace=${ns}`, `--leader-election-id=${lease}`] });
      operators.push(op);
      try {
        await eventually("the operator's /readyz", async () => {
          const res = await request(`http://127.0.0.1:${op.healthPort}/readyz`);
          return (await res.body.text()) === "ok";
        }, UP_TIMEOUT_MS);
        const pid = op.child.pid ?? 0;
        expect(processIds(pid)).toEqual({ uid: IMAGE_UID, gid: IMAGE_UID });
        expect(rootMountOptions(pid)).toContain("ro");

        await createRollout(bed.admin, ns, NAME, { replicas: REPLICAS });
        await waitForReady(bed.admin, ns, NAME, READY_TIMEOUT_MS);
        expect(auditOrdinals(await listPods(bed.admin, ns), NAME, REPLICAS)).toEqual(cleanAudit(REPLICAS));

        // /metrics is the chart's default: https, for a bearer token allowed to get /metrics.
        expect(op.metricsUrl).toMatch(/^https:/);
        expect((await scrapeMetrics(op, "")).status).toBe(401);
        const { status, text } = await scrapeMetrics(op);
        expect(status).toBe(200);
        // Every metric the chart's dashboard and alert rules query is one this operator serves.
        const used = [...new Set([...dashboardExpressions(), ...ruleExpressions()].flatMap(metricNames))].sort();
        const exposed = exposedNames(text);
        expect(used.filter((name) => !exposed.has(name))).toEqual([]);
        expect(text).toMatch(new RegExp(`^leader_election_master_status\\{name="${lease}"\\} 1$`, "m"));
        // `helm test`: its hook, run from the same image, finds the Lease held and fresh.
        expect(await runHelmTestHook(image.rootfs, saDir, [`leaderElection.leaseName=${lease}`])).toMatch(/^leader \S+, renewed [\d.]+ s ago$/);

        // Its finalizer is honoured: the rollout goes once its pods are deleted.
        await bed.admin.delete(rolloutPath(ns, NAME));
        await eventually("the rollout deleted", () => bed.admin.get(rolloutPath(ns, NAME)).then(() => false, (err: unknown) => isNotFound(err)), READY_TIMEOUT_MS);
      } finally {
        await op.stop();
        await bed.admin.delete(resourcePath(LEASES, { namespace: OPERATOR_NAMESPACE, name: lease })).catch(() => undefined);
      }
    },
    READY_TIMEOUT_MS * 2 + UP_TIMEOUT_MS,
  );
});
