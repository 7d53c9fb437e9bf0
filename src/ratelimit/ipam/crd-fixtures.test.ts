// The IPAM testdata must look like what the real CRDs admit, or the provider tests prove nothing.
// Each document is checked against the upstream CRD's openAPIV3Schema: every field declared, every
// required field present, basic types right. (The API server does more; this catches made-up fields.)

import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";

const CRD_DIR = new URL("../../../../shared/reference/crds/", import.meta.url);
const TESTDATA = new URL("./testdata/", import.meta.url);

type Schema = {
  type?: string;
  nullable?: boolean;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  required?: string[];
  "x-kubernetes-preserve-unknown-fields"?: boolean;
};

interface Crd {
  spec: {
    group: string;
    names: { kind: string };
    versions: Array<{ name: string; schema: { openAPIV3Schema: Schema } }>;
  };
}

function violations(schema: Schema, value: unknown, path: string, out: string[]): string[] {
  if (value === null) {
    if (!schema.nullable) out.push(`${path}: null but not nullable`);
    return out;
  }
  switch (schema.type) {
    case "object": {
      if (typeof value !== "object" || Array.isArray(value)) {
        out.push(`${path}: expected object`);
        break;
      }
      const record = value as Record<string, unknown>;
      for (const key of schema.required ?? []) if (!(key in record)) out.push(`${path}.${key}: required`);
      for (const [key, child] of Object.entries(record)) {
        const declared = schema.properties?.[key];
        const additional = typeof schema.additionalProperties === "object" ? schema.additionalProperties : undefined;
        if (declared) violations(declared, child, `${path}.${key}`, out);
        else if (additional) violations(additional, child, `${path}.${key}`, out);
        // An object schema without properties (metadata) or preserving unknown fields admits anything.
        else if (schema.properties && !schema["x-kubernetes-preserve-unknown-fields"] && schema.additionalProperties !== true) {
          out.push(`${path}.${key}: not in the CRD schema`);
        }
      }
      break;
    }
    case "array":
      if (!Array.isArray(value)) out.push(`${path}: expected array`);
      else if (schema.items) value.forEach((item, i) => violations(schema.items as Schema, item, `${path}[${i}]`, out));
      break;
    case "string":
      if (typeof value !== "string") out.push(`${path}: expected string, got ${JSON.stringify(value)}`);
      break;
    case "integer":
      if (!Number.isInteger(value)) out.push(`${path}: expected integer`);
      break;
    case "boolean":
      if (typeof value !== "boolean") out.push(`${path}: expected boolean`);
      break;
  }
  return out;
}

const CASES = [
  { fixture: "calico.yaml", crds: ["calico-ippools.yaml", "calico-ipamblocks.yaml"] },
  { fixture: "cilium.yaml", crds: ["cilium-ciliumnodes.yaml"] },
  { fixture: "whereabouts.yaml", crds: ["whereabouts-ippools.yaml"] },
];

describe.skipIf(!existsSync(CRD_DIR))("IPAM testdata against the upstream CRDs", () => {
  it.each(CASES)("$fixture matches $crds", ({ fixture, crds }) => {
    const schemas = new Map<string, Schema>();
    for (const file of crds) {
      const crd = parse(readFileSync(new URL(file, CRD_DIR), "utf8")) as Crd;
      for (const version of crd.spec.versions) {
        schemas.set(`${crd.spec.group}/${version.name} ${crd.spec.names.kind}`, version.schema.openAPIV3Schema);
      }
    }
    const docs = parseAllDocuments(readFileSync(new URL(fixture, TESTDATA), "utf8")).map((d) => d.toJS() as { apiVersion: string; kind: string });
    expect(docs.length).toBeGreaterThan(0);
    for (const doc of docs) {
      const schema = schemas.get(`${doc.apiVersion} ${doc.kind}`);
      expect(schema, `${fixture}: no CRD for ${doc.apiVersion} ${doc.kind}`).toBeDefined();
      expect(violations(schema as Schema, doc, doc.kind, [])).toEqual([]);
    }
  });

  it("the checker catches a made-up field and a wrong type", () => {
    const crd = parse(readFileSync(new URL("whereabouts-ippools.yaml", CRD_DIR), "utf8")) as Crd;
    const schema = crd.spec.versions[0]?.schema.openAPIV3Schema as Schema;
    const bad = { apiVersion: "whereabouts.cni.cncf.io/v1alpha1", kind: "IPPool", spec: { range: 24, range_start: "10.0.0.5", allocations: {} } };
    expect(violations(schema, bad, "IPPool", [])).toEqual(["IPPool.spec.range: expected string, got 24", "IPPool.spec.range_start: not in the CRD schema"]);
  });
});
