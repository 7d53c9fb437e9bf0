import { parseArgs } from "node:util";
import { down, status, up } from "./cluster.ts";

// npm run cluster:up -- --nodes N | cluster:status | cluster:down

/** Nodes when --nodes is not given: enough for the quick benchmark and the demo. */
export const DEFAULT_NODES = 100;

const USAGE = "usage: cli.ts up [--nodes N] | status | down";

async function main(): Promise<void> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: { nodes: { type: "string", default: String(DEFAULT_NODES) } },
  });
  switch (positionals[0]) {
    case "up": {
      const nodes = Number(values.nodes);
      if (!Number.isInteger(nodes) || nodes < 1) throw new Error(`--nodes must be a positive integer, got "${values.nodes}"`);
      await up({ nodes });
      return;
    }
    case "down":
      await down();
      return;
    case "status": {
      const s = await status();
      for (const c of s.components) {
        console.log(`${c.name.padEnd(24)} ${c.running ? `running (pid ${c.pid})` : "stopped"}  ${c.log}`);
      }
      if (s.components.length === 0) console.log("no cluster recorded in this state directory");
      console.log(`kube-apiserver /readyz: ${s.apiServerReady ? "ok" : "not ready"}`);
      if (s.nodes) {
        console.log(`nodes: ${s.nodes.total} (${s.nodes.ready} Ready, ${s.nodes.distinctPodCIDRs} distinct podCIDRs)`);
      }
      process.exitCode = s.apiServerReady ? 0 : 1;
      return;
    }
    default:
      throw new Error(USAGE);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
