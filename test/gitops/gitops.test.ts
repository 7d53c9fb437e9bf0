import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { beforeAll, describe, expect, it } from "vitest";
import { REPO_ROOT } from "../cluster/layout.ts";
import { HEALTH_DIR, HEALTH_LUA, luaTests, verdictsOf, type Verdicts } from "./checker.ts";
import { captureFile, healthTestYaml, measured, ROWS, TOOLS, verdictTableMarkdown, type Row } from "./verdict-table.ts";

// Issue 26, without a cluster: the captures kept in the Argo CD testdata folder, run through the
// Go checker (gopher-lua, kstatus, cel-go), and every copy of the health check and of the verdict
// table held to its source.

const README = readFileSync(join(REPO_ROOT, "README.md"), "utf8");
const HEALTH_KEY = "resource.customizations.health.batchrollout.dev_BatchRollout";
/** Building the checker on a cold Go cache downloads and compiles cel-go and apimachinery. */
const BUILD_TIMEOUT_MS = 600_000;

describe("GitOps health checks on the captures", () => {
  const verdicts = new Map<Row, Verdicts>();
  beforeAll(() => {
    verdictsOf(ROWS.map(captureFile)).forEach((v, i) => verdicts.set(ROWS[i]!, v));
  }, BUILD_TIMEOUT_MS);

  it("health.lua passes its health_test.yaml under gopher-lua, one test per row of the table", () => {
    const results = luaTests();
    expect(results.map((r) => r.inputPath)).toEqual(ROWS.map((row) => `testdata/${row}.yaml`));
    for (const r of results) expect({ input: r.inputPath, ...r.got }).toEqual({ input: r.inputPath, ...r.want });
  });

  it.each(ROWS)("%s: kstatus, Argo CD and Flux say what the README's table says", (row) => {
    const v = verdicts.get(row);
    expect(Object.fromEntries(TOOLS.map((t) => [t, v?.[t].status]))).toEqual(measured(row));
  });

  it("the README's verdict table is the one the captures give", () => {
    expect(README).toContain(verdictTableMarkdown(verdicts));
  });

  it("health_test.yaml is the one the captures give", () => {
    expect(readFileSync(join(HEALTH_DIR, "health_test.yaml"), "utf8")).toBe(healthTestYaml(verdicts));
  });
});

describe("copies of health.lua", () => {
  const lua = readFileSync(HEALTH_LUA, "utf8");

  it("examples/argocd/argocd-cm.yaml carries health.lua as it is", () => {
    const cm = parse(readFileSync(join(REPO_ROOT, "examples/argocd/argocd-cm.yaml"), "utf8")) as { data: Record<string, string> };
    expect(cm.data[HEALTH_KEY]).toBe(lua);
  });

  it("the README's argocd-cm snippet is health.lua as it is", () => {
    const block = /```yaml\n(resource\.customizations\.health\.batchrollout\.dev_BatchRollout: \|\n[\s\S]*?)```/.exec(README)?.[1];
    expect(block, "the README has an argocd-cm snippet").toBeDefined();
    expect((parse(block ?? "") as Record<string, string>)[HEALTH_KEY]).toBe(lua);
  });
});
