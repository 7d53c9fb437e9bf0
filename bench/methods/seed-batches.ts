import type { Method } from "./method.ts";
import { startOwnWriter } from "./own-writer.ts";

// The usual shell-loop advice: create 500 pods in parallel, sleep 10 s, repeat.

export const SEED_BATCH_SIZE = 500;
export const SEED_BATCH_PAUSE_MS = 10_000;

export const seedBatches: Method = {
  id: "seed-batches",
  label: `seed batches (${SEED_BATCH_SIZE}, sleep ${SEED_BATCH_PAUSE_MS / 1000} s)`,
  writerIdentity: "writer",
  pods: (n) => n,
  async run(ctx) {
    const writer = startOwnWriter(ctx, {
      namespace: ctx.namespace,
      method: "seed-batches",
      count: ctx.n,
      prefix: "seed",
      batchSize: SEED_BATCH_SIZE,
      batchPauseMs: SEED_BATCH_PAUSE_MS,
      logName: "writer",
    });
    ctx.addProcess("writer", writer.pid);
    await writer.started;
    ctx.markStart();
    return {
      writesDone: writer.done,
      stop: writer.stop,
      notes: [`batches of ${SEED_BATCH_SIZE} creates in parallel, ${SEED_BATCH_PAUSE_MS / 1000} s sleep after each`],
    };
  },
};
