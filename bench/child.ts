import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { REPO_ROOT } from "../test/cluster/layout.ts";

// Runs one of the benchmark's helper scripts (bench/*-main.ts) as a child process with the project's
// Node, hands each JSON line it prints to `onLine`, and keeps its stderr in a log file.

/** Time a child gets to exit on SIGTERM before SIGKILL. */
export const CHILD_STOP_GRACE_MS = 15_000;

export interface ChildHandle {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  stop(): Promise<number | null>;
}

export function spawnScript<T>(script: string, args: string[], logFile: string, onLine: (line: T) => void): ChildHandle {
  const child = spawn(join(REPO_ROOT, "scripts/node"), [join(REPO_ROOT, "bench", script), ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const log = createWriteStream(logFile, { flags: "a" });
  child.stderr?.pipe(log);
  const lines = createInterface({ input: child.stdout! });
  lines.on("line", (text) => {
    if (!text.startsWith("{")) return;
    try {
      onLine(JSON.parse(text) as T);
    } catch {
      log.write(`unparsable line: ${text}\n`);
    }
  });
  // "close", not "exit": every line on stdout has been read by then.
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return {
    child,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), CHILD_STOP_GRACE_MS);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
