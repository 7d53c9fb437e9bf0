import { writeFileSync } from "node:fs";
import { stringify } from "yaml";

// kubeconfig files for the test bed's identities. Credentials are referenced by path (client
// certificates) or embedded (ServiceAccount tokens).

export type Credentials = { clientCertificate: string; clientKey: string } | { token: string };

export function writeKubeconfig(file: string, opts: { server: string; caFile: string; user: string; credentials: Credentials }): void {
  const user =
    "token" in opts.credentials
      ? { token: opts.credentials.token }
      : { "client-certificate": opts.credentials.clientCertificate, "client-key": opts.credentials.clientKey };
  const config = {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "batchrollout-testbed", cluster: { server: opts.server, "certificate-authority": opts.caFile } }],
    users: [{ name: opts.user, user }],
    contexts: [{ name: opts.user, context: { cluster: "batchrollout-testbed", user: opts.user } }],
    "current-context": opts.user,
  };
  writeFileSync(file, stringify(config), { mode: 0o600 });
}
