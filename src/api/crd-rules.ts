import type { z } from "zod";
import { durationToMs } from "./duration.ts";

// Cross-field rules of the BatchRollout spec. Each rule is written once, as one object that carries
// both judges side by side: CEL for the API server (emitted into the CRD as x-kubernetes-validations)
// and the same predicate in TypeScript for the operator (a zod refinement), so a spec that slips past
// the API server (an older CRD installed, validation ratcheting on update) gets the same error, at the
// same field, with the same words. `withRules` attaches a rule list to a zod schema for both at once.
//
// This file imports nothing at runtime from batchrollout.ts: batchrollout.ts imports it, and a cycle
// between the two would leave one of them half-initialised depending on which is loaded first.

/** Reasons the API server accepts on an x-kubernetes-validations rule. */
export type RuleReason = "FieldValueInvalid" | "FieldValueForbidden" | "FieldValueRequired" | "FieldValueDuplicate";

export interface CrossFieldRule<T> {
  /** CEL over `self` (the object the rule is attached to); true means valid. */
  rule: string;
  /**
   * What both judges say when the rule is broken. A fixed text on purpose: a CEL messageExpression
   * that prints the values (`string(self.minSize)`) has an unbounded estimated cost and the API
   * server refuses the CRD; the field path and the kubectl error already say where.
   */
  message: string;
  /** The field the error points at, relative to `self`, in the API server's syntax (".minSize"). */
  fieldPath: string;
  reason: RuleReason;
  /** The same rule in TypeScript. */
  violated(self: T): boolean;
}

/** A rule as it appears in the CRD (a rule about the field itself has no fieldPath). */
export type CelValidation = Omit<CrossFieldRule<unknown>, "violated" | "fieldPath"> & { fieldPath?: string };

export const CEL_VALIDATIONS_KEY = "x-kubernetes-validations";

export function toCelValidation(rule: CrossFieldRule<never>): CelValidation {
  return { rule: rule.rule, message: rule.message, fieldPath: rule.fieldPath, reason: rule.reason };
}

/** ".a.b" → ["a", "b"]: the zod issue path that matches the API server's fieldPath. */
export function fieldPathSegments(fieldPath: string): string[] {
  return fieldPath.split(".").filter((segment) => segment !== "");
}

/**
 * Attaches rules to a zod schema: as a refinement (checked after the schema's own fields parsed, so
 * defaults are in place, as they are when the API server runs CEL) and as CRD metadata that
 * z.toJSONSchema carries into the generated schema at exactly this node.
 */
export function withRules<S extends z.ZodType>(schema: S, rules: readonly CrossFieldRule<z.output<S>>[]): S {
  return schema
    .superRefine((value, ctx) => {
      for (const rule of rules) {
        if (rule.violated(value)) {
          ctx.addIssue({ code: "custom", message: rule.message, path: fieldPathSegments(rule.fieldPath), input: value });
        }
      }
    })
    .meta({ [CEL_VALIDATIONS_KEY]: rules.map(toCelValidation) });
}

// ---- the rules ----

interface Waves {
  strategy: string;
  initialSize: number;
  minSize: number;
  maxSize: number;
  minInterval: string;
}

/**
 * Longest spec.waves.minInterval: a day. Slower than that is a schedule, not a pace, and it keeps
 * every timer far below Node's 24.8-day limit (timer-delay.ts).
 */
export const MAX_WAVE_INTERVAL = "24h";
const MAX_WAVE_INTERVAL_MS = 24 * 3_600_000;

const ADAPTIVE = "Adaptive";

/**
 * Adaptive waves start at initialSize and move between minSize and maxSize, so the start must lie
 * inside the bounds. Fixed waves use initialSize only; their min/max are ignored rather than
 * rejected, so `{strategy: Fixed, initialSize: 5}` works without touching the defaults.
 * minInterval is bounded by MAX_WAVE_INTERVAL; CEL's duration() reads the same syntax as ours.
 */
export const WAVE_RULES: readonly CrossFieldRule<Waves>[] = [
  {
    rule: `self.strategy != '${ADAPTIVE}' || self.minSize <= self.initialSize`,
    message: "spec.waves.minSize must not exceed spec.waves.initialSize for the Adaptive strategy",
    fieldPath: ".minSize",
    reason: "FieldValueInvalid",
    violated: (w) => w.strategy === ADAPTIVE && w.minSize > w.initialSize,
  },
  {
    rule: `self.strategy != '${ADAPTIVE}' || self.initialSize <= self.maxSize`,
    message: "spec.waves.initialSize must not exceed spec.waves.maxSize for the Adaptive strategy",
    fieldPath: ".initialSize",
    reason: "FieldValueInvalid",
    violated: (w) => w.strategy === ADAPTIVE && w.initialSize > w.maxSize,
  },
  {
    rule: `duration(self.minInterval) <= duration('${MAX_WAVE_INTERVAL}')`,
    message: `spec.waves.minInterval must be at most ${MAX_WAVE_INTERVAL}`,
    fieldPath: ".minInterval",
    reason: "FieldValueInvalid",
    violated: (w) => durationToMs(w.minInterval) > MAX_WAVE_INTERVAL_MS,
  },
];

interface UpdateStrategyFields {
  type: string;
  partition: number;
}

const ROLLING_RECREATE = "RollingRecreate";

/**
 * A partition only means something to RollingRecreate: under OnDelete a non-zero partition would
 * read as a promise (ordinals below it stay old) that nothing keeps. maxUnavailable and order have
 * defaults the API server fills in, so they cannot tell "set" from "defaulted" and are ignored
 * under OnDelete instead of rejected.
 */
export const UPDATE_STRATEGY_RULES: readonly CrossFieldRule<UpdateStrategyFields>[] = [
  {
    rule: `self.type == '${ROLLING_RECREATE}' || self.partition == 0`,
    message: `spec.updateStrategy.partition applies to type ${ROLLING_RECREATE} only`,
    fieldPath: ".partition",
    reason: "FieldValueForbidden",
    violated: (u) => u.type !== ROLLING_RECREATE && u.partition !== 0,
  },
];

interface TemplateLabels {
  metadata?: { labels?: Record<string, string> | undefined } | undefined;
}

/**
 * The operator stamps its own labels (name, ordinal, template hash) on every pod and finds its pods
 * by them; a template that sets any label under the operator's prefix would either be overwritten
 * or, worse, make pods of one rollout look like pods of another.
 */
export function reservedTemplateLabelsRule(reservedPrefix: string): CrossFieldRule<TemplateLabels> {
  return {
    rule: `!has(self.metadata) || !has(self.metadata.labels) || self.metadata.labels.all(k, !k.startsWith('${reservedPrefix}'))`,
    message: `spec.template.metadata.labels must not set labels under ${reservedPrefix}: the operator sets them on every pod`,
    fieldPath: ".metadata.labels",
    reason: "FieldValueForbidden",
    violated: (template) => Object.keys(template.metadata?.labels ?? {}).some((key) => key.startsWith(reservedPrefix)),
  };
}

/** Longest label value, and so the longest rollout name: it is every pod's batchrollout.dev/name label. */
export const MAX_NAME_LENGTH = 63;

/**
 * The rollout's name is the value of its pods' name label, which Kubernetes caps at 63 characters;
 * a longer name would be accepted and then have every pod create refused. A rule at the root of the
 * schema, where CEL may read metadata.name (it has no fieldPath: metadata has no schema of its own).
 */
export const NAME_RULE: CrossFieldRule<{ metadata: { name: string } }> = {
  rule: `self.metadata.name.size() <= ${MAX_NAME_LENGTH}`,
  message: `metadata.name must be no more than ${MAX_NAME_LENGTH} characters: it is the value of the batchrollout.dev/name label on every pod`,
  fieldPath: "",
  reason: "FieldValueInvalid",
  violated: (rollout) => rollout.metadata.name.length > MAX_NAME_LENGTH,
};

// ---- reporting ----

/**
 * zod issues of a spec as the API server would word them ("spec.waves.minSize: ..."), so the
 * operator's Stalled message and events read like kubectl's error for the same spec.
 */
export function describeSpecIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    const path = ["spec", ...issue.path.map(String)].join(".");
    return issue.message.startsWith(`${path} `) ? issue.message : `${path}: ${issue.message}`;
  });
}
