import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import { join } from "node:path";
import { OPERATOR_NODE_FLAGS } from "../../../src/node-flags.ts";
import { REPO_ROOT, paths } from "../../cluster/layout.ts";
import { cluster } from "./cluster.ts";

// Runs the real operator binary (src/main.ts) as a child process with the non-exempt identity,
// scoped to one namespace so tests in different namespaces never share an operator. Its log goes
// to .cluster/logs/operator-<namespace>-<n>.log.

/** Wait for a stopped operator to exit before it is killed. */
export const OPERATOR_STOP_GRACE_MS = 15_000;

/**
 * The operator's entry point: src/main.ts of this checkout, or of another one named by
 * BATCHROLLOUT_OPERATOR_ROOT (a snapshot of a commit, while this work tree is mid-change).
 */
export const OPERATOR_MAIN = join(process.env.BATCHROLLOUT_OPERATOR_ROOT ?? REPO_ROOT, "src/main.ts");

let started = 0;

export interface OperatorProcess {
  readonly child: ChildProcess;
  readonly logFile: string;
  /** SIGTERM and wait for exit (SIGKILL after the grace period). */
  stop(): Promise<number | null>;
  /** SIGKILL: no drain, no Lease release, nothing flushed. */
  kill(): Promise<void>;
}

export function startOperator(namespace: string, extraArgs: string[] = []): OperatorProcess {
  mkdirSync(paths.logs, { recursive: true });
  const logFile = join(paths.logs, `operator-${namespace}-${++started}.log`);
  const log = createWriteStream(logFile, { flags: "a" });
  const child = spawn(
    join(REPO_ROOT, "scripts/node"),
    [
      ...OPERATOR_NODE_FLAGS,
      OPERATOR_MAIN,
      `--kubeconfig=${cluster().operatorKubeconfig}`,
      `--watch-namespace=${namespace}`,
      "--leader-elect=false",
      "--metrics-port=0",
      "--health-port=0",
      ...extraArgs,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    logFile,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), OPERATOR_STOP_GRACE_MS);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGKILL");
      await exited;
    },
  };
}
