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
 * 4. Routes with the same host, path shape, method and conditions: the first
 *    registered wins; later ones are reported in `shadowed`. Parameter names
 *    do not make shapes differ (`/u/{id}` and `/u/{name}` collide), and a
 *    Prefix value with a trailing slash is the same prefix (`/a/` and `/a`).
 *
 * Methods. Case-sensitive (`get` is not GET). Empty `methods` means any method.
 * The most specific path candidate that supports the method wins. Within one
 * path shape: a route naming the method beats a route with no method list, and
 * HEAD goes to the route naming HEAD, else the route naming GET (RFC 9110 9.3.2:
 * HEAD must answer like GET), else the any-method route. When candidates match
 * the path but none supports the method, the result is method-not-allowed with
 * the sorted union of their methods (HEAD included wherever GET is).
 * A route with `methodsAsCondition` (the Gateway API's HTTPRoute) treats its
 * method like a header condition: it takes no HEAD for GET, and a request it
 * does not take passes it over as if its path did not match, so it never makes
 * a 405 nor appears in an Allow list.
 *
 * Conditions. A route may also require request headers (`headers`: a name
 * with an exact value, or mere presence; names are case-insensitive) and query
 * parameters (`queryParams`: the first value of the name, exact, or presence;
 * names are case-sensitive). All of a route's conditions must hold. They rank
 * after path and method: among routes of one path shape that take the method,
 * the one with more header conditions is tried first, then the one with more
 * query conditions, then the first registered. A route whose conditions fail
 * is passed over as if its path did not match, so a request that meets no
 * route's conditions gets 404, not 405. Routes differ only when their
 * condition sets differ; the same conditions in another order are the same
 * route shape.
 *
 * Hosts. Case-insensitive; a `:port` (also after `[v6]`) and one trailing dot
 * are ignored. Tiers, tried in order: the exact host, then wildcard
 * `*.suffix` entries from the longest suffix to the shortest (a wildcard needs
 * at least one label before the suffix), then routes with no hosts. A tier that
 * yields a match or method-not-allowed decides; only not-found falls through, so
 * a host's own routes are never overridden by a catch-all elsewhere.
 */
import { normalizeTarget } from './normalize.ts';

/** A condition on one request header or query parameter: an exact value, or mere presence. */
export interface RequestCondition {
  name: string;
  type: 'Exact' | 'Present';
  /** Required for Exact, absent for Present. */
  value?: string | undefined;
}

/** What the matcher needs from a route; the table's `Route` satisfies it. */
export interface MatchableRoute {
  id: string;
  hosts: string[];
  path: { type: 'Exact' | 'Prefix' | 'Template'; value: string };
  methods: string[];
  headers?: readonly RequestCondition[] | undefined;
  queryParams?: readonly RequestCondition[] | undefined;
  /** The method is one more condition (Gateway API): a request it does not take is passed over, never answered 405. */
  methodsAsCondition?: boolean | undefined;
}

/**
 * What the matcher may read of a request beyond host, method and path. Asked
 * only while a route with conditions is a candidate, so a table without
 * conditions never parses a query string.
 */
export interface RequestFacts {
  /** The header's value (several lines joined with ", "), or undefined; `name` is lower case. */
  header(name: string): string | undefined;
  /** The first value of the query parameter, decoded, or undefined. */
  query(name: string): string | undefined;
}

/**
 * The facts of a request from its headers (lower-case names, as Node gives
 * them) and query string (with or without the leading `?`): a header sent on
 * several lines reads as its lines joined with ", "; a query parameter as its
 * first value, decoded. The query is parsed only if a condition asks.
 */
export function requestFacts(headers: Readonly<Record<string, string | readonly string[] | undefined>>, query: string): RequestFacts {
  let params: URLSearchParams | undefined;
  return {
    header: (name) => {
      const v = headers[name];
      return typeof v === 'string' || v === undefined ? v : v.join(', ');
    },
    query: (name) => (params ??= new URLSearchParams(query)).get(name) ?? undefined,
  };
}

/** How the matcher treats a route whose shape is already taken. */
export interface MatcherOptions {
  /**
   * false (the data plane): the later route keeps the claims nobody holds and
   * loses the others, which are reported in `shadowed`.
   * true (conflict resolution): a route that would lose any claim is left out
   * entirely and reported once, with the first claim it lost.
   */
  exclusive?: boolean;
  /**
   * Keep each route's parsed form (path pattern, methods, hosts, conditions)
   * by route object and use it again when the same object is compiled into a
   * later matcher. Only for routes that never change once compiled (the data
   * plane's route runtimes, which a table delta keeps for unchanged routes).
   */
  reuseParsed?: boolean;
}

/** Parsed routes by route object, for `reuseParsed`: nothing in them is changed once made, so matchers share them. */
const parsedRoutes = new WeakMap<object, Omit<Prepared<MatchableRoute>, 'index'>>();

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
  /**
   * `host` is the raw Host header; `path` must already be normalized and
   * query-free; `facts` answers header and query conditions (without it, no
   * condition holds).
   */
  match(host: string, method: string, path: string, facts?: RequestFacts): MatchResult<R>;
  /** Whether any route has header or query conditions: callers pass `facts` only then. */
  readonly conditional: boolean;
  /** The tries as text, for the admin endpoint. */
  print(): string;
  /** How many routes were compiled, shadowed ones included. */
  readonly size: number;
  /**
   * Routes (per host and method) that can never win because an earlier route
   * has the same shape and conditions; `'*'` means any. In exclusive mode, one
   * entry per route left out.
   */
  readonly shadowed: ReadonlyArray<{ route: string; by: string; method: string; host: string }>;
  /**
   * `match()` with its reasons, for people rather than requests: the same
   * answer, the host tier that gave it, each route that also fitted and the
   * rule it lost by, and the routes that came closest with what failed. Walks
   * every route, so it is for the admin API and the CLI, never the hot path.
   */
  explain(host: string, method: string, path: string, facts?: RequestFacts, options?: ExplainOptions): MatchExplanation<R>;
}

/** What part of a request a route did not take. */
export type MissReason = 'host' | 'path' | 'method' | 'header' | 'query';

/** One part of a request a route did not take, and why, in words. */
export interface Miss {
  what: MissReason;
  detail: string;
}

/** A route that did not fit the request: every part it failed on, in the order host, path, method, header, query. */
export interface NearMiss<R> {
  route: R;
  failed: Miss[];
}

/** A route that fitted the request as well but lost to the answer, and the precedence rule that decided. */
export interface Outranked<R> {
  route: R;
  rule: string;
}

/** How many near misses and outranked routes `explain` lists (the counts say how many there were). */
export interface ExplainOptions {
  limit?: number;
}

/** The answer of `match()` with the reasons for it; see `Matcher.explain`. */
export interface MatchExplanation<R> {
  result: MatchResult<R>;
  /** The host tier that answered (`api.example.com`, `*.example.com`, or `*` for routes without hosts); undefined for not-found. */
  tier: string | undefined;
  /** Why the answer is what it is, in one sentence. */
  rule: string;
  /** Routes that fitted as well, most specific first, each with the rule it lost by. */
  outranked: Outranked<R>[];
  outrankedCount: number;
  /** The closest routes that did not fit: fewest failures first, then the part that failed (conditions before method, host and path). */
  nearMisses: NearMiss<R>[];
  nearMissCount: number;
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
export function compileMatcher<R extends MatchableRoute>(routes: readonly R[], options: MatcherOptions = {}): Matcher<R> {
  return new TrieMatcher(routes, options.exclusive ?? false, options.reuseParsed ?? false);
}

/** A claim an earlier route holds: the route left out, the winner, and the method and host of the first claim it lost. */
export interface LostClaim {
  route: string;
  by: string;
  method: string;
  host: string;
  /** The space (listener) where the claim was lost. */
  space: string;
}

/**
 * Exclusive conflict resolution over several matchers at once, one per
 * space (a traffic listener): each route claims in every space `spacesOf`
 * names, and a route that would lose a claim in any of them is left out of
 * all of them. Routes are taken in the order given, so a route left out frees
 * its claims everywhere for the routes after it, whatever the order of the
 * spaces. Valid routes only (see `routeProblem`). One entry per route left out.
 */
export function resolveClaims<R extends MatchableRoute>(routes: readonly R[], spacesOf: (route: R) => readonly string[], options: Pick<MatcherOptions, 'reuseParsed'> = {}): LostClaim[] {
  return TrieMatcher.resolveAcross(routes, spacesOf, options.reuseParsed ?? false);
}

/** What is wrong with one route on its own (path, hosts, methods, conditions), or undefined when the matcher takes it. */
export function routeProblem(route: MatchableRoute): string | undefined {
  try {
    parsePath(route);
    parseMethods(route);
    parseHosts(route);
    parseConditions(route);
    return undefined;
  } catch (err) {
    if (err instanceof RouteCompileError) return err.problem;
    throw err;
  }
}

const SLASH = 0x2f;
const ANY_HOST = '*';
const ANY_METHOD = '*';
const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;
// RFC 9110 5.6.2 tchar without lower-case letters: methods are compared case-sensitively.
const METHOD_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Z-]+$/;
const HOST_NAME = /^[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;
// RFC 9110 5.6.2 tchar: a header field name.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
// RFC 9110 5.5: no CR, LF or NUL in a field value; a value with leading or trailing blanks never arrives as such.
const HEADER_VALUE = /^[^\r\n\0]*$/;
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

/** A route's compiled conditions. */
interface Conditions {
  /** Lower-case names; `value` undefined means presence. */
  readonly headers: ReadonlyArray<{ name: string; value: string | undefined }>;
  readonly query: ReadonlyArray<{ name: string; value: string | undefined }>;
  /** The same set in a canonical order: two routes with equal keys have the same conditions. */
  readonly key: string;
}

/** One route as the trie sees it: where its captures sit in the request path. */
interface Entry<R> {
  readonly route: R;
  /** null: no conditions, the common case, checked without a call. */
  readonly conditions: Conditions | null;
  readonly kind: EndKind;
  /** Base segments before the end (for 'rest', the segments before the `*`). */
  readonly depth: number;
  readonly paramNames: readonly string[];
  /** Segment index of each entry of paramNames. */
  readonly paramSlots: readonly number[];
  /** `methodsAsCondition`: a method this entry does not take is no 405 and adds nothing to Allow. */
  readonly quiet: boolean;
}

/**
 * The routes that end at one node in one way; method dispatch happens here.
 * Each list is ordered by condition specificity (see `byConditions`), so the
 * first entry whose conditions hold is the answer.
 */
class Slot<R> {
  any: Entry<R>[] | null = null;
  readonly byMethod = new Map<string, Entry<R>[]>();
  /** Some entry that can answer 405 has no conditions: the slot applies to every request that reaches it. */
  unconditioned = false;
  /** Some entry that can answer 405 has conditions: what applies depends on the request. */
  conditional = false;
  /** Some entry may answer 405 (is not quiet); a slot of quiet entries only never does. */
  loud = false;
  /** Sorted methods for a 405, HEAD included wherever GET is. */
  allow: readonly string[] = [];
  /** For print(): each route that owns part of this slot and the methods it owns. */
  readonly owners: Array<{ id: string; methods: string[]; conditions: string | undefined }> = [];
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

/** A route parsed for insertion. */
interface Prepared<R> {
  pattern: Pattern;
  methods: string[];
  entry: Entry<R>;
  /** Host tiers, `*` for any host. */
  targets: string[];
  /** Registration order, the last tie-breaker. */
  index: number;
}

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
  #facts: RequestFacts | undefined = undefined;

  readonly conditional: boolean;

  // Build state.
  readonly #ids = new Set<string>();
  /** Every route inserted, in registration order, for explain(). */
  readonly #inserted: Prepared<R>[] = [];
  #maxDepth = 0;
  #anyConditions = false;

  readonly #reuseParsed: boolean;

  constructor(routes: readonly R[], exclusive: boolean, reuseParsed = false) {
    this.#reuseParsed = reuseParsed;
    const shadowed: Shadow[] = [];
    for (const route of routes) {
      const prepared = this.#prepare(route);
      if (exclusive) {
        const lost = this.#lostClaim(prepared);
        if (lost !== undefined) {
          shadowed.push({ route: route.id, ...lost });
          continue;
        }
      }
      this.#insert(prepared, shadowed);
    }
    for (const root of this.#roots()) finish(root);
    this.conditional = this.#anyConditions;
    this.size = routes.length;
    this.shadowed = Object.freeze(shadowed.map((s) => Object.freeze(s)));
    this.#starts = new Int32Array(this.#maxDepth + 1);
  }

  /** See `resolveClaims`: one matcher per space, built route by route, never finished (no request is matched). */
  static resolveAcross<R extends MatchableRoute>(routes: readonly R[], spacesOf: (route: R) => readonly string[], reuseParsed: boolean): LostClaim[] {
    const spaces = new Map<string, TrieMatcher<R>>();
    const lostClaims: LostClaim[] = [];
    const discard: Shadow[] = [];
    for (const route of routes) {
      const names = [...new Set(spacesOf(route))];
      const prepared = names.map((name) => {
        let m = spaces.get(name);
        if (m === undefined) spaces.set(name, (m = new TrieMatcher<R>([], true, reuseParsed)));
        return [name, m, m.#prepare(route)] as const;
      });
      let lost: LostClaim | undefined;
      for (const [name, m, p] of prepared) {
        const l = m.#lostClaim(p);
        if (l !== undefined) {
          lost = { route: route.id, ...l, space: name };
          break;
        }
      }
      if (lost !== undefined) lostClaims.push(lost);
      else for (const [, m, p] of prepared) m.#insert(p, discard);
    }
    return lostClaims;
  }

  /** Parses a route once; throws RouteCompileError for a bad one or a duplicate id. */
  #prepare(route: R): Prepared<R> {
    if (this.#ids.has(route.id)) throw new RouteCompileError(route.id, 'duplicate route id');
    this.#ids.add(route.id);
    const index = this.#ids.size - 1;
    const known = this.#reuseParsed ? (parsedRoutes.get(route) as Omit<Prepared<R>, 'index'> | undefined) : undefined;
    if (known !== undefined) return { ...known, index };
    const pattern = parsePath(route);
    const methods = parseMethods(route);
    const hosts = parseHosts(route);
    const entry = makeEntry(route, pattern, parseConditions(route));
    const parsed = { pattern, methods, entry, targets: hosts.length === 0 ? [ANY_HOST] : hosts };
    if (this.#reuseParsed) parsedRoutes.set(route, parsed as Omit<Prepared<MatchableRoute>, 'index'>);
    return { ...parsed, index };
  }

  /** The first claim an earlier route already holds, or undefined. */
  #lostClaim(p: Prepared<R>): { by: string; method: string; host: string } | undefined {
    return firstLostClaim(this.#rootsFor(p.targets, false), p.pattern, p.entry, p.methods);
  }

  #insert(p: Prepared<R>, shadowed: Shadow[]): void {
    this.#inserted.push(p);
    this.#maxDepth = Math.max(this.#maxDepth, p.pattern.segments.length);
    if (p.entry.conditions !== null) this.#anyConditions = true;
    for (const [host, root] of this.#rootsFor(p.targets, true)) insert(root, p.pattern, p.entry, p.methods, host, shadowed);
  }

  /** The root of each host tier a route is registered under; `create` adds missing ones. */
  #rootsFor(hosts: readonly string[], create: boolean): Array<[string, TrieNode<R>]> {
    const out: Array<[string, TrieNode<R>]> = [];
    for (const host of hosts) {
      let root: TrieNode<R> | undefined | null;
      if (host === ANY_HOST) {
        if (create) this.#anyHost ??= new TrieNode<R>();
        root = this.#anyHost;
      } else if (host.startsWith('*.')) {
        const suffix = host.slice(1);
        root = this.#wildcardHosts.get(suffix);
        if (root === undefined && create) {
          this.#wildcardHosts.set(suffix, (root = new TrieNode<R>()));
          this.#maxWildcardLength = Math.max(this.#maxWildcardLength, suffix.length);
        }
      } else {
        root = this.#exactHosts.get(host);
        if (root === undefined && create) this.#exactHosts.set(host, (root = new TrieNode<R>()));
      }
      if (root !== undefined && root !== null) out.push([host, root]);
    }
    return out;
  }

  match(host: string, method: string, path: string, facts?: RequestFacts): MatchResult<R> {
    if (path.charCodeAt(0) !== SLASH) return NOT_FOUND;
    const h = hostKey(host);
    if (this.#exactHosts.size !== 0) {
      const root = this.#exactHosts.get(h);
      if (root !== undefined) {
        const r = this.#matchTree(root, method, path, facts);
        if (r !== NOT_FOUND) return r;
      }
    }
    if (this.#wildcardHosts.size !== 0) {
      // Leftmost dot first gives the longest suffix first; starting at 1 keeps one label before it.
      for (let i = h.indexOf('.', 1); i !== -1; i = h.indexOf('.', i + 1)) {
        if (h.length - i > this.#maxWildcardLength) continue;
        const root = this.#wildcardHosts.get(h.slice(i));
        if (root === undefined) continue;
        const r = this.#matchTree(root, method, path, facts);
        if (r !== NOT_FOUND) return r;
      }
    }
    if (this.#anyHost !== null) return this.#matchTree(this.#anyHost, method, path, facts);
    return NOT_FOUND;
  }

  explain(host: string, method: string, path: string, facts?: RequestFacts, options: ExplainOptions = {}): MatchExplanation<R> {
    const limit = options.limit ?? 10;
    const h = hostKey(host);
    const { result, tier } = this.#decide(h, method, path, facts);
    const tiers = requestTiers(h);
    const winner = result.kind === 'match' ? this.#inserted.find((p) => p.entry.route === result.route) : undefined;
    const decidingRank = tier === undefined ? -1 : tiers.indexOf(tier);
    const outranked: Array<{ p: Prepared<R>; rank: number; rule: string }> = [];
    const misses: Array<{ p: Prepared<R>; failed: Miss[]; matched: number }> = [];
    for (const p of this.#inserted) {
      if (p === winner) continue;
      const rank = tiers.findIndex((t) => p.targets.includes(t));
      const failed: Miss[] = [];
      if (rank === -1) failed.push({ what: 'host', detail: `the route is for ${p.targets.join(', ')}, not ${h || '(no host)'}` });
      const fit = fitPath(p, path);
      if (!fit.ok) failed.push({ what: 'path', detail: fit.detail });
      if (!takesMethod(p, method)) {
        const quiet = p.entry.quiet ? ' (the method is a condition of this route: no 405, no HEAD for GET)' : '';
        failed.push({ what: 'method', detail: `the route takes ${p.methods.join(', ')}${quiet}, not ${method}` });
      }
      failed.push(...conditionMisses(p.entry, facts));
      if (failed.length === 0) {
        const rule =
          winner !== undefined && rank === decidingRank
            ? precedenceRule(winner, p, method) ?? 'unexplained: the precedence rules rank this route first'
            : `the ${describeTier(tier)} answered first${result.kind === 'method-not-allowed' ? ' (405)' : ''}; this route is in the ${describeTier(tiers[rank])}`;
        outranked.push({ p, rank, rule });
      } else if (fit.ok || fit.matched > 0) {
        misses.push({ p, failed, matched: fit.ok ? Infinity : fit.matched });
      }
    }
    outranked.sort((a, b) => a.rank - b.rank || specificity(a.p, b.p, method));
    misses.sort((a, b) => distinct(a.failed) - distinct(b.failed) || severity(a.failed) - severity(b.failed) || b.matched - a.matched);
    return {
      result,
      tier,
      rule: summary(result, tier, method, outranked.length),
      outranked: outranked.slice(0, limit).map((o) => ({ route: o.p.entry.route, rule: o.rule })),
      outrankedCount: outranked.length,
      nearMisses: misses.slice(0, limit).map((m) => ({ route: m.p.entry.route, failed: m.failed })),
      nearMissCount: misses.length,
    };
  }

  /** match() on a host already reduced by hostKey, saying which tier answered. */
  #decide(h: string, method: string, path: string, facts: RequestFacts | undefined): { result: MatchResult<R>; tier: string | undefined } {
    if (path.charCodeAt(0) !== SLASH) return { result: NOT_FOUND, tier: undefined };
    for (const t of requestTiers(h)) {
      const root = t === ANY_HOST ? this.#anyHost : t.startsWith('*.') ? this.#wildcardHosts.get(t.slice(1)) : this.#exactHosts.get(t);
      if (root === undefined || root === null) continue;
      const r = this.#matchTree(root, method, path, facts);
      if (r !== NOT_FOUND) return { result: r, tier: t };
    }
    return { result: NOT_FOUND, tier: undefined };
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

  #matchTree(root: TrieNode<R>, method: string, path: string, facts: RequestFacts | undefined): MatchResult<R> {
    this.#path = path;
    this.#facts = facts;
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
    this.#facts = undefined;
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
      this.#touch(node.rest);
      if (d > this.#bestDepth) this.#offer(pick(node.rest, this.#method, this.#facts), d);
    }
    if (node.prefix !== null) {
      this.#touch(node.prefix);
      if (d > this.#bestDepth) this.#offer(pick(node.prefix, this.#method, this.#facts), d);
    }
    if (pos > len) {
      if (node.exact === null) return null;
      this.#touch(node.exact);
      return pick(node.exact, this.#method, this.#facts);
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

  /** Notes that the path reached routes whose conditions hold for some method: a miss is then a 405, not a 404. */
  #touch(slot: Slot<R>): void {
    if (this.#seen || !slot.loud) return;
    if (slot.unconditioned || slotApplies(slot, this.#facts)) this.#seen = true;
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
    const facts = this.#facts;
    const add = (slot: Slot<R>): void => {
      if (!slot.conditional) slot.allow.forEach((m) => allow.add(m));
      else for (const [m, list] of slot.byMethod) if (list.some((e) => !e.quiet && holds(e, facts))) allow.add(m);
    };
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

function pick<R>(slot: Slot<R>, method: string, facts: RequestFacts | undefined): Entry<R> | null {
  const named = slot.byMethod.get(method);
  if (named !== undefined) {
    const e = named[0] as Entry<R>;
    if (e.conditions === null) return e;
    const found = firstHolding(named, facts);
    if (found !== null) return found;
  }
  const any = slot.any;
  if (any === null) return null;
  const e = any[0] as Entry<R>;
  return e.conditions === null ? e : firstHolding(any, facts);
}

function firstHolding<R>(list: readonly Entry<R>[], facts: RequestFacts | undefined): Entry<R> | null {
  for (const e of list) if (holds(e, facts)) return e;
  return null;
}

/** The host tiers a request reaches, in the order match() tries them: the host, its wildcard suffixes from the longest, any host. */
function requestTiers(h: string): string[] {
  const out = h === '' ? [] : [h];
  // As in match(): starting at 1 keeps at least one label before the suffix.
  for (let i = h.indexOf('.', 1); i !== -1; i = h.indexOf('.', i + 1)) out.push(`*${h.slice(i)}`);
  out.push(ANY_HOST);
  return out;
}

function describeTier(tier: string | undefined): string {
  if (tier === undefined) return 'no host tier';
  if (tier === ANY_HOST) return 'tier of routes for any host';
  return `tier of host ${tier}`;
}

/** Whether a route (for some of its claims) takes the method; HEAD falls back to GET as in finish(). */
function takesMethod<R>(p: Prepared<R>, method: string): boolean {
  return p.methods.length === 0 || p.methods.includes(method) || (method === 'HEAD' && !p.entry.quiet && p.methods.includes('GET'));
}

/** 0: names the method, 1: names GET for a HEAD, 2: any method; the order pick() tries them in. */
function methodRank<R>(p: Prepared<R>, method: string): number {
  if (p.methods.includes(method)) return 0;
  return p.methods.length === 0 ? 2 : 1;
}

const SEGMENT_RANK = { static: 0, param: 1, star: 2 } as const;

function describeSegment(s: Segment): string {
  return s.t === 'static' ? `the literal "${s.v}"` : s.t === 'param' ? `{${s.name}}` : '"*"';
}

/** Why the path does not fit a route's pattern, with the count of leading segments that did fit; the same rules as #walk. */
function fitPath<R extends MatchableRoute>(p: Prepared<R>, path: string): { ok: true } | { ok: false; matched: number; detail: string } {
  const { value, type } = p.entry.route.path;
  if (path.charCodeAt(0) !== SLASH) return { ok: false, matched: 0, detail: 'the request path does not start with "/"' };
  const segs = path.slice(1).split('/');
  const want = p.pattern.segments;
  for (let i = 0; i < want.length; i++) {
    const got = segs[i];
    const seg = want[i] as Segment;
    if (got === undefined) return { ok: false, matched: i, detail: `the path ends after ${i} segment${i === 1 ? '' : 's'}; ${type} ${value} needs ${want.length}${p.pattern.kind === 'rest' ? ' and more' : ''}` };
    const fits = seg.t === 'static' ? got === seg.v : got !== '';
    if (!fits) {
      const detail = seg.t === 'static' ? `segment ${i + 1} is "${got}"; ${type} ${value} needs "${seg.v}"` : `segment ${i + 1} is empty; ${describeSegment(seg)} needs a non-empty segment`;
      return { ok: false, matched: i, detail };
    }
  }
  if (p.pattern.kind === 'exact' && segs.length !== want.length) {
    return { ok: false, matched: want.length, detail: `the path has ${segs.length} segments; ${type} ${value} has exactly ${want.length}${type === 'Exact' ? '' : ' (a template without a trailing "*" matches the whole path)'}` };
  }
  if (p.pattern.kind === 'rest' && (segs.length <= want.length || segs[want.length] === '')) {
    return { ok: false, matched: want.length, detail: `the trailing "*" of ${value} needs at least one more non-empty segment` };
  }
  return { ok: true };
}

/** Each condition of an entry that the request fails, without the request's own values (they may be credentials). */
function conditionMisses<R>(entry: Entry<R>, facts: RequestFacts | undefined): Miss[] {
  const c = entry.conditions;
  if (c === null) return [];
  const out: Miss[] = [];
  const check = (what: 'header' | 'query', name: string, want: string | undefined, got: string | undefined): void => {
    const label = what === 'header' ? `header ${name}` : `query parameter ${name}`;
    if (got === undefined) out.push({ what, detail: `${label} is missing; the route needs it${want === undefined ? '' : ` to be ${JSON.stringify(want)}`}` });
    else if (want !== undefined && got !== want) out.push({ what, detail: `${label} is not ${JSON.stringify(want)}` });
  };
  for (const hc of c.headers) check('header', hc.name, hc.value, facts?.header(hc.name));
  for (const qc of c.query) check('query', qc.name, qc.value, facts?.query(qc.name));
  return out;
}

function distinct(failed: readonly Miss[]): number {
  return new Set(failed.map((f) => f.what)).size;
}

const MISS_SEVERITY: Record<MissReason, number> = { header: 0, query: 0, method: 1, host: 2, path: 3 };

function severity(failed: readonly Miss[]): number {
  return Math.max(...failed.map((f) => MISS_SEVERITY[f.what]));
}

/**
 * The rule by which `a` (the answer) beats `b`, two routes of one host tier
 * that both fit the request; undefined when the rules put `b` first, which
 * would mean this and the trie disagree (the contract suite checks they never
 * do). The order is the trie's: full-length first; then segments left to
 * right (for prefix-like routes, more segments first, then `*` over Prefix on
 * the same base); then the method; then conditions; then registration.
 */
function precedenceRule<R>(a: Prepared<R>, b: Prepared<R>, method: string): string | undefined {
  const fullA = a.pattern.kind === 'exact';
  const fullB = b.pattern.kind === 'exact';
  if (fullA !== fullB) return fullA ? 'a full-length match beats a prefix match, however long' : undefined;
  const sa = a.pattern.segments;
  const sb = b.pattern.segments;
  if (!fullA && sa.length !== sb.length) return sa.length > sb.length ? `the longer prefix wins (${sa.length} segments over ${sb.length})` : undefined;
  for (let i = 0; i < Math.min(sa.length, sb.length); i++) {
    const x = sa[i] as Segment;
    const y = sb[i] as Segment;
    if (SEGMENT_RANK[x.t] !== SEGMENT_RANK[y.t]) return SEGMENT_RANK[x.t] < SEGMENT_RANK[y.t] ? `segment ${i + 1}: ${describeSegment(x)} beats ${describeSegment(y)}` : undefined;
  }
  if (a.pattern.kind !== b.pattern.kind) return a.pattern.kind === 'rest' ? 'on the same base, a trailing "*" beats Prefix (it needs one more segment)' : undefined;
  const ma = methodRank(a, method);
  const mb = methodRank(b, method);
  if (ma !== mb) {
    if (ma > mb) return undefined;
    if (ma === 0 && mb === 2) return `a route naming ${method} beats a route for any method`;
    if (ma === 0) return 'a route naming HEAD beats one naming GET';
    return 'HEAD goes to a route naming GET before a route for any method';
  }
  const ha = a.entry.conditions?.headers.length ?? 0;
  const hb = b.entry.conditions?.headers.length ?? 0;
  if (ha !== hb) return ha > hb ? `more header conditions win (${ha} over ${hb})` : undefined;
  const qa = a.entry.conditions?.query.length ?? 0;
  const qb = b.entry.conditions?.query.length ?? 0;
  if (qa !== qb) return qa > qb ? `more query conditions win (${qa} over ${qb})` : undefined;
  return a.index < b.index ? 'same path shape, method and condition count: the route registered first wins (for GatewayRoutes the oldest)' : undefined;
}

/** Sort order for routes that fit: most specific first, as precedenceRule ranks them. */
function specificity<R>(a: Prepared<R>, b: Prepared<R>, method: string): number {
  if (precedenceRule(a, b, method) !== undefined) return -1;
  return precedenceRule(b, a, method) !== undefined ? 1 : 0;
}

function summary<R>(result: MatchResult<R>, tier: string | undefined, method: string, others: number): string {
  if (result.kind === 'not-found') return 'no route fits the host and path (with its conditions) on any host tier';
  if (result.kind === 'method-not-allowed') return `routes in the ${describeTier(tier)} fit the path, but none takes ${method}; allowed: ${result.allow.join(', ')}`;
  return others === 0 ? `the only route that fits, in the ${describeTier(tier)}` : `the most specific of ${others + 1} routes that fit; the ${describeTier(tier)} answered`;
}

/** Whether an entry's conditions hold for the request (always, without conditions). */
function holds<R>(entry: Entry<R>, facts: RequestFacts | undefined): boolean {
  const c = entry.conditions;
  if (c === null) return true;
  if (facts === undefined) return false;
  for (const h of c.headers) {
    const v = facts.header(h.name);
    if (v === undefined || (h.value !== undefined && v !== h.value)) return false;
  }
  for (const q of c.query) {
    const v = facts.query(q.name);
    if (v === undefined || (q.value !== undefined && v !== q.value)) return false;
  }
  return true;
}

/** Whether some route of the slot that can answer 405, for any method, has conditions that hold. */
function slotApplies<R>(slot: Slot<R>, facts: RequestFacts | undefined): boolean {
  if (slot.any?.some((e) => !e.quiet && holds(e, facts))) return true;
  for (const list of slot.byMethod.values()) if (list.some((e) => !e.quiet && holds(e, facts))) return true;
  return false;
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

/** Validates and compiles a route's header and query conditions; null when it has none. */
function parseConditions(route: MatchableRoute): Conditions | null {
  const headers = compileConditions(route, 'header', route.headers ?? []);
  const query = compileConditions(route, 'query parameter', route.queryParams ?? []);
  if (headers.length === 0 && query.length === 0) return null;
  const part = (prefix: string, c: { name: string; value: string | undefined }): string => `${prefix}${JSON.stringify(c.name)}${c.value === undefined ? '' : `=${JSON.stringify(c.value)}`}`;
  const key = [...headers.map((c) => part('h', c)), ...query.map((c) => part('q', c))].sort().join(' ');
  return { headers, query, key };
}

function compileConditions(route: MatchableRoute, what: 'header' | 'query parameter', list: readonly RequestCondition[]): Array<{ name: string; value: string | undefined }> {
  const out: Array<{ name: string; value: string | undefined }> = [];
  const names = new Set<string>();
  for (const c of list) {
    const bad = (problem: string): RouteCompileError => new RouteCompileError(route.id, `${what} condition "${String(c.name)}" ${problem}`);
    if (typeof c.name !== 'string' || c.name === '') throw bad('has an empty name');
    // Header names are case-insensitive (RFC 9110 5.1); query parameter names are not.
    const name = what === 'header' ? c.name.toLowerCase() : c.name;
    if (what === 'header' && !HEADER_NAME.test(name)) throw bad('is not a valid header name');
    if (names.has(name)) throw bad(`is listed twice; a ${what} can be matched once per route`);
    names.add(name);
    if (c.type === 'Present') {
      if (c.value !== undefined) throw bad('has a value, but type Present matches any value; remove the value or use type Exact');
      out.push({ name, value: undefined });
    } else if (c.type === 'Exact') {
      if (typeof c.value !== 'string') throw bad('needs a value with type Exact');
      if (what === 'header' && (!HEADER_VALUE.test(c.value) || c.value !== c.value.trim())) {
        throw bad('has a value no request can carry (CR, LF, NUL, or blanks at either end)');
      }
      out.push({ name, value: c.value });
    } else {
      throw bad(`has an unknown type "${String(c.type)}"; expected Exact or Present`);
    }
  }
  return out;
}

function makeEntry<R extends MatchableRoute>(route: R, pattern: Pattern, conditions: Conditions | null): Entry<R> {
  const paramNames: string[] = [];
  const paramSlots: number[] = [];
  pattern.segments.forEach((s, i) => {
    if (s.t === 'param') {
      paramNames.push(s.name);
      paramSlots.push(i);
    }
  });
  return { route, conditions, kind: pattern.kind, depth: pattern.segments.length, paramNames, paramSlots, quiet: route.methodsAsCondition === true };
}

/** The node a pattern ends at, created on the way when `create` is set; null when it does not exist yet. */
function nodeFor<R>(root: TrieNode<R>, pattern: Pattern, create: boolean): TrieNode<R> | null {
  let node = root;
  for (const seg of pattern.segments) {
    let next: TrieNode<R> | null | undefined;
    if (seg.t === 'static') {
      next = node.statics?.get(seg.v);
      if (next === undefined && create) (node.statics ??= new Map()).set(seg.v, (next = new TrieNode<R>()));
    } else if (seg.t === 'param') {
      if (create) node.paramNames.add(seg.name);
      next = create ? (node.param ??= new TrieNode<R>()) : node.param;
    } else {
      next = create ? (node.star ??= new TrieNode<R>()) : node.star;
    }
    if (next === undefined || next === null) return null;
    node = next;
  }
  return node;
}

/** The entry of a list with the same conditions as `entry`: the one that owns that claim. */
function sameConditions<R>(list: readonly Entry<R>[] | null | undefined, entry: Entry<R>): Entry<R> | undefined {
  const key = entry.conditions?.key;
  return list?.find((e) => e.conditions?.key === key);
}

/** The first claim (host, method) that an earlier route already holds, for exclusive mode. */
function firstLostClaim<R extends MatchableRoute>(roots: Array<[string, TrieNode<R>]>, pattern: Pattern, entry: Entry<R>, methods: readonly string[]): { by: string; method: string; host: string } | undefined {
  for (const [host, root] of roots) {
    const slot = nodeFor(root, pattern, false)?.[pattern.kind];
    if (slot === null || slot === undefined) continue;
    if (methods.length === 0) {
      const holder = sameConditions(slot.any, entry);
      if (holder !== undefined) return { by: holder.route.id, method: ANY_METHOD, host };
    }
    for (const m of methods) {
      const holder = sameConditions(slot.byMethod.get(m), entry);
      if (holder !== undefined) return { by: holder.route.id, method: m, host };
    }
  }
  return undefined;
}

/** Most specific conditions first: more header conditions, then more query conditions; stable, so earlier routes stay ahead. */
function byConditions<R>(a: Entry<R>, b: Entry<R>): number {
  return (b.conditions?.headers.length ?? 0) - (a.conditions?.headers.length ?? 0) || (b.conditions?.query.length ?? 0) - (a.conditions?.query.length ?? 0);
}

function insert<R extends MatchableRoute>(
  root: TrieNode<R>,
  pattern: Pattern,
  entry: Entry<R>,
  methods: string[],
  host: string,
  shadowed: Shadow[],
): void {
  const node = nodeFor(root, pattern, true) as TrieNode<R>;
  const slot = (node[pattern.kind] ??= new Slot<R>());
  const id = entry.route.id;
  const owned: string[] = [];
  const add = (list: Entry<R>[], method: string): void => {
    const holder = sameConditions(list, entry);
    if (holder !== undefined) {
      shadowed.push({ route: id, by: holder.route.id, method, host });
      return;
    }
    list.push(entry);
    list.sort(byConditions);
    owned.push(method);
  };
  if (methods.length === 0) add((slot.any ??= []), ANY_METHOD);
  for (const m of methods) {
    let list = slot.byMethod.get(m);
    if (list === undefined) slot.byMethod.set(m, (list = []));
    add(list, m);
  }
  if (owned.length !== 0) {
    slot.owners.push({ id, methods: owned, conditions: entry.conditions?.key });
    // Only entries that can answer 405 make the slot count for it.
    if (!entry.quiet) {
      slot.loud = true;
      if (entry.conditions === null) slot.unconditioned = true;
      else slot.conditional = true;
    }
  }
}

/** Post-insertion pass: implied HEAD, Allow lists, and the single-child shortcut. */
function finish<R>(node: TrieNode<R>): void {
  for (const slot of [node.exact, node.prefix, node.rest]) {
    if (slot === null) continue;
    // HEAD is answered like GET (RFC 9110 9.3.2): routes naming HEAD first, then those naming GET;
    // not for quiet routes, whose method is an exact condition.
    const get = slot.byMethod.get('GET')?.filter((e) => !e.quiet);
    if (get !== undefined && get.length > 0) slot.byMethod.set('HEAD', [...(slot.byMethod.get('HEAD') ?? []), ...get]);
    slot.allow = Object.freeze([...slot.byMethod].filter(([, list]) => list.some((e) => !e.quiet)).map(([m]) => m).sort());
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
    const owners = slot.owners.map((o) => `${o.id} (${o.methods.map((m) => (m === ANY_METHOD ? 'any' : m)).join(', ')}${o.conditions === undefined ? '' : `; when ${o.conditions}`})`);
    parts.push(`[${name}] ${owners.join(', ')}`);
  };
  describe('exact', node.exact);
  describe('prefix', node.prefix);
  describe('rest /*', node.rest);
  return parts.length ? '  ' + parts.join('  ') : '';
}
