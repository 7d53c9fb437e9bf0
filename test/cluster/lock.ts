import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

// An exclusive lock on a file, so a demo, a test run and a benchmark started together in one clone
// bring the test bed up one after the other instead of racing on its PKI and processes.
// Node has no flock(2); a small bash holds the lock with flock(1) (build-binaries.sh uses it too)
// for as long as its stdin stays open. Closing stdin releases it, and so does our process dying
// however it dies, since the pipe closes with it: no stale lock to detect.

/** A held lock; release it once, when the work it guards is done. */
export interface FileLock {
  release(): Promise<void>;
}

// $1 the lock file, $2 who takes it. Prints "waiting <holder>" if someone holds it, "locked" once ours.
const HOLDER_SCRIPT = `
set -eu
lock=$1
while :; do
  mkdir -p "$(dirname "$lock")"
  exec 9>>"$lock"
  if ! flock -n 9; then
    echo "waiting $(head -n 1 "$lock" 2>/dev/null || true)"
    flock 9
  fi
  # cluster:down deletes the state directory, lock file and all, while others wait on it. A lock on
  # a deleted file excludes nobody who opens the path afresh: take the lock on the current file.
  if [ /proc/self/fd/9 -ef "$lock" ]; then break; fi
  exec 9>&-
done
printf '%s\\n' "$2" >"$lock"
echo locked
exec cat >/dev/null
`;

/**
 * Waits for the exclusive lock on `file` (created with its directory if missing). `holder` is
 * written into the file so others waiting can say whom they wait for; `onWait` hears that once.
 */
export function acquireLock(file: string, holder: string, onWait?: (heldBy: string) => void): Promise<FileLock> {
  const child = spawn("bash", ["-c", HOLDER_SCRIPT, "lock", file, holder], { stdio: ["pipe", "pipe", "pipe"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  // Ending stdin of a holder that already died must not crash us with EPIPE: the lock is gone anyway.
  child.stdin.on("error", () => undefined);
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise<FileLock>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      if (line.startsWith("waiting")) onWait?.(line.slice("waiting".length).trim());
      else if (line === "locked") {
        lines.close();
        resolve({
          release: async () => {
            child.stdin.end();
            await exited;
          },
        });
      }
    });
    child.once("error", reject);
    child.once("exit", (code, signal) => reject(new Error(`could not lock ${file}: holder exited ${code ?? signal}${stderr ? `: ${stderr.trim()}` : ""}`)));
  });
}

/** Runs `fn` holding the lock on `file`, and releases it however `fn` ends. */
export async function withLock<T>(file: string, holder: string, fn: () => Promise<T>, onWait?: (heldBy: string) => void): Promise<T> {
  const lock = await acquireLock(file, holder, onWait);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
