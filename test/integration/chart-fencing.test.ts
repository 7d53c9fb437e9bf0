import { readFileSync, rmSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ACQUIRE_JITTER_FACTOR, LEASE_DURATION_MS, RETRY_PERIOD_MS } from "../../src/controllers/leader-election.ts";
import { LEASES, resourcePath } from "../../src/kube/resources.ts";
import { OPERATOR_NAMESPACE } from "../cluster/layout.ts";
import { createRollout, rolloutPath, seconds, useTestBed, waitForReady } from "./support/batchrollout.ts";
import { IMAGE_BUILD_TIMEOUT_MS, buildImage, serviceAccountVolume, startImageOperator, type ChartOperator, type ImageBuild, leads } from "./support/chart-operator.ts";
import { eventually } from "./support/cluster.ts";

// A leader that cannot renew must stop writing before another can hold the Lease. A paused process
// (SIGSTOP) is the hardest case: it renews nothing and notices nothing until it resumes, with a wave
// half sent. Meanwhile the standby takes over and the rollout is scaled down; on resume, any pod
// the old leader still creates is beyond the new replica count, so the watch shows it.

const NAME = "fenced";
const REPLICAS = 400;
/** Fixed waves of 20 a second: the leader is almost always in the middle of one. */
const WAVE = { strategy: "Fixed", initialSize: 20, minSize: 10, minInterval: "1s" } as const;
const FREEZE_AT_PODS = 60;
/** How often the leader's log is read for its next wave. */
const LOG_POLL_MS = 10;
/** Into a wave of 20 paced over 1 s: a few creates sent, most still waiting in the pacer. */
const FREEZE_INTO_WAVE_MS = 150;
const SCALED_TO = 20;
/** How long the resumed old leader is watched for writes: several of its wave intervals. */
const WATCH_AFTER_RESUME_MS = 5_000;
const SLACK_MS = 4_000;
const TAKEOVER_WITHIN_MS = LEASE_DURATION_MS + RETRY_PERIOD_MS * (1 + ACQUIRE_JITTER_FACTOR) + SLACK_MS;
const READY_TIMEOUT_MS = 60_000;

describe("a leader paused past its Lease", () => {
  const bed = useTestBed();
  let image: ImageBuild;
  let saDir: string;
  const operators: ChartOperator[] = [];

  beforeAll(async () => {
    image = await buildImage();
    saDir = await serviceAccountVolume();
  }, IMAGE_BUILD_TIMEOUT_MS + 30_000);

  afterAll(async () => {
    for (const op of operators) {
      op.child.kill("SIGCONT");
      await op.kill();
    }
    if (saDir) rmSync(saDir, { recursive: true, force: true });
  });

  // Before writes checked the Lease's age on the clock (LeaderElector.leadsAt), the resumed leader
  // sent the rest of the wave it was in: 16 and 17 pods beyond the 20 asked for, in two runs.
  it("creates no pod once it resumes after the standby took over, then exits", async () => {
    const ns = await bed.namespace("fencing");
    const lease = `fencing-${ns}`;
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
      const watch = await bed.watch();
      await createRollout(bed.admin, ns, NAME, { replicas: REPLICAS, waves: WAVE });
      await eventually(`${FREEZE_AT_PODS} pods`, async () => watch.count >= FREEZE_AT_PODS, READY_TIMEOUT_MS, 50);
      // Freeze it just after it starts a wave, so the wave's creates are still being paced out.
      const wavesLogged = () => readFileSync(leader.logFile, "utf8").split('"msg":"wave started"').length;
      const before = wavesLogged();
      await eventually("the leader's next wave", async () => wavesLogged() > before, READY_TIMEOUT_MS, LOG_POLL_MS);
      await new Promise((r) => setTimeout(r, FREEZE_INTO_WAVE_MS));
      leader.child.kill("SIGSTOP");
      const frozenAt = Date.now();
      await eventually("the standby leading", () => leads(standby, lease), TAKEOVER_WITHIN_MS, 100);
      await bed.admin.patch(rolloutPath(ns, NAME), { spec: { replicas: SCALED_TO } });
      await waitForReady(bed.admin, ns, NAME, READY_TIMEOUT_MS);
      await eventually(`${SCALED_TO} pods left`, async () => watch.count === SCALED_TO, READY_TIMEOUT_MS, 100);

      const resumedAt = Date.now();
      leader.child.kill("SIGCONT");
      await new Promise((r) => setTimeout(r, WATCH_AFTER_RESUME_MS));
      const late = watch.changes("ADDED").filter((e) => e.at >= resumedAt).map((e) => e.name);
      console.log(`[figure] fencing: leader paused ${seconds(resumedAt - frozenAt)} s at ${FREEZE_AT_PODS}+ pods; ` +
        `after it resumed it created ${late.length} pods beyond the ${SCALED_TO} asked for; it ${leader.child.exitCode === null ? "is still running" : `exited with ${leader.child.exitCode}`}`);
      expect(late).toEqual([]);
      await eventually("the old leader exiting", async () => leader.child.exitCode !== null, LEASE_DURATION_MS);
      expect(leader.child.exitCode).toBe(1);
    } finally {
      for (const op of operators) {
        op.child.kill("SIGCONT");
        await op.stop();
      }
      await bed.admin.delete(resourcePath(LEASES, { namespace: OPERATOR_NAMESPACE, name: lease })).catch(() => undefined);
    }
  }, READY_TIMEOUT_MS * 4);
});
