import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

// CPU time and memory of a process, straight from /proc: no agent, and cheap enough to read every second.

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ). */
const CLOCK_TICKS_PER_S = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
/** utime and stime are the 14th and 15th fields of /proc/<pid>/stat; fields here count from after the ")" of comm. */
const UTIME_AFTER_COMM = 11;
const STIME_AFTER_COMM = 12;
const KIB = 1024;

export interface ProcUsage {
  /** User + system CPU seconds since the process started. */
  cpuSeconds: number;
  /** Resident set size now, bytes. */
  rssBytes: number;
  /** Peak resident set size over the process' life (VmHWM), bytes. */
  peakRssBytes: number;
}

function statusField(status: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
  return m ? Number(m[1]) * KIB : 0;
}

/** Undefined when the process is gone. */
export function readProcUsage(pid: number): ProcUsage | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm may hold spaces and parentheses; everything after the last ")" is space-separated.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[UTIME_AFTER_COMM]) + Number(fields[STIME_AFTER_COMM]);
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return { cpuSeconds: ticks / CLOCK_TICKS_PER_S, rssBytes: statusField(status, "VmRSS"), peakRssBytes: statusField(status, "VmHWM") };
  } catch {
    return undefined;
  }
}
