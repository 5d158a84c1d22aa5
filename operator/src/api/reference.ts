/**
 * The field reference of docs/resources.md, rendered from the CRDs so that the
 * documentation lists every field with the validation the API server really
 * applies. hack/gen-crds.ts writes it between markers; the drift test checks it.
 */
import type { CustomResourceDefinition } from './crd.ts';
import type { JSONSchemaProps } from './openapi.ts';

/** Marks the start of the generated part of docs/resources.md. */
const REFERENCE_BEGIN = '<!-- BEGIN GENERATED FIELD REFERENCE: npm run gen:crds -->';
/** Marks the end of the generated part of docs/resources.md. */
const REFERENCE_END = '<!-- END GENERATED FIELD REFERENCE -->';

function typeOf(s: JSONSchemaProps): string {
  if (s['x-kubernetes-int-or-string']) return 'int or string';
  if (s.type === 'array') return `[]${s.items ? typeOf(s.items) : '?'}`;
  return s.type ?? '?';
}

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function code(value: unknown): string {
  return `\`${typeof value === 'string' ? value : JSON.stringify(value)}\``;
}

function checks(s: JSONSchemaProps, required: boolean): string[] {
  const out: string[] = [];
  if (required) out.push('required');
  if (s.enum) out.push(`one of ${s.enum.map(code).join(', ')}`);
  if (s.minimum !== undefined && s.maximum !== undefined) out.push(`${s.minimum} to ${s.maximum}`);
  else if (s.minimum !== undefined) out.push(`at least ${s.minimum}`);
  else if (s.maximum !== undefined) out.push(`at most ${s.maximum}`);
  if (s.minLength !== undefined && s.minLength > 1) out.push(`at least ${s.minLength} characters`);
  if (s.maxLength !== undefined) out.push(`at most ${s.maxLength} characters`);
  if (s.pattern !== undefined) out.push(`matches ${code(s.pattern)}`);
  if (s.format === 'date-time') out.push('RFC 3339 date-time');
  if (s.minItems !== undefined) out.push(`at least ${s.minItems} item${s.minItems === 1 ? '' : 's'}`);
  if (s.maxItems !== undefined) out.push(`at most ${s.maxItems} items`);
  if (s['x-kubernetes-list-type'] === 'set') out.push('no duplicates');
  if (s['x-kubernetes-list-type'] === 'map') out.push(`no two items with the same ${(s['x-kubernetes-list-map-keys'] ?? []).join(', ')}`);
  const items = s.items;
  if (items && items.type !== 'object') {
    const inner = checks(items, false);
    if (inner.length > 0) out.push(`each item: ${inner.join('; ')}`);
  }
  for (const v of s['x-kubernetes-validations'] ?? []) out.push(v.fieldPath ? `${v.message} (on ${v.fieldPath.slice(1)})` : v.message);
  return out;
}

function rows(s: JSONSchemaProps, path: string, out: string[]): void {
  const props = s.type === 'array' ? s.items?.properties : s.properties;
  const required = new Set((s.type === 'array' ? s.items?.required : s.required) ?? []);
  for (const [name, child] of Object.entries(props ?? {})) {
    const p = `${path}${s.type === 'array' ? '[]' : ''}.${name}`;
    const def = child.default === undefined ? '' : code(child.default);
    out.push(`| \`${p}\` | ${typeOf(child)} | ${def} | ${cell(checks(child, required.has(name)).join('; '))} | ${cell(child.description ?? '')} |`);
    rows(child, p, out);
  }
}

/** Markdown tables of every spec and status field of a CRD. */
export function renderReference(crd: CustomResourceDefinition): string {
  const root = crd.spec.versions[0]?.schema.openAPIV3Schema;
  const out: string[] = [];
  for (const part of ['spec', 'status'] as const) {
    const schema = root?.properties?.[part];
    if (schema === undefined) continue;
    out.push(`#### ${crd.spec.names.kind} \`${part}\``, '', cell(schema.description ?? ''), '');
    const rules = checks(schema, false);
    if (rules.length > 0) out.push(`Rules on the whole \`${part}\`: ${cell(rules.join('; '))}.`, '');
    out.push('| field | type | default | validated by the API server | description |', '| --- | --- | --- | --- | --- |');
    rows(schema, part, out);
    out.push('');
  }
  return out.join('\n');
}

/** Replaces the generated part of a document, or throws when its markers are missing. */
export function replaceReference(doc: string, reference: string): string {
  const start = doc.indexOf(REFERENCE_BEGIN);
  const end = doc.indexOf(REFERENCE_END);
  if (start < 0 || end < start) throw new Error(`the document has no ${REFERENCE_BEGIN} … ${REFERENCE_END} markers`);
  return `${doc.slice(0, start + REFERENCE_BEGIN.length)}\n\n${reference}\n${doc.slice(end)}`;
}
