// Writes the CRD generated from the zod schemas (src/api) to crds/ and to the Helm chart's crds/.
// src/api/crd.test.ts fails when the committed files and the schemas drift apart.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CHART_CRD_FILE, CRD_FILE, renderCrdYaml } from "../src/api/crd.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
for (const file of [CRD_FILE, CHART_CRD_FILE]) {
  const target = join(root, file);
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, renderCrdYaml());
  console.log(`wrote ${file}`);
}
