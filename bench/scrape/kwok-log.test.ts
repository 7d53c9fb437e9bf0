import { appendFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { KwokLog, replayedPod } from "./kwok-log.ts";

// Lines as kwok v0.8.0 writes them (trimmed of source and id).
const conflict = (pod: string, stage = "pod-ready") =>
  JSON.stringify({
    time: "2026-12-02T06:44:39.1Z",
    level: "ERROR",
    msg: "failed to apply stage",
    err: `failed to patch resource for step failed to patch pod ${pod.split("/")[1]}: Operation cannot be fulfilled on pods "${pod.split("/")[1]}": the object has been modified; please apply your changes to the latest version and try again`,
    pod,
    stage,
  });
const patched = (pod: string) => JSON.stringify({ time: "2026-12-02T06:44:39.2Z", level: "INFO", msg: "Patch pod", pod, subresource: "status" });
const lease = JSON.stringify({ time: "2026-12-02T06:44:39.3Z", level: "INFO", msg: "Syncing lease", node: "kwok-node-1" });

describe("replayedPod", () => {
  it("finds the pod of a pod-ready stage refused because kwok's copy was stale", () => {
    expect(replayedPod(conflict("bench-br/sim-7"))).toBe("bench-br/sim-7");
  });

  it("ignores every other line: successful patches, leases, other stages, other errors, broken lines", () => {
    expect(replayedPod(patched("bench-br/sim-7"))).toBeUndefined();
    expect(replayedPod(lease)).toBeUndefined();
    expect(replayedPod(conflict("bench-br/sim-7", "pod-complete"))).toBeUndefined();
    const notFound = JSON.stringify({ msg: "failed to apply stage", stage: "pod-ready", pod: "a/b", err: 'pods "b" not found' });
    expect(replayedPod(notFound)).toBeUndefined();
    expect(replayedPod('{"msg":"failed to apply stage","err":"the object has been modified')).toBeUndefined();
  });
});

describe("KwokLog", () => {
  it("counts distinct replayed pods per namespace, reading only what was appended since the last scan", () => {
    const path = join(mkdtempSync(join(tmpdir(), "kwok-log-")), "kwok.log");
    writeFileSync(path, [lease, conflict("ns-a/p-1"), patched("ns-a/p-2"), conflict("ns-a/p-1"), conflict("ns-b/q-1"), ""].join("\n"));
    const log = new KwokLog(path);
    log.scan();
    expect(log.replayed("ns-a")).toBe(1);
    expect(log.replayed("ns-b")).toBe(1);
    expect(log.replayed("ns-c")).toBe(0);

    // A line still being written is read once it is whole.
    const line = conflict("ns-a/p-3");
    appendFileSync(path, line.slice(0, 40));
    log.scan();
    expect(log.replayed("ns-a")).toBe(1);
    appendFileSync(path, `${line.slice(40)}\n`);
    log.scan();
    expect(log.replayed("ns-a")).toBe(2);
  });

  it("with fromEnd, skips what the log held before it was opened", () => {
    const path = join(mkdtempSync(join(tmpdir(), "kwok-log-")), "kwok.log");
    writeFileSync(path, `${conflict("ns-a/p-1")}\n`);
    const log = new KwokLog(path, { fromEnd: true });
    appendFileSync(path, `${conflict("ns-a/p-2")}\n`);
    log.scan();
    expect(log.replayed("ns-a")).toBe(1);
  });

  it("reads nothing when kwok has not written a log", () => {
    const log = new KwokLog(join(tmpdir(), "no-such-dir", "kwok.log"));
    log.scan();
    expect(log.replayed("ns-a")).toBe(0);
  });
});
