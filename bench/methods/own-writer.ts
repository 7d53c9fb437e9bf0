import { join } from "node:path";
import { spawnScript } from "../child.ts";
import type { WriterLine } from "../writer-protocol.ts";
import type { MethodContext, WriterOutcome } from "./method.ts";

// Starts bench/writer-main.ts (our own bulk writer) in a child process and feeds its responses to
// the sampler. Shared by storm, seed batches and the stressor's second writer.

export interface OwnWriter {
  pid: number;
  /** Resolves when the child is about to send its first create (its start-up is not the method's time). */
  started: Promise<number>;
  done: Promise<WriterOutcome>;
  /** First response's X-Kubernetes-PF-* UIDs, once known. */
  pf(): { flowSchemaUid: string; priorityLevelUid: string } | undefined;
  stop(): Promise<void>;
}

export function startOwnWriter(
  ctx: MethodContext,
  opts: { namespace: string; method: string; count: number; prefix: string; batchSize?: number; batchPauseMs?: number; qps?: number; logName: string },
): OwnWriter {
  let pf: { flowSchemaUid: string; priorityLevelUid: string } | undefined;
  let outcome: WriterOutcome = {};
  let onStart: (at: number) => void = () => undefined;
  const started = new Promise<number>((resolve) => (onStart = resolve));
  const args = [
    `--kubeconfig=${ctx.writerKubeconfig}`,
    `--namespace=${opts.namespace}`,
    `--method=${opts.method}`,
    `--count=${opts.count}`,
    `--prefix=${opts.prefix}`,
    ...(opts.batchSize ? [`--batch-size=${opts.batchSize}`, `--batch-pause-ms=${opts.batchPauseMs ?? 0}`] : []),
    ...(opts.qps ? [`--qps=${opts.qps}`] : []),
  ];
  const handle = spawnScript<WriterLine>("writer-main.ts", args, join(ctx.workDir, `${opts.logName}.log`), (line) => {
    switch (line.type) {
      case "response":
        ctx.writerResponse({ at: line.at, ms: line.ms, code: line.code, method: line.method, ...(line.retryAfter === undefined ? {} : { retryAfter: line.retryAfter }) });
        break;
      case "pf":
        pf = { flowSchemaUid: line.flowSchemaUid, priorityLevelUid: line.priorityLevelUid };
        break;
      case "done":
        outcome = { created: line.created, existed: line.existed, failed: line.failed, ...(line.firstError ? { firstError: line.firstError } : {}) };
        break;
      case "start":
        onStart(line.at);
        break;
    }
  });
  const pid = handle.child.pid ?? 0;
  const exitedEarly = handle.exited.then((code) => {
    throw new Error(`the writer exited (code ${code}) before it started; see ${join(ctx.workDir, `${opts.logName}.log`)}`);
  });
  return {
    pid,
    started: Promise.race([started, exitedEarly]),
    done: handle.exited.then((exitCode) => ({ ...outcome, exitCode })),
    pf: () => pf,
    stop: async () => {
      await handle.stop();
    },
  };
}
