/**
 * The route matcher: compiled once per route table, then asked `match(host,
 * method, path)` for every request. Pure: no I/O, no clock, no logging.
 *
 * Why a segment trie per host tier: the work per request must not grow with the
 * number of routes, so routes are sorted into tries at compile time and a match
 * walks at most the request's own segments (plus the param and `*` branches that
 * exist at each step), never the route list.
 *
 * Semantics (docs/routing.md has the long form and examples):
 *
 * Paths. The path has already been normalized (`normalizeTarget`) and has no
 * query. It is matched segment by segment; the empty segment after a trailing
 * slash is a segment too, so Exact `/a/` and `/a` differ.
 * - Exact: the whole path equals the value.
 * - Prefix: the value's segments, then nothing or `/...`; `/api` matches `/api`,
 *   `/api/`, `/api/x/y`, never `/apix`. `/api/` behaves like `/api`; `/` matches
 *   everything.
 * - Template: `{name}` is one non-empty segment, captured; `*` in the middle is
 *   one non-empty segment, not captured; `*` as the last segment is one or more
 *   segments (the first non-empty), captured as `params['*']`. A template
 *   without either behaves exactly like Exact.
 *
 * Precedence, most specific first:
 * 1. Full-length matches (Exact, Template without trailing `*`) beat prefix-like
 *    ones (Prefix, Template with trailing `*`).
 * 2. Among full-length matches, compare left to right: static beats `{param}`
 *    beats `*`.
 * 3. Among prefix-like matches, more base segments win (the `*` is not
 *    counted); then static > param > `*` left to right; then, on the same base,
 *    trailing `*` beats Prefix, because it demands at least one more segment.
 * 4. Routes with the same host, path shape and method: the first registered
 *    wins; later ones are reported in `shadowed`. Parameter names do not make
 *    shapes differ (`/u/{id}` and `/u/{name}` collide).
 *
 * Methods. Case-sensitive (`get` is not GET). Empty `methods` means any method.
 * The most specific path candidate that supports the method wins. Within one
 * path shape: a route naming the method beats a route with no method list, and
 * HEAD goes to the route naming HEAD, else the route naming GET (RFC 9110 9.3.2:
 * HEAD must answer like GET), else the any-method route. When candidates match
 * the path but none supports the method, the result is method-not-allowed with
 * the sorted union of their methods (HEAD included wherever GET is).
 *
 * Hosts. Case-insensitive; a `:port` (also after `[v6]`) and one trailing dot
 * are ignored. Tiers, tried in order: the exact host, then wildcard
 * `*.suffix` entries from the longest suffix to the shortest (a wildcard needs
 * at least one label before the suffix), then routes with no hosts. A tier that
 * yields a match or method-not-allowed decides; only not-found falls through, so
 * a host's own routes are never overridden by a catch-all elsewhere.
 */
import { normalizeTarget } from './normalize.ts';

/** What the matcher needs from a route; the table's `Route` satisfies it. */
export interface MatchableRoute {
  id: string;
  hosts: string[];
  path: { type: 'Exact' | 'Prefix' | 'Template'; value: string };
  methods: string[];
}

/** The answer for one request: a route, a 405 with its Allow list, or a 404. */
export type MatchResult<R> =
  | {
      kind: 'match';
      route: R;
      params: Record<string, string>;
      /** Prefix routes: the matched prefix; trailing-`*` templates: the path before the `*`; never ends in '/'. Full-length matches: the whole path. */
      matchedPrefix: string;
    }
  | {
      kind: 'method-not-allowed';
      /** For the Allow header: sorted, unique, HEAD included wherever GET is. */
      allow: string[];
    }
  | { kind: 'not-found' };

/** A compiled route table, safe to share: `match()` keeps no state between calls. */
export interface Matcher<R extends MatchableRoute> {
  /** `host` is the raw Host header; `path` must already be normalized and query-free. */
  match(host: string, method: string, path: string): MatchResult<R>;
  /** The tries as text, for the admin endpoint. */
  print(): string;
  /** How many routes were compiled, shadowed ones included. */
  readonly size: number;
  /** Routes (per host and method) that can never win because an earlier route has the same shape; `'*'` means any. */
  readonly shadowed: ReadonlyArray<{ route: string; by: string; method: string; host: string }>;
}

/** A route that cannot be compiled; the whole table is refused rather than served without it. */
export class RouteCompileError extends Error {
  /** The offending route, so status reporting can point at it. */
  readonly routeId: string;
  /** What is wrong, without the route id. */
  readonly problem: string;

  constructor(routeId: string, problem: string) {
    super(`route "${routeId}": ${problem}`);
    this.name = 'RouteCompileError';
    this.routeId = routeId;
    this.problem = problem;
  }
}

/** Compiles routes (in registration order, which breaks remaining ties) into a matcher. */
export function compileMatcher<R extends MatchableRoute>(routes: readonly R[]): Matcher<R> {
  return new TrieMatcher(routes);
}

const SLASH = 0x2f;
const ANY_HOST = '*';
const ANY_METHOD = '*';
const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;
// RFC 9110 5.6.2 tchar without lower-case letters: methods are compared case-sensitively.
const METHOD_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Z-]+$/;
const HOST_NAME = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;
const IPV6_HOST = /^\[[0-9a-f:.]+\]$/;

const EMPTY_PARAMS: Record<string, string> = Object.freeze(Object.create(null) as Record<string, string>);
const NOT_FOUND: MatchResult<never> = Object.freeze({ kind: 'not-found' });

type Segment = { t: 'static'; v: string } | { t: 'param'; name: string } | { t: 'star' };
type EndKind = 'exact' | 'prefix' | 'rest';

/** A route's compiled path: which node it ends at, and how it ends. */
interface Pattern {
  kind: EndKind;
  segments: Segment[];
}

/** One route as the trie sees it: where its captures sit in the request path. */
interface Entry<R> {
  readonly route: R;
  readonly kind: EndKind;
  /** Base segments before the end (for 'rest', the segments before the `*`). */
  readonly depth: number;
  readonly paramNames: readonly string[];
  /** Segment index of each entry of paramNames. */
  readonly paramSlots: readonly number[];
}

/** The routes that end at one node in one way; method dispatch happens here. */
class Slot<R> {
  any: Entry<R> | null = null;
  readonly byMethod = new Map<string, Entry<R>>();
  /** Sorted methods for a 405, HEAD included wherever GET is. */
  allow: readonly string[] = [];
  /** For print(): each route that owns part of this slot and the methods it owns. */
  readonly owners: Array<{ id: string; methods: string[] }> = [];
}

class TrieNode<R> {
  statics: Map<string, TrieNode<R>> | null = null;
  // Most nodes have one static child; comparing in place avoids slicing the segment.
  soleKey: string | null = null;
  soleChild: TrieNode<R> | null = null;
  param: TrieNode<R> | null = null;
  readonly paramNames = new Set<string>();
  star: TrieNode<R> | null = null;
  exact: Slot<R> | null = null;
  prefix: Slot<R> | null = null;
  rest: Slot<R> | null = null;
}

type Shadow = { route: string; by: string; method: string; host: string };

class TrieMatcher<R extends MatchableRoute> implements Matcher<R> {
  readonly size: number;
  readonly shadowed: ReadonlyArray<Shadow>;

  readonly #exactHosts = new Map<string, TrieNode<R>>();
  /** Keyed by the suffix with its leading dot: `*.example.com` → `.example.com`. */
  readonly #wildcardHosts = new Map<string, TrieNode<R>>();
  #maxWildcardLength = 0;
  #anyHost: TrieNode<R> | null = null;

  // Per-match scratch. match() is synchronous, so one set per matcher is never shared.
  /** #starts[d]: offset of segment d in the path (past the end once all are consumed). */
  #starts: Int32Array;
  #path = '';
  #method = '';
  #best: Entry<R> | null = null;
  #bestDepth = -1;
  #seen = false;

  constructor(routes: readonly R[]) {
    const shadowed: Shadow[] = [];
    const ids = new Set<string>();
    let maxDepth = 0;
    for (const route of routes) {
      if (ids.has(route.id)) throw new RouteCompileError(route.id, 'duplicate route id');
      ids.add(route.id);
      const pattern = parsePath(route);
      const methods = parseMethods(route);
      const hosts = parseHosts(route);
      const entry = makeEntry(route, pattern);
      maxDepth = Math.max(maxDepth, pattern.segments.length);
      if (hosts.length === 0) {
        this.#anyHost ??= new TrieNode<R>();
        insert(this.#anyHost, pattern, entry, methods, ANY_HOST, shadowed);
      }
      for (const host of hosts) {
        let root: TrieNode<R> | undefined;
        if (host.startsWith('*.')) {
          const suffix = host.slice(1);
          root = this.#wildcardHosts.get(suffix);
          if (root === undefined) this.#wildcardHosts.set(suffix, (root = new TrieNode<R>()));
          this.#maxWildcardLength = Math.max(this.#maxWildcardLength, suffix.length);
        } else {
          root = this.#exactHosts.get(host);
          if (root === undefined) this.#exactHosts.set(host, (root = new TrieNode<R>()));
        }
        insert(root, pattern, entry, methods, host, shadowed);
      }
    }
    for (const root of this.#roots()) finish(root);
    this.size = routes.length;
    this.shadowed = Object.freeze(shadowed.map((s) => Object.freeze(s)));
    this.#starts = new Int32Array(maxDepth + 1);
  }

  match(host: string, method: string, path: string): MatchResult<R> {
    if (path.charCodeAt(0) !== SLASH) return NOT_FOUND;
    const h = hostKey(host);
    if (this.#exactHosts.size !== 0) {
      const root = this.#exactHosts.get(h);
      if (root !== undefined) {
        const r = this.#matchTree(root, method, path);
        if (r !== NOT_FOUND) return r;
      }
    }
    if (this.#wildcardHosts.size !== 0) {
      // Leftmost dot first gives the longest suffix first; starting at 1 keeps one label before it.
      for (let i = h.indexOf('.', 1); i !== -1; i = h.indexOf('.', i + 1)) {
        if (h.length - i > this.#maxWildcardLength) continue;
        const root = this.#wildcardHosts.get(h.slice(i));
        if (root === undefined) continue;
        const r = this.#matchTree(root, method, path);
        if (r !== NOT_FOUND) return r;
      }
    }
    if (this.#anyHost !== null) return this.#matchTree(this.#anyHost, method, path);
    return NOT_FOUND;
  }

  print(): string {
    const lines: string[] = [];
    for (const host of [...this.#exactHosts.keys()].sort()) {
      printTree(lines, `host ${host}`, this.#exactHosts.get(host) as TrieNode<R>);
    }
    const suffixes = [...this.#wildcardHosts.keys()].sort((a, b) => b.length - a.length || (a < b ? -1 : a > b ? 1 : 0));
    for (const suffix of suffixes) printTree(lines, `host *${suffix}`, this.#wildcardHosts.get(suffix) as TrieNode<R>);
    if (this.#anyHost !== null) printTree(lines, 'host (any)', this.#anyHost);
    return lines.join('\n') + (lines.length ? '\n' : '');
  }

  *#roots(): Iterable<TrieNode<R>> {
    yield* this.#exactHosts.values();
    yield* this.#wildcardHosts.values();
    if (this.#anyHost !== null) yield this.#anyHost;
  }

  #matchTree(root: TrieNode<R>, method: string, path: string): MatchResult<R> {
    this.#path = path;
    this.#method = method;
    this.#best = null;
    this.#bestDepth = -1;
    this.#seen = false;
    const full = this.#walk(root, 0, 1);
    // Read back through a widened type: the compiler cannot see that #walk assigns #best.
    const best = this.#best as Entry<R> | null;
    let result: MatchResult<R>;
    if (full !== null) {
      result = { kind: 'match', route: full.route, params: this.#params(full), matchedPrefix: path };
    } else if (best !== null) {
      result = { kind: 'match', route: best.route, params: this.#params(best), matchedPrefix: path.slice(0, (this.#starts[best.depth] as number) - 1) };
    } else if (this.#seen) {
      const allow = new Set<string>();
      this.#collectAllow(root, 0, 1, allow);
      result = { kind: 'method-not-allowed', allow: [...allow].sort() };
    } else {
      result = NOT_FOUND;
    }
    this.#path = '';
    this.#best = null;
    return result;
  }

  /**
   * Depth-first, children in static, param, `*` order, so full-length candidates
   * are met most specific first and the first one that takes the method is the
   * answer. Prefix-like candidates are only remembered: a deeper one may follow.
   */
  #walk(node: TrieNode<R>, d: number, pos: number): Entry<R> | null {
    const path = this.#path;
    const len = path.length;
    this.#starts[d] = pos;
    // At equal depth, `*` is checked before Prefix so that it wins the tie.
    if (node.rest !== null && pos < len && path.charCodeAt(pos) !== SLASH) {
      this.#seen = true;
      if (d > this.#bestDepth) this.#offer(pick(node.rest, this.#method), d);
    }
    if (node.prefix !== null) {
      this.#seen = true;
      if (d > this.#bestDepth) this.#offer(pick(node.prefix, this.#method), d);
    }
    if (pos > len) {
      if (node.exact === null) return null;
      this.#seen = true;
      return pick(node.exact, this.#method);
    }
    let end = path.indexOf('/', pos);
    if (end === -1) end = len;
    let child: TrieNode<R> | null | undefined = null;
    if (node.soleKey !== null) {
      if (end - pos === node.soleKey.length && path.startsWith(node.soleKey, pos)) child = node.soleChild;
    } else if (node.statics !== null) {
      child = node.statics.get(path.slice(pos, end));
    }
    if (child !== null && child !== undefined) {
      const r = this.#walk(child, d + 1, end + 1);
      if (r !== null) return r;
    }
    if (end > pos) {
      if (node.param !== null) {
        const r = this.#walk(node.param, d + 1, end + 1);
        if (r !== null) return r;
      }
      if (node.star !== null) {
        const r = this.#walk(node.star, d + 1, end + 1);
        if (r !== null) return r;
      }
    }
    return null;
  }

  #offer(entry: Entry<R> | null, d: number): void {
    if (entry === null) return;
    this.#best = entry;
    this.#bestDepth = d;
  }

  /** The same walk as #walk without shortcuts, for the rare 405: every slot the path reaches adds its methods. */
  #collectAllow(node: TrieNode<R>, d: number, pos: number, allow: Set<string>): void {
    const path = this.#path;
    const len = path.length;
    const add = (slot: Slot<R>): void => slot.allow.forEach((m) => allow.add(m));
    if (node.rest !== null && pos < len && path.charCodeAt(pos) !== SLASH) add(node.rest);
    if (node.prefix !== null) add(node.prefix);
    if (pos > len) {
      if (node.exact !== null) add(node.exact);
      return;
    }
    let end = path.indexOf('/', pos);
    if (end === -1) end = len;
    const child = node.statics?.get(path.slice(pos, end));
    if (child !== undefined) this.#collectAllow(child, d + 1, end + 1, allow);
    if (end > pos) {
      if (node.param !== null) this.#collectAllow(node.param, d + 1, end + 1, allow);
      if (node.star !== null) this.#collectAllow(node.star, d + 1, end + 1, allow);
    }
  }

  #params(entry: Entry<R>): Record<string, string> {
    const names = entry.paramNames;
    if (names.length === 0 && entry.kind !== 'rest') return EMPTY_PARAMS;
    const path = this.#path;
    const starts = this.#starts;
    // Null prototype: a parameter named `__proto__` or `constructor` stays an ordinary key.
    const params = Object.create(null) as Record<string, string>;
    for (let i = 0; i < names.length; i++) {
      const slot = entry.paramSlots[i] as number;
      params[names[i] as string] = path.slice(starts[slot] as number, (starts[slot + 1] as number) - 1);
    }
    if (entry.kind === 'rest') params['*'] = path.slice(starts[entry.depth] as number);
    return params;
  }
}

function pick<R>(slot: Slot<R>, method: string): Entry<R> | null {
  return slot.byMethod.get(method) ?? slot.any;
}

/** Lower-cases the Host header and drops the port and a trailing dot, which name the same host. */
function hostKey(host: string): string {
  let h = host;
  if (h.charCodeAt(0) === 0x5b /* [ */) {
    const close = h.indexOf(']');
    if (close !== -1) h = h.slice(0, close + 1);
  } else {
    const colon = h.indexOf(':');
    if (colon !== -1) h = h.slice(0, colon);
  }
  if (h.charCodeAt(h.length - 1) === 0x2e /* . */) h = h.slice(0, -1);
  return h.toLowerCase();
}

function parsePath(route: MatchableRoute): Pattern {
  const { type, value } = route.path;
  if (type !== 'Exact' && type !== 'Prefix' && type !== 'Template') {
    throw new RouteCompileError(route.id, `unknown path type "${String(type)}"`);
  }
  if (typeof value !== 'string' || value.charCodeAt(0) !== SLASH) {
    throw new RouteCompileError(route.id, `path "${String(value)}" must start with "/"`);
  }
  // Requests are normalized before matching, so a value in any other spelling could never match.
  const normalized = normalizeTarget(value);
  if (!normalized.ok) throw new RouteCompileError(route.id, `path "${value}" is invalid: ${normalized.reason}`);
  if (normalized.query !== '') throw new RouteCompileError(route.id, `path "${value}" must not contain a query`);
  if (normalized.path !== value) {
    throw new RouteCompileError(route.id, `path "${value}" is not in normalized form; requests for it arrive as "${normalized.path}"`);
  }
  const raw = value.slice(1).split('/');
  if (type === 'Template') return parseTemplate(route.id, value, raw);
  for (const seg of raw) {
    if (seg.includes('{') || seg.includes('}')) {
      throw new RouteCompileError(route.id, `path "${value}": braces are only meaningful in a Template path`);
    }
    if (seg === '*') throw new RouteCompileError(route.id, `path "${value}": "*" is only a wildcard in a Template path`);
  }
  // A Prefix value with a trailing slash means the same prefix; '/' becomes the empty prefix.
  if (type === 'Prefix' && raw[raw.length - 1] === '') raw.pop();
  return { kind: type === 'Exact' ? 'exact' : 'prefix', segments: raw.map((v) => ({ t: 'static', v })) };
}

function parseTemplate(id: string, value: string, raw: string[]): Pattern {
  const segments: Segment[] = [];
  const names = new Set<string>();
  let kind: EndKind = 'exact';
  raw.forEach((seg, i) => {
    const bad = (problem: string): RouteCompileError => new RouteCompileError(id, `path "${value}": segment "${seg}" ${problem}`);
    if (seg.includes('{') || seg.includes('}')) {
      let depth = 0;
      for (const ch of seg) {
        if (ch === '{') depth++;
        if (ch === '}') depth--;
        if (depth < 0 || depth > 1) throw bad('has an unbalanced or nested brace');
      }
      if (depth !== 0) throw bad('has an unbalanced brace');
      if (seg[0] !== '{' || seg.indexOf('}') !== seg.length - 1) {
        throw bad('mixes literal text and a parameter; a parameter must be the whole segment');
      }
      const name = seg.slice(1, -1);
      if (name === '') throw bad('has an empty parameter name');
      if (!PARAM_NAME.test(name)) throw bad('has an invalid parameter name (letters, digits, "_" and "-", not starting with a digit or "-")');
      if (names.has(name)) throw new RouteCompileError(id, `path "${value}": duplicate parameter name "${name}"`);
      names.add(name);
      segments.push({ t: 'param', name });
    } else if (seg.includes('*')) {
      if (seg !== '*') throw bad('mixes literal text and "*"; "*" must be the whole segment');
      if (i === raw.length - 1) kind = 'rest';
      else segments.push({ t: 'star' });
    } else {
      segments.push({ t: 'static', v: seg });
    }
  });
  return { kind, segments };
}

function parseMethods(route: MatchableRoute): string[] {
  for (const m of route.methods) {
    if (!METHOD_TOKEN.test(m)) throw new RouteCompileError(route.id, `method "${m}" is not an upper-case HTTP method token`);
  }
  return [...new Set(route.methods)];
}

function parseHosts(route: MatchableRoute): string[] {
  const out = new Set<string>();
  for (const entry of route.hosts) {
    const host = entry.toLowerCase();
    const bad = (problem: string): RouteCompileError => new RouteCompileError(route.id, `host "${entry}" ${problem}`);
    if (host === '') throw bad('is empty');
    if (host === '*') throw bad('is not allowed: an empty hosts list already matches any host');
    if (host.endsWith('.')) throw bad('must not end with a dot');
    if (host.startsWith('*.')) {
      if (!HOST_NAME.test(host.slice(2))) throw bad('is not a valid wildcard: "*." must be followed by a host name');
    } else if (host.includes('*')) {
      throw bad('is not a valid wildcard: "*" is only allowed as the whole first label ("*.example.com")');
    } else if (host.includes(':') && !host.startsWith('[')) {
      throw bad('must not include a port');
    } else if (!HOST_NAME.test(host) && !IPV6_HOST.test(host)) {
      throw bad('is not a valid host name');
    }
    out.add(host);
  }
  return [...out];
}

function makeEntry<R extends MatchableRoute>(route: R, pattern: Pattern): Entry<R> {
  const paramNames: string[] = [];
  const paramSlots: number[] = [];
  pattern.segments.forEach((s, i) => {
    if (s.t === 'param') {
      paramNames.push(s.name);
      paramSlots.push(i);
    }
  });
  return { route, kind: pattern.kind, depth: pattern.segments.length, paramNames, paramSlots };
}

function insert<R extends MatchableRoute>(
  root: TrieNode<R>,
  pattern: Pattern,
  entry: Entry<R>,
  methods: string[],
  host: string,
  shadowed: Shadow[],
): void {
  let node = root;
  for (const seg of pattern.segments) {
    if (seg.t === 'static') {
      node.statics ??= new Map();
      let next = node.statics.get(seg.v);
      if (next === undefined) node.statics.set(seg.v, (next = new TrieNode<R>()));
      node = next;
    } else if (seg.t === 'param') {
      node.paramNames.add(seg.name);
      node = node.param ??= new TrieNode<R>();
    } else {
      node = node.star ??= new TrieNode<R>();
    }
  }
  const slot = (node[pattern.kind] ??= new Slot<R>());
  const id = entry.route.id;
  const owned: string[] = [];
  if (methods.length === 0) {
    if (slot.any !== null) shadowed.push({ route: id, by: slot.any.route.id, method: ANY_METHOD, host });
    else {
      slot.any = entry;
      owned.push(ANY_METHOD);
    }
  }
  for (const m of methods) {
    const holder = slot.byMethod.get(m);
    if (holder !== undefined) shadowed.push({ route: id, by: holder.route.id, method: m, host });
    else {
      slot.byMethod.set(m, entry);
      owned.push(m);
    }
  }
  if (owned.length !== 0) slot.owners.push({ id, methods: owned });
}

/** Post-insertion pass: implied HEAD, Allow lists, and the single-child shortcut. */
function finish<R>(node: TrieNode<R>): void {
  for (const slot of [node.exact, node.prefix, node.rest]) {
    if (slot === null) continue;
    const get = slot.byMethod.get('GET');
    if (get !== undefined && !slot.byMethod.has('HEAD')) slot.byMethod.set('HEAD', get);
    slot.allow = Object.freeze([...slot.byMethod.keys()].sort());
  }
  if (node.statics !== null) {
    if (node.statics.size === 1) {
      const [key, child] = node.statics.entries().next().value as [string, TrieNode<R>];
      node.soleKey = key;
      node.soleChild = child;
    }
    for (const child of node.statics.values()) finish(child);
  }
  if (node.param !== null) finish(node.param);
  if (node.star !== null) finish(node.star);
}

function printTree<R>(lines: string[], title: string, root: TrieNode<R>): void {
  lines.push(title);
  printNode(lines, root, '(root)', '', true);
}

function printNode<R>(lines: string[], node: TrieNode<R>, label: string, indent: string, last: boolean): void {
  lines.push(`${indent}${last ? '└── ' : '├── '}${label}${describeSlots(node)}`);
  const children: Array<[string, TrieNode<R>]> = [];
  if (node.statics !== null) {
    // The empty key is the segment after a trailing slash: it prints as "/".
    for (const key of [...node.statics.keys()].sort()) children.push([`/${key}`, node.statics.get(key) as TrieNode<R>]);
  }
  if (node.param !== null) children.push([`/{${[...node.paramNames].join('|')}}`, node.param]);
  if (node.star !== null) children.push(['/*', node.star]);
  const childIndent = indent + (last ? '    ' : '│   ');
  children.forEach(([l, c], i) => printNode(lines, c, l, childIndent, i === children.length - 1));
}

function describeSlots<R>(node: TrieNode<R>): string {
  const parts: string[] = [];
  const describe = (name: string, slot: Slot<R> | null): void => {
    if (slot === null) return;
    const owners = slot.owners.map((o) => `${o.id} (${o.methods.map((m) => (m === ANY_METHOD ? 'any' : m)).join(', ')})`);
    parts.push(`[${name}] ${owners.join(', ')}`);
  };
  describe('exact', node.exact);
  describe('prefix', node.prefix);
  describe('rest /*', node.rest);
  return parts.length ? '  ' + parts.join('  ') : '';
}
