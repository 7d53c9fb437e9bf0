import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { isIPv6 } from "node:net";
import { homedir } from "node:os";
import { delimiter, dirname, isAbsolute, join } from "node:path";
import { z } from "zod";
// Types only, erased at run time: the module itself is imported on demand (importClientNode).
import type * as ClientNode from "@kubernetes/client-node";

// Where the API server is and how to authenticate to it: a kubeconfig file (--kubeconfig, KUBECONFIG,
// ~/.kube/config) or the pod's ServiceAccount. Our own loader rather than @kubernetes/client-node's
// KubeConfig, because importing client-node at all (even dist/config.js) loads its whole generated
// API and costs about 90 MB of RSS, half of the operator's budget. Credentials from an exec plugin or
// an auth-provider (cloud CLIs, OIDC) are still handled by client-node, imported only when a
// kubeconfig's user needs one.

/** Where the kubelet mounts the ServiceAccount token, its CA bundle and namespace in every pod. */
export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

const path = z.string().min(1);
/** Base64 as Go decodes it for kubectl: line breaks inside are allowed. */
const base64 = z
  .string()
  .transform((s) => s.replace(/\s+/g, ""))
  .pipe(z.base64());

const ClusterEntry = z.object({
  name: z.string().min(1),
  cluster: z.object({
    /** Checked when its context is used: a kubeconfig may hold entries for clusters we never reach. */
    server: z.string().min(1),
    "certificate-authority": path.optional(),
    "certificate-authority-data": base64.optional(),
    "insecure-skip-tls-verify": z.boolean().optional(),
    "tls-server-name": z.string().optional(),
  }),
});

const UserEntry = z.object({
  name: z.string().min(1),
  user: z
    .object({
      token: z.string().optional(),
      /** Read again on every credentials refresh: projected ServiceAccount tokens rotate. */
      tokenFile: path.optional(),
      "client-certificate": path.optional(),
      "client-certificate-data": base64.optional(),
      "client-key": path.optional(),
      "client-key-data": base64.optional(),
      /** Impersonate-User. */
      as: z.string().optional(),
      exec: z.looseObject({}).optional(),
      "auth-provider": z.looseObject({}).optional(),
    })
    .nullish()
    .transform((u) => u ?? {}),
});

const ContextEntry = z.object({
  name: z.string().min(1),
  context: z.object({ cluster: z.string().min(1), user: z.string().optional(), namespace: z.string().optional() }),
});

/** `kubectl config view` writes `users: null` for an empty list. */
const list = <T extends z.ZodType>(item: T) =>
  z
    .array(item)
    .nullish()
    .transform((v) => v ?? []);

/** A kubeconfig file (clientcmd v1 Config), the fields this loader reads. */
export const Kubeconfig = z.object({
  clusters: list(ClusterEntry),
  users: list(UserEntry),
  contexts: list(ContextEntry),
  "current-context": z.string().optional(),
});
export type Kubeconfig = z.infer<typeof Kubeconfig>;
type ClusterEntry = z.infer<typeof ClusterEntry>;
type UserEntry = z.infer<typeof UserEntry>;

/** TLS settings for the connection pool, in node:tls's terms. */
export interface TlsOptions {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** Set only when the kubeconfig says insecure-skip-tls-verify, as kubectl does. */
  rejectUnauthorized?: boolean;
  servername?: string;
}

/** What a client needs to reach one API server as one user. */
export interface ClusterAccess {
  /** The API server's URL, without a trailing slash. */
  server: string;
  tls: TlsOptions;
  /** The user as named in the kubeconfig (in a pod: "serviceaccount"). */
  userName: string;
  /** Where this came from, for logs and errors: a file list or "in-cluster". */
  source: string;
  /**
   * Headers that authenticate a request (Authorization, Impersonate-User). Each call re-reads token
   * files and asks exec plugins again (they cache until expiry), so callers refresh by calling it.
   */
  authHeaders(): Promise<Record<string, string>>;
}

export class KubeconfigError extends Error {
  override readonly name = "KubeconfigError";
}

/**
 * Parses one kubeconfig file's text. Relative paths (certificate-authority, client-certificate,
 * client-key, tokenFile) are made absolute against `dir`, the file's folder, as kubectl does.
 */
export function parseKubeconfig(text: string, parseYaml: (text: string) => unknown, source: string, dir: string): Kubeconfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new KubeconfigError(`kubeconfig ${source}: not valid YAML: ${err instanceof Error ? err.message : String(err)}`);
  }
  const parsed = Kubeconfig.safeParse(raw ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
    throw new KubeconfigError(`kubeconfig ${source} is invalid:\n  ${problems.join("\n  ")}`);
  }
  const absolute = (p: string | undefined) => (p === undefined || isAbsolute(p) ? p : join(dir, p));
  const config = parsed.data;
  for (const { cluster } of config.clusters) cluster["certificate-authority"] = absolute(cluster["certificate-authority"]);
  for (const { user } of config.users) {
    user.tokenFile = absolute(user.tokenFile);
    user["client-certificate"] = absolute(user["client-certificate"]);
    user["client-key"] = absolute(user["client-key"]);
  }
  return config;
}

/**
 * Several files (KUBECONFIG=a:b) as kubectl merges them: the first file that names a cluster, user or
 * context wins it, and the first current-context set wins.
 */
export function mergeKubeconfigs(configs: readonly Kubeconfig[]): Kubeconfig {
  const firstByName = <T extends { name: string }>(lists: T[][]): T[] => {
    const byName = new Map<string, T>();
    for (const entry of lists.flat()) if (!byName.has(entry.name)) byName.set(entry.name, entry);
    return [...byName.values()];
  };
  return {
    clusters: firstByName(configs.map((c) => c.clusters)),
    users: firstByName(configs.map((c) => c.users)),
    contexts: firstByName(configs.map((c) => c.contexts)),
    "current-context": configs.find((c) => c["current-context"])?.["current-context"],
  };
}

/** The cluster and user of the current context, or an error saying what is missing. */
export function currentContext(config: Kubeconfig, source: string): { cluster: ClusterEntry; user: UserEntry } {
  const contextName = config["current-context"];
  if (!contextName) throw new KubeconfigError(`kubeconfig ${source} has no current-context`);
  const context = config.contexts.find((c) => c.name === contextName);
  if (!context) throw new KubeconfigError(`kubeconfig ${source}: current-context "${contextName}" is not among its contexts`);
  const cluster = config.clusters.find((c) => c.name === context.context.cluster);
  if (!cluster) throw new KubeconfigError(`kubeconfig ${source}: context "${contextName}" names cluster "${context.context.cluster}", which is not defined`);
  const userName = context.context.user;
  const user = userName === undefined ? { name: "", user: {} } : config.users.find((u) => u.name === userName);
  if (!user) throw new KubeconfigError(`kubeconfig ${source}: context "${contextName}" names user "${userName}", which is not defined`);
  return { cluster, user };
}

/** Whether the user's credentials come from a plugin only @kubernetes/client-node knows how to run. */
export function needsClientNode(user: UserEntry): boolean {
  return user.user.exec !== undefined || user.user["auth-provider"] !== undefined;
}

async function fileOrData(file: string | undefined, data: string | undefined): Promise<Buffer | undefined> {
  if (file !== undefined) return readFile(file);
  return data === undefined ? undefined : Buffer.from(data, "base64");
}

/**
 * Reads a token file on every call, trimmed as client-go does. A failed read after a successful one
 * keeps the last token (the kubelet swaps the file atomically, but a read can still race a remount).
 */
export function tokenFileReader(file: string): () => Promise<string> {
  let last: string | undefined;
  return async () => {
    try {
      last = (await readFile(file, "utf8")).trim();
    } catch (err) {
      if (last === undefined) throw new KubeconfigError(`cannot read token file ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }
    return last;
  };
}

/** ClusterAccess for a kubeconfig's current context whose user needs no plugin. */
export async function accessFromKubeconfig(config: Kubeconfig, source: string): Promise<ClusterAccess> {
  const { cluster, user } = currentContext(config, source);
  const c = cluster.cluster;
  const u = user.user;
  if (needsClientNode(user)) throw new KubeconfigError(`kubeconfig ${source}: user "${user.name}" needs an exec or auth-provider plugin`);
  if (!/^https?:\/\/[^/]/.test(c.server) || !URL.canParse(c.server)) {
    throw new KubeconfigError(`kubeconfig ${source}: cluster "${cluster.name}" has server "${c.server}", which is not an http(s) URL`);
  }
  const tls: TlsOptions = {};
  const ca = await fileOrData(c["certificate-authority"], c["certificate-authority-data"]);
  const cert = await fileOrData(u["client-certificate"], u["client-certificate-data"]);
  const key = await fileOrData(u["client-key"], u["client-key-data"]);
  if (ca) tls.ca = ca;
  if (cert) tls.cert = cert;
  if (key) tls.key = key;
  if (c["insecure-skip-tls-verify"]) tls.rejectUnauthorized = false;
  if (c["tls-server-name"]) tls.servername = c["tls-server-name"];
  // As client-go: a token file, when set, wins over an inline token.
  const inline = u.token;
  const token = u.tokenFile !== undefined ? tokenFileReader(u.tokenFile) : inline !== undefined ? async () => inline : undefined;
  if (token) await token(); // fail now, naming the file, rather than on the first request
  const impersonate: Record<string, string> = u.as ? { "impersonate-user": u.as } : {};
  return {
    server: c.server.replace(/\/+$/, ""),
    tls,
    userName: user.name,
    source,
    authHeaders: async () => (token ? { authorization: `Bearer ${await token()}`, ...impersonate } : { ...impersonate }),
  };
}

/**
 * The pod's ServiceAccount: KUBERNETES_SERVICE_HOST/PORT, the mounted CA bundle and token. The token
 * is a bound, projected one that the kubelet rotates (about hourly), so it is read again on every
 * credentials refresh.
 */
export async function inClusterAccess(env: NodeJS.ProcessEnv, serviceAccountDir = SERVICE_ACCOUNT_DIR): Promise<ClusterAccess> {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port) throw new KubeconfigError("in-cluster config: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set");
  const token = tokenFileReader(join(serviceAccountDir, "token"));
  await token();
  const caFile = join(serviceAccountDir, "ca.crt");
  const ca = await readFile(caFile).catch((err: unknown) => {
    throw new KubeconfigError(`in-cluster config: cannot read ${caFile}: ${err instanceof Error ? err.message : String(err)}`);
  });
  return {
    server: `https://${isIPv6(host) ? `[${host}]` : host}:${port}`,
    tls: { ca },
    userName: "serviceaccount",
    source: "in-cluster",
    authHeaders: async () => ({ authorization: `Bearer ${await token()}` }),
  };
}

/**
 * @kubernetes/client-node is an optional dependency: the image leaves it out (in a pod the operator
 * authenticates with its ServiceAccount), so an exec or auth-provider user there gets a way out.
 */
async function importClientNode(source: string): Promise<typeof ClientNode> {
  try {
    return await import("@kubernetes/client-node");
  } catch (err) {
    if ((err as { code?: string }).code !== "ERR_MODULE_NOT_FOUND") throw err;
    throw new KubeconfigError(
      `kubeconfig ${source}: its user needs an exec or auth-provider plugin, which only @kubernetes/client-node runs, ` +
        "and it is not installed (an optional dependency, left out of the image): `npm install @kubernetes/client-node`, " +
        "or use a kubeconfig with a token, tokenFile or client certificate",
    );
  }
}

/**
 * The same kubeconfig through @kubernetes/client-node, for exec and auth-provider users. Imported
 * here and only here, so everyone else is spared its memory.
 */
async function accessViaClientNode(file: string | undefined, source: string): Promise<ClusterAccess> {
  const { KubeConfig } = await importClientNode(source);
  const config = new KubeConfig();
  if (file) config.loadFromFile(file);
  else config.loadFromDefault();
  const cluster = config.getCurrentCluster();
  if (!cluster) throw new KubeconfigError(`kubeconfig ${source} has no current cluster`);
  const options = async () => {
    const opts: TlsOptions & { headers?: Record<string, string> } = {};
    await config.applyToHTTPSOptions(opts);
    return opts;
  };
  // Exec plugins may hand out client certificates as well as tokens.
  const { ca, cert, key, rejectUnauthorized, servername } = await options();
  return {
    server: cluster.server.replace(/\/+$/, ""),
    tls: { ca, cert, key, rejectUnauthorized, servername },
    userName: config.getCurrentUser()?.name ?? "",
    source,
    authHeaders: async () => ({ ...(await options()).headers }),
  };
}

export interface LoadOptions {
  /** --kubeconfig; when unset, KUBECONFIG, then ~/.kube/config, then the pod's ServiceAccount. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  home?: string;
  serviceAccountDir?: string;
}

/** The kubeconfig files to read, in kubectl's order of precedence; empty means in-cluster. */
export function kubeconfigFiles(opts: Pick<LoadOptions, "file" | "env" | "home">): string[] {
  if (opts.file) return [opts.file];
  const fromEnv = (opts.env?.KUBECONFIG ?? "").split(delimiter).filter(Boolean);
  // kubectl skips KUBECONFIG entries that do not exist; so do we, but not when none does.
  if (fromEnv.length > 0) return fromEnv.some((f) => existsSync(f)) ? fromEnv.filter((f) => existsSync(f)) : fromEnv.slice(0, 1);
  const home = opts.home ?? homedir();
  const inHome = join(home, ".kube", "config");
  return existsSync(inHome) ? [inHome] : [];
}

/** Loads ClusterAccess from a kubeconfig or, without one, from the pod's ServiceAccount. */
export async function loadClusterAccess(opts: LoadOptions = {}): Promise<ClusterAccess> {
  const env = opts.env ?? process.env;
  const files = kubeconfigFiles({ ...opts, env });
  if (files.length === 0) {
    const dir = opts.serviceAccountDir ?? SERVICE_ACCOUNT_DIR;
    if (!existsSync(join(dir, "token"))) {
      throw new KubeconfigError("no kubeconfig: pass --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run in a pod with a ServiceAccount token");
    }
    return inClusterAccess(env, dir);
  }
  // Only a kubeconfig file needs YAML; in a pod the parser is never loaded.
  const { parse } = await import("yaml");
  const source = files.join(delimiter);
  const configs = await Promise.all(
    files.map(async (file) => {
      const text = await readFile(file, "utf8").catch((err: unknown) => {
        throw new KubeconfigError(`cannot read kubeconfig ${file}: ${err instanceof Error ? err.message : String(err)}`);
      });
      return parseKubeconfig(text, parse, file, dirname(file));
    }),
  );
  const config = mergeKubeconfigs(configs);
  if (needsClientNode(currentContext(config, source).user)) return accessViaClientNode(opts.file, source);
  return accessFromKubeconfig(config, source);
}
