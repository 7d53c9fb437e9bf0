import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { REPO_ROOT } from "../cluster/layout.ts";

// Runs test/cluster/harness/gitops-check, the Go checker that evaluates objects with the GitOps
// tools' own libraries: Argo CD's Lua under gopher-lua, kstatus, and Flux's CEL under cel-go.

export const HEALTH_DIR = join(REPO_ROOT, "gitops/argocd/resource_customizations/batchrollout.dev/BatchRollout");
export const HEALTH_LUA = join(HEALTH_DIR, "health.lua");
/** The captured objects, one per row of the README's verdict table; Argo CD's testdata/ form. */
export const CAPTURE_DIR = join(HEALTH_DIR, "testdata");
export const FLUX_KUSTOMIZATION = join(REPO_ROOT, "examples/flux/kustomization.yaml");
/** A first build downloads modules and compiles cel-go and apimachinery: minutes on a cold cache. */
export const CHECKER_BUILD_TIMEOUT_MS = 600_000;

export interface Verdict {
  status: string;
  message: string;
}
export interface Verdicts {
  file: string;
  kstatus: Verdict;
  argocd: Verdict;
  flux: Verdict;
}

let binary: string | undefined;

/** Builds the checker into the binary cache unless it is there, and returns its path. */
export function checkerBinary(): string {
  binary ??= execFileSync("bash", [join(REPO_ROOT, "test/cluster/build-gitops-check.sh")], {
    encoding: "utf8",
    timeout: CHECKER_BUILD_TIMEOUT_MS,
    stdio: ["ignore", "pipe", "inherit"],
  }).trim();
  return binary;
}

function jsonLines<T>(text: string): T[] {
  return text
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as T);
}

/** kstatus, Argo CD and Flux verdicts for each object file, in order. */
export function verdictsOf(files: string[], lua = HEALTH_LUA, kustomization = FLUX_KUSTOMIZATION): Verdicts[] {
  return jsonLines<Verdicts>(execFileSync(checkerBinary(), ["verdicts", lua, kustomization, ...files], { encoding: "utf8" }));
}

export interface LuaTestResult {
  inputPath: string;
  want: Verdict;
  got: Verdict;
}

/** Argo CD's health_test.yaml of a resource_customizations folder, run against its health.lua. */
export function luaTests(dir = HEALTH_DIR): LuaTestResult[] {
  return jsonLines<LuaTestResult>(execFileSync(checkerBinary(), ["lua-tests", dir], { encoding: "utf8" }));
}
