/**
 * The values reference in docs/install.md, generated from the chart's
 * values.schema.json (descriptions, types, enums) and values.yaml (defaults), so
 * that the three cannot drift apart. `npm run gen:helm-golden` rewrites it.
 */

/** The part of JSON Schema the chart's schema uses. */
export interface Schema {
  type?: string | string[];
  description?: string;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  properties?: Record<string, Schema>;
  items?: Schema;
}

export const BEGIN = '<!-- values reference: generated from charts/switchyard/values.schema.json by `npm run gen:helm-golden` -->';
export const END = '<!-- end of the values reference -->';

const MAX_DEFAULT = 48;

function formatDefault(value: unknown): string {
  if (value === undefined) return '';
  const text = JSON.stringify(value);
  if (text === '""') return '`""`';
  if (text.length > MAX_DEFAULT) return '(see values.yaml)';
  return `\`${text.replaceAll('|', '\\|')}\``;
}

function formatType(schema: Schema): string {
  const type = Array.isArray(schema.type) ? schema.type.join(' or ') : (schema.type ?? 'any');
  if (schema.enum) return `${type}: ${schema.enum.map((e) => `\`${e === '' ? '""' : String(e)}\``).join(', ')}`;
  const range = [schema.minimum !== undefined ? `≥ ${schema.minimum}` : '', schema.maximum !== undefined ? `≤ ${schema.maximum}` : ''].filter(Boolean).join(', ');
  return range ? `${type} (${range})` : type;
}

function rows(schema: Schema, values: unknown, prefix: string, out: string[]): void {
  for (const [key, child] of Object.entries(schema.properties ?? {})) {
    if (key === 'global') continue;
    const path = prefix ? `${prefix}.${key}` : key;
    const value = values !== null && typeof values === 'object' ? (values as Record<string, unknown>)[key] : undefined;
    if (child.properties && child.type === 'object') {
      rows(child, value, path, out);
      continue;
    }
    const description = (child.description ?? '').replaceAll('|', '\\|').replaceAll('<', '&lt;').replaceAll('>', '&gt;');
    out.push(`| \`${path}\` | ${formatType(child)} | ${formatDefault(value)} | ${description} |`);
  }
}

/** The reference section, markers included. */
export function valuesReference(schema: Schema, values: unknown): string {
  const out = [BEGIN, '', '| key | type | default | description |', '| --- | --- | --- | --- |'];
  rows(schema, values, '', out);
  out.push('', END);
  return out.join('\n');
}

/** Replaces the section between the markers; throws if the markers are missing. */
export function replaceReference(doc: string, reference: string): string {
  const start = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (start < 0 || end < start) throw new Error(`docs/install.md lacks the markers ${BEGIN} … ${END}`);
  return doc.slice(0, start) + reference + doc.slice(end + END.length);
}
