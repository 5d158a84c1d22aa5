/** GatewayRoutes: validate, resolve Upstream references, resolve conflicts oldest-first. */
import { describeClaim, parseDuration, resolveRoutes, type Route } from '../../../dataplane/src/contract/index.ts';
import { condition, ConditionType, Reason, type ConditionInput } from '../status/conditions.ts';
import { keyOf, type ObjectMeta, type Parsed, type RouteSpec } from './snapshot.ts';
import type { UpstreamResult } from './upstreams.ts';

/** Compile's verdict on one GatewayRoute. */
export interface RouteResult {
  key: string;
  generation: number;
  /** The table entry, when the route is accepted. */
  route: Route | undefined;
  conditions: ConditionInput[];
}

/** Durations in a spec are validated by its schema; the table takes milliseconds. */
const ms = (d: string): number => parseDuration(d) as number;

/**
 * Older first: creation time, then namespace/name. This is the Gateway API's
 * rule for conflicts, and the table keeps the same order so that the matcher's
 * "first registered wins" agrees with it.
 */
function olderFirst(a: Parsed<RouteSpec>, b: Parsed<RouteSpec>): number {
  if (a.meta.creationTimestamp !== b.meta.creationTimestamp) return a.meta.creationTimestamp < b.meta.creationTimestamp ? -1 : 1;
  const ka = keyOf(a.meta);
  const kb = keyOf(b.meta);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

/** The table entry of a GatewayRoute: its own settings only (each data plane lays the gateway-wide policy under them). */
function toRoute(meta: ObjectMeta, s: RouteSpec): Route {
  const ns = meta.namespace;
  // The schema requires exactly one of upstream and backends.
  const backends = s.backends ?? (s.upstream === undefined ? [] : [{ upstream: s.upstream, weight: 1 }]);
  const cors = s.cors;
  return {
    id: keyOf(meta),
    hosts: s.hosts ?? [],
    path: s.path,
    methods: s.methods ?? [],
    headers: s.headers,
    queryParams: s.queryParams,
    backends: backends.map((b) => ({ upstream: `${ns}/${b.upstream}`, weight: b.weight })),
    timeoutMs: s.timeout === undefined ? undefined : ms(s.timeout),
    auth: s.auth ?? { required: false, roles: [], permissions: [] },
    rateLimit: s.rateLimit && { limit: s.rateLimit.requests, windowMs: s.rateLimit.window === undefined ? undefined : ms(s.rateLimit.window) },
    cors: cors && {
      allowedOrigins: cors.allowedOrigins,
      allowedMethods: cors.allowedMethods,
      allowedHeaders: cors.allowedHeaders,
      exposedHeaders: cors.exposedHeaders,
      allowCredentials: cors.allowCredentials,
      maxAgeSeconds: cors.maxAge,
    },
    retries: s.retries && { attempts: s.retries.attempts, on: s.retries.retryOn, nonIdempotent: s.retries.nonIdempotent, backoffMs: ms(s.retries.backoff) },
    rewritePath: s.rewrite?.path,
    source: { kind: 'GatewayRoute', namespace: meta.namespace, name: meta.name, generation: meta.generation },
  };
}

const notAccepted = (reason: string, message: string): ConditionInput[] => [
  condition(ConditionType.Accepted, false, reason, message),
  condition(ConditionType.ResolvedRefs, false, Reason.NotAccepted, 'the route is not accepted'),
  condition(ConditionType.Programmed, false, Reason.NotAccepted, 'the route is not accepted'),
];

/** Accepted routes: do their backends name Upstreams that exist and compiled? A route that cannot be served answers 503. */
function resolveBackends(route: Route, upstreams: ReadonlyMap<string, UpstreamResult>): ConditionInput {
  const missing: string[] = [];
  const invalid: string[] = [];
  for (const b of route.backends) {
    const target = upstreams.get(b.upstream);
    const name = b.upstream.slice(b.upstream.indexOf('/') + 1);
    if (!target) missing.push(name);
    else if (!target.upstream) invalid.push(name);
  }
  if (missing.length === 0 && invalid.length === 0) return condition(ConditionType.ResolvedRefs, true, Reason.ResolvedRefs, 'all references resolved');
  const namespace = route.id.slice(0, route.id.indexOf('/'));
  const parts = [
    ...(missing.length > 0 ? [`Upstream ${missing.map((m) => `"${m}"`).join(', ')} not found in namespace "${namespace}"`] : []),
    ...(invalid.length > 0 ? [`Upstream ${invalid.map((m) => `"${m}"`).join(', ')} is not accepted`] : []),
  ];
  route.invalid = parts.join('; ');
  return condition(ConditionType.ResolvedRefs, false, missing.length > 0 ? Reason.BackendNotFound : Reason.BackendInvalid, `${route.invalid}; requests get 503 until it is`);
}

/**
 * Compiles every route, in age order, against the compiled upstreams.
 * Validity and conflicts are decided by the data plane's own matcher through
 * the contract (resolveRoutes), so a route the gateway would never serve is
 * never Accepted.
 */
export function compileRoutes(routes: readonly Parsed<RouteSpec>[], upstreams: readonly UpstreamResult[]): RouteResult[] {
  const byKey = new Map(upstreams.map((u) => [u.key, u]));
  const ordered = [...routes].sort(olderFirst);
  const candidates = ordered.flatMap((r) => (r.spec === undefined ? [] : [toRoute(r.meta, r.spec)]));
  const rejected = new Map(resolveRoutes(candidates).rejected.map((x) => [x.route.id, x]));
  const tableEntries = new Map(candidates.map((c) => [c.id, c]));

  return ordered.map((r): RouteResult => {
    const key = keyOf(r.meta);
    const generation = r.meta.generation;
    if (r.spec === undefined) return { key, generation, route: undefined, conditions: notAccepted(Reason.Invalid, r.error) };
    const x = rejected.get(key);
    if (x?.reason === 'Invalid') return { key, generation, route: undefined, conditions: notAccepted(Reason.Invalid, x.message) };
    if (x?.reason === 'Conflicted') {
      const message = `conflicts with the older GatewayRoute "${x.by}" on ${describeClaim(x)}: both match the same requests and the older route wins, so this one would never serve; change its path, methods, hosts, or header and query conditions`;
      return { key, generation, route: undefined, conditions: notAccepted(Reason.Conflicted, message) };
    }
    const route = tableEntries.get(key) as Route;
    const refs = resolveBackends(route, byKey);
    return { key, generation, route, conditions: [condition(ConditionType.Accepted, true, Reason.Accepted, 'the route is valid'), refs] };
  });
}
