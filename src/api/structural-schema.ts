import { z } from "zod";
import { CEL_VALIDATIONS_KEY } from "./crd-rules.ts";
import type { CelValidation } from "./crd-rules.ts";

// zod's JSON Schema (draft 2020-12) turned into a Kubernetes *structural* schema, which is close but
// not the same: an OpenAPI v3 subset where every node is typed, with no additionalProperties:false, no
// propertyNames, no $ref, and no `type` inside anyOf except the int-or-string idiom.
// `toStructuralSchema` throws on anything it does not know, so a new zod construct fails
// `npm run gen:crd` instead of producing a CRD the API server rejects. Nothing here knows BatchRollout.

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

/** A zod schema as a structural schema; `at` names its place in errors. */
export function structuralSchemaOf(schema: z.ZodType, at: string): JsonSchema {
  // io "input": fields with defaults are optional (the API server fills them in) and carry their default.
  return toStructuralSchema(z.toJSONSchema(schema, { io: "input" }) as JsonSchema, at);
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
