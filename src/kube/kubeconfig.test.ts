import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import {
  KubeconfigError,
  accessFromKubeconfig,
  currentContext,
  inClusterAccess,
  kubeconfigFiles,
  loadClusterAccess,
  mergeKubeconfigs,
  parseKubeconfig,
} from "./kubeconfig.ts";

const b64 = (s: string) => Buffer.from(s).toString("base64");

function config(user: Record<string, unknown>, cluster: Record<string, unknown> = {}) {
  return {
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "c", cluster: { server: "https://127.0.0.1:6443/", ...cluster } }],
    users: [{ name: "u", user }],
    contexts: [{ name: "ctx", context: { cluster: "c", user: "u" } }],
    "current-context": "ctx",
  };
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "kubeconfig-test-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, content: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, typeof content === "string" ? content : stringify(content));
  return file;
}

describe("parseKubeconfig", () => {
  it("makes relative paths absolute against the file's folder", () => {
    const text = stringify(config({ "client-certificate": "pki/u.crt", "client-key": "/abs/u.key", tokenFile: "token" }, { "certificate-authority": "ca.crt" }));
    const parsed = parseKubeconfig(text, parse, "f", "/etc/kube");
    expect(parsed.clusters[0]?.cluster["certificate-authority"]).toBe("/etc/kube/ca.crt");
    expect(parsed.users[0]?.user).toMatchObject({ "client-certificate": "/etc/kube/pki/u.crt", "client-key": "/abs/u.key", tokenFile: "/etc/kube/token" });
  });

  it("accepts the nulls kubectl writes for empty lists and users", () => {
    const parsed = parseKubeconfig("clusters: null\nusers:\n- name: u\n  user: null\ncontexts: null\n", parse, "f", "/");
    expect(parsed).toEqual({ clusters: [], users: [{ name: "u", user: {} }], contexts: [], "current-context": undefined });
  });

  it("names the file and the field that is wrong", () => {
    expect(() => parseKubeconfig(stringify(config({}, { server: 6443 })), parse, "/x/config", "/x")).toThrow(/kubeconfig \/x\/config is invalid:\n {2}clusters\.0\.cluster\.server/);
    expect(() => parseKubeconfig("clusters: [", parse, "/x/config", "/x")).toThrow(/kubeconfig \/x\/config: not valid YAML/);
  });

  it("accepts base64 wrapped over lines, as Go does, and rejects what is not base64", () => {
    const wrapped = `${b64("a".repeat(60)).slice(0, 40)}\n${b64("a".repeat(60)).slice(40)}`;
    expect(parseKubeconfig(stringify(config({}, { "certificate-authority-data": wrapped })), parse, "f", "/").clusters[0]?.cluster["certificate-authority-data"]).toBe(b64("a".repeat(60)));
    expect(() => parseKubeconfig(stringify(config({ "client-key-data": "-----BEGIN KEY-----" })), parse, "f", "/")).toThrow(/client-key-data/);
  });
});

describe("mergeKubeconfigs and currentContext", () => {
  const one = parseKubeconfig(stringify(config({ token: "first" })), parse, "a", "/");
  const two = parseKubeconfig(
    stringify({ ...config({ token: "second" }), users: [{ name: "u", user: { token: "second" } }, { name: "v", user: { token: "v" } }], "current-context": "other" }),
    parse,
    "b",
    "/",
  );

  it("lets the first file win each name and the current-context", () => {
    const merged = mergeKubeconfigs([one, two]);
    expect(merged.users.map((u) => [u.name, u.user.token])).toEqual([
      ["u", "first"],
      ["v", "v"],
    ]);
    expect(merged["current-context"]).toBe("ctx");
    expect(mergeKubeconfigs([{ ...one, "current-context": undefined }, two])["current-context"]).toBe("other");
  });

  it("says which reference is dangling", () => {
    expect(() => currentContext({ ...one, "current-context": undefined }, "a")).toThrow("kubeconfig a has no current-context");
    expect(() => currentContext({ ...one, "current-context": "nope" }, "a")).toThrow(`current-context "nope" is not among its contexts`);
    expect(() => currentContext({ ...one, clusters: [] }, "a")).toThrow(`names cluster "c", which is not defined`);
    expect(() => currentContext({ ...one, users: [] }, "a")).toThrow(`names user "u", which is not defined`);
  });
});

describe("accessFromKubeconfig", () => {
  it("takes TLS material from -data fields and a static token", async () => {
    const parsed = parseKubeconfig(
      stringify(
        config(
          { "client-certificate-data": b64("CERT"), "client-key-data": b64("KEY"), token: "abc", as: "someone" },
          { "certificate-authority-data": b64("CA"), "insecure-skip-tls-verify": true, "tls-server-name": "kubernetes" },
        ),
      ),
      parse,
      "f",
      dir,
    );
    const access = await accessFromKubeconfig(parsed, "f");
    expect(access.server).toBe("https://127.0.0.1:6443");
    expect(access.userName).toBe("u");
    expect({ ...access.tls, ca: access.tls.ca?.toString(), cert: access.tls.cert?.toString(), key: access.tls.key?.toString() }).toEqual({
      ca: "CA",
      cert: "CERT",
      key: "KEY",
      rejectUnauthorized: false,
      servername: "kubernetes",
    });
    expect(await access.authHeaders()).toEqual({ authorization: "Bearer abc", "impersonate-user": "someone" });
  });

  it("reads certificate files and leaves rejectUnauthorized alone unless told to skip verification", async () => {
    write("ca.crt", "CA FILE");
    write("u.crt", "CERT FILE");
    write("u.key", "KEY FILE");
    const parsed = parseKubeconfig(stringify(config({ "client-certificate": "u.crt", "client-key": "u.key" }, { "certificate-authority": "ca.crt" })), parse, "f", dir);
    const access = await accessFromKubeconfig(parsed, "f");
    expect([access.tls.ca?.toString(), access.tls.cert?.toString(), access.tls.key?.toString()]).toEqual(["CA FILE", "CERT FILE", "KEY FILE"]);
    expect("rejectUnauthorized" in access.tls).toBe(false);
    expect(await access.authHeaders()).toEqual({});
  });

  it("re-reads a token file on every call, preferring it to an inline token, and keeps the last token when a read fails", async () => {
    const tokenFile = write("token", "one\n");
    const access = await accessFromKubeconfig(parseKubeconfig(stringify(config({ tokenFile: "token", token: "inline" })), parse, "f", dir), "f");
    expect(await access.authHeaders()).toEqual({ authorization: "Bearer one" });
    write("token", "two");
    expect(await access.authHeaders()).toEqual({ authorization: "Bearer two" });
    rmSync(tokenFile);
    expect(await access.authHeaders()).toEqual({ authorization: "Bearer two" });
  });

  it("checks the server URL of the cluster it uses only", async () => {
    const withBadOther = parseKubeconfig(
      stringify({ ...config({ token: "t" }), clusters: [{ name: "c", cluster: { server: "https://k:6443" } }, { name: "old", cluster: { server: "localhost:8080" } }] }),
      parse,
      "f",
      dir,
    );
    expect((await accessFromKubeconfig(withBadOther, "f")).server).toBe("https://k:6443");
    const bad = parseKubeconfig(stringify(config({ token: "t" }, { server: "localhost:8080" })), parse, "f", dir);
    await expect(accessFromKubeconfig(bad, "f")).rejects.toThrow(`cluster "c" has server "localhost:8080", which is not an http(s) URL`);
  });

  it("fails at load, naming the file, when a token file cannot be read", async () => {
    const parsed = parseKubeconfig(stringify(config({ tokenFile: "missing" })), parse, "f", dir);
    await expect(accessFromKubeconfig(parsed, "f")).rejects.toThrow(`cannot read token file ${join(dir, "missing")}`);
  });
});

describe("inClusterAccess", () => {
  it("reads the ServiceAccount's CA and token, and the token again on every call (it rotates)", async () => {
    write("token", "sa-1");
    write("ca.crt", "CLUSTER CA");
    const access = await inClusterAccess({ KUBERNETES_SERVICE_HOST: "10.96.0.1", KUBERNETES_SERVICE_PORT: "443" }, dir);
    expect(access.server).toBe("https://10.96.0.1:443");
    expect(access.tls.ca?.toString()).toBe("CLUSTER CA");
    expect(await access.authHeaders()).toEqual({ authorization: "Bearer sa-1" });
    write("token", "sa-2");
    expect(await access.authHeaders()).toEqual({ authorization: "Bearer sa-2" });
  });

  it("brackets an IPv6 service host and refuses to guess without the service variables", async () => {
    write("token", "t");
    write("ca.crt", "CA");
    expect((await inClusterAccess({ KUBERNETES_SERVICE_HOST: "fd00::1", KUBERNETES_SERVICE_PORT: "443" }, dir)).server).toBe("https://[fd00::1]:443");
    await expect(inClusterAccess({}, dir)).rejects.toThrow(/KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set/);
  });
});

describe("kubeconfigFiles", () => {
  it("prefers --kubeconfig, then KUBECONFIG (existing entries), then ~/.kube/config, then nothing (in-cluster)", () => {
    const a = write("a", "{}");
    const b = write("b", "{}");
    const missing = join(dir, "missing");
    expect(kubeconfigFiles({ file: "/given", env: { KUBECONFIG: a }, home: dir })).toEqual(["/given"]);
    expect(kubeconfigFiles({ env: { KUBECONFIG: [missing, a, b].join(delimiter) }, home: dir })).toEqual([a, b]);
    // None exists: the first is returned, so the error names it.
    expect(kubeconfigFiles({ env: { KUBECONFIG: missing }, home: dir })).toEqual([missing]);
    expect(kubeconfigFiles({ env: {}, home: dir })).toEqual([]);
    mkdirSync(join(dir, ".kube"));
    const inHome = write(".kube/config", "{}");
    expect(kubeconfigFiles({ env: {}, home: dir })).toEqual([inHome]);
  });
});

describe("loadClusterAccess", () => {
  it("merges KUBECONFIG's files", async () => {
    const a = write("a", { ...config({ token: "from-a" }), clusters: [], "current-context": undefined });
    const b = write("b", config({ token: "from-b" }));
    const access = await loadClusterAccess({ env: { KUBECONFIG: [a, b].join(delimiter) }, home: dir });
    expect(access.server).toBe("https://127.0.0.1:6443");
    expect(await access.authHeaders()).toEqual({ authorization: "Bearer from-a" });
    expect(access.source).toBe([a, b].join(delimiter));
  });

  it("falls back to the ServiceAccount, and says what to do when there is none", async () => {
    await expect(loadClusterAccess({ env: {}, home: dir, serviceAccountDir: join(dir, "sa") })).rejects.toThrow(KubeconfigError);
    mkdirSync(join(dir, "sa"));
    write("sa/token", "sa");
    write("sa/ca.crt", "CA");
    const access = await loadClusterAccess({ env: { KUBERNETES_SERVICE_HOST: "k", KUBERNETES_SERVICE_PORT: "6443" }, home: dir, serviceAccountDir: join(dir, "sa") });
    expect(access.source).toBe("in-cluster");
    expect(await access.authHeaders()).toEqual({ authorization: "Bearer sa" });
  });

  it("hands exec-plugin users to @kubernetes/client-node, which runs the plugin", async () => {
    const credential = JSON.stringify({ apiVersion: "client.authentication.k8s.io/v1", kind: "ExecCredential", status: { token: "from-exec" } });
    const file = write(
      "exec",
      config({ exec: { apiVersion: "client.authentication.k8s.io/v1", command: "sh", args: ["-c", `echo '${credential}'`], interactiveMode: "Never" } }, { "certificate-authority-data": b64("CA") }),
    );
    const access = await loadClusterAccess({ file });
    expect(access.server).toBe("https://127.0.0.1:6443");
    expect(access.tls.ca?.toString()).toBe("CA");
    expect(await access.authHeaders()).toMatchObject({ Authorization: "Bearer from-exec" });
  });
});
