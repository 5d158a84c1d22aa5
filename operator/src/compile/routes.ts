/** GatewayRoutes: validate, resolve Upstream references, resolve conflicts oldest-first. */
import { parseDuration } from '../../../dataplane/src/contract/index.ts';
import { compileMatcher } from '../../../dataplane/src/routing/matcher.ts';
import { corsPolicy, DEFAULT_RETRY_ON, inferPathType } from '../../../dataplane/src/contract/index.ts';
import type { HttpMethod, Route } from '../../../dataplane/src/contract/index.ts';
import { condition, ConditionType, Reason, type ConditionInput } from '../status/conditions.ts';
import { keyOf, type Parsed, type RouteSpec } from './snapshot.ts';
import type { UpstreamResult } from './upstreams.ts';

/** Compile's verdict on one GatewayRoute. */
export interface RouteResult {
  key: string;
  generation: number;
  /** The table entry, when the route is accepted. */
  route: Route | undefined;
  conditions: ConditionInput[];
}

const RETRY_ON = new Set(['connect-failure', 'reset', '502', '503', '504']);

/**
 * Older first: creation time, then namespace/name. This is the Gateway API's
 * rule for conflicts, and the table keeps the same order so that the matcher's
 * "first registered wins" agrees with it.
 */
export function olderFirst(a: Parsed<RouteSpec>, b: Parsed<RouteSpec>): number {
  if (a.meta.creationTimestamp !== b.meta.creationTimestamp) return a.meta.creationTimestamp < b.meta.creationTimestamp ? -1 : 1;
  const ka = keyOf(a.meta);
  const kb = keyOf(b.meta);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

function toRoute(r: Parsed<RouteSpec> & { spec: RouteSpec }): Route {
  const s = r.spec;
  const ns = r.meta.namespace;
  const backends = s.backends ?? [{ upstream: s.upstream as string, weight: 1 }];
  const cors = s.cors;
  return {
    id: keyOf(r.meta),
    hosts: (s.hosts ?? []).map((h) => h.toLowerCase()),
    path: { type: s.path.type ?? inferPathType(s.path.value), value: s.path.value },
    methods: (s.methods ?? []) as HttpMethod[],
    backends: backends.map((b) => ({ upstream: `${ns}/${b.upstream}`, weight: b.weight ?? 1 })),
    timeoutMs: s.timeout === undefined ? undefined : parseDuration(s.timeout),
    auth: { required: s.auth?.required ?? false, roles: s.auth?.roles ?? [], permissions: s.auth?.permissions ?? [] },
    rateLimit: s.rateLimit && { limit: s.rateLimit.requests, windowMs: parseDuration(s.rateLimit.window ?? '1m') ?? 60_000 },
    cors: cors && corsPolicy({ ...cors, maxAgeSeconds: cors.maxAge }),
    retries: s.retries && {
      attempts: s.retries.attempts,
      on: (s.retries.retryOn ?? DEFAULT_RETRY_ON).filter((o) => RETRY_ON.has(o)) as NonNullable<Route['retries']>['on'],
      nonIdempotent: s.retries.nonIdempotent ?? false,
      backoffMs: parseDuration(s.retries.backoff ?? '25ms') ?? 25,
    },
    rewritePath: s.rewrite?.path,
    source: { kind: 'GatewayRoute', namespace: r.meta.namespace, name: r.meta.name, generation: r.meta.generation },
  };
}

/** The (host, method, path) keys a route claims; `*` stands for "any". */
function claims(route: Route): string[] {
  const hosts = route.hosts.length > 0 ? route.hosts : ['*'];
  const methods = route.methods.length > 0 ? route.methods : ['*'];
  const out: string[] = [];
  for (const h of hosts) for (const m of methods) out.push(`${h} ${m} ${route.path.type}:${route.path.value}`);
  return out;
}

/** Compiles every route, in age order, against the compiled upstreams. */
export function compileRoutes(routes: readonly Parsed<RouteSpec>[], upstreams: readonly UpstreamResult[]): RouteResult[] {
  const byKey = new Map(upstreams.map((u) => [u.key, u]));
  // Who owns each claim: the first (oldest) accepted route. "any method" overlaps every method.
  const owners = new Map<string, string>();
  const anyMethodOwners = new Map<string, string>();
  // The first owner of any claim on each host and path: what an any-method route conflicts with.
  // Kept as an index so that the check costs one lookup, not a scan of every claim (quadratic at thousands of routes).
  const firstOwnerOfPath = new Map<string, string>();
  const results: RouteResult[] = [];

  for (const r of [...routes].sort(olderFirst)) {
    const key = keyOf(r.meta);
    const generation = r.meta.generation;
    const rejected = (reason: string, message: string): RouteResult => ({
      key,
      generation,
      route: undefined,
      conditions: [condition(ConditionType.Accepted, false, reason, message), condition(ConditionType.ResolvedRefs, false, Reason.NotAccepted, 'the route is not accepted'), condition(ConditionType.Programmed, false, Reason.NotAccepted, 'the route is not accepted')],
    });
    if (r.spec === undefined) {
      results.push(rejected(Reason.Invalid, r.error));
      continue;
    }
    let route: Route;
    try {
      route = toRoute(r as Parsed<RouteSpec> & { spec: RouteSpec });
      // The data plane's own matcher is the judge of paths and hosts: what it would refuse, the route does not get.
      compileMatcher([route]);
    } catch (err) {
      results.push(rejected(Reason.Invalid, (err as Error).message.replace(/^route "[^"]*": /, '')));
      continue;
    }

    const mine = claims(route);
    let winner: string | undefined;
    for (const c of mine) {
      const [host, method, path] = c.split(' ') as [string, string, string];
      winner = owners.get(c) ?? anyMethodOwners.get(`${host} ${path}`);
      if (!winner && method === '*') winner = firstOwnerOfPath.get(`${host} ${path}`);
      if (winner) {
        results.push(rejected(Reason.Conflicted, `conflicts with the older GatewayRoute "${winner}" on ${method === '*' ? 'any method' : method} ${route.path.value}${host === '*' ? '' : ` for host ${host}`}; the older route wins`));
        break;
      }
    }
    if (winner) continue;
    for (const c of mine) {
      owners.set(c, key);
      const [host, method, path] = c.split(' ') as [string, string, string];
      if (!firstOwnerOfPath.has(`${host} ${path}`)) firstOwnerOfPath.set(`${host} ${path}`, key);
      if (method === '*') anyMethodOwners.set(`${host} ${path}`, key);
    }

    const missing: string[] = [];
    const invalid: string[] = [];
    for (const b of route.backends) {
      const target = byKey.get(b.upstream);
      const name = b.upstream.slice(b.upstream.indexOf('/') + 1);
      if (!target) missing.push(name);
      else if (!target.upstream) invalid.push(name);
    }
    let refs: ConditionInput;
    if (missing.length > 0 || invalid.length > 0) {
      const parts = [
        ...(missing.length > 0 ? [`Upstream ${missing.map((m) => `"${m}"`).join(', ')} not found in namespace "${r.meta.namespace}"`] : []),
        ...(invalid.length > 0 ? [`Upstream ${invalid.map((m) => `"${m}"`).join(', ')} is not accepted`] : []),
      ];
      route.invalid = parts.join('; ');
      refs = condition(ConditionType.ResolvedRefs, false, missing.length > 0 ? Reason.BackendNotFound : Reason.BackendInvalid, `${route.invalid}; requests get 503 until it is`);
    } else {
      refs = condition(ConditionType.ResolvedRefs, true, Reason.ResolvedRefs, 'all references resolved');
    }
    results.push({ key, generation, route, conditions: [condition(ConditionType.Accepted, true, Reason.Accepted, 'the route is valid'), refs] });
  }
  return results;
}
