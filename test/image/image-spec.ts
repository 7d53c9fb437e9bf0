import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../cluster/layout.ts";

// What each build path says the runtime image is: the Dockerfile's last stage (docker build) and
// scripts/image.sh's IMAGE_* settings (buildah from scratch). Read from the files themselves, so a
// change to one shows up as a difference from the other.

export interface ImageSpec {
  user: string;
  workdir: string;
  env: string[];
  ports: number[];
  entrypoint: string[];
  /** What the runtime stage puts in the working directory. */
  files: string[];
}

export function dockerfileSpec(text = readFileSync(join(REPO_ROOT, "Dockerfile"), "utf8")): ImageSpec {
  const stages = text.split(/^FROM /m);
  const last = stages[stages.length - 1] ?? "";
  const all = (instr: string) => [...last.matchAll(new RegExp(`^${instr} (.+)$`, "gm"))].map((m) => (m[1] ?? "").trim());
  const one = (instr: string) => {
    const found = all(instr);
    if (found.length !== 1) throw new Error(`Dockerfile's runtime stage: expected one ${instr}, found ${found.length}`);
    return found[0] ?? "";
  };
  return {
    user: one("USER"),
    workdir: one("WORKDIR"),
    env: all("ENV"),
    ports: one("EXPOSE").split(/\s+/).map(Number),
    entrypoint: JSON.parse(one("ENTRYPOINT")) as string[],
    files: all("COPY").map((args) => (args.split(/\s+/).pop() ?? "").replace(/^\.\//, "")).sort(),
  };
}

export function imageScriptSpec(text = readFileSync(join(REPO_ROOT, "scripts/image.sh"), "utf8")): ImageSpec {
  const value = (name: string) => {
    const m = new RegExp(`^${name}=(.+)$`, "m").exec(text);
    if (!m?.[1]) throw new Error(`scripts/image.sh: no ${name}=`);
    return m[1].trim();
  };
  const array = (name: string) => value(name).replace(/^\(|\)$/g, "").split(/\s+/).filter(Boolean);
  return {
    user: value("IMAGE_USER"),
    workdir: value("IMAGE_WORKDIR"),
    env: [value("IMAGE_ENV")],
    ports: array("IMAGE_PORTS").map(Number),
    entrypoint: JSON.parse(value("IMAGE_ENTRYPOINT").replace(/^'|'$/g, "")) as string[],
    files: array("IMAGE_FILES").sort(),
  };
}
