import { X509Certificate, createPrivateKey } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { CERT_FILE, KEY_FILE, SELF_SIGNED_RENEW_BEFORE_MS, SELF_SIGNED_VALIDITY_MS, ServingCert, readCertDir, selfSignedCert } from "./serving-cert.ts";

const NOW = Date.parse("2026-12-07T00:00:00Z");

function capture() {
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line) as { level: number; msg: string }) });
  return { logger, lines };
}

const dirs: string[] = [];
function certDir(pair?: { cert: string; key: string }): string {
  const dir = mkdtempSync(join(tmpdir(), "serving-cert-"));
  dirs.push(dir);
  if (pair) writePair(dir, pair);
  return dir;
}
function writePair(dir: string, pair: { cert: string; key: string }): void {
  writeFileSync(join(dir, CERT_FILE), pair.cert);
  writeFileSync(join(dir, KEY_FILE), pair.key);
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("selfSignedCert", () => {
  it("makes a one-year serving certificate for the pod's names and loopback, with its key", () => {
    const pair = selfSignedCert({ now: NOW, hosts: ["localhost", "op-0", "127.0.0.1", "::1"] });
    const cert = new X509Certificate(pair.cert);
    expect(cert.subjectAltName).toBe("DNS:localhost, DNS:op-0, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1");
    expect(cert.checkPrivateKey(createPrivateKey(pair.key))).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.issuer).toBe(cert.subject);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(Date.parse(cert.validTo)).toBe(NOW + SELF_SIGNED_VALIDITY_MS);
    expect(Date.parse(cert.validFrom)).toBeLessThan(NOW);
    expect(pair).toMatchObject({ notAfter: NOW + SELF_SIGNED_VALIDITY_MS, source: "self-signed" });
    expect(cert.keyUsage).toEqual(["1.3.6.1.5.5.7.3.1"]);
  });

  it("gives every certificate its own key and serial", () => {
    const [a, b] = [selfSignedCert({ now: NOW }), selfSignedCert({ now: NOW })];
    expect(a.key).not.toBe(b.key);
    expect(new X509Certificate(a.cert).serialNumber).not.toBe(new X509Certificate(b.cert).serialNumber);
  });
});

describe("readCertDir", () => {
  it("reads tls.crt and tls.key", () => {
    const pair = selfSignedCert({ now: NOW });
    const dir = certDir(pair);
    expect(readCertDir(dir)).toEqual({ cert: pair.cert, key: pair.key, notAfter: pair.notAfter, source: dir });
  });

  it("names the file that is missing, unreadable or not the certificate's key", () => {
    const dir = certDir();
    expect(() => readCertDir(dir)).toThrow(`cannot read ${join(dir, CERT_FILE)}`);
    writeFileSync(join(dir, CERT_FILE), "not a certificate");
    writeFileSync(join(dir, KEY_FILE), selfSignedCert({ now: NOW }).key);
    expect(() => readCertDir(dir)).toThrow(`${join(dir, CERT_FILE)} is not a PEM certificate`);
    writeFileSync(join(dir, CERT_FILE), selfSignedCert({ now: NOW }).cert);
    expect(() => readCertDir(dir)).toThrow(`${join(dir, KEY_FILE)} is not the key of ${join(dir, CERT_FILE)}`);
    writeFileSync(join(dir, KEY_FILE), "garbage");
    expect(() => readCertDir(dir)).toThrow(`${join(dir, KEY_FILE)} is not a PEM private key`);
  });
});

describe("ServingCert", () => {
  it("uses the directory when one is given, and reloads it when cert-manager rotates the files", () => {
    const { logger, lines } = capture();
    const first = selfSignedCert({ now: NOW });
    const dir = certDir(first);
    const serving = new ServingCert({ certDir: dir, now: NOW, logger });
    expect(serving.current).toMatchObject({ cert: first.cert, source: dir });
    expect(serving.refresh(NOW)).toBeUndefined();

    const second = selfSignedCert({ now: NOW });
    writePair(dir, second);
    expect(serving.refresh(NOW)).toMatchObject({ cert: second.cert, key: second.key });
    expect(serving.current.cert).toBe(second.cert);
    expect(lines.map((l) => l.msg)).toEqual(["metrics: certificate reloaded"]);
  });

  it("keeps serving the certificate it has while a rotation is half written, and says so once", () => {
    const { logger, lines } = capture();
    const first = selfSignedCert({ now: NOW });
    const dir = certDir(first);
    const serving = new ServingCert({ certDir: dir, now: NOW, logger });
    writeFileSync(join(dir, CERT_FILE), selfSignedCert({ now: NOW }).cert); // the new certificate, the old key
    expect(serving.refresh(NOW)).toBeUndefined();
    expect(serving.refresh(NOW)).toBeUndefined();
    expect(serving.current.cert).toBe(first.cert);
    expect(lines.map((l) => l.msg)).toEqual(["metrics: certificate directory does not load; keeping the certificate served"]);
  });

  it("refuses to start on a directory without the files", () => {
    expect(() => new ServingCert({ certDir: certDir(), now: NOW, logger: capture().logger })).toThrow(/cannot read .*tls\.crt/);
  });

  it("makes a self-signed certificate without a directory, and a new one before it lapses", () => {
    const { logger, lines } = capture();
    const serving = new ServingCert({ now: NOW, logger });
    const first = serving.current;
    expect(first.source).toBe("self-signed");
    const renewAt = first.notAfter - SELF_SIGNED_RENEW_BEFORE_MS;
    expect(serving.refresh(renewAt - 1)).toBeUndefined();
    const renewed = serving.refresh(renewAt);
    expect(renewed?.cert).not.toBe(first.cert);
    expect(renewed?.notAfter).toBe(renewAt + SELF_SIGNED_VALIDITY_MS);
    expect(lines.map((l) => l.msg)).toEqual(["metrics: self-signed certificate renewed"]);
  });
});
