import { randomBytes } from "node:crypto";
import { pino } from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  ACQUIRE_JITTER_FACTOR,
  LeaderElector,
  RETRY_PERIOD_MS,
  formatMicroTime,
  parseMicroTime,
} from "../../src/controllers/leader-election.ts";
import type { Lease, LeaderElectorOptions } from "../../src/controllers/leader-election.ts";
import type { KubeClient } from "../../src/kube/client.ts";
import { isNotFound } from "../../src/kube/errors.ts";
import { LEASES, resourcePath } from "../../src/kube/resources.ts";
import { OPERATOR_NAMESPACE } from "../cluster/layout.ts";
import { adminClient, eventually, operatorClient } from "./support/cluster.ts";

// Leader election between real candidates on the real API server, as the operator's ServiceAccount
// (whose Role allows get/create/update on Leases in its own namespace, and nothing more).

const logger = pino({ level: process.env.BATCHROLLOUT_TEST_LOG ?? "silent" });
/** The longest a standby waits between two acquire attempts, plus room for the requests. */
const TAKEOVER_WITHIN_MS = RETRY_PERIOD_MS * (1 + ACQUIRE_JITTER_FACTOR) + 2_000;

interface Candidate {
  elector: LeaderElector;
  controller: AbortController;
  done: Promise<void>;
  startedAt?: number;
  stoppedAt?: number;
  leaderSignal?: AbortSignal;
}

describe("leader election on a Lease", () => {
  let admin: KubeClient;
  let operatorA: KubeClient;
  let operatorB: KubeClient;
  let leaseName: string;
  const candidates: Candidate[] = [];

  const leasePath = () => resourcePath(LEASES, { namespace: OPERATOR_NAMESPACE, name: leaseName });
  const readLease = () => admin.get<Lease>(leasePath());

  function campaign(client: KubeClient, identity: string, overrides: Partial<LeaderElectorOptions> = {}): Candidate {
    const elector = new LeaderElector({ client, namespace: OPERATOR_NAMESPACE, name: leaseName, identity, logger, ...overrides });
    const controller = new AbortController();
    const candidate: Candidate = { elector, controller, done: Promise.resolve() };
    candidate.done = elector.run(controller.signal, {
      onStartedLeading(signal) {
        candidate.startedAt = Date.now();
        candidate.leaderSignal = signal;
      },
      onStoppedLeading() {
        candidate.stoppedAt = Date.now();
      },
    });
    candidates.push(candidate);
    return candidate;
  }

  beforeAll(async () => {
    admin = await adminClient();
    operatorA = await operatorClient();
    operatorB = await operatorClient();
  });

  afterEach(async () => {
    const running = candidates.splice(0);
    for (const c of running) c.controller.abort();
    await Promise.all(running.map((c) => c.done));
    await admin.delete(leasePath()).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  });

  afterAll(async () => {
    await Promise.all([admin.close(), operatorA.close(), operatorB.close()]);
  });

  const newLeaseName = () => {
    leaseName = `le-test-${randomBytes(4).toString("hex")}`;
  };

  it("lets exactly one of two candidates lead, and the other take over within seconds when the leader stops", async () => {
    newLeaseName();
    const a = campaign(operatorA, `a_${randomBytes(4).toString("hex")}`);
    const b = campaign(operatorB, `b_${randomBytes(4).toString("hex")}`);
    const leader = await eventually("a leader", async () => a.startedAt !== undefined || b.startedAt !== undefined, 20_000, 50);
    expect(leader).toBe(true);
    // Several renew and retry periods: the standby must stay a standby while the leader renews.
    await new Promise((r) => setTimeout(r, RETRY_PERIOD_MS * 3));
    const [first, second] = a.startedAt !== undefined ? [a, b] : [b, a];
    expect(second.startedAt).toBeUndefined();
    const held = await readLease();
    expect(held.spec?.holderIdentity).toBe(first.elector.identity);
    expect(held.spec?.leaseDurationSeconds).toBe(15);
    expect(held.spec?.renewTime).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    // Renewed recently, by its holder.
    expect(Date.now() - parseMicroTime(held.spec?.renewTime)!).toBeLessThan(RETRY_PERIOD_MS * 2 + 1_000);
    const transitionsBefore = held.spec?.leaseTransitions ?? 0;

    const stoppedAt = Date.now();
    first.controller.abort();
    await first.done;
    expect(first.stoppedAt).toBeDefined();
    expect(first.leaderSignal?.aborted).toBe(true);
    await eventually("the standby to take over", async () => second.startedAt !== undefined, TAKEOVER_WITHIN_MS, 50);
    expect(second.startedAt! - stoppedAt).toBeLessThan(TAKEOVER_WITHIN_MS);
    const taken = await readLease();
    expect(taken.spec?.holderIdentity).toBe(second.elector.identity);
    expect(taken.spec?.leaseTransitions).toBe(transitionsBefore + 1);
    expect(first.startedAt).toBeDefined();
  });

  it("releases the Lease on a graceful stop, so a new candidate acquires it on its first attempt", async () => {
    newLeaseName();
    const a = campaign(operatorA, `a_${randomBytes(4).toString("hex")}`);
    await eventually("a to lead", async () => a.startedAt !== undefined, 20_000, 50);
    a.controller.abort();
    await a.done;
    const released = await readLease();
    expect(released.spec?.holderIdentity ?? "").toBe("");
    expect(released.spec?.leaseDurationSeconds).toBe(1);

    const startedAt = Date.now();
    const b = campaign(operatorB, `b_${randomBytes(4).toString("hex")}`);
    await eventually("b to lead", async () => b.startedAt !== undefined, 20_000, 20);
    // No retry wait at all: the first attempt takes it.
    expect(b.startedAt! - startedAt).toBeLessThan(RETRY_PERIOD_MS);
  });

  it("waits out a holder that stopped renewing without releasing (a crash), then takes over", async () => {
    newLeaseName();
    const now = Date.now();
    await admin.create(resourcePath(LEASES, { namespace: OPERATOR_NAMESPACE }), {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: { name: leaseName },
      spec: { holderIdentity: "crashed", leaseDurationSeconds: 3, acquireTime: formatMicroTime(now), renewTime: formatMicroTime(now), leaseTransitions: 2 },
    });
    const b = campaign(operatorB, `b_${randomBytes(4).toString("hex")}`, { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 });
    await eventually("b to lead", async () => b.startedAt !== undefined, 20_000, 20);
    expect(b.startedAt! - now).toBeGreaterThanOrEqual(3_000);
    expect(b.startedAt! - now).toBeLessThan(3_000 + 500 * (1 + ACQUIRE_JITTER_FACTOR) + 1_000);
    const lease = await readLease();
    expect(lease.spec?.holderIdentity).toBe(b.elector.identity);
    expect(lease.spec?.leaseTransitions).toBe(3);
  });

  it("stops leading when another holder takes the Lease over", async () => {
    newLeaseName();
    const a = campaign(operatorA, `a_${randomBytes(4).toString("hex")}`);
    await eventually("a to lead", async () => a.startedAt !== undefined, 20_000, 50);
    const lease = await readLease();
    await admin.request({
      method: "PUT",
      path: leasePath(),
      body: { ...lease, spec: { ...lease.spec, holderIdentity: "usurper", renewTime: formatMicroTime(Date.now()) } },
    });
    await eventually("a to stop leading", async () => a.stoppedAt !== undefined, RETRY_PERIOD_MS + 3_000, 50);
    expect(a.leaderSignal?.aborted).toBe(true);
    await a.done;
    // It lost, so it must not release what is now someone else's Lease.
    expect((await readLease()).spec?.holderIdentity).toBe("usurper");
  });
});
