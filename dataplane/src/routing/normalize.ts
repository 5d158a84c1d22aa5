/**
 * Request-target normalization, run before matching.
 *
 * The matcher compares paths byte for byte, while upstreams decode escapes, merge
 * slashes and resolve dot segments on their own. If we routed the raw target, a
 * request for `/api/public/../admin` would be matched by the `/api/public` route
 * and served by the upstream as `/api/admin`, skipping whatever the admin route
 * requires. So the gateway rewrites the path into the one canonical spelling that
 * both sides agree on, forwards that spelling, and refuses (400) the spellings
 * whose meaning differs between servers instead of guessing:
 *
 * - only origin-form (`/path?query`) is accepted (RFC 9112 3.2.1); absolute-form,
 *   authority-form and asterisk-form never reach a route;
 * - percent-escapes of unreserved characters (RFC 3986 2.3) are decoded, every
 *   other escape keeps its encoding with upper-case hex (RFC 3986 6.2.2.1-2);
 * - `%2F`, `%5C` and `%00` are refused: servers disagree on whether an encoded
 *   slash or backslash separates segments, and NUL truncates paths in C code;
 * - raw backslash, `#`, spaces, control characters and bytes above 0x7E are
 *   refused: none is valid in a path, and servers repair them differently;
 * - runs of slashes collapse to one, dot segments are resolved per RFC 3986
 *   5.2.4 (after decoding, so `%2e%2e` counts), and `..` above the root is
 *   refused rather than clamped, since no honest client sends it;
 * - a dot segment carrying path parameters (`..;x`) is refused, because servlet
 *   containers strip `;...` and then resolve it as `..`;
 * - the query is split off and returned untouched: it does not take part in
 *   routing, and rewriting it could change what the upstream parses (only
 *   controls and spaces, which no valid request line holds, are refused).
 */

/** The outcome of normalizing one request target: the path to route and forward, or why the request is a 400. */
export type NormalizeResult = { ok: true; path: string; query: string } | { ok: false; reason: string };

const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;
const BACKSLASH = 0x5c;
const HASH = 0x23;

const HEX = '0123456789ABCDEF';

/** Normalizes an origin-form request target so that each resource has exactly one path spelling. */
export function normalizeTarget(rawTarget: string): NormalizeResult {
  if (rawTarget.charCodeAt(0) !== SLASH) {
    if (rawTarget === '*') return { ok: false, reason: 'origin-form expected, got asterisk-form "*"' };
    return { ok: false, reason: 'origin-form expected: the request target must start with "/"' };
  }
  const q = rawTarget.indexOf('?');
  const path = q === -1 ? rawTarget : rawTarget.slice(0, q);
  const query = q === -1 ? '' : rawTarget.slice(q);
  if (query !== '') {
    const bad = invalidQueryChar(query);
    if (bad !== -1) return { ok: false, reason: `invalid character 0x${hex2(bad)} in query` };
  }

  let slow = false;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c <= 0x20 || c >= 0x7f || c === BACKSLASH || c === HASH) {
      return { ok: false, reason: describeRawChar(c) };
    }
    // A '.' only matters at the start of a segment; `/file.json` stays on the fast path.
    if (c === PERCENT || (c === SLASH && i > 0 && path.charCodeAt(i - 1) === SLASH) || (c === DOT && path.charCodeAt(i - 1) === SLASH)) {
      slow = true;
    }
  }
  if (!slow) return { ok: true, path, query };

  const rawSegments = path.split('/');
  const out: string[] = [];
  let trailingSlash = false;
  // rawSegments[0] is the empty string before the leading '/'.
  for (let i = 1; i < rawSegments.length; i++) {
    const isLast = i === rawSegments.length - 1;
    const decoded = decodeSegment(rawSegments[i] as string);
    if (typeof decoded !== 'string') return decoded;
    if (decoded === '') {
      // Empty segments are merged slashes; only the last one says "trailing slash".
      if (isLast) trailingSlash = true;
      continue;
    }
    if (decoded === '.' || decoded === '..') {
      if (decoded === '..') {
        if (out.length === 0) return { ok: false, reason: 'path escapes the root' };
        out.pop();
      }
      // RFC 3986 5.2.4: a final dot segment leaves the output ending in '/'.
      if (isLast) trailingSlash = true;
      continue;
    }
    const semi = decoded.indexOf(';');
    if (semi !== -1) {
      const head = decoded.slice(0, semi);
      if (head === '.' || head === '..') return { ok: false, reason: `dot segment with path parameters "${decoded}"` };
    }
    out.push(decoded);
  }
  if (out.length === 0) return { ok: true, path: '/', query };
  return { ok: true, path: '/' + out.join('/') + (trailingSlash ? '/' : ''), query };
}

/** Decodes unreserved escapes in one segment and upper-cases the rest, or says why the segment is refused. */
function decodeSegment(seg: string): string | { ok: false; reason: string } {
  if (seg.indexOf('%') === -1) return seg;
  let out = '';
  let from = 0;
  for (let i = seg.indexOf('%'); i !== -1; i = seg.indexOf('%', from)) {
    const hi = hexValue(seg.charCodeAt(i + 1));
    const lo = hexValue(seg.charCodeAt(i + 2));
    if (hi === -1 || lo === -1) {
      return { ok: false, reason: `malformed percent-encoding "${seg.slice(i, i + 3)}"` };
    }
    const byte = hi * 16 + lo;
    if (byte === SLASH) return { ok: false, reason: 'encoded slash (%2F) in path' };
    if (byte === BACKSLASH) return { ok: false, reason: 'encoded backslash (%5C) in path' };
    if (byte === 0) return { ok: false, reason: 'encoded NUL (%00) in path' };
    out += seg.slice(from, i);
    out += isUnreserved(byte) ? String.fromCharCode(byte) : '%' + hex2(byte);
    from = i + 3;
  }
  return out + seg.slice(from);
}

/** RFC 3986 2.3: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === DOT || c === 0x5f || c === 0x7e
  );
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  return -1;
}

function hex2(byte: number): string {
  return (HEX[(byte >> 4) & 0xf] as string) + (HEX[byte & 0xf] as string);
}

function describeRawChar(c: number): string {
  if (c === BACKSLASH) return 'raw backslash in path';
  if (c === HASH) return 'raw "#" in path: fragments are never sent to a server';
  if (c === 0x20) return 'raw space in path';
  if (c > 0x7f) return `raw non-ASCII character U+${c.toString(16).toUpperCase().padStart(4, '0')} in path: it must be percent-encoded`;
  return `raw control character 0x${hex2(c)} in path`;
}

/** Controls and spaces cannot occur in a valid request line; refusing them keeps them out of forwarded requests. */
function invalidQueryChar(query: string): number {
  for (let i = 1; i < query.length; i++) {
    const c = query.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return c;
  }
  return -1;
}
