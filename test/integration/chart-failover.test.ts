import { rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACQUIRE_JITTER_FACTOR, LEASE_DURATION_MS, RETRY_PERIOD_MS, type Lease } from "../../src/controllers/leader-election.ts";
import { LEASES, resourcePath } from "../../src/kube/resources.ts";
import { OPERATOR_NAMESPACE } from "../cluster/layout.ts";
import { auditOrdinals, cleanAudit, createRollout, listPods, seconds, useTestBed, waitForReady } from "./support/batchrollout.ts";
import { IMAGE_BUILD_TIMEOUT_MS, buildImage, serviceAccountVolume, startImageOperator, type ChartOperator, type ImageBuild, leads } from "./support/chart-operator.ts";
import { eventually } from "./support/cluster.ts";

// High availability as the chart deploys it: replicas of the image (chroot, 65532, read-only root)
// with the chart's args and ServiceAccount, electing a leader on one Lease. The leader is killed
// mid-rollout; its standby must take over once the Lease expires, and the rollout must end with
// each ordinal once and never more pods than asked for. Then a graceful stop hands the Lease over.

const NAME = "fleet";
const REPLICAS = 3_000;
/** Kill the leader a third of the way in, with waves in flight. */
const KILL_AT_PODS = 1_000;
/** Requests, the metrics poll and a busy 2-core machine's event-loop delays (19.3 s seen against 21.4). */
const SLACK_MS = 4_000;
/**
 * A killed leader never releases: the standby waits out the Lease from the last change it saw
 * (at or before the kill), then tries at its next retry.
 */
const TAKEOVER_WITHIN_MS = LEASE_DURATION_MS + RETRY_PERIOD_MS * (1 + ACQUIRE_JITTER_FACTOR) + SLACK_MS;
/** A released Lease is taken at the standby's next retry. */
const HANDOVER_WITHIN_MS = RETRY_PERIOD_MS * (1 + ACQUIRE_JITTER_FACTOR) + SLACK_MS;
const READY_TIMEOUT_MS = 180_000;
const LEADER_POLL_MS = 100;

describe("two operator replicas from the image, failing over mid-rollout", () => {
  const bed = useTestBed();
  let image: ImageBuild;
  let saDir: string;
  const operators: ChartOperator[] = [];

  beforeAll(async () => {
    image = await buildImage();
    saDir = await serviceAccountVolume();
  }, IMAGE_BUILD_TIMEOUT_MS + 30_000);

  afterAll(async () => {
    for (const op of operators) await op.kill();
    if (saDir) rmSync(saDir, { recursive: true, force: true });
  });

  it(
    "SIGKILL of the leader: the standby takes over after the Lease, no ordinal twice, never more than 3,000 pods; SIGTERM hands the Lease over at once",
    async () => {
      const ns = await bed.namespace("failover");
      const lease = `failover-${ns}`;
      const leasePath = resourcePath(LEASES, { namespace: OPERATOR_NAMESPACE, name: lease });
      const start = async () => {
        const op = await startImageOperator(image.rootfs, saDir, { extraArgs: [`--watch-namespace=${ns}`, `--leader-election-id=${lease}`] });
        operators.push(op);
        return op;
      };
      try {
        const pair = [await start(), await start()];
        const leader = await eventually("a leader", async () => {
          for (const op of pair) if (await leads(op, lease).catch(() => false)) return op;
          return undefined;
        }, 30_000);
        const standby = pair.find((op) => op !== leader) as ChartOperator;
        const watch = await bed.watch(REPLICAS);

        await createRollout(bed.admin, ns, NAME, { replicas: REPLICAS });
        await eventually(`${KILL_AT_PODS} pods`, async () => watch.count >= KILL_AT_PODS, READY_TIMEOUT_MS, LEADER_POLL_MS);
        const killedAt = Date.now();
        const podsAtKill = watch.count;
        await leader.kill();
        await eventually("the standby leading", () => leads(standby, lease), TAKEOVER_WITHIN_MS, LEADER_POLL_MS);
        const takeoverMs = Date.now() - killedAt;

        await waitForReady(bed.admin, ns, NAME, READY_TIMEOUT_MS);
        // The watch delivers the killed leader's last creates late, so the pause is the longest
        // stretch without a new pod from the kill until the standby's first wave.
        const adds = watch.changes("ADDED").map((e) => e.at);
        let pauseMs = 0;
        for (let i = 1; i < adds.length; i++) {
          const [prev, next] = [adds[i - 1] ?? 0, adds[i] ?? 0];
          if (next > killedAt && prev < killedAt + takeoverMs + LEASE_DURATION_MS) pauseMs = Math.max(pauseMs, next - prev);
        }
        console.log(`[figure] failover: leader SIGKILLed at ${podsAtKill} pods; standby led ${seconds(takeoverMs)} s later ` +
          `(Lease ${LEASE_DURATION_MS / 1000} s); no pod created for ${seconds(pauseMs)} s; peak ${watch.maxCount} pods`);
        expect(watch.violations).toEqual([]);
        expect(watch.maxCount).toBeLessThanOrEqual(REPLICAS);
        expect(auditOrdinals(await listPods(bed.admin, ns), NAME, REPLICAS)).toEqual(cleanAudit(REPLICAS));

        // A graceful stop releases the Lease, and a fresh standby takes it within a retry.
        const replacement = await start();
        await eventually("the replacement's metrics", () => leads(replacement, lease).then(() => true), 30_000);
        const holder = async () => (await bed.admin.get<Lease>(leasePath)).spec?.holderIdentity ?? "";
        const leaving = await holder();
        const stoppedAt = Date.now();
        await standby.stop();
        // Released on the way out (or already taken): never left to expire under the old holder.
        expect(await holder()).not.toBe(leaving);
        await eventually("the replacement leading", () => leads(replacement, lease), HANDOVER_WITHIN_MS, LEADER_POLL_MS);
        console.log(`[figure] SIGTERM handover: the replacement led ${seconds(Date.now() - stoppedAt)} s after SIGTERM to the leader`);
      } finally {
        for (const op of operators) await op.stop();
        await bed.admin.delete(leasePath).catch(() => undefined);
      }
    },
    READY_TIMEOUT_MS * 2,
  );
});
