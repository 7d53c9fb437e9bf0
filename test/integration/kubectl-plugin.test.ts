import { execFile, execFileSync } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { paths, REPO_ROOT } from "../cluster/layout.ts";
import { createRollout, getRollout, useTestBed } from "./support/batchrollout.ts";
import { cluster, eventually } from "./support/cluster.ts";

// Issue 26: `kubectl batchrollout status -w` as a person sees it, in a real terminal: tmux runs
// kubectl, which finds the plugin (bin/kubectl-batchrollout) on PATH, during a rollout on the local
// control plane; the test reads the screen with capture-pane.

const run = promisify(execFile);
const NAME = "fleet";
const REPLICAS = 300;
/** Fixed 30-pod waves a second apart: ten waves, long enough to watch the line move. */
const WAVES = { strategy: "Fixed", initialSize: 30, minSize: 30, maxSize: 30, minInterval: "1s" };
/** NodePodCIDR is the test bed's IPAM; naming it skips API discovery. */
const IPAM = { provider: "NodePodCIDR" };
/** A terminal wide enough for the progress line and its wave message. */
const COLUMNS = 220;
const ROWS = 60;
const READY_TIMEOUT_MS = 90_000;
const SCREEN_POLL_MS = 250;
const TMUX_INSTALL_TIMEOUT_MS = 300_000;
/** The operator's Events trail its waves by moments; seconds on a loaded machine. */
const EVENTS_LAG_MS = 15_000;
const EVENTS_POLL_MS = 1_000;
/** A tmux server of our own (its own socket), so no one else's session is touched. */
const SOCKET = `batchrollout-test-${process.pid}`;

/** tmux is a Debian package; CI installs it here when the machine lacks it. */
function ensureTmux(): void {
  try {
    execFileSync("tmux", ["-V"], { stdio: "ignore" });
  } catch {
    execFileSync("bash", ["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux"], { stdio: "inherit", timeout: TMUX_INSTALL_TIMEOUT_MS });
  }
}

const tmux = (...args: string[]) => run("tmux", ["-L", SOCKET, ...args]);
const screen = async () => (await tmux("capture-pane", "-p", "-t", "plugin")).stdout;
const plugin = async (...args: string[]) =>
  (await run(join(cluster().binDir, "kubectl"), ["batchrollout", ...args], { env: { ...process.env, PATH: `${join(REPO_ROOT, "bin")}:${process.env.PATH}`, KUBECONFIG: paths.adminKubeconfig } })).stdout;

describe("kubectl batchrollout", () => {
  const bed = useTestBed();

  it("status -w shows the rollout's progress in a terminal, then Ready and the wave history", async () => {
    ensureTmux();
    const ns = await bed.namespace("kubectl-plugin");
    await createRollout(bed.admin, ns, NAME, { replicas: REPLICAS, waves: WAVES, guards: { ipam: IPAM } });
    const path = `${join(REPO_ROOT, "bin")}:${cluster().binDir}:${process.env.PATH}`;
    // kubectl finds kubectl-batchrollout on PATH, as it would after `npm install -g`. PATH is set in
    // the command: tmux's login shell rebuilds it from the profile.
    const command = `export PATH='${path}' KUBECONFIG='${paths.adminKubeconfig}'; kubectl batchrollout status ${NAME} -w -n ${ns}; echo "[exit $?]"; sleep 600`;
    await tmux("new-session", "-d", "-s", "plugin", "-x", String(COLUMNS), "-y", String(ROWS), command);
    try {
      bed.operator();
      let text = "";
      const during = await eventually("a progress line mid-rollout", async () => {
        text = await screen();
        const m = /created\s+(\d+)\/300/g;
        const counts = [...text.matchAll(m)].map((x) => Number(x[1]));
        return counts.some((c) => c > 0 && c < REPLICAS) ? text : undefined;
      }, READY_TIMEOUT_MS, SCREEN_POLL_MS).catch((err: unknown) => {
        throw new Error(`${String(err)}; the screen:\n${text}`, { cause: err });
      });
      const done = await eventually("Ready on the screen", async () => {
        const text = await screen();
        return text.includes("[exit ") ? text : undefined;
      }, READY_TIMEOUT_MS, SCREEN_POLL_MS);
      console.log(`tmux capture-pane of \`kubectl batchrollout status ${NAME} -w\`:\n${done.trimEnd()}`);

      // Mid-rollout: the demo's line, pods created but not all, the wave and what bounds it.
      expect(during).toMatch(/^\s+\d+s {2}created\s+\d+\/300 {2}running\s+\d+ {2}ready\s+\d+ {2}wave \d+ \(\d+ pods, limited by \w+\)/m);
      // The end: every pod, the Ready line, the history of the waves with their sizes and bounds.
      expect(done).toMatch(/created\s+300\/300 {2}running\s+300 {2}ready\s+300/);
      expect(done).toContain("Ready: 300/300 pods ready or succeeded");
      expect(done).toContain("wave history:");
      expect(done).toMatch(/\d\d:\d\d:\d\d {2}wave \d+: creating 30 pods \(ordinals [\d.,-]+\), limited by Fixed/);
      expect(done).toContain("[exit 0]");
    } finally {
      await tmux("kill-server").catch(() => undefined);
    }

    // pause / resume flip spec.paused; explain-wave names the last wave's size and bound.
    expect(await plugin("pause", NAME, "-n", ns)).toContain(`${NAME} paused`);
    expect((await getRollout(bed.admin, ns, NAME)).spec.paused).toBe(true);
    expect(await plugin("resume", NAME, "-n", ns)).toContain(`${NAME} resumed`);
    expect((await getRollout(bed.admin, ns, NAME)).spec.paused).toBe(false);
    // Events are written beside the waves, not with them: once in a run the last ones lagged.
    let explained = "";
    await eventually("explain-wave names the last wave", async () => {
      explained = await plugin("explain-wave", NAME, "-n", ns);
      return /wave \d+ at \d\d:\d\d:\d\d, creating 30 pods, bound by Fixed/.test(explained);
    }, EVENTS_LAG_MS, EVENTS_POLL_MS).catch((err: unknown) => {
      throw new Error(`${String(err)}; explain-wave printed:\n${explained}`, { cause: err });
    });
    expect(explained).toContain("signals at the last reading:");
    expect(explained).toMatch(/pod IPs \(NodePodCIDR\): \d+ of \d+ pod IPs free/);
  });
});
