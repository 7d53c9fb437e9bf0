import { parseArgs } from "node:util";
import { KubeClient } from "../src/kube/client.ts";
import { BYSTANDER_TARGET_POD, runBystander } from "./bystander.ts";
import type { BystanderLine } from "./writer-protocol.ts";

// The bystander in its own process: its latencies must not include the event-loop delay of the
// process that drives a storm. Prints one JSON line per request; stops on SIGTERM or after --max-s.

const { values } = parseArgs({
  options: {
    kubeconfig: { type: "string" },
    namespace: { type: "string" },
    "max-s": { type: "string" },
  },
});

const emit = (line: BystanderLine) => process.stdout.write(`${JSON.stringify(line)}\n`);

async function main(): Promise<void> {
  const { kubeconfig, namespace } = values;
  const maxS = Number(values["max-s"]);
  if (!kubeconfig || !namespace || !(maxS > 0)) throw new Error("usage: bystander-main.ts --kubeconfig F --namespace NS --max-s SECONDS");
  const client = await KubeClient.fromKubeconfig(kubeconfig);
  let pfReported = false;
  client.onResponse((o) => {
    const fs = o.headers["x-kubernetes-pf-flowschema-uid"];
    const pl = o.headers["x-kubernetes-pf-prioritylevel-uid"];
    if (!pfReported && typeof fs === "string" && typeof pl === "string") {
      pfReported = true;
      emit({ type: "pf", flowSchemaUid: fs, priorityLevelUid: pl });
    }
  });
  const stop = new AbortController();
  process.once("SIGTERM", () => stop.abort());
  // Bounded in time whatever happens to the parent.
  const limit = setTimeout(() => stop.abort(), maxS * 1_000);
  await runBystander({ client, namespace, emit, signal: stop.signal, podName: BYSTANDER_TARGET_POD });
  clearTimeout(limit);
  await client.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
