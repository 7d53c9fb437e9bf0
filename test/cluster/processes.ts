import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { paths } from "./layout.ts";

// Control-plane processes run detached (own process group) with their output in .cluster/logs and
// their PID in .cluster/pids, so `cluster:down` stops exactly what `cluster:up` started even from
// another shell, and a test run can reuse a cluster a developer already started.

/** How long a component gets to exit on SIGTERM before it is killed. */
export const STOP_GRACE_MS = 10_000;
/** Lines of a component's log shown when it fails to become ready. */
export const LOG_TAIL_LINES = 40;

export function logFile(name: string): string {
  return join(paths.logs, `${name}.log`);
}

function pidFile(name: string): string {
  return join(paths.pids, `${name}.pid`);
}

export function startProcess(name: string, binary: string, args: string[]): number {
  mkdirSync(paths.logs, { recursive: true });
  mkdirSync(paths.pids, { recursive: true });
  const out = openSync(logFile(name), "a");
  const child = spawn(binary, args, { detached: true, stdio: ["ignore", out, out] });
  closeSync(out);
  if (child.pid === undefined) throw new Error(`could not start ${name} (${binary})`);
  writeFileSync(pidFile(name), String(child.pid));
  child.unref();
  return child.pid;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** PIDs of the components this state directory started, alive or not. */
export function recordedProcesses(): Map<string, number> {
  const found = new Map<string, number>();
  if (!existsSync(paths.pids)) return found;
  for (const entry of readdirSync(paths.pids)) {
    if (!entry.endsWith(".pid")) continue;
    const pid = Number(readFileSync(join(paths.pids, entry), "utf8").trim());
    if (Number.isInteger(pid) && pid > 0) found.set(entry.slice(0, -".pid".length), pid);
  }
  return found;
}

export function runningProcess(name: string): number | undefined {
  const pid = recordedProcesses().get(name);
  return pid !== undefined && isAlive(pid) ? pid : undefined;
}

/** Stops a component's whole process group: SIGTERM, then SIGKILL after STOP_GRACE_MS. */
export async function stopProcess(name: string, pid: number): Promise<void> {
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-pid, signal);
    } catch {
      /* already gone */
    }
  };
  signalGroup("SIGTERM");
  const deadline = Date.now() + STOP_GRACE_MS;
  while (isAlive(pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(pid)) signalGroup("SIGKILL");
  while (isAlive(pid)) await sleep(50);
  rmSync(pidFile(name), { force: true });
}

export function logTail(name: string, lines = LOG_TAIL_LINES): string {
  const file = logFile(name);
  if (!existsSync(file)) return `(no log at ${file})`;
  return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
}

/**
 * Polls `check` until it returns true. On timeout, or if the component's process died, throws
 * an error naming the component with the tail of its log, so a failed start explains itself.
 */
export async function waitFor(
  component: string,
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 250,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError = "";
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      lastError = err instanceof Error ? err.message : String(err);
    }
    const pid = recordedProcesses().get(component);
    const died = pid !== undefined && !isAlive(pid);
    if (died || Date.now() > deadline) {
      const why = died ? "exited" : `was not ${what} after ${Math.round(timeoutMs / 1000)} s`;
      throw new Error(
        `${component} ${why}${lastError ? ` (last check: ${lastError})` : ""}\n` +
          `--- last lines of ${logFile(component)} ---\n${logTail(component)}`,
      );
    }
    await sleep(intervalMs);
  }
}
