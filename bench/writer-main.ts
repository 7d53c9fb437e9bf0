import { parseArgs } from "node:util";
import { WriterPool } from "./writer-pool.ts";
import type { WriterLine } from "./writer-protocol.ts";

// A bulk writer in its own process, so its JSON and TLS work never delays the measuring process's
// clocks (pod watch stamps, scrapes). Reports every response as one JSON line on stdout.

const { values } = parseArgs({
  options: {
    kubeconfig: { type: "string" },
    namespace: { type: "string" },
    method: { type: "string" },
    count: { type: "string" },
    prefix: { type: "string", default: "pod" },
    "batch-size": { type: "string" },
    "batch-pause-ms": { type: "string", default: "0" },
    qps: { type: "string" },
  },
});

const emit = (line: WriterLine) => process.stdout.write(`${JSON.stringify(line)}\n`);

async function main(): Promise<void> {
  const { kubeconfig, namespace, method } = values;
  const count = Number(values.count);
  if (!kubeconfig || !namespace || !method || !Number.isInteger(count) || count < 1) {
    throw new Error("usage: writer-main.ts --kubeconfig F --namespace NS --method NAME --count N [--prefix P] [--batch-size B --batch-pause-ms MS | --qps Q]");
  }
  const pool = await WriterPool.open(kubeconfig);
  let pfReported = false;
  pool.onResponse((o) => {
    emit({ type: "response", at: Date.now(), ms: Math.round(o.durationMs), code: o.code, method: o.method, ...(o.retryAfterSeconds === undefined ? {} : { retryAfter: o.retryAfterSeconds }) });
    const fs = o.headers["x-kubernetes-pf-flowschema-uid"];
    const pl = o.headers["x-kubernetes-pf-prioritylevel-uid"];
    if (!pfReported && typeof fs === "string" && typeof pl === "string") {
      pfReported = true;
      emit({ type: "pf", flowSchemaUid: fs, priorityLevelUid: pl });
    }
  });
  const names = Array.from({ length: count }, (_, i) => `${values.prefix}-${i}`);
  emit({ type: "start", at: Date.now() });
  const batch = values["batch-size"] ? Number(values["batch-size"]) : undefined;
  const qps = values.qps ? Number(values.qps) : undefined;
  const summary = batch
    ? await pool.createInBatches(method, namespace, names, batch, Number(values["batch-pause-ms"]))
    : qps
      ? await pool.createAtRate(method, namespace, names, qps)
      : await pool.createAll(method, namespace, names);
  emit({ type: "done", at: Date.now(), ...summary });
  await pool.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
