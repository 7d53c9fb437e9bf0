import { describe, expect, it } from "vitest";
import { resolveStateDir } from "./layout.ts";

// cluster:down deletes the state directory, so where it may be is checked before anything runs.

const REPO = "/work/clone";
const HOME = "/root";

describe("resolveStateDir", () => {
  it("is the repository's .cluster when BATCHROLLOUT_CLUSTER_DIR is unset or empty", () => {
    expect(resolveStateDir(undefined, REPO, HOME)).toBe("/work/clone/.cluster");
    expect(resolveStateDir("", REPO, HOME)).toBe("/work/clone/.cluster");
  });

  it("takes a directory of its own, absolute or relative to the working directory", () => {
    expect(resolveStateDir("/tmp/bench-cluster", REPO, HOME)).toBe("/tmp/bench-cluster");
    expect(resolveStateDir("/work/clone/.cluster-b", REPO, HOME)).toBe("/work/clone/.cluster-b");
  });

  it("refuses the repository, a folder holding it, the home directory and the root", () => {
    for (const dir of [REPO, `${REPO}/`, "/work", "/", HOME, `${HOME}/`]) {
      expect(() => resolveStateDir(dir, REPO, HOME), dir).toThrow(/cannot hold the cluster's state/);
    }
  });
});
