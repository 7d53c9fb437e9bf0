import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { contextNamespace, run, USAGE } from "./kubectl-batchrollout.ts";

const dir = mkdtempSync(join(tmpdir(), "kubectl-batchrollout-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function kubeconfig(namespace?: string): string {
  const file = join(dir, `config-${namespace ?? "none"}`);
  const context = namespace ? `{cluster: c, user: u, namespace: ${namespace}}` : "{cluster: c, user: u}";
  writeFileSync(
    file,
    `apiVersion: v1
kind: Config
current-context: ctx
contexts: [{name: ctx, context: ${context}}]
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
`,
  );
  return file;
}

describe("kubectl-batchrollout", () => {
  it("defaults to the namespace of the kubeconfig's current context, as kubectl does", () => {
    expect(contextNamespace(kubeconfig("team-a"), {})).toBe("team-a");
    expect(contextNamespace(kubeconfig(), {})).toBe("default");
    expect(contextNamespace(join(dir, "missing"), {})).toBe("default");
  });

  it("prints its usage for --help and refuses an unknown command without a request", async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
    expect(await run(["--help"], io)).toBe(0);
    expect(out).toEqual([USAGE]);
    expect(await run(["rollback", "fleet"], io)).toBe(1);
    expect(err).toEqual([USAGE]);
  });
});
