import { mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

// The control-plane speed axis: kube-apiserver and etcd (optionally kube-scheduler) moved into a cgroup
// v1 cpu group of their own whose CFS quota is `cpus` × the period. Writing a PID to cgroup.procs moves
// every thread of that process. Teardown moves the processes back to the cgroup they came from (read
// from /proc/<pid>/cgroup, the root cgroup "/" on our machines) and removes the group, synchronously, so
// it also runs from an exit or SIGINT handler.

/** Where cgroup v1's cpu controller is mounted on this machine, the developers' machines and CI. */
export const CGROUP_CPU_ROOT = "/sys/fs/cgroup/cpu";
/** CFS period: the kernel's default; the quota is a share of it. */
export const CFS_PERIOD_US = 100_000;
/** The kernel refuses quotas below 1 ms. */
export const CFS_MIN_QUOTA_US = 1_000;
/** The group's name carries the benchmark's PID, so two runs never share (or remove) one group. */
export const CGROUP_PREFIX = "batchrollout-bench-";

export interface CpuLevel {
  /** As given on the command line ("0.5", "1", "unlimited", "unlimited@10"). */
  label: string;
  /** CPUs the capped processes may use together; undefined = no quota. */
  cpus?: number;
  /**
   * The second knob: nominalConcurrencyShares of the writer's (and the bystander's) APF priority level,
   * when the CPU cap alone does not spread the levels' safe rates (undefined = the default, 100).
   */
  shares?: number;
}

/** Separates a level's CPUs from its APF shares: "0.5@20". */
const SHARES_SEPARATOR = "@";

const UNLIMITED = "unlimited";

/**
 * "0.5,1,unlimited" → levels in the order given; "unlimited@10" also sets the APF shares. Rejects
 * duplicates, non-positive or non-numeric values.
 */
export function parseLevels(list: string): CpuLevel[] {
  const out: CpuLevel[] = [];
  for (const raw of list.split(",").map((s) => s.trim()).filter(Boolean)) {
    const [cpu = "", shares, ...more] = raw.split(SHARES_SEPARATOR);
    const level: CpuLevel = cpu === UNLIMITED ? { label: raw } : { label: raw, cpus: Number(cpu) };
    if (level.cpus !== undefined && !(Number.isFinite(level.cpus) && level.cpus > 0)) throw new Error(`--control-plane-cpu: "${raw}" is neither a positive number of CPUs nor "${UNLIMITED}"`);
    if (shares !== undefined) {
      level.shares = Number(shares);
      if (more.length > 0 || !(Number.isInteger(level.shares) && level.shares > 0)) throw new Error(`--control-plane-cpu: "${raw}": the APF shares after "${SHARES_SEPARATOR}" must be a positive integer`);
    }
    if (out.some((l) => l.label === level.label)) throw new Error(`--control-plane-cpu: "${raw}" is given twice`);
    out.push(level);
  }
  if (out.length === 0) throw new Error("--control-plane-cpu needs at least one level (e.g. 0.5,1,unlimited)");
  return out;
}

/** cfs_quota_us for `cpus` CPUs at CFS_PERIOD_US; -1 (no limit) for unlimited. */
export function quotaUs(cpus: number | undefined, periodUs = CFS_PERIOD_US): number {
  if (cpus === undefined) return -1;
  return Math.max(CFS_MIN_QUOTA_US, Math.round(cpus * periodUs));
}

/** "0.5=12,unlimited=80" → label → qps (a previous run's oracles, to skip the search). */
export function parseOracles(list: string | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (const raw of (list ?? "").split(",").map((s) => s.trim()).filter(Boolean)) {
    const [label, qps] = raw.split("=");
    const v = Number(qps);
    if (!label || !(Number.isFinite(v) && v > 0)) throw new Error(`--oracle: "${raw}" is not <level>=<qps>`);
    out.set(label, v);
  }
  return out;
}

/** The file operations the cap needs; tests give an in-memory one. */
export interface CgroupFs {
  mkdir(path: string): void;
  write(path: string, content: string): void;
  read(path: string): string;
  rmdir(path: string): void;
}

export const realFs: CgroupFs = {
  mkdir: (p) => mkdirSync(p),
  write: (p, c) => writeFileSync(p, c),
  read: (p) => readFileSync(p, "utf8"),
  rmdir: (p) => rmdirSync(p),
};

export interface CpuStat {
  nrPeriods: number;
  nrThrottled: number;
  throttledS: number;
}

export function parseCpuStat(text: string): CpuStat {
  const v = (k: string) => Number(new RegExp(`^${k} (\\d+)$`, "m").exec(text)?.[1] ?? 0);
  return { nrPeriods: v("nr_periods"), nrThrottled: v("nr_throttled"), throttledS: v("throttled_time") / 1e9 };
}

/** The cpu cgroup a process is in, from /proc/<pid>/cgroup's "N:cpu:/path" (or "N:cpu,cpuacct:/path") line. */
export function cpuCgroupOf(procCgroup: string): string {
  for (const line of procCgroup.split("\n")) {
    const [, controllers, path] = line.split(":");
    if (controllers?.split(",").includes("cpu") && path !== undefined) return path;
  }
  return "/";
}

export class CpuCap {
  readonly path: string;
  #origin = new Map<number, string>();
  #created = false;

  readonly level: CpuLevel;
  readonly #opts: { root?: string; procRoot?: string; fs?: CgroupFs; owner?: number };

  constructor(level: CpuLevel, opts: { root?: string; procRoot?: string; fs?: CgroupFs; owner?: number } = {}) {
    this.level = level;
    this.#opts = opts;
    this.path = join(this.#root, `${CGROUP_PREFIX}${opts.owner ?? process.pid}`);
  }

  get #root(): string {
    return this.#opts.root ?? CGROUP_CPU_ROOT;
  }

  get #fs(): CgroupFs {
    return this.#opts.fs ?? realFs;
  }

  /** Creates the group with the level's quota (an unlimited level still gets a group, for cpu.stat). */
  create(): void {
    this.#fs.mkdir(this.path);
    this.#created = true;
    this.#fs.write(join(this.path, "cpu.cfs_period_us"), String(CFS_PERIOD_US));
    this.#fs.write(join(this.path, "cpu.cfs_quota_us"), String(quotaUs(this.level.cpus)));
  }

  /** Moves each process (all its threads) into the group, remembering where it was. */
  add(pids: Iterable<number>): void {
    for (const pid of pids) {
      let origin = "/";
      try {
        origin = cpuCgroupOf(this.#fs.read(join(this.#opts.procRoot ?? "/proc", String(pid), "cgroup")));
      } catch {
        /* gone or unreadable: it goes back to the root */
      }
      this.#origin.set(pid, origin);
      this.#fs.write(join(this.path, "cgroup.procs"), String(pid));
    }
  }

  /** PIDs in the group now. */
  members(): number[] {
    return this.#fs.read(join(this.path, "cgroup.procs")).split("\n").map(Number).filter((p) => Number.isInteger(p) && p > 0);
  }

  stat(): CpuStat {
    return parseCpuStat(this.#fs.read(join(this.path, "cpu.stat")));
  }

  /** Moves every member back where it came from and removes the group. Idempotent; never throws. */
  teardown(): string[] {
    if (!this.#created) return [];
    const problems: string[] = [];
    let members: number[] = [];
    try {
      members = this.members();
    } catch (err) {
      problems.push(String(err));
    }
    for (const pid of members) {
      const origin = this.#origin.get(pid) ?? "/";
      try {
        this.#fs.write(join(this.#root, origin === "/" ? "" : origin, "cgroup.procs"), String(pid));
      } catch (err) {
        // ESRCH: the process exited meanwhile, nothing to move.
        if (!String(err).includes("ESRCH")) problems.push(`pid ${pid}: ${String(err)}`);
      }
    }
    try {
      this.#fs.rmdir(this.path);
      this.#created = false;
    } catch (err) {
      problems.push(`rmdir ${this.path}: ${String(err)}`);
    }
    return problems;
  }
}
