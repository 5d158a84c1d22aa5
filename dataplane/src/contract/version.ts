/**
 * A table's version is a hash of its canonical JSON, so the same routes always
 * give the same version no matter who produced them or in which key order.
 */
import { createHash } from 'node:crypto';
import type { RouteTable } from './schema.ts';

/** JSON with object keys sorted, undefined members dropped: one text per value. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
}

/** Each route's and upstream's canonical text, for hashing tables that share most of their entries. */
const entryTexts = new WeakMap<object, string>();

function entryText(entry: unknown): string {
  if (entry === null || typeof entry !== 'object') return canonicalJson(entry);
  let text = entryTexts.get(entry);
  if (text === undefined) {
    text = canonicalJson(entry);
    entryTexts.set(entry, text);
  }
  return text;
}

/**
 * The version of a table's content (its `version` field is ignored).
 *
 * `reuse`: remember each route's and upstream's canonical text by object, and
 * use it again when the same object is hashed in a later table. The result is
 * the same; only a caller that never changes an entry after hashing it may
 * ask for this (the data plane, whose tables are read-only once validated).
 */
export function tableVersion(table: Omit<RouteTable, 'version'> & { version?: string }, options: { reuse?: boolean } = {}): string {
  const { version: _ignored, ...content } = table;
  if (!options.reuse) return createHash('sha256').update(canonicalJson(content)).digest('hex').slice(0, 16);
  const record = content as Record<string, unknown>;
  const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort();
  const text = `{${keys
    .map((k) => {
      const v = record[k];
      const body = (k === 'routes' || k === 'upstreams') && Array.isArray(v) ? `[${v.map(entryText).join(',')}]` : canonicalJson(v);
      return `${JSON.stringify(k)}:${body}`;
    })
    .join(',')}}`;
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}
