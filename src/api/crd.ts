import { z } from "zod";
import { stringify } from "yaml";
import { API_VERSION, BatchRolloutSpec, BatchRolloutStatus, GROUP, KIND, PLURAL, VERSION } from "./batchrollout.ts";
import { CEL_VALIDATIONS_KEY, NAME_RULE } from "./crd-rules.ts";
import type { CelValidation } from "./crd-rules.ts";

// The CustomResourceDefinition, generated from the zod schemas in batchrollout.ts so the two can
// never disagree. zod's JSON Schema (draft 2020-12) is close to what the API server wants but not
// the same: a CRD needs a *structural* schema (OpenAPI v3 subset: every node typed, no
// additionalProperties:false, no propertyNames, no $ref, no `type` inside anyOf except the
// int-or-string idiom). `toStructuralSchema` bridges the two and throws on anything it does not know,
// so a new zod construct fails `npm run gen:crd` instead of producing a CRD the API server rejects.

export const CRD_NAME = `${PLURAL}.${GROUP}`;
export const SINGULAR = "batchrollout";
export const SHORT_NAMES = ["br"];
/**
 * Our own category: `rollouts` is Argo Rollouts' plural, and kubectl expands a category before it
 * matches a resource name, so that category made `kubectl get rollouts` list BatchRollouts instead.
 */
export const CATEGORIES = ["batchrollouts"];
/** Where scripts/gen-crd.ts writes the CRD, relative to the repository root. */
export const CRD_FILE = `crds/${GROUP}_${PLURAL}.yaml`;
/** The same CRD where Helm installs CRDs from: the chart's crds/ folder. */
export const CHART_CRD_FILE = `charts/batchrollout/crds/${GROUP}_${PLURAL}.yaml`;

export type JsonSchema = { [key: string]: unknown };

const INT_OR_STRING = "x-kubernetes-int-or-string";
const PRESERVE_UNKNOWN = "x-kubernetes-preserve-unknown-fields";

/** JSON Schema keys the API server understands as they are (apiextensions/v1 JSONSchemaProps). */
const KEPT_KEYS = new Set([
  "description",
  "type",
  "format",
  "title",
  "nullable",
  "default",
  "enum",
  "minimum",
  "exclusiveMinimum",
  "maximum",
  "exclusiveMaximum",
  "multipleOf",
  "minLength",
  "maxLength",
  "pattern",
  "minItems",
  "maxItems",
  "minProperties",
  "maxProperties",
  "required",
  "items",
  "properties",
  "additionalProperties",
  "anyOf",
  "example",
]);

/**
 * zod string formats the API server checks the same way. Formats it does not know are stripped by
 * the API server anyway, and formats that mean something else there (zod's ISO-8601 "duration"
 * against Go's time.ParseDuration) must go, so anything not listed is dropped; the pattern zod
 * emits beside a format, if any, still applies.
 */
const FORMATS: Readonly<Record<string, string>> = {
  uri: "uri",
  email: "email",
  uuid: "uuid",
  ipv4: "ipv4",
  ipv6: "ipv6",
  date: "date",
  "date-time": "date-time",
  cidrv4: "cidr",
  cidrv6: "cidr",
  mac: "mac",
};

/** Key order in the generated YAML, for people reading it; unlisted keys follow in zod's order. */
const KEY_ORDER = [
  "description",
  "type",
  "format",
  "nullable",
  "default",
  "enum",
  "minimum",
  "exclusiveMinimum",
  "maximum",
  "exclusiveMaximum",
  "minLength",
  "maxLength",
  "pattern",
  "minItems",
  "maxItems",
  "minProperties",
  "maxProperties",
  INT_OR_STRING,
  "anyOf",
  "items",
  "properties",
  "additionalProperties",
  "required",
  PRESERVE_UNKNOWN,
  "x-kubernetes-list-type",
  "x-kubernetes-list-map-keys",
  "x-kubernetes-map-type",
  CEL_VALIDATIONS_KEY,
];

function isSchema(value: unknown): value is JsonSchema {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function fail(at: string, problem: string): never {
  throw new Error(`cannot turn the zod JSON Schema into a structural CRD schema at ${at}: ${problem}`);
}

/** A JSON Schema (as z.toJSONSchema emits it) turned into a Kubernetes structural schema. */
export function toStructuralSchema(input: JsonSchema, at = "<root>"): JsonSchema {
  let node: JsonSchema = { ...input };
  delete node["$schema"];

  // zod writes `T | null` and unions of bare primitives as a type list; OpenAPI v3.0 has one type.
  if (Array.isArray(node["type"])) {
    const types = node["type"] as unknown[];
    const rest = types.filter((type) => type !== "null");
    if (rest.length < types.length) node["nullable"] = true;
    if (rest.length === 1) node["type"] = rest[0];
    else {
      delete node["type"];
      node["anyOf"] = rest.map((type) => ({ type }));
    }
  }

  if (node["anyOf"] !== undefined) node = foldAnyOf(node, at);

  if ("const" in node) {
    node["enum"] = [node["const"]];
    delete node["const"];
  }

  // Draft 2020-12 numeric exclusive bounds → OpenAPI v3.0 boolean flags.
  for (const [exclusive, inclusive] of [
    ["exclusiveMinimum", "minimum"],
    ["exclusiveMaximum", "maximum"],
  ] as const) {
    if (typeof node[exclusive] === "number") {
      node[inclusive] = node[exclusive];
      node[exclusive] = true;
    }
  }

  // zod bounds every int by ±(2^53-1); the API server stores int64, and a bound nobody chose is noise.
  if (node["minimum"] === -Number.MAX_SAFE_INTEGER) delete node["minimum"];
  if (node["maximum"] === Number.MAX_SAFE_INTEGER) delete node["maximum"];

  if ("format" in node) {
    const format = FORMATS[String(node["format"])];
    if (format === undefined) delete node["format"];
    else node["format"] = format;
  }

  if ("propertyNames" in node) {
    const names = node["propertyNames"];
    // A CRD cannot constrain map keys; a plain string key (every JSON key is one) says nothing anyway.
    if (!isSchema(names) || Object.keys(names).some((key) => key !== "type") || names["type"] !== "string") {
      fail(at, `propertyNames ${JSON.stringify(names)} cannot be expressed; use a CEL rule on the map instead`);
    }
    delete node["propertyNames"];
  }

  if ("additionalProperties" in node) {
    const extra = node["additionalProperties"];
    delete node["additionalProperties"];
    if (extra === true || (isSchema(extra) && Object.keys(extra).length === 0)) {
      // zod looseObject: declared fields are validated, the rest is kept as written.
      node[PRESERVE_UNKNOWN] = true;
    } else if (isSchema(extra)) {
      if (node["properties"] !== undefined) fail(at, "a CRD object cannot have both properties and typed additionalProperties");
      node["additionalProperties"] = toStructuralSchema(extra, `${at}.*`);
    } else if (extra !== false) {
      fail(at, `additionalProperties ${JSON.stringify(extra)}`);
    }
    // additionalProperties:false is dropped: the API server prunes unknown fields instead of rejecting them.
  }

  if (node["properties"] !== undefined) {
    if (!isSchema(node["properties"])) fail(at, "properties is not an object");
    node["properties"] = Object.fromEntries(
      Object.entries(node["properties"]).map(([name, child]) => {
        if (!isSchema(child)) fail(`${at}.${name}`, "not a schema");
        return [name, toStructuralSchema(child, `${at}.${name}`)];
      }),
    );
  }

  if (isSchema(node["default"]) && isSchema(node["properties"])) node["default"] = withNestedDefaults(node["default"], node["properties"]);

  if (node["items"] !== undefined) {
    if (!isSchema(node["items"])) fail(at, "tuple items are not supported");
    node["items"] = toStructuralSchema(node["items"], `${at}[]`);
  }

  for (const key of Object.keys(node)) {
    if (!KEPT_KEYS.has(key) && !key.startsWith("x-kubernetes-")) fail(at, `unsupported keyword "${key}"`);
  }
  if (node["type"] === undefined && node[INT_OR_STRING] !== true && node[PRESERVE_UNKNOWN] !== true) {
    fail(at, "every node of a structural schema needs a type");
  }
  if (node["type"] === "null") fail(at, "a field that can only be null");
  return orderKeys(node);
}

/**
 * anyOf means two things in zod's output, and the API server accepts neither as written:
 * `X | null` (nullable) and `int | string` (IntOrPercent). The second becomes the int-or-string
 * idiom, with each branch's bounds moved into one CEL rule, since value checks inside anyOf cannot
 * tell an int from a string.
 */
function foldAnyOf(input: JsonSchema, at: string): JsonSchema {
  const { anyOf, ...node } = input;
  if (!Array.isArray(anyOf) || !anyOf.every(isSchema)) fail(at, "anyOf is not a list of schemas");
  const branches = anyOf.filter((branch) => branch["type"] !== "null");
  if (branches.length < anyOf.length) node["nullable"] = true;

  const [only] = branches;
  if (branches.length === 1 && only !== undefined) return { ...only, ...node };

  const integer = branches.find((branch) => branch["type"] === "integer");
  const string = branches.find((branch) => branch["type"] === "string");
  if (branches.length !== 2 || integer === undefined || string === undefined) {
    fail(at, `anyOf of ${JSON.stringify(branches.map((branch) => branch["type"]))}: only X|null and integer|string map to a CRD`);
  }
  node[INT_OR_STRING] = true;
  node["anyOf"] = [{ type: "integer" }, { type: "string" }];
  const rule = intOrStringRule(integer, string, at);
  if (rule !== undefined) {
    const existing = Array.isArray(node[CEL_VALIDATIONS_KEY]) ? (node[CEL_VALIDATIONS_KEY] as unknown[]) : [];
    node[CEL_VALIDATIONS_KEY] = [...existing, rule];
  }
  return node;
}

/**
 * zod's prefault({}) emits `default: {}` and leaves the fields to their own defaults. The API server
 * fills those in as well when it defaults an object, but it checks a default against the CEL rules
 * as written, so `{}` would fail every rule that reads a field. Spelling the default out in full
 * gives the same object and passes the check.
 */
function withNestedDefaults(value: JsonSchema, properties: JsonSchema): JsonSchema {
  const filled: JsonSchema = { ...value };
  for (const [name, child] of Object.entries(properties)) {
    if (isSchema(child) && filled[name] === undefined && child["default"] !== undefined) filled[name] = child["default"];
  }
  return filled;
}

function celString(text: string): string {
  return `'${text.replaceAll("\\", "\\\\").replaceAll("'", "\\'")}'`;
}

function intOrStringRule(integer: JsonSchema, string: JsonSchema, at: string): CelValidation | undefined {
  const intChecks: string[] = [];
  const intWords: string[] = [];
  for (const [key, value] of Object.entries(integer)) {
    if (key === "type" || key === "description") continue;
    if (key === "minimum" && typeof value === "number" && value !== -Number.MAX_SAFE_INTEGER) {
      intChecks.push(`self >= ${value}`);
      intWords.push(`>= ${value}`);
    } else if (key === "maximum" && typeof value === "number" && value !== Number.MAX_SAFE_INTEGER) {
      intChecks.push(`self <= ${value}`);
      intWords.push(`<= ${value}`);
    } else if (!(key === "minimum" || key === "maximum")) {
      fail(at, `int-or-string: unsupported integer keyword "${key}"`);
    }
  }
  const stringChecks: string[] = [];
  const stringWords: string[] = [];
  for (const [key, value] of Object.entries(string)) {
    if (key === "type" || key === "description") continue;
    if (key === "pattern" && typeof value === "string") {
      stringChecks.push(`self.matches(${celString(value)})`);
      stringWords.push(`matching ${value}`);
    } else if (key === "minLength" && typeof value === "number") {
      stringChecks.push(`size(self) >= ${value}`);
      stringWords.push(`of at least ${value} characters`);
    } else if (key === "maxLength" && typeof value === "number") {
      stringChecks.push(`size(self) <= ${value}`);
      stringWords.push(`of at most ${value} characters`);
    } else {
      fail(at, `int-or-string: unsupported string keyword "${key}"`);
    }
  }
  if (intChecks.length === 0 && stringChecks.length === 0) return undefined;
  const all = (checks: string[]) => (checks.length === 0 ? "true" : checks.join(" && "));
  const words = (kind: string, parts: string[]) => [kind, ...parts].join(" ");
  return {
    rule: `type(self) == int ? ${all(intChecks)} : ${all(stringChecks)}`,
    message: `must be ${words("an integer", intWords)} or ${words("a string", stringWords)}`,
    reason: "FieldValueInvalid",
  };
}

function orderKeys(node: JsonSchema): JsonSchema {
  const rank = (key: string) => {
    const index = KEY_ORDER.indexOf(key);
    return index === -1 ? KEY_ORDER.length : index;
  };
  return Object.fromEntries(Object.entries(node).sort(([a], [b]) => rank(a) - rank(b)));
}

function schemaOf(schema: z.ZodType, at: string): JsonSchema {
  // io "input": fields with defaults are optional (the API server fills them in) and carry their default.
  return toStructuralSchema(z.toJSONSchema(schema, { io: "input" }) as JsonSchema, at);
}

export function buildOpenApiSchema(): JsonSchema {
  return {
    description: "BatchRollout creates a fleet of pods from one template in waves sized from live cluster feedback.",
    type: "object",
    properties: {
      apiVersion: { description: "APIVersion of this object.", type: "string" },
      kind: { description: "Kind of this object.", type: "string" },
      metadata: { type: "object" },
      spec: schemaOf(BatchRolloutSpec, "spec"),
      status: schemaOf(BatchRolloutStatus, "status"),
    },
    required: ["spec"],
    [CEL_VALIDATIONS_KEY]: [{ rule: NAME_RULE.rule, message: NAME_RULE.message, reason: NAME_RULE.reason }],
  };
}

interface PrinterColumn {
  name: string;
  type: "integer" | "string" | "date";
  jsonPath: string;
  description?: string;
  priority?: number;
}

export const PRINTER_COLUMNS: readonly PrinterColumn[] = [
  { name: "Desired", type: "integer", jsonPath: ".spec.replicas", description: "Pods to run." },
  { name: "Created", type: "integer", jsonPath: ".status.replicas", description: "Pods that exist." },
  { name: "Running", type: "integer", jsonPath: ".status.runningReplicas", description: "Pods in phase Running." },
  { name: "Failed", type: "integer", jsonPath: ".status.failedReplicas", description: "Failed pods, kept.", priority: 1 },
  { name: "Wave", type: "integer", jsonPath: ".status.wave.number", description: "Waves started so far." },
  { name: "Limited-By", type: "string", jsonPath: ".status.wave.limitedBy", description: "What bounded the current wave." },
  { name: "Ready", type: "string", jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
  { name: "Message", type: "string", jsonPath: ".status.wave.message", priority: 1 },
  { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
];

export function buildCrd(): object {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: CRD_NAME },
    spec: {
      group: GROUP,
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: PLURAL,
        singular: SINGULAR,
        shortNames: SHORT_NAMES,
        categories: CATEGORIES,
      },
      scope: "Namespaced",
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: buildOpenApiSchema() },
          subresources: {
            status: {},
            scale: {
              specReplicasPath: ".spec.replicas",
              statusReplicasPath: ".status.replicas",
              labelSelectorPath: ".status.selector",
            },
          },
          additionalPrinterColumns: PRINTER_COLUMNS,
        },
      ],
    },
  };
}

const GENERATED_HEADER = `# Generated by scripts/gen-crd.ts from src/api/batchrollout.ts (${API_VERSION}). Do not edit: run npm run gen:crd.\n`;

/** The CRD file's exact text; the drift test compares crds/ against it. */
export function renderCrdYaml(): string {
  return GENERATED_HEADER + stringify(buildCrd(), { lineWidth: 0 });
}

/** Every CEL rule in a schema, with the path of the node it sits on (for tests and docs). */
export function celValidations(schema: JsonSchema, at = ""): { path: string; validation: CelValidation }[] {
  const found: { path: string; validation: CelValidation }[] = [];
  const own = schema[CEL_VALIDATIONS_KEY];
  if (Array.isArray(own)) for (const validation of own as CelValidation[]) found.push({ path: at, validation });
  const properties = schema["properties"];
  if (isSchema(properties)) {
    for (const [name, child] of Object.entries(properties)) {
      if (isSchema(child)) found.push(...celValidations(child, `${at}.${name}`));
    }
  }
  for (const key of ["items", "additionalProperties"]) {
    const child = schema[key];
    if (isSchema(child)) found.push(...celValidations(child, `${at}[]`));
  }
  return found;
}
