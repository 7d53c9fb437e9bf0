import { describe, expect, it } from "vitest";
import { METRICS_PLAIN_PORT, METRICS_SECURE_PORT, loadConfig } from "./config.ts";

describe("loadConfig", () => {
  it("applies defaults", () => {
    const c = loadConfig([], {});
    expect(c).toMatchObject({ workers: 4, metricsPort: 8443, metricsSecure: true, healthPort: 8081, leaderElect: true, logLevel: "info" });
    expect(c.metricsCertDir).toBeUndefined();
  });

  it("serves metrics on 8443 when secure and 8080 when plain, unless a port is given", () => {
    expect([METRICS_SECURE_PORT, METRICS_PLAIN_PORT]).toEqual([8443, 8080]);
    expect(loadConfig(["--metrics-secure=false"], {})).toMatchObject({ metricsSecure: false, metricsPort: 8080 });
    expect(loadConfig([], { BATCHROLLOUT_METRICS_SECURE: "false" })).toMatchObject({ metricsSecure: false, metricsPort: 8080 });
    expect(loadConfig(["--metrics-secure", "false", "--metrics-port=9090"], {})).toMatchObject({ metricsSecure: false, metricsPort: 9090 });
    expect(loadConfig(["--metrics-port=9443"], {})).toMatchObject({ metricsSecure: true, metricsPort: 9443 });
    expect(loadConfig(["--metrics-port=0"], {}).metricsPort).toBe(0);
    expect(loadConfig(["--metrics-cert-dir=/certs"], {})).toMatchObject({ metricsSecure: true, metricsCertDir: "/certs" });
    expect(loadConfig([], { BATCHROLLOUT_METRICS_CERT_DIR: "/certs" }).metricsCertDir).toBe("/certs");
  });

  it("refuses a certificate directory for plain metrics, and a secure flag that is not a boolean", () => {
    expect(() => loadConfig(["--metrics-secure=false", "--metrics-cert-dir=/certs"], {})).toThrow(/--metrics-cert-dir \(BATCHROLLOUT_METRICS_CERT_DIR\): needs --metrics-secure=true/);
    expect(() => loadConfig(["--metrics-secure=yes"], {})).toThrow(/--metrics-secure \(BATCHROLLOUT_METRICS_SECURE\)/);
    expect(() => loadConfig(["--metrics-cert-dir="], {})).toThrow(/--metrics-cert-dir/);
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
