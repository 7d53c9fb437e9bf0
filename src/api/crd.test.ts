import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { BatchRolloutSpec, GROUP, MAX_REPLICAS, PodTemplate, Waves } from "./batchrollout.ts";
import { CHART_CRD_FILE, CRD_FILE, CRD_NAME, buildCrd, buildOpenApiSchema, renderCrdYaml } from "./crd.ts";
import { type JsonSchema, celValidations } from "./structural-schema.ts";
import { NAME_RULE, UPDATE_STRATEGY_RULES, WAVE_RULES, describeSpecIssues, reservedTemplateLabelsRule } from "./crd-rules.ts";

const ROOT = join(import.meta.dirname, "..", "..");

interface Node {
  path: string;
  schema: JsonSchema;
}

/** Every schema node with its path, including items and map values. */
function nodes(schema: JsonSchema, path = ""): Node[] {
  const found: Node[] = [{ path, schema }];
  const properties = schema["properties"] as Record<string, JsonSchema> | undefined;
  for (const [name, child] of Object.entries(properties ?? {})) found.push(...nodes(child, `${path}.${name}`));
  for (const key of ["items", "additionalProperties"] as const) {
    const child = schema[key];
    if (typeof child === "object" && child !== null) found.push(...nodes(child as JsonSchema, `${path}[]`));
  }
  for (const branch of (schema["anyOf"] as JsonSchema[] | undefined) ?? []) found.push({ path: `${path}|anyOf`, schema: branch });
  return found;
}

/** The API server's structural defaulting, in miniature: fill absent fields from `default`, top down. */
function applyDefaults(schema: JsonSchema, value: unknown): unknown {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    if (Array.isArray(value) && schema["items"] !== undefined) return value.map((item) => applyDefaults(schema["items"] as JsonSchema, item));
    return value;
  }
  const result: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const [name, child] of Object.entries((schema["properties"] as Record<string, JsonSchema> | undefined) ?? {})) {
    if (result[name] === undefined && child["default"] !== undefined) result[name] = structuredClone(child["default"]);
    if (result[name] !== undefined) result[name] = applyDefaults(child, result[name]);
  }
  return result;
}

const openApi = buildOpenApiSchema();
const specSchema = (openApi["properties"] as Record<string, JsonSchema>)["spec"] as JsonSchema;
const allNodes = nodes(openApi);

const template = { metadata: { labels: { app: "sim" } }, spec: { containers: [{ name: "sim", image: "busybox" }] } };

describe("crds/ files", () => {
  it.each([CRD_FILE, CHART_CRD_FILE])("%s matches buildCrd() (run npm run gen:crd after changing src/api)", (file) => {
    const onDisk = readFileSync(join(ROOT, file), "utf8");
    expect(onDisk, `${file} differs from src/api: run npm run gen:crd`).toBe(renderCrdYaml());
    expect(parse(onDisk)).toEqual(JSON.parse(JSON.stringify(buildCrd())));
  });
});

describe("CustomResourceDefinition", () => {
  const crd = buildCrd() as {
    metadata: { name: string };
    spec: {
      group: string;
      scope: string;
      names: Record<string, unknown>;
      versions: { name: string; served: boolean; storage: boolean; subresources: Record<string, unknown>; additionalPrinterColumns: { name: string; jsonPath: string }[] }[];
    };
  };
  const [version] = crd.spec.versions;

  it("is batchrollouts.batchrollout.dev, namespaced, one served storage version", () => {
    expect(crd.metadata.name).toBe(CRD_NAME);
    expect(CRD_NAME).toBe("batchrollouts.batchrollout.dev");
    expect(crd.spec.group).toBe(GROUP);
    expect(crd.spec.scope).toBe("Namespaced");
    expect(crd.spec.names).toMatchObject({ kind: "BatchRollout", plural: "batchrollouts", singular: "batchrollout", shortNames: ["br"] });
    expect(crd.spec.versions).toHaveLength(1);
    expect(version).toMatchObject({ name: "v1alpha1", served: true, storage: true });
  });

  it("has the status and scale subresources", () => {
    expect(version?.subresources).toEqual({
      status: {},
      scale: { specReplicasPath: ".spec.replicas", statusReplicasPath: ".status.replicas", labelSelectorPath: ".status.selector" },
    });
  });

  it("prints Desired, Created, Updated, Running, Wave, Limited-By, Ready and Age", () => {
    const columns = Object.fromEntries((version?.additionalPrinterColumns ?? []).map((c) => [c.name, c.jsonPath]));
    expect(columns).toMatchObject({
      Desired: ".spec.replicas",
      Created: ".status.replicas",
      Updated: ".status.updatedReplicas",
      Running: ".status.runningReplicas",
      Wave: ".status.wave.number",
      "Limited-By": ".status.wave.limitedBy",
      Ready: '.status.conditions[?(@.type=="Ready")].status',
      Age: ".metadata.creationTimestamp",
    });
  });
});

describe("structural schema", () => {
  it("has no $schema, $ref, const, propertyNames or additionalProperties:false anywhere", () => {
    for (const { path, schema } of allNodes) {
      for (const key of ["$schema", "$ref", "$defs", "const", "propertyNames", "allOf", "oneOf", "not"]) {
        expect(schema, `${path} has ${key}`).not.toHaveProperty(key);
      }
      expect(schema["additionalProperties"], `${path}`).not.toBe(false);
    }
  });

  it("gives every node a type, except int-or-string and its two typed branches", () => {
    for (const { path, schema } of allNodes) {
      if (path.endsWith("|anyOf")) continue;
      if (schema["x-kubernetes-int-or-string"] === true) {
        expect(schema, path).not.toHaveProperty("type");
        expect(schema["anyOf"], path).toEqual([{ type: "integer" }, { type: "string" }]);
        continue;
      }
      expect(schema["type"], `${path} has no type`).toBeTypeOf("string");
    }
  });

  it("uses anyOf only for int-or-string", () => {
    for (const { path, schema } of allNodes) {
      if (schema["anyOf"] !== undefined) expect(schema["x-kubernetes-int-or-string"], path).toBe(true);
    }
  });

  it("never declares both properties and additionalProperties on one object", () => {
    for (const { path, schema } of allNodes) {
      expect(schema["properties"] !== undefined && schema["additionalProperties"] !== undefined, path).toBe(false);
    }
  });

  it("carries no bound of 2^53 (zod's default int range)", () => {
    for (const { path, schema } of allNodes) {
      expect(Math.abs(Number(schema["maximum"] ?? 0)), path).toBeLessThan(Number.MAX_SAFE_INTEGER);
      expect(Math.abs(Number(schema["minimum"] ?? 0)), path).toBeLessThan(Number.MAX_SAFE_INTEGER);
    }
  });

  it("keeps metadata as a bare object, as the API server requires at the root", () => {
    expect((openApi["properties"] as Record<string, unknown>)["metadata"]).toEqual({ type: "object" });
  });

  it("keeps the pod spec's undeclared fields (looseObject) and checks the declared ones", () => {
    const podSpec = allNodes.find((n) => n.path === ".spec.template.spec")?.schema;
    expect(podSpec).toMatchObject({ type: "object", "x-kubernetes-preserve-unknown-fields": true, required: ["containers"] });
    expect(allNodes.find((n) => n.path === ".spec.template.spec.containers[]")?.schema).toMatchObject({
      "x-kubernetes-preserve-unknown-fields": true,
      required: ["name", "image"],
    });
  });

  it("turns IntOrPercent into int-or-string with the bounds in a CEL rule", () => {
    const reserve = allNodes.find((n) => n.path === ".spec.guards.ipam.reserve")?.schema;
    expect(reserve).toMatchObject({ "x-kubernetes-int-or-string": true, default: "5%" });
    expect(reserve?.["x-kubernetes-validations"]).toEqual([
      expect.objectContaining({ rule: "type(self) == int ? self >= 0 : self.matches('^(100|[1-9]?[0-9])%$')" }),
    ]);
  });

  it("keeps descriptions", () => {
    expect(allNodes.find((n) => n.path === ".spec.replicas")?.schema["description"]).toContain("<name>-<ordinal>");
  });

  it("defaults a minimal spec to exactly what zod parses it to", () => {
    const minimal = { replicas: 3, template };
    expect(applyDefaults(specSchema, minimal)).toEqual(BatchRolloutSpec.parse(minimal));
  });

  it("spells out defaults of whole objects, so CEL rules can read their fields", () => {
    expect(allNodes.find((n) => n.path === ".spec.waves")?.schema["default"]).toEqual(Waves.parse({}));
  });
});

describe("cross-field rules", () => {
  const rules = celValidations(openApi);

  it("are in the CRD at the node the zod refinement sits on", () => {
    const byPath = (path: string) => rules.filter((r) => r.path === path).map((r) => r.validation.rule);
    expect(byPath(".spec.waves")).toEqual(WAVE_RULES.map((r) => r.rule));
    expect(byPath(".spec.template")).toEqual([reservedTemplateLabelsRule(`${GROUP}/`).rule]);
    expect(byPath(".spec.updateStrategy")).toEqual(UPDATE_STRATEGY_RULES.map((r) => r.rule));
    expect(byPath("")).toEqual([NAME_RULE.rule]);
  });

  it("carry a message naming the field and a fieldPath that exists", () => {
    for (const { path, validation } of rules) {
      const node = allNodes.find((n) => n.path === path)?.schema;
      expect(node, path).toBeDefined();
      // An int-or-string rule (reserve, maxUnavailable) is about the field itself.
      if (path.endsWith("reserve") || path.endsWith("maxUnavailable")) continue;
      if (path === "") {
        // At the root, where CEL may read metadata.name; metadata has no schema for a fieldPath.
        expect(validation.message).toMatch(/^metadata\.name /);
        expect(validation.fieldPath).toBeUndefined();
        continue;
      }
      expect(validation.message, path).toMatch(new RegExp(`^spec\\.${path.slice(".spec.".length).replaceAll(".", "\\.")}`));
      const target = nodes(node as JsonSchema, path).find((n) => n.path === `${path}${validation.fieldPath}`);
      expect(target, `${path}${validation.fieldPath}`).toBeDefined();
    }
  });
});

describe("BatchRolloutSpec (zod)", () => {
  const errorsOf = (spec: unknown) => {
    const result = BatchRolloutSpec.safeParse(spec);
    return result.success ? [] : describeSpecIssues(result.error.issues);
  };

  it("accepts a minimal spec and fills in the defaults", () => {
    const spec = BatchRolloutSpec.parse({ replicas: 10, template });
    expect(spec.waves).toEqual({ strategy: "Adaptive", initialSize: 50, minSize: 10, maxSize: 2000, minInterval: "1s" });
    expect(spec.guards.ipam.reserve).toBe("5%");
    expect(spec.failurePolicy).toEqual({ maxFailedPods: 50, action: "Pause" });
    expect(spec.paused).toBe(false);
    expect(spec.updateStrategy).toEqual({ type: "RollingRecreate", maxUnavailable: "25%", partition: 0, order: "HighestFirst" });
  });

  it("keeps pod spec fields it does not declare", () => {
    const spec = BatchRolloutSpec.parse({ replicas: 1, template: { spec: { containers: [{ name: "a", image: "b", args: ["x"] }], nodeSelector: { k: "v" } } } });
    expect(spec.template.spec).toEqual({ containers: [{ name: "a", image: "b", args: ["x"] }], nodeSelector: { k: "v" } });
  });

  it.each([
    ["negative replicas", { replicas: -1, template }, "spec.replicas: "],
    ["replicas above the maximum", { replicas: MAX_REPLICAS + 1, template }, "spec.replicas: "],
    ["fractional replicas", { replicas: 1.5, template }, "spec.replicas: "],
    ["minSize above initialSize", { replicas: 1, template, waves: { minSize: 100 } }, "spec.waves.minSize must not exceed spec.waves.initialSize"],
    ["initialSize above maxSize", { replicas: 1, template, waves: { initialSize: 5000 } }, "spec.waves.initialSize must not exceed spec.waves.maxSize"],
    ["minSize above maxSize", { replicas: 1, template, waves: { minSize: 300, initialSize: 200, maxSize: 100 } }, "spec.waves.minSize must not exceed"],
    ["a template without containers", { replicas: 1, template: { spec: { containers: [] } } }, "spec.template.spec.containers: a pod template needs at least one container"],
    ["a template without a containers field", { replicas: 1, template: { spec: {} } }, "spec.template.spec.containers: "],
    ["a container without an image", { replicas: 1, template: { spec: { containers: [{ name: "a" }] } } }, "spec.template.spec.containers.0.image: "],
    ["an unknown strategy", { replicas: 1, template, waves: { strategy: "Linear" } }, 'spec.waves.strategy: Invalid option: expected one of "Adaptive"|"Fixed"'],
    ["an unknown failure action", { replicas: 1, template, failurePolicy: { action: "Retry" } }, "spec.failurePolicy.action: "],
    ["a malformed minInterval", { replicas: 1, template, waves: { minInterval: "1 sec" } }, "spec.waves.minInterval: must be a duration"],
    ["maxUnavailable 0", { replicas: 1, template, updateStrategy: { maxUnavailable: 0 } }, "spec.updateStrategy.maxUnavailable: "],
    ["maxUnavailable 0%", { replicas: 1, template, updateStrategy: { maxUnavailable: "0%" } }, "spec.updateStrategy.maxUnavailable: "],
    ["a negative partition", { replicas: 1, template, updateStrategy: { partition: -1 } }, "spec.updateStrategy.partition: "],
    ["a partition under OnDelete", { replicas: 1, template, updateStrategy: { type: "OnDelete", partition: 3 } }, "spec.updateStrategy.partition applies to type RollingRecreate only"],
    ["a reserve above 100%", { replicas: 1, template, guards: { ipam: { reserve: "150%" } } }, "spec.guards.ipam.reserve: "],
    ["a negative reserve", { replicas: 1, template, guards: { ipam: { reserve: -1 } } }, "spec.guards.ipam.reserve: "],
    [
      "a template label under batchrollout.dev/",
      { replicas: 1, template: { ...template, metadata: { labels: { "batchrollout.dev/ordinal": "3" } } } },
      "spec.template.metadata.labels must not set labels under batchrollout.dev/",
    ],
    ["no template", { replicas: 1 }, "spec.template: "],
  ])("rejects %s, naming the field", (_, spec, expected) => {
    const errors = errorsOf(spec);
    expect(errors.length, JSON.stringify(errors)).toBeGreaterThan(0);
    expect(errors.some((e) => e.startsWith(expected)), JSON.stringify(errors)).toBe(true);
  });

  it.each([
    ["Fixed waves ignore minSize and maxSize", { strategy: "Fixed", initialSize: 5 }],
    ["Adaptive waves at their bounds", { minSize: 50, initialSize: 50, maxSize: 50 }],
  ])("accepts %s", (_, waves) => {
    expect(errorsOf({ replicas: 1, template, waves })).toEqual([]);
  });

  it("accepts counts and 0%..100% for the IP reserve", () => {
    for (const reserve of [0, 250, "0%", "5%", "100%"]) {
      expect(errorsOf({ replicas: 1, template, guards: { ipam: { reserve } } }), String(reserve)).toEqual([]);
    }
  });

  it("reports a rule at the same path as the API server's fieldPath", () => {
    const result = PodTemplate.safeParse({ ...template, metadata: { labels: { "batchrollout.dev/name": "x" } } });
    expect(result.error?.issues.map((i) => i.path)).toEqual([["metadata", "labels"]]);
  });
});
