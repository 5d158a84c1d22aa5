/**
 * A table made ready to serve: the matcher, the upstreams with their pools, and
 * each route's stages, all built before the swap so the hot path only reads.
 */
import { compileMatcher, type Matcher } from '../routing/matcher.ts';
import type { Stage } from '../pipeline/context.ts';
import { buildUpstreams, type UpstreamRuntime } from '../upstream/upstream.ts';
import type { PoolRegistry } from '../upstream/pools.ts';
import { withGatewayDefaults, type GatewayDefaults, type ServedRoute } from '../contract/policy.ts';
import type { Certificate, Route, RouteTable } from '../contract/schema.ts';
import { CertificateSelector } from './certificates.ts';

/** A backend a request was given to: an upstream, or why the backend cannot serve (answered 500). */
export interface PickedBackend {
  readonly upstream: UpstreamRuntime | undefined;
  readonly unresolved: string | undefined;
}

/** A route of the live table. */
export class RouteRuntime {
  readonly id: string;
  readonly hosts: string[];
  readonly path: Route['path'];
  readonly methods: string[];
  readonly headers: Route['headers'];
  readonly queryParams: Route['queryParams'];
  readonly methodsAsCondition: boolean | undefined;
  /** The route as served: the table's entry with the gateway-wide policy under its own. */
  readonly def: ServedRoute;
  readonly stages: readonly Stage[];
  /** Upstreams that get a copy of each request (the table's `mirrors`), with the share mirrored. */
  readonly mirrors: readonly { upstream: UpstreamRuntime; percent: number }[];
  private readonly backends: (PickedBackend & { weight: number; current: number })[];
  private readonly totalWeight: number;

  constructor(def: ServedRoute, upstreams: ReadonlyMap<string, UpstreamRuntime>, stages: readonly Stage[]) {
    this.id = def.id;
    this.hosts = def.hosts;
    this.path = def.path;
    this.methods = def.methods;
    this.headers = def.headers;
    this.queryParams = def.queryParams;
    this.methodsAsCondition = def.methodsAsCondition;
    this.def = def;
    this.stages = stages;
    this.backends = def.backends
      .filter((b) => b.weight > 0)
      .map((b) => ({ upstream: b.unresolved === undefined ? upstreams.get(b.upstream) : undefined, unresolved: b.unresolved, weight: b.weight, current: 0 }));
    this.totalWeight = this.backends.reduce((n, b) => n + b.weight, 0);
    this.mirrors = (def.mirrors ?? []).flatMap((m) => {
      const upstream = upstreams.get(m.upstream);
      return upstream ? [{ upstream, percent: m.percent }] : [];
    });
  }

  /** Whether each upstream this route sends or mirrors to is, in `upstreams`, the object it holds (or absent from both). */
  sameUpstreams(upstreams: ReadonlyMap<string, UpstreamRuntime>): boolean {
    const backends = this.def.backends.filter((b) => b.weight > 0);
    for (let i = 0; i < backends.length; i++) {
      const b = backends[i] as (typeof backends)[number];
      const now = b.unresolved === undefined ? upstreams.get(b.upstream) : undefined;
      if (this.backends[i]?.upstream !== now) return false;
    }
    const mirrors = (this.def.mirrors ?? []).flatMap((m) => upstreams.get(m.upstream) ?? []);
    return mirrors.length === this.mirrors.length && mirrors.every((u, i) => this.mirrors[i]?.upstream === u);
  }

  /**
   * The upstream for this request. Weighted backends use smooth weighted round
   * robin, so a 90/10 canary gets exactly 10 of every 100 requests, spread out.
   */
  pickBackend(): PickedBackend | undefined {
    const list = this.backends;
    if (list.length === 1) return list[0];
    let best: (typeof list)[number] | undefined;
    for (const b of list) {
      b.current += b.weight;
      if (!best || b.current > best.current) best = b;
    }
    if (!best) return undefined;
    best.current -= this.totalWeight;
    return best;
  }
}

/** Everything the request path needs from one table version. */
export interface TableRuntime {
  readonly table: RouteTable;
  readonly version: string;
  /** Where the table came from: a file path or the operator's URL. */
  readonly source: string;
  /** The routes the `http` listener serves. */
  readonly matcher: Matcher<RouteRuntime>;
  /** The routes the `https` listener serves: the same matcher unless some route names its listeners. */
  readonly tlsMatcher: Matcher<RouteRuntime>;
  /** The routes of every listener, by name: `http`, `https` and those the table declares. */
  readonly listenerMatchers: ReadonlyMap<string, Matcher<RouteRuntime>>;
  /** The table's certificates, by the listener that presents them, chosen by SNI; empty when the table has none. */
  readonly certificates: ReadonlyMap<string, CertificateSelector>;
  /** The table's routes as served, in table order. */
  readonly routes: readonly RouteRuntime[];
  readonly upstreams: ReadonlyMap<string, UpstreamRuntime>;
  /** The gateway-wide policy the routes were built with. */
  readonly defaults: GatewayDefaults;
}

/** Builds the stages of one route; supplied by whoever owns the pipeline's dependencies. */
export type StageFactory = (route: ServedRoute) => Stage[];

/** Builds a runtime for a validated table. Throws (naming the route) if the matcher cannot be built. */
export function buildRuntime(
  table: RouteTable,
  source: string,
  pools: PoolRegistry,
  stagesFor: StageFactory,
  defaults: GatewayDefaults,
  previous?: TableRuntime,
): TableRuntime {
  const upstreams = buildUpstreams(table.upstreams, pools, previous?.upstreams);
  // A route whose entry is the previous table's own object (a delta left it alone) keeps its runtime and
  // stages, as long as the gateway-wide policy and every upstream it sends to are the same objects too.
  const kept = new Map<Route, RouteRuntime>();
  if (previous !== undefined && previous.defaults === defaults) previous.table.routes.forEach((r, i) => kept.set(r, previous.routes[i] as RouteRuntime));
  const routes = table.routes.map((r) => {
    const before = kept.get(r);
    if (before !== undefined && before.sameUpstreams(upstreams)) return before;
    const served = withGatewayDefaults(r, defaults);
    return new RouteRuntime(served, upstreams, stagesFor(served));
  });
  // A route naming its listeners is served on those only (none named: http and https); then each listener gets its own matcher.
  const scoped = routes.some((r) => r.def.listeners !== undefined);
  const on = (l: string) => (r: RouteRuntime): boolean => (r.def.listeners === undefined ? l === 'http' || l === 'https' : r.def.listeners.includes(l));
  // Route runtimes never change once built, so the matcher may keep their parsed form for the next table.
  const reuse = { reuseParsed: true };
  const matcher = compileMatcher(scoped ? routes.filter(on('http')) : routes, reuse);
  const tlsMatcher = scoped ? compileMatcher(routes.filter(on('https')), reuse) : matcher;
  const listenerMatchers = new Map<string, Matcher<RouteRuntime>>([
    ['http', matcher],
    ['https', tlsMatcher],
    ...(table.listeners ?? []).map((l) => [l.name, compileMatcher(routes.filter(on(l.name)), reuse)] as const),
  ]);
  const byListener = new Map<string, Certificate[]>();
  for (const c of table.certificates ?? []) byListener.set(c.listener, [...(byListener.get(c.listener) ?? []), c]);
  const certificates = new Map([...byListener].map(([l, list]) => [l, new CertificateSelector(list)] as const));
  return { table, version: table.version, source, matcher, tlsMatcher, listenerMatchers, certificates, routes, upstreams, defaults };
}
