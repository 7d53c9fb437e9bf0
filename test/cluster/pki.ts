import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";

// Certificates for the local control plane, made with the machine's openssl: one CA, a serving
// certificate for kube-apiserver, and a client certificate per identity. ECDSA P-256 keeps
// generation to milliseconds.

export interface ClientIdentity {
  /** File name stem under the pki directory. */
  file: string;
  /** Becomes the Kubernetes user name. */
  commonName: string;
  /** Become the Kubernetes groups. */
  organizations?: string[];
}

export const IDENTITIES = {
  admin: { file: "admin", commonName: "kubernetes-admin", organizations: ["system:masters"] },
  controllerManager: { file: "kube-controller-manager", commonName: "system:kube-controller-manager" },
  scheduler: { file: "kube-scheduler", commonName: "system:kube-scheduler" },
  // kwok plays every kubelet; in group system:nodes its traffic lands in APF's node-high level,
  // as real kubelets' does. Its permissions come from a ClusterRoleBinding made at cluster up.
  kwok: { file: "kwok", commonName: "system:kwok-kubelets", organizations: ["system:nodes"] },
} as const satisfies Record<string, ClientIdentity>;

/** A client identity outside system:masters, for tests that need another non-exempt caller. */
export function clientIdentity(commonName: string, organizations: string[] = []): ClientIdentity {
  return { file: commonName.replace(/[^a-zA-Z0-9_.-]/g, "_"), commonName, organizations };
}

const CERT_DAYS = "3650";

function openssl(args: string[], cwd: string): void {
  execFileSync("openssl", args, { cwd, stdio: ["ignore", "ignore", "pipe"] });
}

function newKey(dir: string, name: string): void {
  openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", `${name}.key`], dir);
}

function subject(cn: string, orgs: string[] = []): string {
  return [...orgs.map((o) => `/O=${o}`), `/CN=${cn}`].join("");
}

function sign(dir: string, name: string, subj: string, extensions: string): void {
  newKey(dir, name);
  openssl(["req", "-new", "-key", `${name}.key`, "-subj", subj, "-out", `${name}.csr`], dir);
  writeFileSync(join(dir, `${name}.ext`), extensions);
  openssl(
    ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
      "-days", CERT_DAYS, "-extfile", `${name}.ext`, "-out", `${name}.crt`],
    dir,
  );
}

/** Creates the CA, the API server's serving pair and the service-account signing pair, once. */
export function ensureClusterPki(dir: string): void {
  mkdirSync(dir, { recursive: true });
  if (!existsSync(join(dir, "ca.crt"))) {
    newKey(dir, "ca");
    openssl(["req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=batchrollout-testbed-ca", "-days", CERT_DAYS,
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
      "-out", "ca.crt"], dir);
  }
  if (!existsSync(join(dir, "apiserver.crt"))) {
    sign(dir, "apiserver", "/CN=kube-apiserver",
      "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n" +
        "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default," +
        "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n");
  }
  if (!existsSync(join(dir, "sa.key"))) {
    newKey(dir, "sa");
    openssl(["ec", "-in", "sa.key", "-pubout", "-out", "sa.pub"], dir);
  }
}

/** Creates a client certificate for an identity (once) and returns its cert and key paths. */
export function ensureClientCert(dir: string, identity: ClientIdentity): { cert: string; key: string } {
  const cert = join(dir, `${identity.file}.crt`);
  if (!existsSync(cert)) {
    sign(dir, identity.file, subject(identity.commonName, identity.organizations),
      "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n");
  }
  return { cert, key: join(dir, `${identity.file}.key`) };
}
