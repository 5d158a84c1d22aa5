/**
 * Which routes a table may hold, decided by the matcher that serves them:
 * a route is valid when the matcher compiles it, and it conflicts when the
 * matcher would give every request it claims for some host and method to an
 * earlier route (same path shape, method and conditions). Both table
 * producers call this with routes in precedence order (oldest first for
 * GatewayRoutes, file order for gateway.yaml), and serve only the accepted
 * ones, so what a status or `--check` says is what the data plane does.
 */
import { compileMatcher, routeProblem, type MatchableRoute } from '../routing/matcher.ts';

/** Why a route is not in the table. */
export type RouteRejection<R> =
  | { route: R; reason: 'Invalid'; message: string }
  /** `by` is the id of the earlier route that wins; `method` is `*` for any method, `host` is `*` for any host. */
  | { route: R; reason: 'Conflicted'; by: string; method: string; host: string };

/** The verdict on a list of routes. */
export interface RouteResolution<R> {
  /** In the order given. */
  accepted: R[];
  /** In the order given. */
  rejected: RouteRejection<R>[];
}

/** Checks each route on its own, then resolves conflicts in the order given (the first route wins). */
export function resolveRoutes<R extends MatchableRoute>(routes: readonly R[]): RouteResolution<R> {
  const rejected = new Map<R, RouteRejection<R>>();
  const valid: R[] = [];
  for (const route of routes) {
    const problem = routeProblem(route);
    if (problem === undefined) valid.push(route);
    else rejected.set(route, { route, reason: 'Invalid', message: problem });
  }
  const byId = new Map(valid.map((r) => [r.id, r]));
  for (const s of compileMatcher(valid, { exclusive: true }).shadowed) {
    const route = byId.get(s.route) as R;
    rejected.set(route, { route, reason: 'Conflicted', by: s.by, method: s.method, host: s.host });
  }
  return { accepted: routes.filter((r) => !rejected.has(r)), rejected: routes.flatMap((r) => rejected.get(r) ?? []) };
}

/** "GET /pfx/ for host a.test, with the same header and query conditions": what a conflict is about, for messages. */
export function describeClaim(c: { route: MatchableRoute; method: string; host: string }): string {
  const conditional = (c.route.headers?.length ?? 0) + (c.route.queryParams?.length ?? 0) > 0;
  return `${c.method === '*' ? 'any method' : c.method} ${c.route.path.value}${c.host === '*' ? '' : ` for host ${c.host}`}${conditional ? ', with the same header and query conditions' : ''}`;
}
