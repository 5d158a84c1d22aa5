/**
 * zod schema → structural OpenAPI v3 schema, as a CustomResourceDefinition needs.
 *
 * zod's JSON Schema output is close, but Kubernetes accepts only "structural"
 * schemas (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema):
 * a type on every node, no $ref, no additionalProperties next to properties, and
 * anyOf/oneOf only in narrow forms. The conversion is a whitelist: a keyword it
 * does not know is an error naming the field, so nothing is dropped silently,
 * and a field without a description is an error too, because `kubectl explain`
 * is how users learn these resources.
 */
import { z } from 'zod';
import type { CelValidation } from './rules.ts';

/** The subset of apiextensions.k8s.io/v1 JSONSchemaProps that the generated CRDs use. */
export interface JSONSchemaProps {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  format?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
  properties?: Record<string, JSONSchemaProps>;
  required?: string[];
  items?: JSONSchemaProps;
  'x-kubernetes-validations'?: CelValidation[];
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-int-or-string'?: true;
}

/** A schema that Kubernetes would not accept, with the field it concerns. */
export class StructuralSchemaError extends Error {
  constructor(path: string, problem: string) {
    super(`${path || '<root>'}: ${problem}`);
    this.name = 'StructuralSchemaError';
  }
}

type Json = Record<string, unknown>;

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

// Copied as they are; every other keyword is handled below or refused.
const PASS_THROUGH = [
  'description',
  'default',
  'enum',
  'format',
  'minimum',
  'maximum',
  'minLength',
  'maxLength',
  'minItems',
  'maxItems',
  'pattern',
  'x-kubernetes-validations',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
] as const;

/** Converts a zod object schema (a spec or a status) into a structural schema for a CRD. */
export function toStructuralSchema(schema: z.ZodType): JSONSchemaProps {
  // io 'input': fields with defaults are optional in what users write, and the API
  // server fills them in; 'inline': a CRD schema cannot hold $ref.
  const json = z.toJSONSchema(schema, { target: 'openapi-3.0', io: 'input', reused: 'inline', cycles: 'throw', unrepresentable: 'throw' }) as Json;
  return convert(json, '', true);
}

function convert(node: Json, path: string, needsDescription: boolean): JSONSchemaProps {
  if (Array.isArray(node.anyOf) || Array.isArray(node.oneOf)) return convertUnion(node, path);
  const out: JSONSchemaProps = {};
  for (const [key, value] of Object.entries(node)) {
    switch (key) {
      case '$schema':
        break;
      case 'type':
        if (!['object', 'array', 'string', 'integer', 'number', 'boolean'].includes(value as string)) {
          throw new StructuralSchemaError(path, `type ${JSON.stringify(value)} has no Kubernetes equivalent`);
        }
        out.type = value as JSONSchemaProps['type'];
        break;
      case 'const':
        out.enum = [value];
        break;
      case 'properties':
        out.properties = {};
        for (const [name, child] of Object.entries(value as Record<string, Json>)) {
          out.properties[name] = convert(child, path === '' ? name : `${path}.${name}`, true);
        }
        break;
      case 'required':
        out.required = [...(value as string[])];
        break;
      case 'items':
        out.items = convert(value as Json, `${path}[]`, false);
        break;
      case 'additionalProperties':
        // zod's strict objects say `false`; Kubernetes prunes unknown fields instead and
        // forbids additionalProperties next to properties.
        if (value !== false) throw new StructuralSchemaError(path, 'maps (additionalProperties) are not used in these resources');
        break;
      default:
        if ((PASS_THROUGH as readonly string[]).includes(key)) {
          (out as Record<string, unknown>)[key] = value;
          break;
        }
        throw new StructuralSchemaError(path, `keyword "${key}" is not supported in a structural schema`);
    }
  }
  if (out.type === undefined) throw new StructuralSchemaError(path, 'every node needs a type');
  if (out.type === 'integer') fixInteger(out);
  // zod writes the full RFC 3339 regex next to format date-time; the format alone is what
  // Kubernetes checks, and the regex only bloats `kubectl explain`.
  if (out.format === 'date-time') delete out.pattern;
  if (out.required) {
    for (const name of out.required) {
      if (!out.properties?.[name]) throw new StructuralSchemaError(path, `required field "${name}" is not a property`);
    }
  }
  if (needsDescription && (out.description === undefined || out.description.trim() === '')) {
    throw new StructuralSchemaError(path, 'has no description; add .describe() so that kubectl explain can show it');
  }
  return order(out);
}

/**
 * The only union allowed is integer-or-string (a port number or a port name):
 * `x-kubernetes-int-or-string: true`, with each branch's bounds lifted to the
 * node. Kubernetes applies numeric bounds to numbers and string bounds to
 * strings only, which is what the union means.
 */
function convertUnion(node: Json, path: string): JSONSchemaProps {
  const branches = (node.anyOf ?? node.oneOf) as Json[];
  const int = branches.find((b) => b.type === 'integer');
  const str = branches.find((b) => b.type === 'string');
  if (branches.length !== 2 || int === undefined || str === undefined) {
    throw new StructuralSchemaError(path, 'unions are only supported as integer-or-string; model alternatives as optional fields with a CEL rule');
  }
  const merged: Json = { ...node, ...pick(int, ['minimum', 'maximum']), ...pick(str, ['minLength', 'maxLength', 'pattern']) };
  delete merged.anyOf;
  delete merged.oneOf;
  for (const b of [int, str]) {
    for (const key of Object.keys(b)) {
      if (!['type', 'minimum', 'maximum', 'minLength', 'maxLength', 'pattern', 'format'].includes(key)) {
        throw new StructuralSchemaError(path, `keyword "${key}" inside an integer-or-string branch is not supported`);
      }
    }
  }
  merged.type = 'string';
  const out = convert(merged, path, true);
  delete out.type;
  out['x-kubernetes-int-or-string'] = true;
  return order(out);
}

/** int32 when the bounds allow it, int64 otherwise; zod's safe-integer bounds are not constraints users chose. */
function fixInteger(out: JSONSchemaProps): void {
  if (out.maximum === Number.MAX_SAFE_INTEGER) delete out.maximum;
  if (out.minimum === Number.MIN_SAFE_INTEGER) delete out.minimum;
  if (out.format === 'safeint') delete out.format;
  const fits32 = out.minimum !== undefined && out.maximum !== undefined && out.minimum >= INT32_MIN && out.maximum <= INT32_MAX;
  out.format = fits32 ? 'int32' : 'int64';
}

function pick(source: Json, keys: readonly string[]): Json {
  const out: Json = {};
  for (const k of keys) if (source[k] !== undefined) out[k] = source[k];
  return out;
}

// A fixed key order keeps the generated YAML stable and readable: what a field is
// first, then its constraints, then its children.
const KEY_ORDER: readonly (keyof JSONSchemaProps)[] = [
  'description',
  'type',
  'format',
  'x-kubernetes-int-or-string',
  'enum',
  'default',
  'minimum',
  'maximum',
  'minLength',
  'maxLength',
  'pattern',
  'minItems',
  'maxItems',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'items',
  'required',
  'properties',
  'x-kubernetes-validations',
];

function order(schema: JSONSchemaProps): JSONSchemaProps {
  const out: Record<string, unknown> = {};
  for (const key of KEY_ORDER) if (schema[key] !== undefined) out[key] = schema[key];
  return out as JSONSchemaProps;
}
