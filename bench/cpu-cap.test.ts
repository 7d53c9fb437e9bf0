import { describe, expect, it } from "vitest";
import { CFS_MIN_QUOTA_US, type CgroupFs, CpuCap, cpuCgroupOf, parseCpuStat, parseLevels, parseOracles, quotaUs } from "./cpu-cap.ts";

/** An in-memory cgroupfs: cgroup.procs of a group lists the PIDs moved into it, as the kernel's does. */
function fakeFs(files: Record<string, string> = {}): CgroupFs & { files: Record<string, string>; dirs: Set<string> } {
  const dirs = new Set<string>(["/cg"]);
  const procs = (p: string) => p.endsWith("/cgroup.procs");
  return {
    files,
    dirs,
    mkdir: (p) => {
      if (dirs.has(p)) throw new Error(`EEXIST ${p}`);
      dirs.add(p);
    },
    write: (p, c) => {
      if (!procs(p)) {
        files[p] = c;
        return;
      }
      for (const [k, v] of Object.entries(files)) if (procs(k)) files[k] = v.split("\n").filter((x) => x && x !== c).join("\n");
      files[p] = [files[p] ?? "", c].filter(Boolean).join("\n");
    },
    read: (p) => {
      if (!(p in files)) throw new Error(`ENOENT ${p}`);
      return files[p]!;
    },
    rmdir: (p) => {
      if ((files[`${p}/cgroup.procs`] ?? "").trim()) throw new Error(`EBUSY ${p}`);
      dirs.delete(p);
    },
  };
}

describe("levels and oracles on the command line", () => {
  it("parses CPUs and unlimited in order", () => {
    expect(parseLevels("0.5, 1,unlimited")).toEqual([{ label: "0.5", cpus: 0.5 }, { label: "1", cpus: 1 }, { label: "unlimited" }]);
  });

  it("takes APF shares after @ as the second knob", () => {
    expect(parseLevels("0.5@20,unlimited@10")).toEqual([{ label: "0.5@20", cpus: 0.5, shares: 20 }, { label: "unlimited@10", shares: 10 }]);
    expect(() => parseLevels("1@0")).toThrow(/shares/);
    expect(() => parseLevels("1@2@3")).toThrow(/shares/);
  });

  it("rejects nonsense, zero and duplicates", () => {
    expect(() => parseLevels("fast")).toThrow(/neither/);
    expect(() => parseLevels("0")).toThrow(/neither/);
    expect(() => parseLevels("1,1")).toThrow(/twice/);
    expect(() => parseLevels("")).toThrow(/at least one/);
  });

  it("reads a previous run's oracles", () => {
    expect([...parseOracles("0.5=12,unlimited=80")]).toEqual([["0.5", 12], ["unlimited", 80]]);
    expect(parseOracles(undefined).size).toBe(0);
    expect(() => parseOracles("0.5")).toThrow(/level/);
  });
});

describe("quota arithmetic", () => {
  it("is the share of the period, at least the kernel's minimum, -1 when unlimited", () => {
    expect(quotaUs(0.5)).toBe(50_000);
    expect(quotaUs(1.5)).toBe(150_000);
    expect(quotaUs(0.001)).toBe(CFS_MIN_QUOTA_US);
    expect(quotaUs(undefined)).toBe(-1);
    expect(quotaUs(0.25, 200_000)).toBe(50_000);
  });

  it("reads cpu.stat", () => {
    expect(parseCpuStat("nr_periods 120\nnr_throttled 37\nthrottled_time 2500000000\nnr_bursts 0\n")).toEqual({ nrPeriods: 120, nrThrottled: 37, throttledS: 2.5 });
  });

  it("finds the cpu cgroup in /proc/<pid>/cgroup, also when joined with cpuacct", () => {
    expect(cpuCgroupOf("4:memory:/x\n1:cpu:/\n0::/")).toBe("/");
    expect(cpuCgroupOf("3:cpu,cpuacct:/docker/abc\n")).toBe("/docker/abc");
    expect(cpuCgroupOf("0::/only-v2")).toBe("/");
  });
});

describe("CpuCap on a fake cgroupfs", () => {
  const procCgroups = { "/proc/11/cgroup": "1:cpu:/\n", "/proc/12/cgroup": "1:cpu:/tenant\n" };

  it("creates the group under the root with the quota, moves the PIDs in, and back where they came from", () => {
    const fs = fakeFs({ ...procCgroups, "/cg/cgroup.procs": "11", "/cg/tenant/cgroup.procs": "12" });
    const cap = new CpuCap({ label: "0.5", cpus: 0.5 }, { root: "/cg", fs, owner: 99 });
    expect(cap.path).toBe("/cg/batchrollout-bench-99");
    cap.create();
    expect(fs.files["/cg/batchrollout-bench-99/cpu.cfs_period_us"]).toBe("100000");
    expect(fs.files["/cg/batchrollout-bench-99/cpu.cfs_quota_us"]).toBe("50000");
    cap.add([11, 12]);
    expect(cap.members()).toEqual([11, 12]);
    expect(fs.files["/cg/cgroup.procs"]).toBe("");
    expect(cap.teardown()).toEqual([]);
    expect(fs.files["/cg/cgroup.procs"]).toBe("11");
    expect(fs.files["/cg/tenant/cgroup.procs"]).toBe("12");
    expect(fs.dirs.has(cap.path)).toBe(false);
    expect(cap.teardown()).toEqual([]);
  });

  it("writes -1 for an unlimited level, and reports what it could not undo without throwing", () => {
    const fs = fakeFs({ ...procCgroups });
    const cap = new CpuCap({ label: "unlimited" }, { root: "/cg", fs, owner: 1 });
    cap.create();
    expect(fs.files["/cg/batchrollout-bench-1/cpu.cfs_quota_us"]).toBe("-1");
    cap.add([11]);
    const write = fs.write;
    fs.write = (p, c) => {
      if (p === "/cg/cgroup.procs") throw new Error("EACCES");
      write(p, c);
    };
    const problems = cap.teardown();
    expect(problems.some((p) => p.includes("EACCES"))).toBe(true);
    expect(problems.some((p) => p.includes("rmdir"))).toBe(true);
  });

  it("does nothing on teardown when never created", () => {
    expect(new CpuCap({ label: "1", cpus: 1 }, { root: "/cg", fs: fakeFs(), owner: 2 }).teardown()).toEqual([]);
  });
});
