import { existsSync, readFileSync, readdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// bench/results keeps only the runs the documents cite; a link to a deleted run must fail here.

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const RESULTS = join(ROOT, "bench/results");
const DOCS = ["README.md", "bench/README.md", "bench/HISTORY.md"];

/** Every results/<file> a document names, in a link or in prose, resolved from the document's folder. */
function namedResults(doc: string): string[] {
  const text = readFileSync(join(ROOT, doc), "utf8");
  const names = text.matchAll(/(?:\]\(|`|\s|^)((?:bench\/)?results\/[\w.-]+\.(?:md|svg|json))/gm);
  return [...names].map((m) => resolve(ROOT, dirname(doc), m[1]!));
}

/** The relative links inside a result's report (its chart). */
function linksInside(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/\]\(([^)\s#:]+)\)/g)].map((m) => resolve(dirname(file), m[1]!));
}

describe("bench/results", () => {
  it.each(DOCS)("every run %s names is kept", (doc) => {
    const named = namedResults(doc);
    expect(named.filter((f) => !existsSync(f))).toEqual([]);
  });

  it("finds the runs of record the README and HISTORY.md cite", () => {
    expect(namedResults("README.md").length).toBeGreaterThan(0);
    expect(namedResults("bench/HISTORY.md").length).toBeGreaterThan(10);
  });

  it("every link inside a kept report resolves", () => {
    const reports = readdirSync(RESULTS).filter((f) => f.endsWith(".md"));
    const broken = reports.flatMap((r) => linksInside(join(RESULTS, r)).filter((f) => !existsSync(f)));
    expect(broken).toEqual([]);
  });
});
