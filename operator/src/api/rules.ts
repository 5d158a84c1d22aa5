/**
 * Validation rules written once and enforced twice: by the API server as CEL
 * (`x-kubernetes-validations` in the generated CRD) and by zod when the operator
 * parses an object itself (a cluster running an older CRD, or none).
 *
 * Each rule carries its CEL expression and the same predicate in TypeScript.
 * They cannot be derived from each other, so the unit and control-plane suites
 * run the same invalid fixtures through both and expect the same field and
 * message from each.
 */
import { z } from 'zod';

/** Why a value is rejected, in the terms of k8s.io/apimachinery field errors. */
export type RuleReason = 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';

/** One entry of `x-kubernetes-validations`. */
export interface CelValidation {
  /** CEL evaluated by the API server with `self` bound to the value the rule sits on. */
  readonly rule: string;
  /** Shown to the user; also the zod issue message, so both paths read the same. */
  readonly message: string;
  /** Simple relative path (`.value`, `.allowedOrigins`) of the field the error is reported on. */
  readonly fieldPath?: string;
  readonly reason?: RuleReason;
}

/** A CEL rule paired with the same check in TypeScript. */
export interface Rule<T> extends CelValidation {
  /** True when the value is valid. Runs on zod's output, defaults applied, as CEL runs after defaulting. */
  readonly check: (value: T) => boolean;
}

/** The key under which CEL rules travel in zod metadata and in the CRD. */
const VALIDATIONS_KEY = 'x-kubernetes-validations';

/** Attaches rules to a schema: as CEL metadata for the CRD and as a zod refinement for parse(). */
export function withRules<S extends z.ZodType>(schema: S, rules: readonly Rule<z.output<S>>[]): S {
  const existing = (z.globalRegistry.get(schema)?.[VALIDATIONS_KEY] ?? []) as CelValidation[];
  const cel = rules.map(({ rule, message, fieldPath, reason }): CelValidation => ({
    rule,
    message,
    ...(fieldPath !== undefined ? { fieldPath } : {}),
    ...(reason !== undefined ? { reason } : {}),
  }));
  const refined = schema.superRefine((value, ctx) => {
    for (const r of rules) {
      if (!r.check(value)) ctx.addIssue({ code: 'custom', message: r.message, path: fieldPathToZod(r.fieldPath), input: value });
    }
  });
  return refined.meta({ [VALIDATIONS_KEY]: [...existing, ...cel] });
}

/** `.a.b` → ['a', 'b']; only the dotted subset of JSONPath that the rules here use. */
function fieldPathToZod(fieldPath: string | undefined): string[] {
  if (fieldPath === undefined) return [];
  if (!/^(\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(fieldPath)) throw new Error(`unsupported fieldPath "${fieldPath}"`);
  return fieldPath.slice(1).split('.');
}

/** Quotes text as a CEL string literal (single quotes, backslashes escaped). */
export function celString(text: string): string {
  return `'${text.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/**
 * A rule that the whole string matches `pattern`. CEL's `matches` is RE2 and
 * JavaScript's RegExp is not, so patterns stay in their common subset: classes,
 * groups, alternation, `?*+{n,m}`, anchors; no lookaround, no backreferences.
 */
export function matching(pattern: string, message: string): Rule<string> {
  const re = new RegExp(pattern);
  return { rule: `self.matches(${celString(pattern)})`, message, check: (v) => re.test(v) };
}
