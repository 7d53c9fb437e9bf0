import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { buildBinaries } from "../cluster/cluster.ts";
import { REPO_ROOT } from "../cluster/layout.ts";

// The chart's Prometheus rules through promtool, built from Go modules and cached with the control
// plane: the file is valid and each alert fires on what it is for (rules_test.yaml).

const execFileAsync = promisify(execFile);
const RULES = join(REPO_ROOT, "charts/batchrollout/files/prometheus-rules.yaml");
/** A cold cache builds promtool first: minutes on 2 cores. */
const BUILD_TIMEOUT_MS = 900_000;

describe("the chart's Prometheus rules", () => {
  it(
    "pass promtool check rules and promtool test rules",
    async () => {
      const promtool = join(await buildBinaries(), "promtool");
      const check = await execFileAsync(promtool, ["check", "rules", RULES]);
      expect(check.stdout).toMatch(/SUCCESS: 3 rules found/);
      const unit = await execFileAsync(promtool, ["test", "rules", join(import.meta.dirname, "rules_test.yaml")]);
      expect(unit.stdout).toMatch(/SUCCESS/);
    },
    BUILD_TIMEOUT_MS,
  );
});
