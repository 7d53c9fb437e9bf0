// The IPAM testdata must look like what the real CRDs admit, or the provider tests prove nothing.
// Our own minimal CRDs (test/fixtures/crds) stand in for the CNIs' CRDs, so a clone stands alone:
// - each fixture is a structural schema, as the API server demands before installing it;
// - each testdata document fits its fixture: every field declared, required ones present, types right;
// - when BATCHROLLOUT_UPSTREAM_CRDS names a folder of the CNIs' upstream CRDs, every field a fixture
//   declares exists there with the same type, and the testdata fits them too. Nothing outside the
//   repository is read otherwise.

import { existsSync, readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { parse, parseAllDocuments } from "yaml";

const FIXTURES = new URL("../../../test/fixtures/crds/", import.meta.url);
/** A folder of the CNIs' upstream CRDs to compare with, when the environment names one. */
const UPSTREAM_DIR = process.env.BATCHROLLOUT_UPSTREAM_CRDS;
const UPSTREAM = UPSTREAM_DIR ? pathToFileURL(`${UPSTREAM_DIR}/`) : undefined;
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

interface CrdVersion {
  name: string;
  served: boolean;
  storage: boolean;
  subresources?: Record<string, unknown>;
  schema: { openAPIV3Schema: Schema };
}

interface Crd {
  metadata: { name: string };
  spec: { group: string; scope: string; names: { kind: string; plural: string; singular?: string; listKind?: string }; versions: CrdVersion[] };
}

const FIXTURE_FILES = ["calico-ippools.yaml", "calico-ipamblocks.yaml", "calico-blockaffinities.yaml", "cilium-ciliumnodes.yaml", "whereabouts-ippools.yaml"];

const CASES = [
  { fixture: "calico.yaml", crds: ["calico-ippools.yaml", "calico-ipamblocks.yaml"] },
  { fixture: "cilium.yaml", crds: ["cilium-ciliumnodes.yaml"] },
  { fixture: "whereabouts.yaml", crds: ["whereabouts-ippools.yaml"] },
];

const readCrd = (file: string, dir: URL): Crd => parse(readFileSync(new URL(file, dir), "utf8")) as Crd;

/** Where `value` breaks `schema`: undeclared fields, missing required ones, wrong basic types. */
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

/** The structural-schema rules kube-apiserver enforces that a hand-written schema can break. */
function structuralProblems(schema: Schema, path: string, out: string[]): string[] {
  const preserve = schema["x-kubernetes-preserve-unknown-fields"] === true;
  if (!schema.type && !preserve) out.push(`${path}: no type`);
  if ((schema.properties || schema.additionalProperties !== undefined || schema.required) && schema.type !== "object") out.push(`${path}: fields on a non-object`);
  if (schema.properties && schema.additionalProperties !== undefined) out.push(`${path}: both properties and additionalProperties`);
  if (schema.type === "array" && !schema.items) out.push(`${path}: array without items`);
  for (const key of schema.required ?? []) if (!schema.properties?.[key]) out.push(`${path}.${key}: required but not declared`);
  for (const [key, child] of Object.entries(schema.properties ?? {})) structuralProblems(child, `${path}.${key}`, out);
  if (typeof schema.additionalProperties === "object") structuralProblems(schema.additionalProperties, `${path}.*`, out);
  if (schema.items) structuralProblems(schema.items, `${path}[]`, out);
  return out;
}

/** Where our schema says something upstream does not: a field upstream lacks, another type, other required fields. */
function drift(ours: Schema, theirs: Schema | undefined, path: string, out: string[]): string[] {
  if (!theirs) {
    out.push(`${path}: not in the upstream CRD`);
    return out;
  }
  if (ours.type !== theirs.type) out.push(`${path}: type ${ours.type} here, ${theirs.type} upstream`);
  if (Boolean(ours.nullable) !== Boolean(theirs.nullable)) out.push(`${path}: nullable ${Boolean(ours.nullable)} here, ${Boolean(theirs.nullable)} upstream`);
  // An object we spell out must require what upstream requires, or we admit objects upstream rejects.
  if (ours.properties) {
    const mine = [...(ours.required ?? [])].sort();
    const upstream = [...(theirs.required ?? [])].sort();
    if (mine.join() !== upstream.join()) out.push(`${path}: requires [${mine}] here, [${upstream}] upstream`);
  }
  for (const [key, child] of Object.entries(ours.properties ?? {})) drift(child, theirs.properties?.[key], `${path}.${key}`, out);
  if (typeof ours.additionalProperties === "object") {
    drift(ours.additionalProperties, typeof theirs.additionalProperties === "object" ? theirs.additionalProperties : undefined, `${path}.*`, out);
  }
  if (ours.items) drift(ours.items, theirs.items, `${path}[]`, out);
  return out;
}

/** The facts a CRD fixture must share with upstream besides its schema. */
function identity(crd: Crd) {
  const { group, scope, names, versions } = crd.spec;
  return {
    name: crd.metadata.name,
    group,
    scope,
    names: { kind: names.kind, plural: names.plural, singular: names.singular, listKind: names.listKind },
    versions: versions.map((v) => ({ name: v.name, served: v.served, storage: v.storage, subresources: Object.keys(v.subresources ?? {}).sort() })),
  };
}

function schemasByKind(crds: Crd[]): Map<string, Schema> {
  const schemas = new Map<string, Schema>();
  for (const crd of crds) {
    for (const version of crd.spec.versions) schemas.set(`${crd.spec.group}/${version.name} ${crd.spec.names.kind}`, version.schema.openAPIV3Schema);
  }
  return schemas;
}

/** Each testdata document's violations of the CRDs given, by document. */
function testdataViolations(fixture: string, crds: Crd[]): string[] {
  const schemas = schemasByKind(crds);
  const docs = parseAllDocuments(readFileSync(new URL(fixture, TESTDATA), "utf8")).map((d) => d.toJS() as { apiVersion: string; kind: string });
  expect(docs.length).toBeGreaterThan(0);
  const out: string[] = [];
  for (const doc of docs) {
    const schema = schemas.get(`${doc.apiVersion} ${doc.kind}`);
    if (!schema) out.push(`${fixture}: no CRD for ${doc.apiVersion} ${doc.kind}`);
    else violations(schema, doc, doc.kind, out);
  }
  return out;
}

describe("IPAM CRD fixtures in test/fixtures/crds", () => {
  it.each(FIXTURE_FILES)("%s is a structural schema", (file) => {
    const crd = readCrd(file, FIXTURES);
    expect(crd.metadata.name).toBe(`${crd.spec.names.plural}.${crd.spec.group}`);
    expect(crd.spec.versions.filter((v) => v.storage)).toHaveLength(1);
    for (const v of crd.spec.versions) {
      const root = v.schema.openAPIV3Schema;
      expect(structuralProblems(root, v.name, [])).toEqual([]);
      // The API server allows only name and generateName constraints under metadata; we set none.
      expect(root.properties?.metadata).toEqual({ type: "object" });
    }
  });

  it.each(CASES)("testdata $fixture fits our CRD fixtures", ({ fixture, crds }) => {
    expect(testdataViolations(fixture, crds.map((f) => readCrd(f, FIXTURES)))).toEqual([]);
  });

  it("the testdata checker catches a made-up field and a wrong type", () => {
    const schema = readCrd("whereabouts-ippools.yaml", FIXTURES).spec.versions[0]?.schema.openAPIV3Schema as Schema;
    const bad = { apiVersion: "whereabouts.cni.cncf.io/v1alpha1", kind: "IPPool", spec: { range: 24, range_start: "10.0.0.5", allocations: {} } };
    expect(violations(schema, bad, "IPPool", [])).toEqual(["IPPool.spec.range: expected string, got 24", "IPPool.spec.range_start: not in the CRD schema"]);
  });

  it("the drift checker catches a field upstream lacks, another type, a lost nullable and other required fields", () => {
    const upstream: Schema = {
      type: "object",
      properties: { spec: { type: "object", required: ["cidr"], properties: { cidr: { type: "string" }, blockSize: { type: "integer" }, allocations: { type: "array", items: { type: "integer", nullable: true } } } } },
    };
    const ours: Schema = {
      type: "object",
      properties: { spec: { type: "object", properties: { cidr: { type: "string" }, blockSize: { type: "string" }, allocations: { type: "array", items: { type: "integer" } }, madeUp: { type: "string" } } } },
    };
    expect(drift(ours, upstream, "v1", [])).toEqual([
      "v1.spec: requires [] here, [cidr] upstream",
      "v1.spec.blockSize: type string here, integer upstream",
      "v1.spec.allocations[]: nullable false here, true upstream",
      "v1.spec.madeUp: not in the upstream CRD",
    ]);
  });
});

// One test per fixture, never skipped: without upstream CRDs it says so and checks what it can
// alone, so "0 failed, 0 skipped" in a user's clone is not bought by hiding the comparison.
describe("IPAM CRD fixtures against the upstream CRDs in BATCHROLLOUT_UPSTREAM_CRDS, when it names a folder", () => {
  const upstream = UPSTREAM && existsSync(UPSTREAM) ? UPSTREAM : undefined;
  const absent = UPSTREAM_DIR ? `${UPSTREAM_DIR} absent` : "BATCHROLLOUT_UPSTREAM_CRDS unset";

  it.for(FIXTURE_FILES)("%s: same group, names, scope and versions; every declared field upstream with the same type", (file, { annotate }) => {
    const ours = readCrd(file, FIXTURES);
    if (!upstream) {
      void annotate(`${absent}: not compared with upstream`);
      expect(ours.spec.versions.length).toBeGreaterThan(0);
      return;
    }
    const theirs = readCrd(file, upstream);
    expect(identity(ours)).toEqual(identity(theirs));
    for (const version of ours.spec.versions) {
      const upstream = theirs.spec.versions.find((v) => v.name === version.name)?.schema.openAPIV3Schema;
      expect(drift(version.schema.openAPIV3Schema, upstream, `${file} ${version.name}`, [])).toEqual([]);
    }
  });

  it.for(CASES)("testdata $fixture fits the upstream CRDs too", ({ fixture, crds }, { annotate }) => {
    if (!upstream) {
      void annotate(`${absent}: testdata checked against test/fixtures/crds only`);
      expect(existsSync(new URL(fixture, TESTDATA))).toBe(true);
      return;
    }
    expect(testdataViolations(fixture, crds.map((f) => readCrd(f, upstream)))).toEqual([]);
  });
});
