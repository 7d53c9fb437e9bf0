import { WRITER_CLIENTS } from "../writer-pool.ts";
import type { Method } from "./method.ts";
import { startOwnWriter } from "./own-writer.ts";

// The thundering herd: every create fired at once, no client-side limit, 429s retried after Retry-After.

export const storm: Method = {
  id: "storm",
  label: "storm",
  writerIdentity: "writer",
  pods: (n) => n,
  async run(ctx) {
    const writer = startOwnWriter(ctx, { namespace: ctx.namespace, method: "storm", count: ctx.n, prefix: "storm", logName: "writer" });
    ctx.addProcess("writer", writer.pid);
    await writer.started;
    ctx.markStart();
    return {
      writesDone: writer.done,
      stop: writer.stop,
      notes: [`${ctx.n} creates fired at once through ${WRITER_CLIENTS} clients (HTTP/2: all in flight as streams), no client rate limit`],
    };
  },
};
