/**
 * Field builders shared by the GatewayRoute and Upstream schemas: names,
 * durations, lists with Kubernetes list semantics, object metadata and status
 * conditions.
 *
 * Every string and list that a CEL rule reads has a maxLength or maxItems: the
 * API server estimates each rule's worst-case cost from those bounds when the
 * CRD is created, and refuses a CRD whose rules could cost too much.
 */
import { z } from 'zod';
import { celString, matching, withRules } from './rules.ts';
import type { Rule } from './rules.ts';

/** API group of every Switchyard resource. */
export const GROUP = 'switchyard.dev';
/** The one served and stored version. */
export const VERSION = 'v1alpha1';
/** `apiVersion` as written in manifests. */
export const API_VERSION = `${GROUP}/${VERSION}`;

/** DNS-1123 subdomain: the names of most objects, Upstreams included. */
export const DNS1123_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
/** DNS-1035 label: the names of Services. */
export const DNS1035_LABEL = '^[a-z]([-a-z0-9]*[a-z0-9])?$';

/** A reference to an object by name in the same namespace (an Upstream, for instance). */
export function objectName(description: string): z.ZodString {
  return withRules(z.string().min(1).max(253), [
    matching(DNS1123_SUBDOMAIN, 'must be a lower-case DNS-1123 subdomain (letters, digits, "-" and ".", starting and ending with a letter or digit)'),
  ]).describe(description);
}

/** Go duration syntax as CEL's `duration()` reads it, limited to the units the data plane parses. */
export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$';
const DURATION_RE = new RegExp(DURATION_PATTERN);

const UNIT_NS: Record<string, bigint> = { ms: 1_000_000n, s: 1_000_000_000n, m: 60_000_000_000n, h: 3_600_000_000_000n };

/**
 * Nanoseconds of a duration in the resource syntax, or undefined when the text is
 * not one. Exact, as Go's time.ParseDuration (and so CEL's duration()) is: a
 * rounding parser would let "0.5ms" pass a 1ms lower bound that the API server
 * enforces.
 */
export function durationNs(text: string): bigint | undefined {
  if (!DURATION_RE.test(text)) return undefined;
  let total = 0n;
  for (const [, whole, frac = '', unit] of text.matchAll(/([0-9]+)(?:\.([0-9]+))?(ms|s|m|h)/g)) {
    const scale = UNIT_NS[unit as string] as bigint;
    const fraction = frac.slice(0, 18);
    total += BigInt(whole as string) * scale + (BigInt(fraction === '' ? '0' : fraction) * scale) / 10n ** BigInt(fraction.length);
  }
  return total;
}

/** Milliseconds (possibly fractional) of a duration in the resource syntax, or undefined when the text is not one. */
export function durationMs(text: string): number | undefined {
  const ns = durationNs(text);
  return ns === undefined ? undefined : Number(ns) / 1e6;
}

/** Bounds and documentation for one duration field. */
export interface DurationOptions {
  readonly description: string;
  /** Inclusive lower bound, e.g. '1ms'; omitted means 0. */
  readonly min?: string;
  /** Inclusive upper bound, e.g. '1h'. */
  readonly max: string;
}

/**
 * A duration string ("500ms", "30s", "1m", "1h30m"). Kept as text in the
 * resource so that what the user wrote is what they read back; the operator
 * converts it to milliseconds for the route table.
 */
export function duration(options: DurationOptions): z.ZodString {
  const min = options.min ?? '0s';
  const minNs = durationNs(min);
  const maxNs = durationNs(options.max);
  if (minNs === undefined || maxNs === undefined) throw new Error(`bad duration bounds ${min}..${options.max}`);
  const format: Rule<string> = {
    rule: `self.matches(${celString(DURATION_PATTERN)})`,
    message: 'must be a duration such as "500ms", "30s", "1m" or "1h30m" (units ms, s, m, h)',
    check: (v) => DURATION_RE.test(v),
  };
  // Guarded by the format: duration() on text that is not a duration is a CEL runtime error,
  // which the API server would report instead of the format message above.
  const bounds: Rule<string> = {
    rule: `!self.matches(${celString(DURATION_PATTERN)}) || (duration(self) >= duration(${celString(min)}) && duration(self) <= duration(${celString(options.max)}))`,
    message: minNs === 0n ? `must be at most ${options.max}` : `must be between ${min} and ${options.max}`,
    check: (v) => {
      const ns = durationNs(v);
      return ns === undefined || (ns >= minNs && ns <= maxNs);
    },
  };
  return withRules(z.string().min(1).max(32), [format, bounds]).describe(`${options.description} A duration such as "500ms", "30s" or "1m".`);
}

/**
 * A list whose items are unique (`x-kubernetes-list-type: set`): the API server
 * rejects duplicates itself, and server-side apply merges such lists by value.
 */
export function setList<T extends z.ZodType>(item: T, maxItems: number): z.ZodArray<T> {
  return z
    .array(item)
    .max(maxItems)
    .meta({ 'x-kubernetes-list-type': 'set' })
    .superRefine((values, ctx) => {
      const seen = new Set<string>();
      values.forEach((v, i) => {
        const key = JSON.stringify(v);
        if (seen.has(key)) ctx.addIssue({ code: 'custom', message: `Duplicate value: ${key}`, path: [i], input: v });
        seen.add(key);
      });
    });
}

/**
 * A list of objects keyed by some of their fields (`x-kubernetes-list-type: map`):
 * no two items share a key, and server-side apply merges items by key.
 */
export function mapList<T extends z.ZodObject>(item: T, keys: readonly (keyof z.output<T> & string)[], minItems: number, maxItems: number): z.ZodArray<T> {
  const list = minItems > 0 ? z.array(item).min(minItems) : z.array(item);
  return list
    .max(maxItems)
    .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': [...keys] })
    .superRefine((values, ctx) => {
      const seen = new Set<string>();
      values.forEach((v, i) => {
        const record = v as Record<string, unknown>;
        const key = JSON.stringify(keys.map((k) => record[k]));
        if (seen.has(key)) {
          const shown = keys.map((k) => `${k}=${JSON.stringify(record[k])}`).join(', ');
          ctx.addIssue({ code: 'custom', message: `Duplicate value: ${shown}`, path: [i], input: v });
        }
        seen.add(key);
      });
    });
}

/** The condition status values of metav1.Condition. */
export const CONDITION_STATUSES = ['True', 'False', 'Unknown'] as const;

/** metav1.Condition, field for field, with the same bounds as the upstream type. */
export const ConditionSchema = z
  .object({
    type: z
      .string()
      .min(1)
      .max(316)
      .describe('Type of the condition in CamelCase, e.g. Accepted, ResolvedRefs, Programmed.'),
    status: z.enum(CONDITION_STATUSES).describe('Status of the condition: True, False or Unknown.'),
    observedGeneration: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe('The .metadata.generation that the condition was set for; older than the current generation means the condition is out of date.'),
    lastTransitionTime: z.iso.datetime().describe('When the condition last changed from one status to another.'),
    reason: z
      .string()
      .min(1)
      .max(1024)
      .describe('Programmatic identifier in CamelCase for the last transition, e.g. BackendNotFound.'),
    message: z.string().max(32768).describe('Human-readable details of the last transition; may be empty.'),
  })
  .describe('One aspect of the current state of this object, in the standard metav1.Condition shape.');
/** One status condition (metav1.Condition). */
export type Condition = z.infer<typeof ConditionSchema>;

/** `status.conditions`: at most one condition per type. */
export function conditions(description: string): z.ZodOptional<z.ZodArray<typeof ConditionSchema>> {
  return mapList(ConditionSchema, ['type'], 0, 8).optional().describe(description);
}

/** `status.observedGeneration`. */
export function observedGeneration(): z.ZodOptional<z.ZodNumber> {
  return z
    .number()
    .int()
    .min(0)
    .optional()
    .describe('The .metadata.generation that the operator last processed.');
}

/** The parts of ObjectMeta that the operator reads; anything else passes through untouched. */
export const ObjectMetaSchema = z.looseObject({
  name: z.string().min(1).max(253),
  namespace: z.string().min(1).max(63).optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  generation: z.number().int().min(0).optional(),
  creationTimestamp: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});
/** The metadata of a Switchyard object. */
export type ObjectMeta = z.infer<typeof ObjectMetaSchema>;
