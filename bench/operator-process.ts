import { spawn } from "node:child_process";
import { createWriteStream, existsSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { request } from "undici";
import { OPERATOR_NODE_FLAGS } from "../src/node-flags.ts";
import { REPO_ROOT } from "../test/cluster/layout.ts";

// The operator as users run it: compiled to dist/ as the image builds it (`npm run bench` runs
// `npm run build` first; running src/ would add Node's TypeScript stripping to the memory measured),
// in its own process with the image's V8 flags, the writer's kubeconfig, default settings, watching
// one namespace, with metrics and probes on loopback ports picked at random.

/** An operator not ready (informers synced) within this is a failed run. */
export const OPERATOR_READY_TIMEOUT_MS = 60_000;
/** Grace for a SIGTERM'd operator to drain and exit before SIGKILL. */
export const OPERATOR_STOP_GRACE_MS = 15_000;
const READY_POLL_MS = 200;
/**
 * The compiled operator the benchmark runs: dist/main.js, or another build's main.js (say, of a given
 * commit, built in a directory of its own while the work tree's src/ is mid-change).
 */
export const OPERATOR_ENTRY = process.env.BATCHROLLOUT_BENCH_OPERATOR ?? join(REPO_ROOT, "dist/main.js");
const LOOPBACK = "127.0.0.1";

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface OperatorProcess {
  pid: number;
  metricsUrl: string;
  stop(): Promise<void>;
}

export async function startOperator(opts: { kubeconfig: string; namespace: string; logFile: string }): Promise<OperatorProcess> {
  if (!existsSync(OPERATOR_ENTRY)) throw new Error(`${OPERATOR_ENTRY} is missing: run the benchmark with npm run bench, which builds it`);
  const [metricsPort, healthPort] = [await freePort(), await freePort()];
  const log = createWriteStream(opts.logFile, { flags: "a" });
  const child = spawn(
    join(REPO_ROOT, "scripts/node"),
    [
      ...OPERATOR_NODE_FLAGS,
      OPERATOR_ENTRY,
      `--kubeconfig=${opts.kubeconfig}`,
      `--watch-namespace=${opts.namespace}`,
      "--leader-elect=false",
      "--metrics-secure=false", // the sampler reads /metrics over plain http on loopback
      `--metrics-port=${metricsPort}`,
      `--health-port=${healthPort}`,
      `--bind-address=${LOOPBACK}`,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), OPERATOR_STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
  };
  const deadline = Date.now() + OPERATOR_READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the operator exited with code ${child.exitCode} before it was ready; see ${opts.logFile}`);
    const ready = await request(`http://${LOOPBACK}:${healthPort}/readyz`)
      .then(async (r) => (await r.body.text(), r.statusCode === 200))
      .catch(() => false);
    if (ready) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the operator was not ready after ${OPERATOR_READY_TIMEOUT_MS / 1000} s; see ${opts.logFile}`);
    }
    await sleep(READY_POLL_MS);
  }
  return { pid: child.pid ?? 0, metricsUrl: `http://${LOOPBACK}:${metricsPort}/metrics`, stop };
}
