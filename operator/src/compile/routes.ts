/** GatewayRoutes: validate, resolve Upstream references, resolve conflicts oldest-first. */
import { describeClaim, parseDuration, resolveRoutes, type Claim, type Route } from '../../../dataplane/src/contract/index.ts';
import type { RouteCandidate } from './gateway-api/index.ts';
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
    rateLimit: s.rateLimit && { limit: s.rateLimit.requests, windowMs: s.rateLimit.window === undefined ? undefined : ms(s.rateLimit.window), key: s.rateLimit.key },
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
    upgrade: s.upgrade && { enabled: s.upgrade.enabled, idleTimeoutMs: s.upgrade.idleTimeout === undefined ? undefined : ms(s.upgrade.idleTimeout) },
    source: { kind: 'GatewayRoute', namespace: meta.namespace, name: meta.name, generation: meta.generation },
  };
}

/**
 * Each GatewayRoute's table entry by its parsed spec, which the store keeps one
 * object per object version: an unchanged route is the same object in every
 * compile, and what is derived from it by object (validation, hash text, the
 * matcher's parse) is reused. Entries are never changed once built.
 */
const built = new WeakMap<RouteSpec, { source: string; route: Route }>();

function routeOf(meta: ObjectMeta, spec: RouteSpec): Route {
  const source = `${keyOf(meta)}\0${meta.generation}`;
  const known = built.get(spec);
  if (known?.source === source) return known.route;
  const route = toRoute(meta, spec);
  built.set(spec, { source, route });
  return route;
}

const notAccepted = (reason: string, message: string): ConditionInput[] => [
  condition(ConditionType.Accepted, false, reason, message),
  condition(ConditionType.ResolvedRefs, false, Reason.NotAccepted, 'the route is not accepted'),
  condition(ConditionType.Programmed, false, Reason.NotAccepted, 'the route is not accepted'),
];

/**
 * Accepted routes: do their backends name Upstreams that exist and compiled? A
 * route that cannot be served answers 503: `invalid` says why, for its table
 * entry (a copy: the route object is shared between compiles).
 */
function resolveBackends(route: Route, upstreams: ReadonlyMap<string, UpstreamResult>): { refs: ConditionInput; invalid?: string } {
  const missing: string[] = [];
  const invalid: string[] = [];
  const unresolved: string[] = [];
  for (const b of route.backends) {
    const target = upstreams.get(b.upstream);
    const name = b.upstream.slice(b.upstream.indexOf('/') + 1);
    if (!target) missing.push(name);
    else if (!target.upstream) {
      // Accepted but left out of the table: a reference of its own (TLS certificates) does not resolve.
      const refs = target.conditions.find((c) => c.type === ConditionType.ResolvedRefs);
      if (refs?.reason === Reason.InvalidCertificateRef) unresolved.push(name);
      else invalid.push(name);
    }
  }
  if (missing.length === 0 && invalid.length === 0 && unresolved.length === 0) return { refs: condition(ConditionType.ResolvedRefs, true, Reason.ResolvedRefs, 'all references resolved') };
  const namespace = route.id.slice(0, route.id.indexOf('/'));
  const parts = [
    ...(missing.length > 0 ? [`Upstream ${missing.map((m) => `"${m}"`).join(', ')} not found in namespace "${namespace}"`] : []),
    ...(invalid.length > 0 ? [`Upstream ${invalid.map((m) => `"${m}"`).join(', ')} is not accepted`] : []),
    ...(unresolved.length > 0 ? [`Upstream ${unresolved.map((m) => `"${m}"`).join(', ')} has a TLS certificate reference that does not resolve`] : []),
  ];
  const why = parts.join('; ');
  return { refs: condition(ConditionType.ResolvedRefs, false, missing.length > 0 ? Reason.BackendNotFound : Reason.BackendInvalid, `${why}; requests get 503 until it is`), invalid: why };
}

/** What conflict resolution decided, for the table and for every route's status. */
export interface RoutesOutcome {
  /** Accepted table routes in precedence order, GatewayRoutes and HTTPRoute matches together. */
  table: Route[];
  /** GatewayRoute statuses, oldest first. */
  results: RouteResult[];
  /** HTTPRoute table routes that lost some hosts, by table id; `describe` names a winner's id for people. */
  trimmed: Map<string, { lost: Claim[]; describe: (id: string) => string }>;
  /** HTTPRoute table routes left out by a conflict, by table id. */
  rejected: Map<string, { claim: Claim; describe: (id: string) => string }>;
}

/**
 * Compiles every GatewayRoute against the compiled upstreams, and resolves
 * conflicts among them and the HTTPRoute matches (`others`) by one rule:
 * oldest first (creation time, then namespace/name, GatewayRoute before
 * HTTPRoute, then the HTTPRoute's rule and match order), decided by the data
 * plane's own matcher through the contract (resolveRoutes). A GatewayRoute is
 * served as written or not at all; an HTTPRoute match keeps the hosts no older
 * route holds, as the Gateway API resolves ties.
 */
export function compileRoutes(routes: readonly Parsed<RouteSpec>[], upstreams: readonly UpstreamResult[], others: readonly RouteCandidate[] = []): RoutesOutcome {
  const byKey = new Map(upstreams.map((u) => [u.key, u]));
  const ordered = [...routes].sort(olderFirst);
  type Entry = { route: Route; created: string; key: string; kind: number; seq: number };
  const entries: Entry[] = [
    ...ordered.flatMap((r) => (r.spec === undefined ? [] : [{ route: routeOf(r.meta, r.spec), created: r.meta.creationTimestamp, key: keyOf(r.meta), kind: 0, seq: 0 }])),
    ...others.map((c) => ({ route: c.route, created: c.created, key: c.key, kind: 1, seq: c.seq })),
  ];
  entries.sort((a, b) => (a.created !== b.created ? (a.created < b.created ? -1 : 1) : a.key !== b.key ? (a.key < b.key ? -1 : 1) : a.kind - b.kind || a.seq - b.seq));
  const where = new Map(others.map((c) => [c.route.id, `HTTPRoute "${c.key}" (${c.where})`]));
  const describe = (id: string): string => where.get(id) ?? `GatewayRoute "${id}"`;

  const resolution = resolveRoutes(
    entries.map((e) => e.route),
    { partialHosts: (r) => r.source?.kind === 'HTTPRoute', reuse: true },
  );
  const rejected = new Map(resolution.rejected.map((x) => [x.route.id, x]));
  const accepted = new Map(resolution.accepted.map((r) => [r.id, r]));

  // Accepted routes whose backends do not resolve, and their table entries saying so.
  const unserved = new Map<Route, Route>();
  const results = ordered.map((r): RouteResult => {
    const key = keyOf(r.meta);
    const generation = r.meta.generation;
    if (r.spec === undefined) return { key, generation, route: undefined, conditions: notAccepted(Reason.Invalid, r.error) };
    const x = rejected.get(key);
    if (x?.reason === 'Invalid') return { key, generation, route: undefined, conditions: notAccepted(Reason.Invalid, x.message) };
    if (x?.reason === 'Conflicted') {
      const message = `conflicts with the older ${describe(x.by)} on ${describeClaim(x)}: both match the same requests and the older route wins, so this one would never serve; change its path, methods, hosts, or header and query conditions`;
      return { key, generation, route: undefined, conditions: notAccepted(Reason.Conflicted, message) };
    }
    const route = accepted.get(key) as Route;
    const { refs, invalid } = resolveBackends(route, byKey);
    const entry = invalid === undefined ? route : { ...route, invalid };
    if (entry !== route) unserved.set(route, entry);
    return { key, generation, route: entry, conditions: [condition(ConditionType.Accepted, true, Reason.Accepted, 'the route is valid'), refs] };
  });

  const trimmed = new Map(resolution.trimmed.map((t) => [t.route.id, { lost: t.lost, describe }]));
  const lostWhole = new Map(
    resolution.rejected.flatMap((x) => (x.reason === 'Conflicted' && where.has(x.route.id) ? [[x.route.id, { claim: { by: x.by, method: x.method, host: x.host }, describe }] as const] : [])),
  );
  const table = unserved.size === 0 ? resolution.accepted : resolution.accepted.map((r) => unserved.get(r) ?? r);
  return { table, results, trimmed, rejected: lostWhole };
}
