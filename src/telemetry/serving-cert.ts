import { X509Certificate, createPrivateKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import forge from "node-forge";
import type { Logger } from "pino";

// The certificate /metrics is served with, as controller-runtime's metrics server chooses it: the
// files of a certificate directory (a cert-manager Secret mounted in the pod), re-read when they
// change, or else a self-signed certificate made in memory at start. A scraper of the self-signed
// one skips verification (Prometheus: tlsConfig.insecureSkipVerify) and relies on the bearer token.

/** The certificate's file in the directory: the key of a kubernetes.io/tls Secret (cert-manager writes it). */
export const CERT_FILE = "tls.crt";
/** The private key's file in the directory, likewise. */
export const KEY_FILE = "tls.key";
/** Lifetime of the self-signed certificate: one year, as client-go's self-signed serving certificates. */
export const SELF_SIGNED_VALIDITY_MS = 365 * 24 * 3_600_000;
/** The self-signed certificate is remade this long before it lapses, for scrapers that do check dates. */
export const SELF_SIGNED_RENEW_BEFORE_MS = 30 * 24 * 3_600_000;
/** notBefore is backdated by this much, so a scraper whose clock runs a little behind accepts it. */
export const SELF_SIGNED_BACKDATE_MS = 5 * 60_000;
/** RSA 2048: what client-go's self-signed certificates use, and what every TLS client accepts. */
export const SELF_SIGNED_RSA_BITS = 2048;
/**
 * How often the directory is re-read. cert-manager renews weeks before expiry and the kubelet
 * updates a Secret volume within a minute or two, so a minute more costs nothing.
 */
export const CERT_RELOAD_INTERVAL_MS = 60_000;
/** Subject of the self-signed certificate: the operator, whatever address it is reached at. */
const SELF_SIGNED_COMMON_NAME = "batchrollout-operator";
/** Bytes of the random serial number: RFC 5280 allows up to 20; 16 never repeat in practice. */
const SERIAL_BYTES = 16;

export interface ServingKeyPair {
  /** PEM certificate (chain), as TLS options take it. */
  cert: string;
  /** PEM private key. */
  key: string;
  /** When the certificate lapses (ms since the epoch). */
  notAfter: number;
  /** Where it came from: the directory's path, or "self-signed". */
  source: string;
}

/**
 * A self-signed serving certificate for `hosts` (names and IP addresses). The key is made by
 * Node's crypto (native, ~50 ms); node-forge only writes and signs the X.509 structure, which
 * Node's crypto cannot do.
 */
export function selfSignedCert(opts: { now: number; hosts?: string[] }): ServingKeyPair {
  const hosts = opts.hosts ?? ["localhost", hostname(), "127.0.0.1", "::1"];
  const pair = generateKeyPairSync("rsa", {
    modulusLength: SELF_SIGNED_RSA_BITS,
    publicKeyEncoding: { type: "spki", format: "pem" },
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
  });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(pair.publicKey);
  const serial = randomBytes(SERIAL_BYTES);
  serial[0] = serial[0]! & 0x7f; // a positive INTEGER, as RFC 5280 requires
  cert.serialNumber = serial.toString("hex");
  cert.validity.notBefore = new Date(opts.now - SELF_SIGNED_BACKDATE_MS);
  cert.validity.notAfter = new Date(opts.now + SELF_SIGNED_VALIDITY_MS);
  const subject = [{ name: "commonName", value: SELF_SIGNED_COMMON_NAME }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  const isIp = (h: string) => /^[\d.]+$/.test(h) || h.includes(":");
  cert.setExtensions([
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true },
    { name: "subjectAltName", altNames: [...new Set(hosts)].map((h) => (isIp(h) ? { type: 7, ip: h } : { type: 2, value: h })) },
  ]);
  cert.sign(forge.pki.privateKeyFromPem(pair.privateKey), forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: pair.privateKey, notAfter: cert.validity.notAfter.getTime(), source: "self-signed" };
}

/** The directory's tls.crt and tls.key, checked to parse and to belong together; errors name the file. */
export function readCertDir(dir: string): ServingKeyPair {
  const read = (file: string) => {
    try {
      return readFileSync(join(dir, file), "utf8");
    } catch (err) {
      throw new Error(`metrics certificate: cannot read ${join(dir, file)}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  };
  const cert = read(CERT_FILE);
  const key = read(KEY_FILE);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (err) {
    throw new Error(`metrics certificate: ${join(dir, CERT_FILE)} is not a PEM certificate: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  let matches: boolean;
  try {
    matches = leaf.checkPrivateKey(createPrivateKey(key));
  } catch (err) {
    throw new Error(`metrics certificate: ${join(dir, KEY_FILE)} is not a PEM private key: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (!matches) throw new Error(`metrics certificate: ${join(dir, KEY_FILE)} is not the key of ${join(dir, CERT_FILE)}`);
  return { cert, key, notAfter: Date.parse(leaf.validTo), source: dir };
}

/**
 * The serving certificate now, and its renewal: `refresh` re-reads the directory (a rotation by
 * cert-manager) or remakes a self-signed certificate near its end. A new pair that does not load
 * (a half-written rotation) is logged and the old one kept: serving goes on.
 */
export class ServingCert {
  readonly #dir: string | undefined;
  readonly #log: Logger;
  #current: ServingKeyPair;
  /** The directory did not load at the last refresh: said once, not every minute. */
  #failing = false;

  /** Throws when the directory's files are missing or do not load: better not to start than serve without them. */
  constructor(opts: { certDir?: string | undefined; now: number; logger: Logger }) {
    this.#dir = opts.certDir;
    this.#log = opts.logger;
    this.#current = this.#dir === undefined ? selfSignedCert({ now: opts.now }) : readCertDir(this.#dir);
  }

  get current(): ServingKeyPair {
    return this.#current;
  }

  /** The new pair when it changed, else undefined. */
  refresh(now: number): ServingKeyPair | undefined {
    if (this.#dir === undefined) {
      if (this.#current.notAfter - now > SELF_SIGNED_RENEW_BEFORE_MS) return undefined;
      this.#current = selfSignedCert({ now });
      this.#log.info({ notAfter: new Date(this.#current.notAfter).toISOString() }, "metrics: self-signed certificate renewed");
      return this.#current;
    }
    let next: ServingKeyPair;
    try {
      next = readCertDir(this.#dir);
    } catch (err) {
      if (!this.#failing) this.#log.warn({ err: err instanceof Error ? err.message : String(err) }, "metrics: certificate directory does not load; keeping the certificate served");
      this.#failing = true;
      return undefined;
    }
    this.#failing = false;
    if (next.cert === this.#current.cert && next.key === this.#current.key) return undefined;
    this.#current = next;
    this.#log.info({ dir: this.#dir, notAfter: new Date(next.notAfter).toISOString() }, "metrics: certificate reloaded");
    return next;
  }
}
