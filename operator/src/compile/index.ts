/**
 * The one pure function of the operator: snapshot in, route table and
 * statuses out. No I/O, no clock, no randomness: the same snapshot always
 * gives the same table, with the same version.
 */
import { parseTableReusing, type Route, type RouteTable } from '../../../dataplane/src/contract/index.ts';
import { tableVersion } from '../../../dataplane/src/contract/index.ts';
import type { ConditionInput } from '../status/conditions.ts';
import { compileGatewayApi, type DesiredService, type GatewayApiStatus } from './gateway-api/index.ts';
import { compileRoutes } from './routes.ts';
import type { Snapshot } from './snapshot.ts';
import { compileUpstreams } from './upstreams.ts';

/** What compile says about one object. */
export interface ObjectStatus {
  kind: 'GatewayRoute' | 'Upstream';
  namespace: string;
  name: string;
  generation: number;
  conditions: ConditionInput[];
  readyEndpoints?: number;
  totalEndpoints?: number;
}

/** The result of one compile run. */
export interface CompileResult {
  table: RouteTable;
  /** Keyed `Kind/namespace/name`, sorted. */
  statuses: Map<string, ObjectStatus>;
  /** For each route in the table, the generation it was compiled from (for Programmed). */
  routeGenerations: Map<string, number>;
  /** Gateway API objects (GatewayClass, Gateway, HTTPRoute) and RoutePolicies, keyed `Kind/namespace/name` (`GatewayClass/name`), sorted. */
  gatewayApi: Map<string, GatewayApiStatus>;
  /** The Services of Gateways that have their own, which the operator keeps; sorted by name. */
  gatewayServices: DesiredService[];
}

const split = (key: string): { namespace: string; name: string } => {
  const i = key.indexOf('/');
  return { namespace: key.slice(0, i), name: key.slice(i + 1) };
};

/**
 * Each table route validated, by the object compileRoutes built it as. An
 * unchanged GatewayRoute is built as the same object on every compile, so it is
 * validated once, and the table hash and the conflict matcher reuse their work
 * for it: a compile costs a fraction for the routes that did not change.
 */
const validatedRoutes = new WeakMap<object, Route>();

/** Compiles a snapshot. */
export function compile(snapshot: Snapshot): CompileResult {
  const upstreams = compileUpstreams(snapshot);
  const gatewayApi = compileGatewayApi(snapshot, upstreams);
  const routes = compileRoutes(snapshot.routes, upstreams, gatewayApi?.candidates ?? []);

  // Routes stay in precedence order (conflict order); upstreams are sorted by name.
  const table = parseTableReusing({
    version: 'unversioned',
    routes: routes.table,
    upstreams: [...upstreams.flatMap((u) => (u.upstream ? [u.upstream] : [])), ...(gatewayApi?.upstreams ?? [])].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
    ...(gatewayApi !== undefined && gatewayApi.listeners.length > 0 ? { listeners: gatewayApi.listeners } : {}),
    ...(gatewayApi !== undefined && gatewayApi.certificates.length > 0 ? { certificates: gatewayApi.certificates } : {}),
  }, validatedRoutes);
  table.version = tableVersion(table, { reuse: true });

  const statuses = new Map<string, ObjectStatus>();
  for (const u of upstreams) {
    statuses.set(`Upstream/${u.key}`, { kind: 'Upstream', ...split(u.key), generation: u.generation, conditions: u.conditions, readyEndpoints: u.readyEndpoints, totalEndpoints: u.totalEndpoints });
  }
  for (const r of routes.results) statuses.set(`GatewayRoute/${r.key}`, { kind: 'GatewayRoute', ...split(r.key), generation: r.generation, conditions: r.conditions });
  const sorted = new Map([...statuses.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  const routeGenerations = new Map(routes.results.flatMap((r) => (r.route ? [[r.key, r.generation] as const] : [])));
  const gatewayStatuses = gatewayApi?.finish({ trimmed: routes.trimmed, rejected: routes.rejected }) ?? new Map<string, GatewayApiStatus>();
  const gatewayServices = [...(gatewayApi?.services ?? [])].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { table, statuses: sorted, routeGenerations, gatewayApi: gatewayStatuses, gatewayServices };
}

export type { Snapshot } from './snapshot.ts';
export { controllerLabel, GATEWAY_PORT_RANGE, GATEWAY_SERVICE_LABEL } from './gateway-api/index.ts';
export type { DesiredService, GatewayApiStatus, GatewayClassStatus, GatewayStatus, HTTPRouteStatus, ListenerStatus, RouteParentStatus, RoutePolicyStatus } from './gateway-api/index.ts';
