import { describe, expect, it } from "vitest";
import { OPERATOR_NODE_FLAGS } from "../../src/node-flags.ts";
import { dockerfileSpec, imageScriptSpec } from "./image-spec.ts";

// The Dockerfile (docker build) and scripts/image.sh (buildah from scratch) must make the same image:
// the chart's securityContext, probes and ports assume one user, one entrypoint, one set of files.

describe("the two image build paths", () => {
  const docker = dockerfileSpec();
  const script = imageScriptSpec();

  it("run as the same numeric non-root user and group", () => {
    expect(script.user).toBe(docker.user);
    expect(docker.user).toMatch(/^[1-9]\d*:[1-9]\d*$/);
  });

  it("start the same entrypoint with the operator's V8 flags", () => {
    expect(script.entrypoint).toEqual(docker.entrypoint);
    expect(docker.entrypoint).toEqual(["/nodejs/bin/node", ...OPERATOR_NODE_FLAGS, "dist/main.js"]);
  });

  it("ship the same files in the same working directory, environment and ports", () => {
    expect(script.files).toEqual(docker.files);
    expect(script.workdir).toBe(docker.workdir);
    expect(script.env).toEqual(docker.env);
    expect(script.ports).toEqual(docker.ports);
  });

  it("reads a Dockerfile's runtime stage, not its build stage", () => {
    const spec = dockerfileSpec('FROM a AS build\nUSER 0\nFROM b\nWORKDIR /w\nENV A=1\nCOPY --from=build /x ./x\nUSER 1:2\nEXPOSE 80\nENTRYPOINT ["n"]\n');
    expect(spec).toEqual({ user: "1:2", workdir: "/w", env: ["A=1"], ports: [80], entrypoint: ["n"], files: ["x"] });
  });
});
