/**
 * The Gateway API front end of compile: GatewayClasses, then Gateways, then
 * HTTPRoutes, each reading the verdicts of the ones before. What it adds to
 * the table (routes, the Services they name, certificates) goes through the
 * same conflict resolution as GatewayRoutes; its statuses are finished once
 * that is done, because a route that loses a host to an older one says so.
 */
import type { Certificate, Claim, Listener, Route, Upstream } from '../../../../dataplane/src/contract/index.ts';
import type { ParentRef } from '../../api/gateway-api.ts';
import { condition, type ConditionInput } from '../../status/conditions.ts';
import { GwCondition, GwReason } from '../../status/gateway-api.ts';
import type { GatewayAddress, Snapshot } from '../snapshot.ts';
import type { UpstreamResult } from '../upstreams.ts';
import { compileGatewayClasses, SUPPORTED_FEATURES } from './gateway-classes.ts';
import { compileGateways, tableCertificates, type DesiredService } from './gateways.ts';
import { compileHTTPRoutes, type RouteCandidate } from './httproutes.ts';
import { ReferenceGrants } from './reference-grants.ts';

export type { RouteCandidate } from './httproutes.ts';
export { SUPPORTED_FEATURES } from './gateway-classes.ts';
export { controllerLabel, GATEWAY_PORT_RANGE, GATEWAY_SERVICE_LABEL, type DesiredService } from './gateways.ts';

/** The status of a GatewayClass, as written. */
export interface GatewayClassStatus {
  kind: 'GatewayClass';
  namespace: '';
  name: string;
  generation: number;
  conditions: ConditionInput[];
  supportedFeatures: { name: string }[];
}

/** The status of one listener, as written. */
export interface ListenerStatus {
  name: string;
  supportedKinds: { group: string; kind: string }[];
  attachedRoutes: number;
  conditions: ConditionInput[];
}

/** The status of a Gateway, as written. */
export interface GatewayStatus {
  kind: 'Gateway';
  namespace: string;
  name: string;
  generation: number;
  conditions: ConditionInput[];
  addresses: GatewayAddress[];
  listeners: ListenerStatus[];
}

/** The status Switchyard writes for one parent of an HTTPRoute (its entry in `status.parents`). */
export interface RouteParentStatus {
  parentRef: ParentRef;
  controllerName: string;
  conditions: ConditionInput[];
}

/** Switchyard's entries of an HTTPRoute's `status.parents` (none when it is not attached); entries of other controllers are not Switchyard's to touch. */
export interface HTTPRouteStatus {
  kind: 'HTTPRoute';
  namespace: string;
  name: string;
  generation: number;
  controllerName: string;
  parents: RouteParentStatus[];
}

/** The status of a RoutePolicy. */
export interface RoutePolicyStatus {
  kind: 'RoutePolicy';
  namespace: string;
  name: string;
  generation: number;
  conditions: ConditionInput[];
}

/** A Gateway API object's status as compile decides it. */
export type GatewayApiStatus = GatewayClassStatus | GatewayStatus | HTTPRouteStatus | RoutePolicyStatus;

/** What the Gateway API objects add to the table, and how to finish their statuses once conflicts are resolved. */
export interface GatewayApiCompilation {
  candidates: RouteCandidate[];
  upstreams: Upstream[];
  certificates: Certificate[];
  /** Gateways' own sockets. */
  listeners: Listener[];
  /** Gateways' own Services, which the operator keeps. */
  services: DesiredService[];
  /** Statuses keyed `Kind/namespace/name` (`GatewayClass/name`), given what the resolution took from each route. */
  finish(outcome: { trimmed: ReadonlyMap<string, { lost: Claim[]; describe: (id: string) => string }>; rejected: ReadonlyMap<string, { claim: Claim; describe: (id: string) => string }> }): Map<string, GatewayApiStatus>;
}

/** Compiles the Gateway API objects of a snapshot; undefined when the cluster has no Gateway API. */
export function compileGatewayApi(snapshot: Snapshot, upstreams: readonly UpstreamResult[]): GatewayApiCompilation | undefined {
  const api = snapshot.gatewayApi;
  if (api === undefined) return undefined;
  const controllerName = api.controllerName;
  const grants = new ReferenceGrants(api.referenceGrants);
  const classes = compileGatewayClasses(api.gatewayClasses, controllerName);
  const gateways = compileGateways(api, classes, grants);
  const routes = compileHTTPRoutes(snapshot, api, gateways, grants, upstreams);
  const candidates = routes.routes.flatMap((r) => r.candidates);
  const used = new Set(candidates.flatMap((c) => [...c.route.backends.filter((b) => b.unresolved === undefined).map((b) => b.upstream), ...(c.route.mirrors ?? []).map((m) => m.upstream)]));

  return {
    candidates,
    // Only the Services a table route sends to: a Service named by a route that is not attached anywhere costs nothing.
    upstreams: [...routes.upstreams.values()].filter((u) => used.has(u.name)),
    certificates: tableCertificates(gateways),
    listeners: gateways.flatMap((g) => g.sockets),
    services: gateways.flatMap((g) => (g.service === undefined ? [] : [g.service])),
    finish: ({ trimmed, rejected }) => {
      const out = new Map<string, GatewayApiStatus>();
      for (const c of classes.values()) {
        out.set(`GatewayClass/${c.name}`, {
          kind: 'GatewayClass',
          namespace: '',
          name: c.name,
          generation: c.generation,
          conditions: c.conditions,
          supportedFeatures: c.accepted ? SUPPORTED_FEATURES.map((name) => ({ name })) : [],
        });
      }
      for (const g of gateways) {
        out.set(`Gateway/${g.key}`, {
          kind: 'Gateway',
          namespace: g.meta.namespace,
          name: g.meta.name,
          generation: g.meta.generation,
          conditions: g.conditions,
          addresses: g.addresses,
          listeners: g.listeners.map((l) => ({ name: l.name, supportedKinds: l.supportedKinds, attachedRoutes: l.attachedRoutes, conditions: l.conditions })),
        });
      }
      for (const r of routes.routes) {
        const lost: string[] = [];
        for (const c of r.candidates) {
          const t = trimmed.get(c.route.id);
          const x = rejected.get(c.route.id);
          if (t) for (const claim of t.lost) lost.push(`${c.where} on ${claim.host === '*' ? 'any host' : claim.host}: ${t.describe(claim.by)} comes first`);
          if (x) lost.push(`${c.where}${x.claim.host === '*' ? '' : ` on ${x.claim.host}`}: ${x.describe(x.claim.by)} comes first`);
        }
        const unique = [...new Set(lost)];
        const shadowed =
          unique.length === 0
            ? undefined
            : condition(GwCondition.Shadowed, true, GwReason.Shadowed, `never serves ${unique.slice(0, 5).join('; ')}${unique.length > 5 ? `; and ${unique.length - 5} more` : ''} (an older route with the same host, path, method and conditions wins)`);
        out.set(`HTTPRoute/${r.key}`, {
          kind: 'HTTPRoute',
          namespace: r.meta.namespace,
          name: r.meta.name,
          generation: r.meta.generation,
          controllerName,
          parents: r.parents.map((p) => ({
            parentRef: p.parentRef,
            controllerName,
            conditions: shadowed !== undefined && p.accepted ? [...p.conditions, shadowed] : p.conditions,
          })),
        });
      }
      for (const p of routes.policies) {
        out.set(`RoutePolicy/${p.key}`, { kind: 'RoutePolicy', namespace: p.meta.namespace, name: p.meta.name, generation: p.meta.generation, conditions: p.conditions });
      }
      return new Map([...out.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    },
  };
}

/** Whether a table route came from an HTTPRoute (its hosts are claimed one by one, as the Gateway API resolves ties). */
export function fromHTTPRoute(route: Route): boolean {
  return route.source?.kind === 'HTTPRoute';
}
