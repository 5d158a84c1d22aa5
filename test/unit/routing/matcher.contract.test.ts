/**
 * The routing contract: one table of cases, run against every matcher
 * implementation. `reference` is a deliberately naive linear scan written
 * straight from the rules in docs/routing.md; the trie must agree with it case
 * by case, and on randomly generated tables too.
 */
import { describe, expect, it } from 'vitest';
import {
  compileMatcher,
  resolveClaims,
  routeProblem,
  RouteCompileError,
  type MatchableRoute,
  type Matcher,
  type MatchResult,
  type RequestCondition,
  type RequestFacts,
} from '../../../dataplane/src/routing/matcher.ts';

type PathType = MatchableRoute['path']['type'];

function route(
  id: string,
  type: PathType,
  value: string,
  methods: string[] = [],
  hosts: string[] = [],
  when: { headers?: RequestCondition[]; queryParams?: RequestCondition[]; methodsAsCondition?: boolean } = {},
): MatchableRoute {
  return { id, hosts, methods, path: { type, value }, ...when };
}

/** A Gateway API route: its method is a condition (no 405, no HEAD for GET). */
const quiet = (id: string, type: PathType, value: string, methods: string[] = [], hosts: string[] = [], when: { headers?: RequestCondition[] } = {}): MatchableRoute =>
  route(id, type, value, methods, hosts, { ...when, methodsAsCondition: true });

const exact = (name: string, value: string): RequestCondition => ({ name, type: 'Exact', value });
const present = (name: string): RequestCondition => ({ name, type: 'Present' });

/** Request facts from plain maps: header names lower case, query as a query string. */
function facts(headers: Record<string, string>, query: string): RequestFacts {
  const params = new URLSearchParams(query);
  return { header: (name) => headers[name], query: (name) => params.get(name) ?? undefined };
}

// ---------------------------------------------------------------------------
// Conditions, as the reference reads them.
// ---------------------------------------------------------------------------

function conditionKey(r: MatchableRoute): string {
  const part = (p: string, c: RequestCondition, name: string): string => `${p}${JSON.stringify(name)}${c.type === 'Exact' ? `=${JSON.stringify(c.value)}` : ''}`;
  return [...(r.headers ?? []).map((c) => part('h', c, c.name.toLowerCase())), ...(r.queryParams ?? []).map((c) => part('q', c, c.name))].sort().join(' ');
}

function conditionsHold(r: MatchableRoute, f: RequestFacts | undefined): boolean {
  const all = [...(r.headers ?? []).map((c) => [c, f?.header(c.name.toLowerCase())] as const), ...(r.queryParams ?? []).map((c) => [c, f?.query(c.name)] as const)];
  return all.every(([c, v]) => v !== undefined && (c.type === 'Present' || v === c.value));
}

// ---------------------------------------------------------------------------
// Reference implementation: every route is checked for every request.
// ---------------------------------------------------------------------------

type Candidate = { route: MatchableRoute; index: number; rank: number[]; shape: string; params: Record<string, string>; prefix: string };

/** Which shape a route has and whether it matches `segs`; rank orders candidates most specific first. */
function evaluate(r: MatchableRoute, index: number, path: string): Candidate | null {
  const segs = path.slice(1).split('/');
  const { type, value } = r.path;
  const tsegs = value.slice(1).split('/');
  const kindOf = (t: string): number => (type === 'Template' && /^\{.*\}$/.test(t) ? 1 : type === 'Template' && t === '*' ? 2 : 0);
  const token = (t: string): string => ['s:' + t, 'p', 'w'][kindOf(t)] as string;
  const fits = (t: string, s: string): boolean => (kindOf(t) === 0 ? t === s : s !== '');
  const paramsOf = (base: string[]): Record<string, string> => {
    const params: Record<string, string> = {};
    base.forEach((t, i) => {
      if (kindOf(t) === 1) params[t.slice(1, -1)] = segs[i] as string;
    });
    return params;
  };
  if (type === 'Prefix') {
    const base = value === '/' ? [] : value.replace(/\/$/, '').slice(1).split('/');
    if (segs.length < base.length || !base.every((t, i) => t === segs[i])) return null;
    const rank = [1, -base.length, ...base.map(() => 0), 1];
    return { route: r, index, rank, shape: 'P|' + base.map(token).join('/'), params: {}, prefix: base.length ? '/' + base.join('/') : '' };
  }
  if (type === 'Template' && tsegs[tsegs.length - 1] === '*') {
    const base = tsegs.slice(0, -1);
    if (segs.length <= base.length || segs[base.length] === '' || !base.every((t, i) => fits(t, segs[i] as string))) return null;
    const rank = [1, -base.length, ...base.map(kindOf), 0];
    const params = { ...paramsOf(base), '*': segs.slice(base.length).join('/') };
    return { route: r, index, rank, shape: 'R|' + base.map(token).join('/'), params, prefix: base.length ? '/' + segs.slice(0, base.length).join('/') : '' };
  }
  if (segs.length !== tsegs.length || !tsegs.every((t, i) => fits(t, segs[i] as string))) return null;
  return { route: r, index, rank: [0, ...tsegs.map(kindOf)], shape: 'E|' + tsegs.map(token).join('/'), params: paramsOf(tsegs), prefix: path };
}

function compareRank(a: Candidate, b: Candidate): number {
  for (let i = 0; i < Math.max(a.rank.length, b.rank.length); i++) {
    const d = (a.rank[i] ?? 0) - (b.rank[i] ?? 0);
    if (d !== 0) return d;
  }
  return a.index - b.index;
}

function referenceHost(host: string): string {
  let h = host.startsWith('[') && host.includes(']') ? host.slice(0, host.indexOf(']') + 1) : (host.split(':')[0] as string);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h.toLowerCase();
}

/** What every implementation answers; `explain` is the trie's, checked against this reference below. */
type Matching<R extends MatchableRoute> = Omit<Matcher<R>, 'explain'>;

/** The linear-scan matcher. Input validation is not what it checks, so it borrows the trie's. */
function referenceMatcher<R extends MatchableRoute>(routes: readonly R[]): Matching<R> {
  const validated = compileMatcher(routes);
  const shadowed: Array<{ route: string; by: string; method: string; host: string }> = [];
  const owners = new Map<string, string>();
  routes.forEach((r) => {
    const shape = shapeOf(r);
    const hosts = r.hosts.length ? [...new Set(r.hosts.map((h) => h.toLowerCase()))] : ['*'];
    const methods = r.methods.length ? [...new Set(r.methods)] : ['*'];
    for (const host of hosts) {
      for (const method of methods) {
        const key = `${host} ${shape} ${method} ${conditionKey(r)}`;
        const by = owners.get(key);
        if (by !== undefined) shadowed.push({ route: r.id, by, method, host });
        else owners.set(key, r.id);
      }
    }
  });

  function inTier(tierHost: string, routesOfTier: Array<[R, number]>, method: string, path: string, f: RequestFacts | undefined): MatchResult<R> {
    // A route whose conditions fail is not a candidate at all.
    const candidates = routesOfTier.map(([r, i]) => evaluate(r, i, path)).filter((c): c is Candidate => c !== null && conditionsHold(c.route, f));
    candidates.sort(compareRank);
    const count = (c: Candidate): [number, number] => [c.route.headers?.length ?? 0, c.route.queryParams?.length ?? 0];
    // Most conditions first, then registration order.
    const best = (xs: Candidate[]): Candidate | undefined =>
      [...xs].sort((a, b) => count(b)[0] - count(a)[0] || count(b)[1] - count(a)[1] || a.index - b.index)[0];
    for (let i = 0; i < candidates.length; ) {
      let j = i;
      while (j < candidates.length && (candidates[j] as Candidate).shape === (candidates[i] as Candidate).shape) j++;
      const group = candidates.slice(i, j);
      const chosen =
        best(group.filter((c) => c.route.methods.includes(method))) ??
        (method === 'HEAD' ? best(group.filter((c) => c.route.methods.includes('GET') && c.route.methodsAsCondition !== true)) : undefined) ??
        best(group.filter((c) => c.route.methods.length === 0));
      if (chosen) return { kind: 'match', route: chosen.route as R, params: chosen.params, matchedPrefix: chosen.prefix };
      i = j;
    }
    // A route whose method is a condition failed it like any condition: it was never a candidate for a 405.
    // The others count through the methods they own (a claim lost to an earlier route is not theirs).
    const owns = (c: Candidate, m: string): boolean => owners.get(`${tierHost} ${c.shape} ${m} ${conditionKey(c.route)}`) === c.route.id;
    const allow = new Set(candidates.filter((c) => c.route.methodsAsCondition !== true).flatMap((c) => c.route.methods.filter((m) => owns(c, m))));
    if (allow.size === 0) return { kind: 'not-found' };
    if (allow.has('GET')) allow.add('HEAD');
    return { kind: 'method-not-allowed', allow: [...allow].sort() };
  }

  return {
    size: routes.length,
    shadowed,
    conditional: routes.some((r) => conditionKey(r) !== ''),
    print: () => validated.print(),
    match(host, method, path, f) {
      const h = referenceHost(host);
      const indexed = routes.map((r, i) => [r, i] as [R, number]);
      const tiers: Array<[string, Array<[R, number]>]> = [[h, indexed.filter(([r]) => r.hosts.some((x) => x.toLowerCase() === h))]];
      const suffixes = [...new Set(routes.flatMap((r) => r.hosts.filter((x) => x.startsWith('*.')).map((x) => x.slice(1).toLowerCase())))];
      suffixes.sort((a, b) => b.length - a.length);
      for (const s of suffixes) {
        if (h.endsWith(s) && h.length > s.length) tiers.push([`*${s}`, indexed.filter(([r]) => r.hosts.some((x) => x.slice(1).toLowerCase() === s && x.startsWith('*.')))]);
      }
      tiers.push(['*', indexed.filter(([r]) => r.hosts.length === 0)]);
      for (const [tierHost, tier] of tiers) {
        const res = inTier(tierHost, tier, method, path, f);
        if (res.kind !== 'not-found') return res;
      }
      return { kind: 'not-found' };
    },
  };
}

function shapeOf(r: MatchableRoute): string {
  // Evaluate against a path of the route's own shape, built by filling every variable segment.
  const filled = r.path.value.replace(/\{[^}]*\}/g, 'x').replace(/\*/g, 'x');
  return (evaluate(r, 0, filled) as Candidate).shape;
}

// ---------------------------------------------------------------------------
// The cases.
// ---------------------------------------------------------------------------

/** Route id, or the full shape of a match, or a status. */
type Expected = string | { id: string; params?: Record<string, string>; prefix?: string } | 404 | [405, string];

interface Case {
  name: string;
  routes: MatchableRoute[];
  /** `'METHOD /path'` or `'METHOD /path @host'`, and what it must give. */
  requests: Array<[string, Expected]>;
  shadowed?: Array<{ route: string; by: string; method: string; host: string }>;
}

const cases: Case[] = [
  // Paths -------------------------------------------------------------------
  {
    name: 'Exact: trailing slash makes a different path',
    routes: [route('a', 'Exact', '/a'), route('a/', 'Exact', '/a/'), route('root', 'Exact', '/')],
    requests: [
      ['GET /a', { id: 'a', prefix: '/a' }],
      ['GET /a/', 'a/'],
      ['GET /', 'root'],
      ['GET /a/b', 404],
      ['GET /ab', 404],
    ],
  },
  {
    name: 'Prefix is segment-aware',
    routes: [route('api', 'Prefix', '/api')],
    requests: [
      ['GET /api', { id: 'api', prefix: '/api' }],
      ['GET /api/', { id: 'api', prefix: '/api' }],
      ['GET /api/x/y', { id: 'api', prefix: '/api' }],
      ['GET /apix', 404],
      ['GET /ap', 404],
      ['GET /', 404],
    ],
  },
  {
    name: 'Prefix value with a trailing slash behaves like without',
    routes: [route('api', 'Prefix', '/api/')],
    requests: [
      ['GET /api', { id: 'api', prefix: '/api' }],
      ['GET /api/v1', { id: 'api', prefix: '/api' }],
      ['GET /apiv1', 404],
    ],
  },
  {
    name: 'Prefix / matches everything with an empty matched prefix',
    routes: [route('all', 'Prefix', '/')],
    requests: [
      ['GET /', { id: 'all', prefix: '' }],
      ['GET /x/y/', { id: 'all', prefix: '' }],
    ],
  },
  {
    name: 'Template {name} captures one non-empty segment',
    routes: [route('user', 'Template', '/users/{id}'), route('repo', 'Template', '/orgs/{org}/repos/{repo_name}')],
    requests: [
      ['GET /users/42', { id: 'user', params: { id: '42' }, prefix: '/users/42' }],
      ['GET /users/%C3%A9', { id: 'user', params: { id: '%C3%A9' } }],
      ['GET /users/', 404],
      ['GET /users', 404],
      ['GET /users/1/2', 404],
      ['GET /orgs/acme/repos/gw', { id: 'repo', params: { org: 'acme', repo_name: 'gw' } }],
    ],
  },
  {
    name: 'Template with a trailing slash needs the slash',
    routes: [route('t', 'Template', '/users/{id}/')],
    requests: [
      ['GET /users/1/', { id: 't', params: { id: '1' } }],
      ['GET /users/1', 404],
    ],
  },
  {
    name: 'Template * in the middle is one non-empty segment, not captured',
    routes: [route('mid', 'Template', '/a/*/c')],
    requests: [
      ['GET /a/b/c', { id: 'mid', params: {} }],
      ['GET /a/c', 404],
      ['GET /a/b/x/c', 404],
    ],
  },
  {
    name: 'Template trailing * is one or more segments, captured as *',
    routes: [route('files', 'Template', '/files/*')],
    requests: [
      ['GET /files/a', { id: 'files', params: { '*': 'a' }, prefix: '/files' }],
      ['GET /files/a/b/c', { id: 'files', params: { '*': 'a/b/c' }, prefix: '/files' }],
      ['GET /files/a/', { id: 'files', params: { '*': 'a/' } }],
      ['GET /files/', 404],
      ['GET /files', 404],
      ['GET /filesx/a', 404],
    ],
  },
  {
    name: 'Template /* matches any non-root path',
    routes: [route('star', 'Template', '/*')],
    requests: [
      ['GET /x', { id: 'star', params: { '*': 'x' }, prefix: '' }],
      ['GET /x/y', { id: 'star', params: { '*': 'x/y' }, prefix: '' }],
      ['GET /', 404],
    ],
  },
  {
    name: 'Template params before a trailing *',
    routes: [route('obj', 'Template', '/buckets/{bucket}/*/*')],
    requests: [
      ['GET /buckets/b1/v/k/e/y', { id: 'obj', params: { bucket: 'b1', '*': 'k/e/y' }, prefix: '/buckets/b1/v' }],
      ['GET /buckets/b1/v', 404],
    ],
  },
  {
    name: 'Template without {} or * behaves like Exact (and collides with it)',
    routes: [route('exact', 'Exact', '/a/b'), route('tmpl', 'Template', '/a/b')],
    requests: [
      ['GET /a/b', 'exact'],
      ['GET /a/b/', 404],
    ],
    shadowed: [{ route: 'tmpl', by: 'exact', method: '*', host: '*' }],
  },
  // Precedence --------------------------------------------------------------
  {
    name: 'full-length beats prefix-like, even a longer one',
    routes: [route('prefix', 'Prefix', '/a/b'), route('rest', 'Template', '/a/*'), route('param', 'Template', '/{x}/{y}')],
    requests: [
      ['GET /a/b', { id: 'param', params: { x: 'a', y: 'b' } }],
      ['GET /a/b/c', 'prefix'],
      ['GET /a/c/d', 'rest'],
    ],
  },
  {
    name: 'full-length: static beats {param} beats * at the same position',
    routes: [route('star', 'Template', '/u/*/x'), route('param', 'Template', '/u/{id}/x'), route('static', 'Exact', '/u/me/x')],
    requests: [
      ['GET /u/me/x', 'static'],
      ['GET /u/42/x', { id: 'param', params: { id: '42' } }],
    ],
  },
  {
    name: 'full-length: * is used when nothing more specific matches',
    routes: [route('star', 'Template', '/u/*/x'), route('param', 'Template', '/u/{id}/y')],
    requests: [
      ['GET /u/1/x', 'star'],
      ['GET /u/1/y', 'param'],
    ],
  },
  {
    name: 'full-length: segments compare left to right',
    routes: [route('left-param', 'Template', '/{a}/x'), route('left-static', 'Template', '/x/{b}')],
    requests: [
      ['GET /x/x', { id: 'left-static', params: { b: 'x' } }],
      ['GET /y/x', { id: 'left-param', params: { a: 'y' } }],
    ],
  },
  {
    name: 'full-length: a param branch is tried when the static branch dead-ends',
    routes: [route('static', 'Exact', '/a/b/c'), route('param', 'Template', '/a/{x}/d')],
    requests: [
      ['GET /a/b/d', { id: 'param', params: { x: 'b' } }],
      ['GET /a/b/c', 'static'],
    ],
  },
  {
    name: 'Exact beats Prefix with the same value',
    routes: [route('prefix', 'Prefix', '/api'), route('exact', 'Exact', '/api')],
    requests: [
      ['GET /api', 'exact'],
      ['GET /api/', 'prefix'],
      ['GET /api/x', 'prefix'],
    ],
  },
  {
    name: 'prefix-like: the longer prefix wins',
    routes: [route('all', 'Prefix', '/'), route('a', 'Prefix', '/a'), route('ab', 'Prefix', '/a/b')],
    requests: [
      ['GET /a/b/c', { id: 'ab', prefix: '/a/b' }],
      ['GET /a/bc', { id: 'a', prefix: '/a' }],
      ['GET /b', { id: 'all', prefix: '' }],
    ],
  },
  {
    name: 'prefix-like: depth beats static over param',
    routes: [route('api', 'Prefix', '/api'), route('tenant', 'Template', '/{tenant}/v1/*')],
    requests: [
      ['GET /api/v1/x', { id: 'tenant', params: { tenant: 'api', '*': 'x' }, prefix: '/api/v1' }],
      ['GET /api/v2/x', 'api'],
    ],
  },
  {
    name: 'prefix-like at equal depth: static beats param',
    routes: [route('user-rest', 'Template', '/u/{id}/*'), route('me', 'Prefix', '/u/me')],
    requests: [
      ['GET /u/me/x', 'me'],
      ['GET /u/you/x', { id: 'user-rest', params: { id: 'you', '*': 'x' } }],
    ],
  },
  {
    name: 'prefix-like at equal depth and base: trailing * beats Prefix',
    routes: [route('prefix', 'Prefix', '/files'), route('rest', 'Template', '/files/*')],
    requests: [
      ['GET /files/a', { id: 'rest', params: { '*': 'a' }, prefix: '/files' }],
      ['GET /files', { id: 'prefix', prefix: '/files' }],
      ['GET /files/', 'prefix'],
    ],
  },
  {
    name: 'identical shape and method: the first registered wins',
    routes: [
      route('first', 'Template', '/u/{id}', ['GET']),
      route('second', 'Template', '/u/{name}', ['GET', 'POST']),
      route('p1', 'Prefix', '/api'),
      route('p2', 'Prefix', '/api/'),
    ],
    requests: [
      ['GET /u/1', { id: 'first', params: { id: '1' } }],
      ['POST /u/1', { id: 'second', params: { name: '1' } }],
      ['HEAD /u/1', 'first'],
      ['GET /api/x', 'p1'],
    ],
    shadowed: [
      { route: 'second', by: 'first', method: 'GET', host: '*' },
      { route: 'p2', by: 'p1', method: '*', host: '*' },
    ],
  },
  // Methods -----------------------------------------------------------------
  {
    name: 'no methods means any method, extension methods included',
    routes: [route('any', 'Exact', '/x')],
    requests: [
      ['GET /x', 'any'],
      ['PURGE /x', 'any'],
      ['get /x', 'any'],
    ],
  },
  {
    name: 'a less specific path that takes the method is used',
    routes: [route('exact-get', 'Exact', '/x', ['GET']), route('catch-all', 'Prefix', '/')],
    requests: [
      ['GET /x', 'exact-get'],
      ['POST /x', 'catch-all'],
    ],
  },
  {
    name: 'no candidate takes the method: 405 with the sorted union',
    routes: [
      route('exact', 'Exact', '/x', ['GET']),
      route('tmpl', 'Template', '/{p}', ['PUT', 'POST']),
      route('prefix', 'Prefix', '/x', ['DELETE']),
      route('elsewhere', 'Exact', '/y', ['PATCH']),
    ],
    requests: [
      ['PATCH /x', [405, 'DELETE, GET, HEAD, POST, PUT']],
      ['GET /z', [405, 'POST, PUT']],
      ['GET /x/deeper', [405, 'DELETE']],
      ['PATCH /y', 'elsewhere'],
      ['GET /', 404],
    ],
  },
  {
    name: 'methods are case-sensitive',
    routes: [route('get', 'Exact', '/x', ['GET'])],
    requests: [
      ['get /x', [405, 'GET, HEAD']],
      ['Get /x', [405, 'GET, HEAD']],
    ],
  },
  {
    name: 'HEAD is served by the GET route',
    routes: [route('get', 'Exact', '/x', ['GET']), route('head-elsewhere', 'Prefix', '/', ['HEAD'])],
    requests: [
      ['HEAD /x', 'get'],
      ['HEAD /y', 'head-elsewhere'],
    ],
  },
  {
    name: 'an explicit HEAD route on the same path takes HEAD from the GET route',
    routes: [route('get', 'Exact', '/x', ['GET']), route('head', 'Exact', '/x', ['HEAD'])],
    requests: [
      ['HEAD /x', 'head'],
      ['GET /x', 'get'],
      ['POST /x', [405, 'GET, HEAD']],
    ],
  },
  {
    name: 'within one path, a named method beats no method list (HEAD follows GET)',
    routes: [route('any', 'Exact', '/x'), route('post', 'Exact', '/x', ['POST']), route('get', 'Exact', '/x', ['GET'])],
    requests: [
      ['POST /x', 'post'],
      ['GET /x', 'get'],
      ['HEAD /x', 'get'],
      ['PUT /x', 'any'],
    ],
  },
  {
    name: 'HEAD with no GET route falls back to the any-method route',
    routes: [route('post', 'Exact', '/x', ['POST']), route('any', 'Exact', '/x')],
    requests: [['HEAD /x', 'any']],
  },
  // Hosts -------------------------------------------------------------------
  {
    name: 'exact host: case-insensitive, port and trailing dot ignored',
    routes: [route('api', 'Prefix', '/', [], ['api.example.com']), route('v6', 'Prefix', '/', [], ['[::1]'])],
    requests: [
      ['GET /x @api.example.com', 'api'],
      ['GET /x @API.Example.COM:8443', 'api'],
      ['GET /x @api.example.com.', 'api'],
      ['GET /x @api.example.com.:80', 'api'],
      ['GET /x @[::1]:8080', 'v6'],
      ['GET /x @[::1]', 'v6'],
      ['GET /x @www.example.com', 404],
      ['GET /x @', 404],
    ],
  },
  {
    name: 'route host entries are case-insensitive too',
    routes: [route('api', 'Prefix', '/', [], ['API.Example.com'])],
    requests: [['GET /x @api.example.com', 'api']],
  },
  {
    name: 'wildcard host needs at least one label before the suffix',
    routes: [route('wild', 'Prefix', '/', [], ['*.example.com'])],
    requests: [
      ['GET / @a.example.com', 'wild'],
      ['GET / @a.b.example.com:8080', 'wild'],
      ['GET / @A.EXAMPLE.COM', 'wild'],
      ['GET / @example.com', 404],
      ['GET / @aexample.com', 404],
      ['GET / @example.com.evil', 404],
    ],
  },
  {
    name: 'host tiers: exact, then the longest wildcard suffix, then no host',
    routes: [
      route('any', 'Prefix', '/'),
      route('wild', 'Prefix', '/', [], ['*.example.com']),
      route('wild-api', 'Prefix', '/', [], ['*.api.example.com']),
      route('exact', 'Prefix', '/', [], ['x.api.example.com']),
    ],
    requests: [
      ['GET / @x.api.example.com', 'exact'],
      ['GET / @y.api.example.com', 'wild-api'],
      ['GET / @api.example.com', 'wild'],
      ['GET / @example.com', 'any'],
      ['GET / @other.test', 'any'],
    ],
  },
  {
    name: 'a host tier falls through only on not-found',
    routes: [
      route('host-post', 'Exact', '/x', ['POST'], ['api.example.com']),
      route('host-only', 'Exact', '/only', [], ['api.example.com']),
      route('wild-get', 'Exact', '/w', ['GET'], ['*.example.com']),
      route('any-get', 'Prefix', '/', ['GET']),
    ],
    requests: [
      ['GET /x @api.example.com', [405, 'POST']],
      ['POST /x @api.example.com', 'host-post'],
      ['GET /y @api.example.com', 'any-get'],
      ['POST /w @api.example.com', [405, 'GET, HEAD']],
      ['GET /x @other.test', 'any-get'],
      ['POST /x @other.test', [405, 'GET, HEAD']],
    ],
  },
  {
    name: 'routes without hosts match any host, and a missing Host',
    routes: [route('any', 'Exact', '/x')],
    requests: [
      ['GET /x @anything.test:1', 'any'],
      ['GET /x @', 'any'],
    ],
  },
  {
    name: 'the same route under several hosts; shadowing is per host',
    routes: [
      route('a', 'Exact', '/x', ['GET'], ['a.test', '*.b.test']),
      route('b', 'Exact', '/x', ['GET'], ['*.b.test', 'c.test']),
    ],
    requests: [
      ['GET /x @a.test', 'a'],
      ['GET /x @z.b.test', 'a'],
      ['GET /x @c.test', 'b'],
    ],
    shadowed: [{ route: 'b', by: 'a', method: 'GET', host: '*.b.test' }],
  },
  // Shadowing ---------------------------------------------------------------
  {
    name: 'shadowing is reported per method; overlapping method sets keep their other methods',
    routes: [
      route('any1', 'Exact', '/x'),
      route('any2', 'Exact', '/x'),
      route('get', 'Exact', '/x', ['GET', 'GET']),
      route('get-put', 'Exact', '/x', ['GET', 'PUT']),
    ],
    requests: [
      ['GET /x', 'get'],
      ['PUT /x', 'get-put'],
      ['POST /x', 'any1'],
    ],
    shadowed: [
      { route: 'any2', by: 'any1', method: '*', host: '*' },
      { route: 'get-put', by: 'get', method: 'GET', host: '*' },
    ],
  },
  {
    name: 'different shapes never shadow each other',
    routes: [
      route('exact', 'Exact', '/a'),
      route('prefix', 'Prefix', '/a'),
      route('rest', 'Template', '/a/*'),
      route('slash', 'Exact', '/a/'),
      route('param', 'Template', '/{x}'),
    ],
    requests: [
      ['GET /a', 'exact'],
      ['GET /a/', 'slash'],
      ['GET /a/b', 'rest'],
      ['GET /b', 'param'],
    ],
    shadowed: [],
  },  {
    name: 'a Prefix with and without a trailing slash is one shape',
    routes: [route('pfx', 'Prefix', '/pfx'), route('pfx/', 'Prefix', '/pfx/')],
    requests: [['GET /pfx/x', 'pfx']],
    shadowed: [{ route: 'pfx/', by: 'pfx', method: '*', host: '*' }],
  },
  {
    name: 'templates that differ only in parameter names are one shape',
    routes: [route('by-id', 'Template', '/things/{id}'), route('by-name', 'Template', '/things/{name}')],
    requests: [['GET /things/1', { id: 'by-id', params: { id: '1' } }]],
    shadowed: [{ route: 'by-name', by: 'by-id', method: '*', host: '*' }],
  },
  // Conditions --------------------------------------------------------------
  {
    name: "the seed's canary: a header sends to v2, the rest to the weighted route",
    routes: [
      route('orders', 'Prefix', '/api/v1/orders'),
      route('orders-canary', 'Prefix', '/api/v1/orders', [], [], { headers: [exact('canary', 'true')] }),
    ],
    requests: [
      ['GET /api/v1/orders/7 canary=true', 'orders-canary'],
      ['GET /api/v1/orders/7 Canary=true', 'orders-canary'],
      ['GET /api/v1/orders/7 canary=false', 'orders'],
      ['GET /api/v1/orders/7', 'orders'],
    ],
    shadowed: [],
  },
  {
    name: 'more header conditions win, then more query conditions, then the first registered',
    routes: [
      route('q1', 'Exact', '/x', [], [], { queryParams: [exact('v', '2')] }),
      route('h1', 'Exact', '/x', [], [], { headers: [present('x-a')] }),
      route('h2', 'Exact', '/x', [], [], { headers: [present('x-a'), exact('x-b', '1')] }),
      route('h1q1', 'Exact', '/x', [], [], { headers: [present('x-b')], queryParams: [present('v')] }),
      route('h1-later', 'Exact', '/x', [], [], { headers: [present('x-c')] }),
      route('plain', 'Exact', '/x'),
    ],
    requests: [
      ['GET /x?v=2 x-a x-b=1', 'h2'],
      ['GET /x?v=2 x-b=2', 'h1q1'],
      ['GET /x?v=2 x-a', 'h1'],
      ['GET /x x-a x-c', 'h1'],
      ['GET /x x-c', 'h1-later'],
      ['GET /x?v=2', 'q1'],
      ['GET /x?v=3', 'plain'],
      ['GET /x', 'plain'],
    ],
    shadowed: [],
  },
  {
    name: 'query names are case-sensitive, the first value counts, and values are decoded',
    routes: [route('q', 'Exact', '/x', [], [], { queryParams: [exact('tag', 'a b')] })],
    requests: [
      ['GET /x?tag=a%20b', 'q'],
      ['GET /x?tag=a+b', 'q'],
      ['GET /x?tag=a+b&tag=c', 'q'],
      ['GET /x?tag=c&tag=a+b', 404],
      ['GET /x?TAG=a+b', 404],
    ],
  },
  {
    name: 'conditions rank after path specificity and method',
    routes: [
      route('pfx-canary', 'Prefix', '/api', [], [], { headers: [exact('canary', 'true')] }),
      route('orders', 'Prefix', '/api/orders'),
      route('get-only', 'Exact', '/m', ['GET']),
      route('any-canary', 'Exact', '/m', [], [], { headers: [exact('canary', 'true')] }),
    ],
    requests: [
      ['GET /api/orders/1 canary=true', 'orders'],
      ['GET /api/users canary=true', 'pfx-canary'],
      ['GET /m canary=true', 'get-only'],
      ['POST /m canary=true', 'any-canary'],
    ],
  },
  {
    name: 'when no route has conditions that hold, the path is not found (404, not 405)',
    routes: [route('canary', 'Exact', '/x', ['GET'], [], { headers: [exact('canary', 'true')] }), route('post', 'Exact', '/x', ['POST'])],
    requests: [
      ['GET /x', [405, 'POST']],
      ['GET /x canary=true', 'canary'],
      ['HEAD /x canary=true', 'canary'],
      ['PUT /x canary=true', [405, 'GET, HEAD, POST']],
    ],
  },
  {
    name: 'a route with conditions only: a request without them is not found',
    routes: [route('canary', 'Prefix', '/x', [], [], { headers: [present('x-canary')] })],
    requests: [
      ['GET /x/1', 404],
      ['GET /x/1 x-canary', 'canary'],
    ],
  },
  {
    name: 'the same conditions in another order, or another header case, are one shape',
    routes: [
      route('a', 'Exact', '/x', ['GET'], [], { headers: [exact('X-A', '1'), present('x-b')] }),
      route('b', 'Exact', '/x', ['GET'], [], { headers: [present('X-B'), exact('x-a', '1')] }),
      route('c', 'Exact', '/x', ['GET'], [], { headers: [exact('x-a', '2'), present('x-b')] }),
    ],
    requests: [
      ['GET /x x-a=1 x-b', 'a'],
      ['GET /x x-a=2 x-b', 'c'],
    ],
    shadowed: [{ route: 'b', by: 'a', method: 'GET', host: '*' }],
  },
  // Methods as conditions (Gateway API) ----------------------------------------
  {
    name: 'methodsAsCondition: a method no route takes is not found, and HEAD is not GET',
    routes: [quiet('get', 'Exact', '/x', ['GET']), quiet('post', 'Prefix', '/', ['POST'])],
    requests: [
      ['GET /x', 'get'],
      ['POST /x', 'post'],
      ['HEAD /x', 404],
      ['PUT /x', 404],
      ['DELETE /y', 404],
    ],
  },
  {
    name: 'methodsAsCondition: a route passed over on its method lets a less specific host tier answer',
    routes: [quiet('host-get', 'Prefix', '/', ['GET'], ['a.test']), quiet('any', 'Prefix', '/')],
    requests: [
      ['GET /p @a.test', 'host-get'],
      ['POST /p @a.test', 'any'],
    ],
  },
  {
    name: 'methodsAsCondition: next to an ordinary route, only the ordinary one makes a 405 and fills Allow',
    routes: [route('plain', 'Exact', '/x', ['GET']), quiet('gw', 'Exact', '/x', ['POST'])],
    requests: [
      ['GET /x', 'plain'],
      ['HEAD /x', 'plain'],
      ['POST /x', 'gw'],
      ['PUT /x', [405, 'GET, HEAD']],
    ],
  },
  {
    name: 'methodsAsCondition: only quiet routes on the path, with conditions, fall through to 404',
    routes: [quiet('canary', 'Prefix', '/c', ['GET'], [], { headers: [exact('canary', 'true')] })],
    requests: [
      ['GET /c canary=true', 'canary'],
      ['GET /c', 404],
      ['POST /c canary=true', 404],
    ],
  },
];

/** `'METHOD /path[?query] [@host] [name=value|name ...]'`: trailing words are request headers. */
function parseRequest(spec: string): { method: string; path: string; host: string; facts: RequestFacts } {
  const [method, target, ...rest] = spec.split(' ') as [string, string, ...string[]];
  const hostWord = rest.find((w) => w.startsWith('@'));
  const headers: Record<string, string> = {};
  for (const w of rest.filter((x) => !x.startsWith('@'))) {
    const eq = w.indexOf('=');
    headers[(eq === -1 ? w : w.slice(0, eq)).toLowerCase()] = eq === -1 ? '' : w.slice(eq + 1);
  }
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  return { method, path, host: hostWord === undefined ? 'example.test' : hostWord.slice(1), facts: facts(headers, q === -1 ? '' : target.slice(q + 1)) };
}

/** The parts of a result a case talks about, so failures print small diffs. */
function summarize(result: MatchResult<MatchableRoute>, expected: Expected): unknown {
  if (result.kind === 'not-found') return 404;
  if (result.kind === 'method-not-allowed') return [405, result.allow.join(', ')];
  if (typeof expected === 'string') return result.route.id;
  if (typeof expected === 'object' && !Array.isArray(expected)) {
    const out: { id: string; params?: Record<string, string>; prefix?: string } = { id: result.route.id };
    if (expected.params !== undefined) out.params = { ...result.params };
    if (expected.prefix !== undefined) out.prefix = result.matchedPrefix;
    return out;
  }
  return { id: result.route.id, params: { ...result.params } };
}

const implementations: Array<{ name: string; compile: <R extends MatchableRoute>(routes: readonly R[]) => Matching<R> }> = [
  { name: 'trie (compileMatcher)', compile: compileMatcher },
  { name: 'reference (linear scan)', compile: referenceMatcher },
];

for (const impl of implementations) {
  describe(`routing contract: ${impl.name}`, () => {
    for (const c of cases) {
      it(c.name, () => {
        const matcher = impl.compile(c.routes);
        expect(matcher.size).toBe(c.routes.length);
        for (const [spec, expected] of c.requests) {
          const { method, path, host, facts: f } = parseRequest(spec);
          const got = summarize(matcher.match(host, method, path, f), expected);
          expect({ request: spec, result: got }).toEqual({ request: spec, result: expected });
        }
        if (c.shadowed !== undefined) expect(matcher.shadowed).toEqual(c.shadowed);
      });
    }
  });
}

describe('RouteCompileError names the route and the problem', () => {
  const bad: Array<[string, MatchableRoute, RegExp]> = [
    ['mixed literal and param', route('r1', 'Template', '/a/b{id}'), /segment "b\{id\}" mixes literal text and a parameter/],
    ['param then literal', route('r1', 'Template', '/a/{id}.json'), /mixes literal text and a parameter/],
    ['two params in one segment', route('r1', 'Template', '/{a}{b}'), /mixes literal text and a parameter/],
    ['unbalanced open brace', route('r2', 'Template', '/a/{id'), /segment "\{id" has an unbalanced brace/],
    ['unbalanced close brace', route('r2', 'Template', '/a/id}'), /unbalanced/],
    ['nested braces', route('r2', 'Template', '/a/{{id}}'), /nested brace/],
    ['empty param name', route('r3', 'Template', '/a/{}'), /empty parameter name/],
    ['invalid param name', route('r3', 'Template', '/a/{1st}'), /invalid parameter name/],
    ['duplicate param name', route('r4', 'Template', '/{id}/x/{id}'), /duplicate parameter name "id"/],
    ['star mixed with literal', route('r5', 'Template', '/files/a*'), /"\*" must be the whole segment/],
    ['path without leading slash', route('r6', 'Exact', 'api'), /must start with "\/"/],
    ['empty path', route('r6', 'Prefix', ''), /must start with "\/"/],
    ['double slash', route('r7', 'Prefix', '/api//v1'), /not in normalized form; requests for it arrive as "\/api\/v1"/],
    ['dot segment', route('r7', 'Exact', '/a/../b'), /not in normalized form/],
    ['lower-case escape', route('r7', 'Exact', '/caf%c3%a9'), /arrive as "\/caf%C3%A9"/],
    ['encoded slash', route('r7', 'Exact', '/a%2Fb'), /encoded slash/],
    ['query', route('r8', 'Exact', '/a?b=1'), /must not contain a query/],
    ['braces outside Template', route('r9', 'Exact', '/users/{id}'), /braces are only meaningful in a Template path/],
    ['star outside Template', route('r9', 'Prefix', '/files/*'), /"\*" is only a wildcard in a Template path/],
    ['unknown type', { id: 'r10', hosts: [], methods: [], path: { type: 'Regex' as PathType, value: '/x' } }, /unknown path type "Regex"/],
    ['lower-case method', route('m1', 'Exact', '/x', ['get']), /method "get" is not an upper-case HTTP method token/],
    ['empty method', route('m1', 'Exact', '/x', ['']), /method "" is not/],
    ['host *', route('h1', 'Exact', '/x', [], ['*']), /host "\*" is not allowed: an empty hosts list already matches any host/],
    ['host with port', route('h2', 'Exact', '/x', [], ['api.example.com:8080']), /must not include a port/],
    ['inner wildcard', route('h3', 'Exact', '/x', [], ['api.*.com']), /"\*" is only allowed as the whole first label/],
    ['partial wildcard label', route('h3', 'Exact', '/x', [], ['*api.example.com']), /whole first label/],
    ['bare wildcard', route('h3', 'Exact', '/x', [], ['*.']), /must not end with a dot/],
    ['trailing dot', route('h4', 'Exact', '/x', [], ['api.example.com.']), /must not end with a dot/],
    ['invalid host', route('h5', 'Exact', '/x', [], ['api example.com']), /not a valid host name/],
    ['empty host', route('h5', 'Exact', '/x', [], ['']), /is empty/],
  ];
  for (const [name, r, message] of bad) {
    it(name, () => {
      let caught: unknown;
      try {
        compileMatcher([route('fine', 'Prefix', '/'), r]);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(RouteCompileError);
      const err = caught as RouteCompileError;
      expect(err.routeId).toBe(r.id);
      expect(err.message).toContain(`route "${r.id}"`);
      expect(err.message).toMatch(message);
      expect(err.name).toBe('RouteCompileError');
    });
  }

  it('duplicate route ids', () => {
    expect(() => compileMatcher([route('same', 'Exact', '/a'), route('same', 'Exact', '/b')])).toThrow(/route "same": duplicate route id/);
  });

  it('accepts everything the table schema allows in a well-formed route', () => {
    const ok = compileMatcher([
      route('a', 'Template', '/v1/{user-id}/{_x}/*/files/*', ['GET', 'M-SEARCH'], ['*.example.com', '[::1]', 'xn--bcher-kva.example', 'svc_1.ns.svc']),
      route('b', 'Exact', '/caf%C3%A9/~user/a.b-c_d'),
    ]);
    expect(ok.size).toBe(2);
  });
});

describe('trie specifics', () => {
  it('reuses one frozen empty params object for routes without params', () => {
    const m = compileMatcher([route('a', 'Exact', '/a'), route('b', 'Prefix', '/b')]);
    const r1 = m.match('h', 'GET', '/a');
    const r2 = m.match('h', 'GET', '/b/c');
    if (r1.kind !== 'match' || r2.kind !== 'match') throw new Error('expected matches');
    expect(r1.params).toBe(r2.params);
    expect(Object.isFrozen(r1.params)).toBe(true);
    expect(Object.keys(r1.params)).toEqual([]);
  });

  it('params cannot reach the prototype', () => {
    const m = compileMatcher([route('p', 'Template', '/{__proto__}/{constructor}')]);
    const r = m.match('h', 'GET', '/x/y');
    if (r.kind !== 'match') throw new Error('expected a match');
    expect(r.params['__proto__']).toBe('x');
    expect(r.params['constructor']).toBe('y');
    expect(Object.keys(r.params).sort()).toEqual(['__proto__', 'constructor']);
  });

  it('a request path that is not origin-form is not found', () => {
    const m = compileMatcher([route('all', 'Prefix', '/')]);
    expect(m.match('h', 'GET', '*').kind).toBe('not-found');
    expect(m.match('h', 'GET', '').kind).toBe('not-found');
  });

  it('is independent of the input array after compiling', () => {
    const routes = [route('a', 'Exact', '/a')];
    const m = compileMatcher(routes);
    routes.length = 0;
    expect(m.match('h', 'GET', '/a').kind).toBe('match');
    expect(m.size).toBe(1);
  });

  it('print() draws each host tier as a tree', () => {
    const m = compileMatcher([
      route('all', 'Prefix', '/'),
      route('home', 'Exact', '/', ['GET']),
      route('user', 'Template', '/api/users/{id}', ['GET', 'DELETE']),
      route('me', 'Exact', '/api/users/me', ['GET']),
      route('files', 'Template', '/files/*', ['GET']),
      route('files-prefix', 'Prefix', '/files'),
      route('mid', 'Template', '/a/*/b'),
      route('admin', 'Prefix', '/', [], ['admin.example.com']),
      route('tenants', 'Exact', '/x', ['POST', 'PUT'], ['*.example.com']),
    ]);
    expect(m.print()).toBe(
      [
        'host admin.example.com',
        '└── (root)  [prefix] admin (any)',
        'host *.example.com',
        '└── (root)',
        '    └── /x  [exact] tenants (POST, PUT)',
        'host (any)',
        '└── (root)  [prefix] all (any)',
        '    ├── /  [exact] home (GET)',
        '    ├── /a',
        '    │   └── /*',
        '    │       └── /b  [exact] mid (any)',
        '    ├── /api',
        '    │   └── /users',
        '    │       ├── /me  [exact] me (GET)',
        '    │       └── /{id}  [exact] user (GET, DELETE)',
        '    └── /files  [prefix] files-prefix (any)  [rest /*] files (GET)',
        '',
      ].join('\n'),
    );
  });

  it('print() of an empty table is empty', () => {
    expect(compileMatcher([]).print()).toBe('');
    expect(compileMatcher([]).match('h', 'GET', '/').kind).toBe('not-found');
  });
});

// ---------------------------------------------------------------------------
// Differential: random tables, trie versus reference.
// ---------------------------------------------------------------------------

/** A small deterministic PRNG (mulberry32), so a failure reproduces from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('trie agrees with the reference on random tables', () => {
  const words = ['a', 'b', 'c'];
  const methodsPool = ['GET', 'HEAD', 'POST', 'PUT'];
  const hostsPool = ['x.test', '*.test', '*.y.test', 'a.y.test'];

  function randomTable(rand: () => number, size: number): MatchableRoute[] {
    const pickOne = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
    const routes: MatchableRoute[] = [];
    for (let i = 0; i < size; i++) {
      const type = pickOne(['Exact', 'Prefix', 'Template', 'Template'] as const);
      const depth = Math.floor(rand() * 4);
      const segs: string[] = [];
      for (let d = 0; d < depth; d++) {
        if (type !== 'Template') segs.push(pickOne(words));
        else segs.push(pickOne([...words, `{p${d}}`, '*']));
      }
      if (type === 'Template' && rand() < 0.3) segs.push('*');
      let value = '/' + segs.join('/');
      if (value !== '/' && rand() < 0.15) value += '/';
      const methods = rand() < 0.3 ? [] : methodsPool.filter(() => rand() < 0.4);
      const hosts = rand() < 0.6 ? [] : hostsPool.filter(() => rand() < 0.4);
      const headers = rand() < 0.7 ? [] : pickOne([[exact('x-a', '1')], [present('X-A')], [exact('x-a', '2'), present('x-b')], [present('x-b')]]);
      const queryParams = rand() < 0.8 ? [] : pickOne([[exact('q', '1')], [present('q')]]);
      const methodsAsCondition = rand() < 0.25;
      routes.push(route(`r${i}`, type, value, methods, hosts, { headers, queryParams, ...(methodsAsCondition ? { methodsAsCondition } : {}) }));
    }
    return routes;
  }

  function randomRequest(rand: () => number): { host: string; method: string; path: string; facts: RequestFacts } {
    const pickOne = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
    const depth = Math.floor(rand() * 5);
    const segs: string[] = [];
    for (let d = 0; d < depth; d++) segs.push(pickOne([...words, 'z']));
    let path = '/' + segs.join('/');
    if (path !== '/' && rand() < 0.2) path += '/';
    const headers: Record<string, string> = {};
    if (rand() < 0.5) headers['x-a'] = pickOne(['1', '2']);
    if (rand() < 0.4) headers['x-b'] = '';
    return {
      host: pickOne(['x.test', 'X.TEST:80', 'q.test', 'a.y.test', 'b.y.test', 'test', 'other']),
      method: pickOne([...methodsPool, 'DELETE']),
      path,
      facts: facts(headers, pickOne(['', 'q=1', 'q=2', 'q=1&q=2'])),
    };
  }

  for (let seed = 1; seed <= 40; seed++) {
    it(`seed ${seed}`, () => {
      const rand = prng(seed);
      const table = randomTable(rand, 4 + Math.floor(rand() * 20));
      const trie = compileMatcher(table);
      const reference = referenceMatcher(table);
      expect(trie.shadowed).toEqual(reference.shadowed);
      for (let i = 0; i < 300; i++) {
        const { host, method, path, facts: f } = randomRequest(rand);
        const a = trie.match(host, method, path, f);
        const b = reference.match(host, method, path, f);
        const view = (r: MatchResult<MatchableRoute>): unknown =>
          r.kind === 'match' ? { id: r.route.id, params: { ...r.params }, prefix: r.matchedPrefix } : r;
        expect({ request: `${method} ${path} @${host}`, result: view(a) }).toEqual({ request: `${method} ${path} @${host}`, result: view(b) });
      }
    });

    it(`seed ${seed}, exclusive: routes that would lose a claim are left out whole, and nothing left shadows`, () => {
      const rand = prng(seed);
      const table = randomTable(rand, 4 + Math.floor(rand() * 20));
      const exclusive = compileMatcher(table, { exclusive: true });
      const out = new Set(exclusive.shadowed.map((s) => s.route));
      expect(exclusive.shadowed.length).toBe(out.size);
      const kept = table.filter((r) => !out.has(r.id));
      expect(compileMatcher(kept).shadowed).toEqual([]);
      // Each route left out conflicts with a kept, older route: on its own beside the kept ones it would be shadowed.
      for (const s of exclusive.shadowed) {
        const index = table.findIndex((r) => r.id === s.route);
        const older = kept.filter((r) => table.indexOf(r) < index);
        const alone = compileMatcher([...older, table[index] as MatchableRoute]);
        expect(alone.shadowed.some((x) => x.route === s.route && x.by === s.by)).toBe(true);
      }
    });
  }
});

describe('exclusive mode (conflict resolution)', () => {
  it('a route that loses one method is left out entirely, so a younger route can take its other method', () => {
    const m = compileMatcher(
      [route('a', 'Exact', '/x', ['GET']), route('b', 'Exact', '/x', ['GET', 'POST']), route('c', 'Exact', '/x', ['POST'])],
      { exclusive: true },
    );
    expect(m.shadowed).toEqual([{ route: 'b', by: 'a', method: 'GET', host: '*' }]);
    const post = m.match('h', 'POST', '/x');
    expect(post.kind === 'match' && post.route.id).toBe('c');
  });

  it('a route whose conditions differ is no conflict', () => {
    const m = compileMatcher([route('a', 'Prefix', '/o'), route('b', 'Prefix', '/o', [], [], { headers: [exact('canary', 'true')] })], { exclusive: true });
    expect(m.shadowed).toEqual([]);
    expect(m.conditional).toBe(true);
  });

  it('a table without conditions says so, so callers skip building request facts', () => {
    expect(compileMatcher([route('a', 'Prefix', '/o')]).conditional).toBe(false);
  });
});

describe('resolveClaims: exclusive resolution over several listeners', () => {
  type Spaced = MatchableRoute & { spaces: string[] };
  const spaced = (r: MatchableRoute, ...spaces: string[]): Spaced => ({ ...r, spaces });
  const resolve = (routes: Spaced[]): ReturnType<typeof resolveClaims> => resolveClaims(routes, (r) => r.spaces);

  it('routes in different spaces never conflict', () => {
    expect(resolve([spaced(route('a', 'Prefix', '/x'), 'http'), spaced(route('b', 'Prefix', '/x'), 'https')])).toEqual([]);
  });

  it('a route losing in one of its spaces is left out of all, which frees its claims in the others for younger routes', () => {
    const routes = [spaced(route('tls-only', 'Prefix', '/x'), 'https'), spaced(route('both', 'Prefix', '/x'), 'http', 'https'), spaced(route('plain', 'Prefix', '/x'), 'http')];
    expect(resolve(routes)).toEqual([{ route: 'both', by: 'tls-only', method: '*', host: '*', space: 'https' }]);
  });

  it('agrees with exclusive compileMatcher when every route is in one space', () => {
    for (let seed = 1; seed <= 10; seed++) {
      const rand = prng(seed);
      const table = Array.from({ length: 12 }, (_, i) => route(`r${i}`, rand() < 0.5 ? 'Exact' : 'Prefix', ['/a', '/b', '/a/b'][Math.floor(rand() * 3)] as string, rand() < 0.5 ? [] : ['GET'], rand() < 0.5 ? [] : ['h.test']));
      const one = compileMatcher(table, { exclusive: true }).shadowed;
      expect(resolveClaims(table, () => ['only']).map(({ space: _s, ...rest }) => rest)).toEqual(one);
    }
  });
});

describe('routeProblem checks one route as the matcher would', () => {
  const cases: Array<[string, MatchableRoute, RegExp | undefined]> = [
    ['a valid route', route('ok', 'Template', '/a/{id}', ['GET'], ['a.test'], { headers: [exact('canary', 'true')], queryParams: [present('v')] }), undefined],
    ['a bad path', route('r', 'Template', '/a/{id', []), /unbalanced brace/],
    ['a bad host', route('r', 'Exact', '/a', [], ['a.test:80']), /must not include a port/],
    ['Exact without a value', route('r', 'Exact', '/a', [], [], { headers: [{ name: 'x', type: 'Exact' }] }), /header condition "x" needs a value with type Exact/],
    ['Present with a value', route('r', 'Exact', '/a', [], [], { queryParams: [{ name: 'v', type: 'Present', value: '1' }] }), /query parameter condition "v" has a value, but type Present/],
    ['a header name that is no token', route('r', 'Exact', '/a', [], [], { headers: [exact('x y', '1')] }), /not a valid header name/],
    ['a header value with a newline', route('r', 'Exact', '/a', [], [], { headers: [exact('x', 'a\nb')] }), /no request can carry/],
    ['a header listed twice in two cases', route('r', 'Exact', '/a', [], [], { headers: [exact('X', '1'), present('x')] }), /listed twice/],
  ];
  for (const [name, r, problem] of cases) {
    it(name, () => {
      const got = routeProblem(r);
      if (problem === undefined) expect(got).toBeUndefined();
      else expect(got).toMatch(problem);
    });
  }
});

// ---------------------------------------------------------------------------
// explain(): match() with its reasons. The answer must be match()'s, each
// near miss must fail on exactly the parts it names, and each outranked route
// must really fit; the single-route reference matcher is the judge.
// ---------------------------------------------------------------------------

/** A path the route itself matches: parameters and `*` filled with "x". */
function pathOf(r: MatchableRoute): string {
  return r.path.value.replace(/\{[^}]*\}/g, 'x').replace(/(^|\/)\*(?=\/|$)/g, '$1x');
}

/** The request with the named parts changed to what the route asks for. */
function repaired(r: MatchableRoute, parts: ReadonlySet<string>, req: { host: string; method: string; path: string; facts: RequestFacts }): typeof req {
  const host = parts.has('host') ? (r.hosts[0] as string).replace(/^\*\./, 'a.') : req.host;
  const method = parts.has('method') ? (r.methods[0] as string) : req.method;
  const headerFix = new Map((r.headers ?? []).map((c) => [c.name.toLowerCase(), c.value ?? 'x']));
  const queryFix = new Map((r.queryParams ?? []).map((c) => [c.name, c.value ?? 'x']));
  const f: RequestFacts = {
    header: (name) => (parts.has('header') && headerFix.has(name) ? headerFix.get(name) : req.facts.header(name)),
    query: (name) => (parts.has('query') && queryFix.has(name) ? queryFix.get(name) : req.facts.query(name)),
  };
  return { host, method, path: parts.has('path') ? pathOf(r) : req.path, facts: f };
}

const ids = (xs: ReadonlyArray<{ route: MatchableRoute }>): string[] => xs.map((x) => x.route.id);

describe('explain(): the answer and its reasons', () => {
  const seed = [
    route('login', 'Exact', '/auth/login', ['POST']),
    route('user', 'Template', '/api/v1/users/{id}', ['GET', 'PUT']),
    route('me', 'Exact', '/api/v1/users/me', ['GET']),
    route('admin', 'Prefix', '/api/v1/admin', [], ['admin.example.test']),
    route('canary', 'Prefix', '/orders', [], [], { headers: [exact('canary', 'true')] }),
    route('orders', 'Prefix', '/orders'),
  ];
  const m = compileMatcher(seed);
  const explain = (spec: string, limit?: number): ReturnType<typeof m.explain> => {
    const r = parseRequest(spec);
    return m.explain(r.host, r.method, r.path, r.facts, limit === undefined ? {} : { limit });
  };

  it('a match names the tier, and the routes it beat with the rule for each', () => {
    const e = explain('GET /api/v1/users/me');
    expect(e.result.kind === 'match' && e.result.route.id).toBe('me');
    expect(e.tier).toBe('*');
    expect(e.rule).toBe('the most specific of 2 routes that fit; the tier of routes for any host answered');
    expect(e.outranked.map((o) => [o.route.id, o.rule])).toEqual([['user', 'segment 4: the literal "me" beats {id}']]);
  });

  it('a 405 lists the route whose method failed', () => {
    const e = explain('DELETE /api/v1/users/42');
    expect(e.result).toEqual({ kind: 'method-not-allowed', allow: ['GET', 'HEAD', 'PUT'] });
    expect(e.nearMisses[0]).toEqual({ route: seed[1], failed: [{ what: 'method', detail: 'the route takes GET, PUT, not DELETE' }] });
  });

  it('a 404 lists the closest paths, most segments in common first, with the segment that differs', () => {
    const e = explain('GET /api/v1/userz/42');
    expect(e.result.kind).toBe('not-found');
    expect(e.tier).toBeUndefined();
    expect(e.nearMisses.slice(0, 2).map((n) => n.failed.map((f) => f.detail))).toEqual([
      ['segment 3 is "userz"; Template /api/v1/users/{id} needs "users"'],
      ['segment 3 is "userz"; Exact /api/v1/users/me needs "users"'],
    ]);
    // admin fails on its host too, so it comes after the routes that fail on the path alone.
    expect(ids(e.nearMisses)).toEqual(['user', 'me', 'admin']);
    expect(e.nearMisses[2]?.failed.map((f) => f.what)).toEqual(['host', 'path']);
  });

  it('a host miss says which hosts the route is for', () => {
    const e = explain('GET /api/v1/admin/x @api.example.test');
    expect(e.result.kind).toBe('not-found');
    expect(e.nearMisses[0]).toEqual({ route: seed[3], failed: [{ what: 'host', detail: 'the route is for admin.example.test, not api.example.test' }] });
  });

  it('a failed header condition is a near miss; a held one outranks the route without it', () => {
    const miss = explain('GET /orders/1 canary=false');
    expect(miss.result.kind === 'match' && miss.result.route.id).toBe('orders');
    expect(miss.nearMisses[0]).toEqual({ route: seed[4], failed: [{ what: 'header', detail: 'header canary is not "true"' }] });
    const hit = explain('GET /orders/1 canary=true');
    expect(hit.result.kind === 'match' && hit.result.route.id).toBe('canary');
    expect(hit.outranked.map((o) => [o.route.id, o.rule])).toEqual([['orders', 'more header conditions win (1 over 0)']]);
  });

  it('never repeats what the request sent for a condition (it may be a credential)', () => {
    const guarded = compileMatcher([route('g', 'Prefix', '/', [], [], { headers: [exact('authorization', 'Bearer expected-value')], queryParams: [exact('key', 'k1')] })]);
    const e = guarded.explain('h', 'GET', '/x', facts({ authorization: 'Bearer sent-token' }, 'key=sent-key'));
    const text = JSON.stringify(e.nearMisses);
    expect(text).toContain('header authorization is not \\"Bearer expected-value\\"');
    expect(text).not.toContain('sent-token');
    expect(text).not.toContain('sent-key');
  });

  it('names each precedence rule', () => {
    const rule = (routes: MatchableRoute[], spec: string): Array<[string, string]> => {
      const r = parseRequest(spec);
      return compileMatcher(routes).explain(r.host, r.method, r.path, r.facts).outranked.map((o) => [o.route.id, o.rule]);
    };
    expect(rule([route('h', 'Exact', '/x', ['HEAD']), route('g', 'Exact', '/x', ['GET']), route('any', 'Exact', '/x')], 'HEAD /x')).toEqual([
      ['g', 'a route naming HEAD beats one naming GET'],
      ['any', 'a route naming HEAD beats a route for any method'],
    ]);
    expect(rule([route('any', 'Exact', '/x'), route('g', 'Exact', '/x', ['GET'])], 'HEAD /x')).toEqual([['any', 'HEAD goes to a route naming GET before a route for any method']]);
    expect(rule([route('t', 'Template', '/{x}/{y}'), route('p', 'Prefix', '/a/b')], 'GET /a/b')).toEqual([['p', 'a full-length match beats a prefix match, however long']]);
    expect(rule([route('deep', 'Template', '/{tenant}/v1/*'), route('api', 'Prefix', '/api')], 'GET /api/v1/x')).toEqual([['api', 'the longer prefix wins (2 segments over 1)']]);
    expect(rule([route('pre', 'Prefix', '/files'), route('rest', 'Template', '/files/*')], 'GET /files/a')).toEqual([['pre', 'on the same base, a trailing "*" beats Prefix (it needs one more segment)']]);
    expect(rule([route('q', 'Prefix', '/o', [], [], { queryParams: [present('v')] }), route('plain', 'Prefix', '/o')], 'GET /o?v=1')).toEqual([['plain', 'more query conditions win (1 over 0)']]);
    expect(rule([route('a', 'Prefix', '/p'), route('b', 'Prefix', '/p/')], 'GET /p/x')).toEqual([['b', 'same path shape, method and condition count: the route registered first wins (for GatewayRoutes the oldest)']]);
    expect(rule([route('named', 'Exact', '/x', ['POST'], ['api.test']), route('all', 'Prefix', '/')], 'GET /x @api.test')).toEqual([['all', 'the tier of host api.test answered first (405); this route is in the tier of routes for any host']]);
  });

  it('lists at most `limit` of each, and counts them all', () => {
    const many = compileMatcher(Array.from({ length: 30 }, (_, i) => route(`r${i}`, 'Exact', `/a/x${i}`)));
    const e = many.explain('h', 'GET', '/a/q', undefined, { limit: 5 });
    expect(e.nearMisses).toHaveLength(5);
    expect(e.nearMissCount).toBe(30);
    expect(e.nearMisses[0]?.failed).toEqual([{ what: 'path', detail: 'segment 2 is "q"; Exact /a/x0 needs "x0"' }]);
  });

  it('a route with nothing in common is no near miss', () => {
    const e = compileMatcher([route('far', 'Exact', '/b/c')]).explain('h', 'GET', '/a/c');
    expect(e.nearMissCount).toBe(0);
  });
});

describe('explain() agrees with match() and the reference on random tables', () => {
  const words = ['a', 'b'];
  const pickOf = (rand: () => number) => <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;

  function table(rand: () => number): MatchableRoute[] {
    const pick = pickOf(rand);
    return Array.from({ length: 3 + Math.floor(rand() * 14) }, (_, i) => {
      const type = pick(['Exact', 'Prefix', 'Template', 'Template'] as const);
      const segs = Array.from({ length: Math.floor(rand() * 3) }, (_, d) => (type === 'Template' ? pick([...words, `{p${d}}`, '*']) : pick(words)));
      if (type === 'Template' && rand() < 0.3) segs.push('*');
      const methods = rand() < 0.4 ? [] : ['GET', 'HEAD', 'POST'].filter(() => rand() < 0.5);
      const hosts = rand() < 0.6 ? [] : ['x.test', '*.test', 'a.y.test'].filter(() => rand() < 0.5);
      const headers = rand() < 0.7 ? [] : pick([[exact('x-a', '1')], [present('x-b')], [exact('x-a', '2'), present('x-b')]]);
      const queryParams = rand() < 0.8 ? [] : [pick([exact('q', '1'), present('q')])];
      return route(`r${i}`, type, `/${segs.join('/')}`, methods, hosts, { headers, queryParams, ...(rand() < 0.2 ? { methodsAsCondition: true } : {}) });
    });
  }

  for (let seed = 1; seed <= 40; seed++) {
    it(`seed ${seed}`, () => {
      const rand = prng(seed * 7919);
      const pick = pickOf(rand);
      const routes = table(rand);
      const trie = compileMatcher(routes);
      const reference = referenceMatcher(routes);
      const single = new Map(routes.map((r) => [r.id, referenceMatcher([r])]));
      const view = (r: MatchResult<MatchableRoute>): unknown => (r.kind === 'match' ? { id: r.route.id, params: { ...r.params }, prefix: r.matchedPrefix } : r);
      for (let i = 0; i < 150; i++) {
        const headers: Record<string, string> = {};
        if (rand() < 0.5) headers['x-a'] = pick(['1', '2']);
        if (rand() < 0.4) headers['x-b'] = '';
        const segs = Array.from({ length: Math.floor(rand() * 4) }, () => pick([...words, 'z']));
        const req = { host: pick(['x.test', 'q.test', 'a.y.test', 'test']), method: pick(['GET', 'HEAD', 'POST', 'PUT']), path: `/${segs.join('/')}`, facts: facts(headers, pick(['', 'q=1', 'q=2'])) };
        const label = `${req.method} ${req.path} @${req.host}`;
        const e = trie.explain(req.host, req.method, req.path, req.facts, { limit: Infinity });
        expect({ label, result: view(e.result) }).toEqual({ label, result: view(reference.match(req.host, req.method, req.path, req.facts)) });
        const fits = (r: MatchableRoute, q: typeof req): boolean => (single.get(r.id) as Matching<MatchableRoute>).match(q.host, q.method, q.path, q.facts).kind === 'match';
        for (const n of e.nearMisses) {
          const parts = new Set(n.failed.map((f) => f.what));
          expect({ label, route: n.route.id, fixed: fits(n.route, repaired(n.route, parts, req)) }).toEqual({ label, route: n.route.id, fixed: true });
          for (const part of parts) {
            const others = new Set([...parts].filter((p) => p !== part));
            expect({ label, route: n.route.id, part, fitsWithout: fits(n.route, repaired(n.route, others, req)) }).toEqual({ label, route: n.route.id, part, fitsWithout: false });
          }
        }
        for (const o of e.outranked) {
          expect({ label, route: o.route.id, fits: fits(o.route, req) }).toEqual({ label, route: o.route.id, fits: true });
          expect({ label, route: o.route.id, rule: o.rule }).not.toEqual({ label, route: o.route.id, rule: expect.stringMatching(/^unexplained/) });
        }
        const listed = new Set([...ids(e.nearMisses), ...ids(e.outranked), ...(e.result.kind === 'match' ? [e.result.route.id] : [])]);
        for (const r of routes) if (!listed.has(r.id)) expect({ label, route: r.id, fits: fits(r, req) }).toEqual({ label, route: r.id, fits: false });
        expect(e.nearMissCount).toBe(e.nearMisses.length);
      }
    });
  }
});
