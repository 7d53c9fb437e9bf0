import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { parse } from "yaml";
import { API_VERSION, PLURAL } from "../api/batchrollout.ts";
import { KubeClient } from "../kube/client.ts";
import { isNotFound } from "../kube/errors.ts";
import { kubeconfigFiles, mergeKubeconfigs, parseKubeconfig } from "../kube/kubeconfig.ts";
import { followRollout, getRollout, historyLines, rolloutEvents, rolloutPath } from "./follow.ts";
import { explainWave, progressLine, stateLine } from "./render.ts";

// kubectl-batchrollout: the kubectl plugin (`kubectl batchrollout ...`). It authenticates as the
// user's kubeconfig says, as kubectl does, and only reads rollouts and Events, except pause/resume.

export const USAGE = `Usage: kubectl batchrollout COMMAND NAME [-n NAMESPACE] [--kubeconfig FILE]

Commands:
  status NAME [-w]     progress (pods created, running, ready, the current wave) and the wave history;
                       -w follows the progress line until the rollout is Ready
  pause NAME           set spec.paused: no pod is created or deleted
  resume NAME          clear spec.paused
  explain-wave NAME    the last wave: its size, which guard bound it, each signal's reading, what to do`;

const DEFAULT_NAMESPACE = "default";

/** The namespace of the kubeconfig's current context, as kubectl defaults to it. */
export function contextNamespace(file: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  try {
    const files = kubeconfigFiles({ file, env, home: homedir() });
    const config = mergeKubeconfigs(files.map((f) => parseKubeconfig(readFileSync(f, "utf8"), parse, f, dirname(f))));
    const current = config.contexts.find((c) => c.name === config["current-context"]);
    return current?.context.namespace ?? DEFAULT_NAMESPACE;
  } catch {
    // The client reports a broken kubeconfig in its own words when it loads it.
    return DEFAULT_NAMESPACE;
  }
}

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

export async function run(argv: string[], io: Io, signal?: AbortSignal): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      namespace: { type: "string", short: "n" },
      kubeconfig: { type: "string" },
      watch: { type: "boolean", short: "w", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  const [command, name] = positionals;
  if (values.help || !command) {
    io.out(USAGE);
    return values.help ? 0 : 1;
  }
  if (!["status", "pause", "resume", "explain-wave"].includes(command) || !name || positionals.length > 2) {
    io.err(USAGE);
    return 1;
  }
  const namespace = values.namespace ?? contextNamespace(values.kubeconfig);
  const client = await KubeClient.fromKubeconfig(values.kubeconfig);
  try {
    switch (command) {
      case "status": {
        if (values.watch) {
          // followRollout prints the Ready line itself, as a change of state.
          const r = await followRollout({ client, namespace, name, say: io.out, signal });
          for (const line of await historyLines(client, r)) io.out(line);
          return 0;
        }
        const r = await getRollout(client, namespace, name);
        io.out(progressLine(r, Date.now() - Date.parse(r.metadata.creationTimestamp ?? "")));
        io.out(stateLine(r));
        for (const line of await historyLines(client, r)) io.out(line);
        return 0;
      }
      case "pause":
      case "resume": {
        await client.patch(rolloutPath(namespace, name), { spec: { paused: command === "pause" } });
        io.out(`${PLURAL.slice(0, -1)}.${API_VERSION.split("/")[0]}/${name} ${command === "pause" ? "paused" : "resumed"}`);
        return 0;
      }
      default: {
        const r = await getRollout(client, namespace, name);
        for (const line of explainWave(r, await rolloutEvents(client, namespace, name), r.metadata.uid)) io.out(line);
        return 0;
      }
    }
  } catch (err) {
    if (isNotFound(err)) {
      io.err(`Error from server (NotFound): batchrollout "${name}" not found in namespace "${namespace}"`);
      return 1;
    }
    throw err;
  } finally {
    await client.close();
  }
}

if (import.meta.main) {
  const stop = new AbortController();
  process.once("SIGINT", () => stop.abort());
  run(process.argv.slice(2), { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`) }, stop.signal).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
