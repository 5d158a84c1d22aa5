/**
 * A table's version is a hash of its canonical JSON, so the same routes always
 * give the same version no matter who produced them or in which key order.
 */
import { createHash } from 'node:crypto';
import type { RouteTable } from './schema.ts';

/**
 * Object shapes seen (their keys in insertion order) with those keys sorted, and
 * each key's JSON text: a table has a handful of shapes and keys, repeated on
 * every entry. Both are bounded, so maps keyed by user data cannot grow them
 * without end; past the bound, keys are sorted and quoted each time.
 */
const sortedKeys = new Map<string, string[]>();
const keyTexts = new Map<string, string>();
const MEMO_LIMIT = 4096;

function keysOf(record: Record<string, unknown>): string[] {
  const raw = Object.keys(record);
  const shape = raw.join('\0');
  let keys = sortedKeys.get(shape);
  if (keys === undefined) {
    keys = raw.sort();
    if (sortedKeys.size < MEMO_LIMIT) sortedKeys.set(shape, keys);
  }
  return keys;
}

function keyText(k: string): string {
  let text = keyTexts.get(k);
  if (text === undefined) {
    text = `${JSON.stringify(k)}:`;
    if (keyTexts.size < MEMO_LIMIT) keyTexts.set(k, text);
  }
  return text;
}

/** JSON with object keys sorted, undefined members dropped: one text per value. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  // Loops and appends rather than map/filter/join: this runs over every entry of a table on each compile and apply.
  if (Array.isArray(value)) {
    let out = '[';
    for (let i = 0; i < value.length; i++) {
      const v: unknown = value[i];
      if (i > 0) out += ',';
      out += v === undefined ? 'null' : canonicalJson(v);
    }
    return `${out}]`;
  }
  const record = value as Record<string, unknown>;
  let out = '{';
  let first = true;
  for (const k of keysOf(record)) {
    const v = record[k];
    if (v === undefined) continue;
    if (!first) out += ',';
    first = false;
    out += keyText(k);
    out += typeof v === 'string' ? JSON.stringify(v) : canonicalJson(v);
  }
  return `${out}}`;
}

/**
 * Each route's and upstream's canonical text as UTF-8 bytes, for hashing tables
 * that share most of their entries: the bytes of a table are then copied
 * together, not built as one long string and encoded again on every change.
 */
const entryBytes = new WeakMap<object, Buffer>();
const COMMA = Buffer.from(',');
const CLOSE = Buffer.from(']');

function bytesOf(entry: unknown): Buffer {
  if (entry === null || typeof entry !== 'object') return Buffer.from(canonicalJson(entry));
  let bytes = entryBytes.get(entry);
  if (bytes === undefined) {
    bytes = Buffer.from(canonicalJson(entry));
    entryBytes.set(entry, bytes);
  }
  return bytes;
}

/**
 * The version of a table's content (its `version` field is ignored).
 *
 * `reuse`: remember each route's and upstream's canonical text by object, and
 * use it again when the same object is hashed in a later table. The result is
 * the same; only a caller that never changes an entry after hashing it may
 * ask for this (the data plane, whose tables are read-only once validated, and
 * the operator, which builds an unchanged route as the same object).
 */
export function tableVersion(table: Omit<RouteTable, 'version'> & { version?: string }, options: { reuse?: boolean } = {}): string {
  const { version: _ignored, ...content } = table;
  if (!options.reuse) return createHash('sha256').update(canonicalJson(content)).digest('hex').slice(0, 16);
  const record = content as Record<string, unknown>;
  const keys = Object.keys(record).filter((k) => record[k] !== undefined).sort();
  // The same bytes as canonicalJson(content), gathered into one buffer and hashed at once.
  const parts: Buffer[] = [];
  keys.forEach((k, i) => {
    const v = record[k];
    parts.push(Buffer.from(`${i === 0 ? '{' : ','}${JSON.stringify(k)}:`));
    if ((k === 'routes' || k === 'upstreams') && Array.isArray(v)) {
      parts.push(Buffer.from('['));
      v.forEach((entry: unknown, j) => {
        if (j > 0) parts.push(COMMA);
        parts.push(bytesOf(entry));
      });
      parts.push(CLOSE);
    } else {
      parts.push(Buffer.from(canonicalJson(v)));
    }
  });
  parts.push(Buffer.from(keys.length === 0 ? '{}' : '}'));
  return createHash('sha256').update(Buffer.concat(parts)).digest('hex').slice(0, 16);
}
