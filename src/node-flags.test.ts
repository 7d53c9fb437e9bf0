import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { OPERATOR_NODE_FLAGS } from "./node-flags.ts";

const ROOT = join(import.meta.dirname, "..");

describe("OPERATOR_NODE_FLAGS", () => {
  it("is what the image's ENTRYPOINT passes", () => {
    const entrypoint = /^ENTRYPOINT (\[.*\])$/m.exec(readFileSync(join(ROOT, "Dockerfile"), "utf8"))?.[1];
    expect(JSON.parse(entrypoint ?? "[]")).toEqual(["/nodejs/bin/node", ...OPERATOR_NODE_FLAGS, "dist/main.js"]);
  });

  it("is what `npm start` passes", () => {
    const scripts = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;
    expect(scripts.start).toBe(["./scripts/node", ...OPERATOR_NODE_FLAGS, "src/main.ts"].join(" "));
  });
});
