/**
 * Which routes a table may hold, decided by the matcher that serves them:
 * a route is valid when the matcher compiles it, and it conflicts when the
 * matcher would give every request it claims for some host and method to an
 * earlier route (same path shape, method and conditions) on a listener both
 * are served on. Both table producers call this with routes in precedence
 * order (oldest first in a cluster, file order for gateway.yaml), and serve
 * only the accepted ones, so what a status or `--check` says is what the data
 * plane does.
 */
import { resolveClaims, routeProblem, type MatchableRoute } from '../routing/matcher.ts';
import { TRAFFIC_LISTENERS } from './schema.ts';

/** What resolution needs of a route: the matcher's view, and the listeners that serve it (absent: all). */
export type ResolvableRoute = MatchableRoute & { listeners?: readonly string[] | undefined };

/** A claim an earlier route holds: `by` is its id; `method` is `*` for any method, `host` is `*` for any host. */
export interface Claim {
  by: string;
  method: string;
  host: string;
}

/** Why a route is not in the table. */
export type RouteRejection<R> = { route: R; reason: 'Invalid'; message: string } | ({ route: R; reason: 'Conflicted' } & Claim);

/** The verdict on a list of routes. */
export interface RouteResolution<R> {
  /** In the order given; a route that lost some of its hosts (see `partialHosts`) is a copy without them. */
  accepted: R[];
  /** In the order given. */
  rejected: RouteRejection<R>[];
  /** Routes that lost some hosts and serve the others, with the claims they lost; in the order given. */
  trimmed: { route: R; lost: Claim[] }[];
}

/** How routes are resolved. */
export interface ResolveOptions<R> {
  /**
   * Routes whose hosts are separate claims: a host an earlier route holds is
   * taken out of the route, which keeps the others, instead of the route being
   * left out whole. The Gateway API resolves HTTPRoute matches this way; a
   * GatewayRoute is served as written or not at all.
   */
  partialHosts?: (route: R) => boolean;
  /**
   * The routes never change once resolved (a caller that builds an unchanged
   * route as the same object, compile after compile): remember each one's check
   * and parsed form by object, and use them again.
   */
  reuse?: boolean;
}

/** For `reuse`: each route's problem (or none), and its claim when its hosts are one claim. */
const checked = new WeakMap<object, { problem: string | undefined }>();
const wholeClaims = new WeakMap<object, object>();

const ALL_LISTENERS: readonly string[] = TRAFFIC_LISTENERS;

/** Checks each route on its own, then resolves conflicts in the order given (the first route wins), listener by listener. */
export function resolveRoutes<R extends ResolvableRoute>(routes: readonly R[], options: ResolveOptions<R> = {}): RouteResolution<R> {
  const rejected = new Map<R, RouteRejection<R>>();
  // Each candidate is a route, or one host of a route whose hosts are separate claims.
  const candidates: { id: string; route: R; hosts: string[]; path: R['path']; methods: string[]; headers: R['headers']; queryParams: R['queryParams']; methodsAsCondition: boolean | undefined; listeners: readonly string[] }[] = [];
  const owner = new Map<string, R>();
  for (const route of routes) {
    let known = options.reuse ? checked.get(route) : undefined;
    if (known === undefined) {
      known = { problem: routeProblem(route) };
      if (options.reuse) checked.set(route, known);
    }
    const problem = known.problem;
    if (problem !== undefined) {
      rejected.set(route, { route, reason: 'Invalid', message: problem });
      continue;
    }
    const split = options.partialHosts?.(route) === true && route.hosts.length > 1;
    const base = { route, path: route.path, methods: route.methods, headers: route.headers, queryParams: route.queryParams, methodsAsCondition: route.methodsAsCondition, listeners: route.listeners ?? ALL_LISTENERS };
    if (!split) {
      // The same candidate object for the same route, so the matcher's parsed form of it is reused too.
      let whole = options.reuse ? (wholeClaims.get(route) as (typeof candidates)[number] | undefined) : undefined;
      if (whole === undefined) {
        whole = { ...base, id: route.id, hosts: route.hosts };
        if (options.reuse) wholeClaims.set(route, whole);
      }
      candidates.push(whole);
      owner.set(route.id, route);
      continue;
    }
    for (const host of new Set(route.hosts.map((h) => h.toLowerCase()))) {
      // NUL cannot appear in a route id from either producer, so the claim ids stay apart from real ones.
      const id = `${route.id}\u0000${host}`;
      candidates.push({ ...base, id, hosts: [host] });
      owner.set(id, route);
    }
  }
  const lostHosts = new Map<R, Claim[]>();
  for (const lost of resolveClaims(candidates, (c) => c.listeners, { reuseParsed: options.reuse === true })) {
    const route = owner.get(lost.route) as R;
    const claim: Claim = { by: (owner.get(lost.by) as R).id, method: lost.method, host: lost.host };
    if (lost.route === route.id) rejected.set(route, { route, reason: 'Conflicted', ...claim });
    else lostHosts.set(route, [...(lostHosts.get(route) ?? []), claim]);
  }
  const accepted: R[] = [];
  const trimmed: { route: R; lost: Claim[] }[] = [];
  for (const route of routes) {
    if (rejected.has(route)) continue;
    const lost = lostHosts.get(route);
    if (lost === undefined) {
      accepted.push(route);
      continue;
    }
    const gone = new Set(lost.map((c) => c.host));
    const kept = route.hosts.filter((h) => !gone.has(h.toLowerCase()));
    if (kept.length === 0) {
      rejected.set(route, { route, reason: 'Conflicted', ...(lost[0] as Claim) });
      continue;
    }
    const copy = { ...route, hosts: kept };
    accepted.push(copy);
    trimmed.push({ route: copy, lost });
  }
  return { accepted, rejected: routes.flatMap((r) => rejected.get(r) ?? []), trimmed };
}

/** "GET /pfx/ for host a.test": what a conflict is about, for messages. */
export function describeClaim(c: { route: MatchableRoute; method: string; host: string }): string {
  const conditional = (c.route.headers?.length ?? 0) + (c.route.queryParams?.length ?? 0) > 0;
  return `${c.method === '*' ? 'any method' : c.method} ${c.route.path.value}${c.host === '*' ? '' : ` for host ${c.host}`}${conditional ? ', with the same header and query conditions' : ''}`;
}
