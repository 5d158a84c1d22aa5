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

/** The version of a table's content (its `version` field is ignored). */
export function tableVersion(table: Omit<RouteTable, 'version'> & { version?: string }): string {
  const { version: _ignored, ...content } = table;
  return createHash('sha256').update(canonicalJson(content)).digest('hex').slice(0, 16);
}
