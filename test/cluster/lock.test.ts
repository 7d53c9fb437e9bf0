import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { acquireLock, withLock } from "./lock.ts";

// The lock that makes concurrent cluster:up runs take turns, with real processes and flock(1).

/** Long enough for a lock that is free to be taken: a bash start-up is a few milliseconds. */
const SETTLE_MS = 300;

const dirs: string[] = [];
const freshDir = () => {
  const dir = mkdtempSync(join(tmpdir(), "batchrollout-lock-"));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Resolves to whether `promise` settled within SETTLE_MS. */
const settlesSoon = (promise: Promise<unknown>) => Promise.race([promise.then(() => true), sleep(SETTLE_MS).then(() => false)]);

describe("acquireLock", () => {
  it("serializes two runs: the second waits, hears who holds the lock, and starts when the first ends", async () => {
    const file = join(freshDir(), "state", "lock");
    const events: string[] = [];
    const waitedFor: string[] = [];
    let endFirst!: () => void;
    const first = withLock(file, "first (pid 1)", async () => {
      events.push("first start");
      await new Promise<void>((resolve) => (endFirst = resolve));
      events.push("first end");
    });
    await expect.poll(() => events).toEqual(["first start"]);
    const second = withLock(file, "second", async () => void events.push("second start"), (heldBy) => waitedFor.push(heldBy));

    expect(await settlesSoon(second)).toBe(false);
    expect(waitedFor).toEqual(["first (pid 1)"]);
    endFirst();
    await Promise.all([first, second]);
    expect(events).toEqual(["first start", "first end", "second start"]);
  });

  it("releases when the work fails, and passes the failure on", async () => {
    const file = join(freshDir(), "lock");
    await expect(withLock(file, "failing", () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await settlesSoon(acquireLock(file, "next").then((l) => l.release()))).toBe(true);
  });

  it("a waiter whose lock file was deleted (cluster:down removes the state directory) locks the new one", async () => {
    const state = join(freshDir(), "state");
    const file = join(state, "lock");
    const down = await acquireLock(file, "down");
    const waiter = acquireLock(file, "up");
    expect(await settlesSoon(waiter)).toBe(false);
    rmSync(state, { recursive: true, force: true });
    await down.release();
    const held = await waiter;
    // Had the waiter kept the deleted file's lock, a newcomer opening the path would not wait.
    const newcomer = acquireLock(file, "newcomer");
    expect(await settlesSoon(newcomer)).toBe(false);
    await held.release();
    await (await newcomer).release();
  });

  it("is released when the process holding it dies, so no stale lock is left behind", async () => {
    const file = join(freshDir(), "lock");
    const script = `import { acquireLock } from ${JSON.stringify(new URL("./lock.ts", import.meta.url).href)};
      await acquireLock(${JSON.stringify(file)}, "doomed"); console.log("held"); setInterval(() => {}, 60_000);`;
    const doomed = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise<void>((resolve) => doomed.stdout.on("data", (d: Buffer) => d.toString().includes("held") && resolve()));
    const next = acquireLock(file, "next");
    expect(await settlesSoon(next)).toBe(false);
    doomed.kill("SIGKILL");
    await (await next).release();
  });
});
