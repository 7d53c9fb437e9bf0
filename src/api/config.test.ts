import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.ts";

describe("loadConfig", () => {
  it("applies defaults", () => {
    const c = loadConfig([], {});
    expect(c).toMatchObject({ workers: 4, metricsPort: 8080, healthPort: 8081, leaderElect: true, logLevel: "info" });
  });

  it("reads flags in both forms, and flags win over environment variables", () => {
    const c = loadConfig(["--workers=8", "--leader-elect", "false"], { BATCHROLLOUT_WORKERS: "2", BATCHROLLOUT_LOG_LEVEL: "debug" });
    expect(c.workers).toBe(8);
    expect(c.leaderElect).toBe(false);
    expect(c.logLevel).toBe("debug");
  });

  it("names the flag and the variable when a value is invalid", () => {
    expect(() => loadConfig(["--workers=zero"], {})).toThrow(/--workers \(BATCHROLLOUT_WORKERS\)/);
    expect(() => loadConfig([], { BATCHROLLOUT_METRICS_PORT: "70000" })).toThrow(/--metrics-port/);
  });

  it("rejects unknown flags and flags without values", () => {
    expect(() => loadConfig(["--wrokers=3"], {})).toThrow(/unknown flag --wrokers/);
    expect(() => loadConfig(["--workers"], {})).toThrow(/needs a value/);
  });
});
