import { describe, expect, it } from "vitest";
import { z } from "zod";
import { type JsonSchema, toStructuralSchema } from "./structural-schema.ts";

describe("toStructuralSchema", () => {
  const convert = (schema: z.ZodType) => toStructuralSchema(z.toJSONSchema(schema, { io: "input" }) as JsonSchema);

  it("maps nullable, const and exclusive bounds", () => {
    expect(convert(z.object({ a: z.string().nullable(), b: z.literal("x"), c: z.number().gt(0) }))).toEqual({
      type: "object",
      properties: {
        a: { type: "string", nullable: true },
        b: { type: "string", enum: ["x"] },
        c: { type: "number", minimum: 0, exclusiveMinimum: true },
      },
      required: ["a", "b", "c"],
    });
  });

  it("keeps typed maps and drops string-only propertyNames", () => {
    expect(convert(z.record(z.string(), z.int().min(0)))).toEqual({ type: "object", additionalProperties: { type: "integer", minimum: 0 } });
  });

  it.each([
    ["a union that is not X|null or int|string", z.union([z.string(), z.boolean()]), /only X\|null and integer\|string/],
    ["a map with constrained keys", z.record(z.string().regex(/^a/), z.string()), /propertyNames/],
    ["a tuple", z.tuple([z.string(), z.int()]), /tuple|prefixItems/],
    ["an object with typed extra fields", z.object({ a: z.string() }).catchall(z.int()), /both properties and typed additionalProperties/],
  ])("refuses %s instead of emitting a schema the API server rejects", (_, schema, message) => {
    expect(() => convert(schema)).toThrow(message);
  });
});
