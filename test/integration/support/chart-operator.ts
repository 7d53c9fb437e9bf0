import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { Agent, request } from "undici";
import { OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT, REPO_ROOT, paths } from "../../cluster/layout.ts";
import { find, renderChart } from "../../chart/render.ts";
import { cluster } from "./cluster.ts";

// The operator as the chart deploys it, without a kubelet: the image's root filesystem (built by
// scripts/image.sh) run under chroot as 65532:65532 with a read-only root, given the args and
// environment the chart renders and a token of the chart's ServiceAccount where a pod finds it.

const execFileAsync = promisify(execFile);
/** Room for scripts/image.sh build on a cold cache: npm pack of Node, npm ci, tsc, buildah commit. */
export const IMAGE_BUILD_TIMEOUT_MS = 240_000;
/** The ServiceAccount token's lifetime: longer than any test that uses it. */
const TOKEN_DURATION = "1h";
/** SIGTERM drains writes in flight and releases the Lease; then SIGKILL. */
const STOP_GRACE_MS = 15_000;

export interface ImageBuild {
  rootfs: string;
  /** `buildah images` line: reference and size. */
  summary: string;
}

/**
 * What the image is made of: the sources (a commit's with IMAGE_SOURCE=<git rev>, else the work
 * tree's), the lockfile and the build script. Same inputs, same image, so test files share one build.
 */
function imageInputsKey(): string {
  const hash = createHash("sha256");
  const source = process.env.IMAGE_SOURCE;
  if (source) hash.update(execFileSync("git", ["rev-parse", `${source}^{tree}`], { cwd: REPO_ROOT, encoding: "utf8" }));
  const files = ["package.json", "package-lock.json", "tsconfig.json", "tsconfig.build.json", "scripts/image.sh", "scripts/node-env.sh"];
  if (!source) files.push(...readdirSync(join(REPO_ROOT, "src"), { recursive: true, encoding: "utf8" }).map((f) => join("src", f)).sort());
  for (const file of files) {
    const path = join(REPO_ROOT, file);
    if (statSync(path).isFile()) hash.update(file).update(readFileSync(path));
  }
  return hash.digest("hex").slice(0, 16);
}

/** Builds the image and unpacks its root filesystem, or reuses the one built from the same inputs. */
export async function buildImage(): Promise<ImageBuild> {
  const dir = join(paths.state, "image", imageInputsKey());
  const rootfs = join(dir, "rootfs");
  const done = join(dir, "summary");
  if (existsSync(done)) return { rootfs, summary: `${readFileSync(done, "utf8").trim()} (built earlier from the same inputs)` };
  // Older builds' root filesystems (130 MB each) are of no use once the inputs changed.
  const parent = dirname(dir);
  if (existsSync(parent)) for (const old of readdirSync(parent)) rmSync(join(parent, old), { recursive: true, force: true });
  const opts = { cwd: REPO_ROOT, maxBuffer: 16 * 1024 * 1024, timeout: IMAGE_BUILD_TIMEOUT_MS };
  const { stdout } = await execFileAsync("bash", ["scripts/image.sh", "build"], opts);
  await execFileAsync("bash", ["scripts/image.sh", "rootfs", rootfs], opts);
  const summary = stdout.trim().split("\n").pop() ?? "";
  writeFileSync(done, summary);
  return { rootfs, summary };
}

/** A free loopback port, so parallel operators' metrics and health servers never collide. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))));
    });
  });
}

export interface ChartContainer {
  args: string[];
  env: { name: string; value?: string }[];
}

/** The operator container's args and env as the chart renders them for the test bed's release. */
export async function chartContainer(set: string[]): Promise<ChartContainer> {
  const manifests = await renderChart({ release: OPERATOR_SERVICE_ACCOUNT, namespace: OPERATOR_NAMESPACE, set });
  const deployment = find(manifests, "Deployment") as unknown as { spec: { template: { spec: { containers: (ChartContainer & { name: string })[] } } } };
  const container = deployment.spec.template.spec.containers.find((c) => c.name === "operator");
  if (!container) throw new Error("the chart's Deployment has no operator container");
  return { args: container.args, env: container.env ?? [] };
}

/** The projected ServiceAccount volume a pod of the chart gets: token, ca.crt, namespace. */
export async function serviceAccountVolume(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "batchrollout-sa-"));
  const { stdout } = await execFileAsync(join(cluster().binDir, "kubectl"), ["--kubeconfig", paths.adminKubeconfig,
    "create", "token", OPERATOR_SERVICE_ACCOUNT, "-n", OPERATOR_NAMESPACE, `--duration=${TOKEN_DURATION}`]);
  writeFileSync(join(dir, "token"), stdout.trim());
  writeFileSync(join(dir, "ca.crt"), readFileSync(join(paths.pki, "ca.crt")));
  writeFileSync(join(dir, "namespace"), OPERATOR_NAMESPACE);
  // As the kubelet projects it (defaultMode 0644): readable by the image's non-root user.
  chmodSync(dir, 0o755);
  for (const f of ["token", "ca.crt", "namespace"]) chmodSync(join(dir, f), 0o644);
  return dir;
}

export interface ChartOperator {
  readonly child: ChildProcess;
  readonly logFile: string;
  readonly metricsPort: number;
  /** https (the chart's default, metrics.secure) or http. */
  readonly metricsUrl: string;
  /** The chart's ServiceAccount token, which may get /metrics (the chart's apiServerMetrics rule). */
  readonly metricsToken: string;
  readonly healthPort: number;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

let started = 0;

/** Runs the image's entrypoint under chroot with the chart's args plus `extraArgs`. */
export async function startImageOperator(rootfs: string, saDir: string, opts: { set?: string[]; extraArgs?: string[] } = {}): Promise<ChartOperator> {
  const metricsPort = await freePort();
  const healthPort = await freePort();
  const { args, env } = await chartContainer([`metrics.port=${metricsPort}`, `health.port=${healthPort}`, ...(opts.set ?? [])]);
  const server = new URL(cluster().server);
  mkdirSync(paths.logs, { recursive: true });
  const logFile = join(paths.logs, `image-operator-${process.pid}-${++started}.log`);
  const log = createWriteStream(logFile, { flags: "a" });
  const extraEnv = Object.fromEntries(env.map((e) => [e.name, e.value ?? ""]));
  const secure = ![...args, ...(opts.extraArgs ?? [])].includes("--metrics-secure=false");
  const child = spawn("bash", ["scripts/image.sh", "run", rootfs, saDir, ...args, ...(opts.extraArgs ?? [])], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...extraEnv, KUBERNETES_SERVICE_HOST: server.hostname, KUBERNETES_SERVICE_PORT: server.port },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    logFile,
    metricsPort,
    metricsUrl: `${secure ? "https" : "http"}://127.0.0.1:${metricsPort}/metrics`,
    metricsToken: readFileSync(join(saDir, "token"), "utf8").trim(),
    healthPort,
    async stop() {
      if (!running()) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
      await exited;
      clearTimeout(timer);
    },
    async kill() {
      if (!running()) return;
      child.kill("SIGKILL");
      await exited;
    },
  };
}

/** The uid and gid a process runs as, from /proc. */
export function processIds(pid: number): { uid: number; gid: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(status)?.[1]);
  return { uid: field("Uid"), gid: field("Gid") };
}

/** Mount options of the process's own root, as it sees it (mountinfo field 5 is the mount point). */
export function rootMountOptions(pid: number): string[] {
  const roots = readFileSync(`/proc/${pid}/mountinfo`, "utf8").split("\n").map((l) => l.split(" ")).filter((f) => f[4] === "/");
  return (roots[roots.length - 1]?.[5] ?? "").split(",");
}

/**
 * The chart's `helm test` hook, rendered for the test bed's release with `set`, run from the image's
 * root filesystem as its pod would run it. Resolves to its output; rejects when it fails.
 */
export async function runHelmTestHook(rootfs: string, saDir: string, set: string[]): Promise<string> {
  const manifests = await renderChart({ release: OPERATOR_SERVICE_ACCOUNT, namespace: OPERATOR_NAMESPACE, set });
  const hook = manifests.find((m) => m.metadata.annotations?.["helm.sh/hook"] === "test") as unknown as { spec: { containers: { command: string[]; args: string[] }[] } } | undefined;
  const container = hook?.spec.containers[0];
  if (!container) throw new Error("the chart renders no helm test hook");
  const server = new URL(cluster().server);
  const { stdout } = await execFileAsync("bash", ["scripts/image.sh", "exec", rootfs, saDir, ...container.command, ...container.args], {
    cwd: REPO_ROOT,
    env: { ...process.env, KUBERNETES_SERVICE_HOST: server.hostname, KUBERNETES_SERVICE_PORT: server.port },
  });
  return stdout.trim();
}

/** The operator's certificate is self-signed (the chart sets no metrics.certSecret): the token is what is checked. */
const selfSignedTls = new Agent({ connect: { rejectUnauthorized: false } });

/** The operator's /metrics page, read as a scraper would: with a bearer token (`token`, default the chart's). */
export async function scrapeMetrics(op: ChartOperator, token: string | undefined = op.metricsToken): Promise<{ status: number; text: string }> {
  const res = await request(op.metricsUrl, { dispatcher: selfSignedTls, ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}) });
  return { status: res.statusCode, text: await res.body.text() };
}

/** Whether the operator reports holding the Lease (leader_election_master_status on its /metrics). */
export async function leads(op: ChartOperator, lease: string): Promise<boolean> {
  const { status, text } = await scrapeMetrics(op);
  if (status !== 200) throw new Error(`GET ${op.metricsUrl}: ${status} ${text}`);
  return text.includes(`leader_election_master_status{name="${lease}"} 1`);
}
