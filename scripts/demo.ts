import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { FOLLOW_POLL_MS, followRollout } from "../src/cli/follow.ts";
import { KubeClient } from "../src/kube/client.ts";
import { isNotFound } from "../src/kube/errors.ts";
import { OPERATOR_NODE_FLAGS } from "../src/node-flags.ts";
import { kubectl, up } from "../test/cluster/cluster.ts";
import { REPO_ROOT, paths } from "../test/cluster/layout.ts";

// The main job, end to end on the local control plane: bring it up, install the CRD, run the
// operator with its non-exempt identity, apply examples/sim-fleet.yaml, show progress until Ready,
// then summarise. Ctrl-C stops the operator and removes the example.

const EXAMPLE = join(REPO_ROOT, "examples/sim-fleet.yaml");
const NAMESPACE = "sims";
const NAME = "sim-fleet";
/** How often progress is read and printed. */
const POLL_MS = FOLLOW_POLL_MS;
/** Give up when the rollout is not Ready after this long. */
const DEADLINE_MS = 15 * 60_000;
/** Give up when the example's namespace is not gone after this long. */
const REMOVAL_DEADLINE_MS = 5 * 60_000;

const say = (line: string) => process.stdout.write(`${line}\n`);

async function waitGone(admin: KubeClient, path: string): Promise<void> {
  const deadline = Date.now() + REMOVAL_DEADLINE_MS;
  for (;;) {
    try {
      await admin.get(path);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    if (Date.now() > deadline) throw new Error(`${path} still exists after ${REMOVAL_DEADLINE_MS / 60_000} min`);
    await sleep(500);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { nodes: { type: "string", default: "100" } } });
  const info = await up({ nodes: Number(values.nodes) });
  const admin = await KubeClient.fromKubeconfig(info.adminKubeconfig);

  say("installing the BatchRollout CRD");
  kubectl(info.binDir, ["apply", "--server-side", "-f", join(REPO_ROOT, "crds")]);
  kubectl(info.binDir, ["wait", "--for=condition=Established", "crd/batchrollouts.batchrollout.dev", "--timeout=60s"]);

  const operatorLog = join(paths.logs, "demo-operator.log");
  say(`starting the operator as ${info.operatorKubeconfig} (ServiceAccount, non-exempt); log: ${operatorLog}`);
  const operator = spawn(join(REPO_ROOT, "scripts/node"), [...OPERATOR_NODE_FLAGS, join(REPO_ROOT, "src/main.ts"), `--kubeconfig=${info.operatorKubeconfig}`,
    "--leader-elect=false", "--metrics-port=18080", "--health-port=18081"], { stdio: ["ignore", "pipe", "pipe"] });
  const log = createWriteStream(operatorLog);
  operator.stdout.pipe(log);
  operator.stderr.pipe(log);
  // A failed demo must not leave the operator running behind it.
  process.once("exit", () => operator.kill("SIGTERM"));

  // The BatchRollout carries the operator's finalizer, so the namespace goes while the operator
  // still runs; stopping it first would leave the namespace Terminating for good.
  const removeExample = async () => {
    await admin.delete(`/api/v1/namespaces/${NAMESPACE}`).catch(() => undefined);
    await waitGone(admin, `/api/v1/namespaces/${NAMESPACE}`);
  };
  const cleanUp = async () => {
    await removeExample().finally(() => operator.kill("SIGTERM"));
  };
  process.once("SIGINT", () => {
    say("\ninterrupted: stopping the operator and removing the example");
    void cleanUp().finally(() => process.exit(130));
  });

  // A previous run's example would be Ready already and show nothing.
  await removeExample();

  say(`applying ${EXAMPLE}`);
  kubectl(info.binDir, ["apply", "-f", EXAMPLE]);

  const started = Date.now();
  // The progress line is kubectl-batchrollout's (`kubectl batchrollout status -w`), one implementation.
  const ready = await followRollout({
    client: admin,
    namespace: NAMESPACE,
    name: NAME,
    say,
    since: started,
    pollMs: POLL_MS,
    check: () => {
      if (operator.exitCode !== null) throw new Error(`the operator exited with code ${operator.exitCode}; see ${operatorLog}`);
      if (Date.now() - started > DEADLINE_MS) throw new Error(`not Ready after ${DEADLINE_MS / 60_000} min; see ${operatorLog}`);
    },
  });
  const replicas = ready.spec.replicas;

  const seconds = (Date.now() - started) / 1000;
  // Every wave leaves a WaveStarted event: "wave 6: creating 54 pods (...), limited by Remaining".
  const events = await admin.get<{ items: { reason: string; note?: string }[] }>(`/apis/events.k8s.io/v1/namespaces/${NAMESPACE}/events`);
  const waveNotes = events.items.filter((e) => e.reason === "WaveStarted").map((e) => /creating (\d+) pods.*limited by (\w+)/.exec(e.note ?? ""));
  const byLimit = new Map<string, number>();
  const sizes: number[] = [];
  for (const m of waveNotes) {
    if (!m) continue;
    sizes.push(Number(m[1]));
    byLimit.set(m[2]!, (byLimit.get(m[2]!) ?? 0) + 1);
  }
  say("");
  say(`Ready: ${NAMESPACE}/${NAME}, ${replicas} pods in ${seconds.toFixed(1)} s (${(replicas / seconds).toFixed(0)} pods/s)`);
  say(`waves: ${sizes.length} (sizes ${Math.min(...sizes)}..${Math.max(...sizes)} pods)`);
  say(`limited by: ${[...byLimit].map(([k, n]) => `${k} ×${n}`).join(", ")}`);
  say(`kubectl --kubeconfig ${info.adminKubeconfig} get br -n ${NAMESPACE}`);
  say(kubectl(info.binDir, ["get", "br", "-n", NAMESPACE]).trimEnd());
  say("removing the example and stopping the operator");
  await cleanUp();
  say("the control plane keeps running; stop it with: bash scripts/run.sh cluster:down");
  await admin.close();
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
