/**
 * HTTPRoutes: which Gateway listeners each attaches to, what each rule
 * becomes in the route table, and the status of each parent.
 *
 * Every match of every rule becomes one table route per data plane listener
 * (`http`, `https`) the route is attached through, with the hostnames the
 * route and those listeners share, its method as a condition (a request no
 * match takes is a 404, never a 405), and the rule's filters and backends.
 * Conflicts with older routes are resolved afterwards, with GatewayRoutes, in
 * compile/routes.ts.
 */
import {
  parseDuration,
  requestHeaderModifiable,
  responseHeaderModifiable,
  routeProblem,
  UPSTREAM_DEFAULTS,
  type HeaderModifier,
  type Redirect,
  type Route,
  type Upstream,
} from '../../../../dataplane/src/contract/index.ts';
import { GATEWAY_API_GROUP, type HTTPRouteFilter, type HTTPRouteRule, type HTTPRouteSpec, type ParentRef } from '../../api/gateway-api.ts';
import { GROUP as SWITCHYARD_GROUP } from '../../api/common.ts';
import type { RoutePolicySpec } from '../../api/routepolicy.ts';
import { condition, ConditionType, Reason, type ConditionInput } from '../../status/conditions.ts';
import { GwCondition, GwReason } from '../../status/gateway-api.ts';
import { keyOf, type GatewayApiSnapshot, type ObjectMeta, type Parsed, type Snapshot } from '../snapshot.ts';
import { sliceEndpoints, type UpstreamResult } from '../upstreams.ts';
import type { GatewayResult, ListenerResult } from './gateways.ts';
import type { ReferenceGrants } from './reference-grants.ts';

/** A table route an HTTPRoute match produced, with what orders it among all routes. */
export interface RouteCandidate {
  route: Route;
  kind: 'HTTPRoute';
  /** `namespace/name` of the HTTPRoute. */
  key: string;
  created: string;
  /** Rule, match, listener: the order within the HTTPRoute. */
  seq: number;
  /** `rules[i].matches[j]`, for messages. */
  where: string;
}

/** The status of one parent of an HTTPRoute, before conflicts are known. */
export interface ParentResult {
  parentRef: ParentRef;
  accepted: boolean;
  conditions: ConditionInput[];
}

/** Compile's verdict on one HTTPRoute. */
export interface HTTPRouteResult {
  key: string;
  meta: ObjectMeta;
  /** Only parents that are Gateways of Switchyard's classes. */
  parents: ParentResult[];
  candidates: RouteCandidate[];
}

/** Compile's verdict on one RoutePolicy. */
export interface PolicyResult {
  key: string;
  meta: ObjectMeta;
  conditions: ConditionInput[];
}

/** Everything the HTTPRoutes compile to. */
export interface HTTPRoutesResult {
  routes: HTTPRouteResult[];
  /** Upstreams for the Services HTTPRoutes name, by table name. */
  upstreams: Map<string, Upstream>;
  policies: PolicyResult[];
}

/** A reference problem: the first one found is the ResolvedRefs reason. */
interface Issue {
  reason: string;
  message: string;
}

/** The hostname `pattern` covers `host` (equal, or a wildcard matching one or more labels). */
function covers(pattern: string, host: string): boolean {
  return pattern === host || (pattern.startsWith('*.') && host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1);
}

/**
 * The hostnames a route serves through a listener: the route's narrowed to the
 * listener's. `[]` is any host; undefined when they have none in common.
 */
export function intersectHostnames(listener: string | undefined, route: readonly string[]): string[] | undefined {
  if (listener === undefined) return [...route];
  if (route.length === 0) return [listener];
  const out = new Set<string>();
  for (const h of route) {
    if (covers(listener, h)) out.add(h);
    else if (covers(h, listener)) out.add(listener);
  }
  return out.size === 0 ? undefined : [...out];
}

/** What a rule becomes, shared by each of its matches. */
interface CompiledRule {
  /** Why the rule cannot be served (an unsupported field); it is then left out. */
  problem: string | undefined;
  fields: Partial<Route>;
  backends: Route['backends'];
}

/** Durations of the Gateway API (GEP-2257: "1h", "500ms"); "0s" turns a timeout off, up to the table's longest. */
function timeoutMs(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDuration(text);
  if (ms === undefined) return undefined;
  return ms === 0 ? 24 * 3600 * 1000 : Math.min(ms, 24 * 3600 * 1000);
}

const SERVICE_PROTOCOLS_UNSUPPORTED = new Set(['kubernetes.io/h2c', 'kubernetes.io/ws', 'kubernetes.io/wss']);

class RouteCompiler {
  readonly upstreams = new Map<string, Upstream>();
  private readonly api: GatewayApiSnapshot;
  private readonly snapshot: Snapshot;
  private readonly grants: ReferenceGrants;
  private readonly upstreamResults: ReadonlyMap<string, UpstreamResult>;
  private readonly policies: ReadonlyMap<string, Parsed<RoutePolicySpec>>;

  constructor(snapshot: Snapshot, api: GatewayApiSnapshot, grants: ReferenceGrants, upstreams: readonly UpstreamResult[]) {
    this.snapshot = snapshot;
    this.api = api;
    this.grants = grants;
    this.upstreamResults = new Map(upstreams.map((u) => [u.key, u]));
    this.policies = new Map(api.routePolicies.map((p) => [keyOf(p.meta), p]));
  }

  /** A backend reference as a table backend; `issue` says why it cannot serve (then it answers 500). */
  backend(meta: ObjectMeta, ref: { group: string; kind: string; name: string; namespace?: string | undefined; port?: number | undefined }): { upstream: string; issue?: Issue } {
    const namespace = ref.namespace ?? meta.namespace;
    const label = `${ref.kind} "${namespace}/${ref.name}"`;
    const from = { group: GATEWAY_API_GROUP, kind: 'HTTPRoute', namespace: meta.namespace };
    const isService = ref.group === '' && ref.kind === 'Service';
    const isUpstream = ref.group === SWITCHYARD_GROUP && ref.kind === 'Upstream';
    const placeholder = `${ref.kind}:${namespace}/${ref.name}${ref.port === undefined ? '' : `:${ref.port}`}`;
    if (!isService && !isUpstream) {
      return { upstream: placeholder, issue: { reason: GwReason.InvalidKind, message: `backendRef ${ref.group === '' ? 'core' : ref.group}/${ref.kind} "${ref.name}": backends are Services or Switchyard Upstreams` } };
    }
    if (!this.grants.permits(from, { group: ref.group, kind: ref.kind, namespace }, ref.name)) {
      return { upstream: placeholder, issue: { reason: GwReason.RefNotPermitted, message: `${label} is in another namespace and no ReferenceGrant there allows HTTPRoutes from "${meta.namespace}" to use it` } };
    }
    if (isUpstream) {
      const u = this.upstreamResults.get(`${namespace}/${ref.name}`);
      if (u === undefined) return { upstream: placeholder, issue: { reason: GwReason.BackendNotFound, message: `${label} not found` } };
      if (u.upstream === undefined) return { upstream: placeholder, issue: { reason: GwReason.BackendNotFound, message: `${label} is not accepted` } };
      return { upstream: u.upstream.name };
    }
    const service = this.snapshot.services.find((s) => s.namespace === namespace && s.name === ref.name);
    if (service === undefined) return { upstream: placeholder, issue: { reason: GwReason.BackendNotFound, message: `${label} not found` } };
    if (ref.port === undefined) return { upstream: placeholder, issue: { reason: GwReason.BackendNotFound, message: `${label}: a Service backendRef needs a port` } };
    const port = service.ports.find((p) => p.port === ref.port && (p.protocol ?? 'TCP') === 'TCP');
    if (port === undefined) return { upstream: placeholder, issue: { reason: GwReason.BackendNotFound, message: `${label} has no TCP port ${ref.port}` } };
    if (port.appProtocol !== undefined && SERVICE_PROTOCOLS_UNSUPPORTED.has(port.appProtocol)) {
      return { upstream: placeholder, issue: { reason: GwReason.UnsupportedProtocol, message: `${label} port ${ref.port} speaks ${port.appProtocol}; the data planes speak HTTP/1.1 to backends` } };
    }
    const name = `service:${namespace}/${ref.name}:${ref.port}`;
    if (!this.upstreams.has(name)) {
      const slices = this.snapshot.endpointSlices.filter((s) => s.namespace === namespace && s.serviceName === ref.name);
      const { ready } = sliceEndpoints(slices, port.name, 'http');
      this.upstreams.set(name, {
        name,
        endpoints: ready.map((url) => ({ url, weight: 1 })),
        loadBalancer: 'RoundRobin',
        pool: { connectionsPerEndpoint: UPSTREAM_DEFAULTS.pool.connectionsPerEndpoint, connectTimeoutMs: UPSTREAM_DEFAULTS.pool.connectTimeoutMs },
        source: { kind: 'Service', namespace, name: ref.name },
      });
    }
    return { upstream: name };
  }

  /** The settings of a RoutePolicy an ExtensionRef names, or the issue that makes the rule answer 500. */
  policy(meta: ObjectMeta, ref: { group: string; kind: string; name: string }): { fields?: Partial<Route>; issue?: Issue } {
    if (ref.group !== SWITCHYARD_GROUP || ref.kind !== 'RoutePolicy') {
      return { issue: { reason: GwReason.InvalidKind, message: `ExtensionRef ${ref.group}/${ref.kind} "${ref.name}": Switchyard's extension is ${SWITCHYARD_GROUP}/RoutePolicy` } };
    }
    const p = this.policies.get(`${meta.namespace}/${ref.name}`);
    if (p === undefined) return { issue: { reason: GwReason.PolicyNotFound, message: `RoutePolicy "${ref.name}" not found in namespace "${meta.namespace}"` } };
    if (p.spec === undefined) return { issue: { reason: GwReason.PolicyNotFound, message: `RoutePolicy "${ref.name}" is not valid: ${p.error}` } };
    const s = p.spec;
    const ms = (d: string): number => parseDuration(d) as number;
    return {
      fields: {
        auth: s.auth ?? { required: false, roles: [], permissions: [] },
        rateLimit: s.rateLimit && { limit: s.rateLimit.requests, windowMs: s.rateLimit.window === undefined ? undefined : ms(s.rateLimit.window), key: s.rateLimit.key },
        cors: s.cors && {
          allowedOrigins: s.cors.allowedOrigins,
          allowedMethods: s.cors.allowedMethods,
          allowedHeaders: s.cors.allowedHeaders,
          exposedHeaders: s.cors.exposedHeaders,
          allowCredentials: s.cors.allowCredentials,
          maxAgeSeconds: s.cors.maxAge,
        },
        retries: s.retries && { attempts: s.retries.attempts, on: s.retries.retryOn, nonIdempotent: s.retries.nonIdempotent, backoffMs: ms(s.retries.backoff) },
        ...(s.timeout === undefined ? {} : { timeoutMs: ms(s.timeout) }),
      },
    };
  }

  /** One rule's filters, timeouts and backends; issues are the route's ResolvedRefs problems. */
  rule(meta: ObjectMeta, rule: HTTPRouteRule, issues: Issue[]): CompiledRule {
    const unsupported = (what: string): CompiledRule => ({ problem: `${what} is not supported`, fields: {}, backends: [] });
    if (rule.retry !== undefined) return unsupported('retry');
    if (rule.sessionPersistence !== undefined) return unsupported('sessionPersistence');
    if (rule.backendRefs.some((b) => (b.filters ?? []).length > 0)) return unsupported('backendRefs[].filters');
    const fields: Partial<Route> = {};
    const failing: string[] = [];
    const timeouts = rule.timeouts;
    if (timeouts?.request !== undefined) fields.timeoutMs = timeoutMs(timeouts.request);
    if (timeouts?.backendRequest !== undefined) fields.attemptTimeoutMs = timeoutMs(timeouts.backendRequest);
    let policy: Partial<Route> | undefined;
    for (const f of rule.filters) {
      const problem = this.filter(meta, f, fields, issues, failing, (p) => (policy = p));
      if (problem !== undefined) return { problem, fields: {}, backends: [] };
    }
    // A RoutePolicy's timeout is more specific than the rule's.
    if (policy !== undefined) Object.assign(fields, Object.fromEntries(Object.entries(policy).filter(([, v]) => v !== undefined)));
    let backends: Route['backends'] = [];
    if (failing.length > 0) {
      // A filter that cannot be applied must not be skipped: the rule answers 500 instead (the API's rule for ExtensionRef).
      backends = [{ upstream: 'filter', weight: 1, unresolved: failing.join('; ') }];
    } else if (fields.redirect === undefined) {
      for (const ref of rule.backendRefs) {
        const b = this.backend(meta, ref);
        if (b.issue !== undefined) issues.push(b.issue);
        backends.push({ upstream: b.upstream, weight: ref.weight, ...(b.issue === undefined ? {} : { unresolved: b.issue.message }) });
      }
      if (backends.length === 0) backends = [{ upstream: 'none', weight: 1, unresolved: 'the rule has no backendRefs' }];
      else if (!backends.some((b) => b.weight > 0)) backends = [{ upstream: 'none', weight: 1, unresolved: 'every backendRef of the rule has weight 0' }];
    }
    return { problem: undefined, fields, backends };
  }

  /** Applies one filter to `fields`; returns why the rule cannot be served, if it cannot. */
  private filter(meta: ObjectMeta, f: HTTPRouteFilter, fields: Partial<Route>, issues: Issue[], failing: string[], setPolicy: (p: Partial<Route>) => void): string | undefined {
    const modifier = (m: HeaderModifier | undefined, allowed: (n: string) => boolean, what: string): HeaderModifier | string => {
      const named = [...(m?.set ?? []).map((h) => h.name), ...(m?.add ?? []).map((h) => h.name), ...(m?.remove ?? [])];
      const refused = named.filter((n) => !allowed(n));
      if (refused.length > 0) return `${what} may not change ${refused.join(', ')}: the gateway sets ${refused.length === 1 ? 'it' : 'them'}`;
      return { ...(m?.set ? { set: m.set } : {}), ...(m?.add ? { add: m.add } : {}), ...(m?.remove ? { remove: m.remove } : {}) };
    };
    switch (f.type) {
      case 'RequestHeaderModifier': {
        const m = modifier(f.requestHeaderModifier, requestHeaderModifiable, 'RequestHeaderModifier');
        if (typeof m === 'string') return m;
        fields.requestHeaders = m;
        return undefined;
      }
      case 'ResponseHeaderModifier': {
        const m = modifier(f.responseHeaderModifier, responseHeaderModifiable, 'ResponseHeaderModifier');
        if (typeof m === 'string') return m;
        fields.responseHeaders = m;
        return undefined;
      }
      case 'RequestRedirect': {
        const r = f.requestRedirect;
        if (r === undefined) return 'RequestRedirect needs requestRedirect';
        if (r.scheme !== undefined && r.scheme !== 'http' && r.scheme !== 'https') return `RequestRedirect scheme ${r.scheme} is not supported`;
        const redirect: Redirect = { statusCode: r.statusCode as Redirect['statusCode'] };
        if (r.scheme !== undefined) redirect.scheme = r.scheme;
        if (r.hostname !== undefined) redirect.hostname = r.hostname;
        if (r.port !== undefined) redirect.port = r.port;
        if (r.path?.type === 'ReplaceFullPath') redirect.path = { type: 'Full', value: r.path.replaceFullPath ?? '/' };
        if (r.path?.type === 'ReplacePrefixMatch') redirect.path = { type: 'Prefix', value: r.path.replacePrefixMatch ?? '/' };
        fields.redirect = redirect;
        return undefined;
      }
      case 'URLRewrite': {
        const u = f.urlRewrite;
        if (u?.hostname !== undefined) fields.rewriteHost = u.hostname;
        if (u?.path?.type === 'ReplaceFullPath') fields.rewriteFullPath = u.path.replaceFullPath ?? '/';
        if (u?.path?.type === 'ReplacePrefixMatch') fields.rewritePath = u.path.replacePrefixMatch ?? '/';
        return undefined;
      }
      case 'RequestMirror': {
        const m = f.requestMirror;
        if (m === undefined) return 'RequestMirror needs requestMirror';
        const b = this.backend(meta, m.backendRef);
        if (b.issue !== undefined) {
          // The mirror is left out; the primary request is served as usual.
          issues.push(b.issue);
          return undefined;
        }
        const percent = m.fraction !== undefined ? (m.fraction.denominator > 0 ? (100 * m.fraction.numerator) / m.fraction.denominator : 0) : (m.percent ?? 100);
        fields.mirrors = [...(fields.mirrors ?? []), { upstream: b.upstream, percent: Math.min(100, Math.max(0, percent)) }];
        return undefined;
      }
      case 'ExtensionRef': {
        if (f.extensionRef === undefined) return 'ExtensionRef needs extensionRef';
        const p = this.policy(meta, f.extensionRef);
        if (p.issue !== undefined) {
          issues.push(p.issue);
          failing.push(p.issue.message);
        } else if (p.fields !== undefined) {
          setPolicy(p.fields);
        }
        return undefined;
      }
      default:
        return `filter type ${f.type} is not supported`;
    }
  }
}

/** The matches of one rule as table matches; a problem when one cannot be served. */
function matchesOf(rule: HTTPRouteRule): { path: Route['path']; methods: string[]; headers: Route['headers']; queryParams: Route['queryParams'] }[] | string {
  const out = [];
  for (const m of rule.matches) {
    const type = m.path.type === 'Exact' ? 'Exact' : m.path.type === 'PathPrefix' ? 'Prefix' : undefined;
    if (type === undefined) return `path match type ${m.path.type} is not supported`;
    for (const c of [...(m.headers ?? []), ...(m.queryParams ?? [])]) if (c.type !== 'Exact') return `${c.type} matches are not supported`;
    out.push({
      path: { type, value: m.path.value } as Route['path'],
      methods: m.method === undefined ? [] : [m.method],
      headers: m.headers?.map((h) => ({ name: h.name, type: 'Exact' as const, value: h.value })),
      queryParams: m.queryParams?.map((q) => ({ name: q.name, type: 'Exact' as const, value: q.value })),
    });
  }
  return out;
}

/** The parent statuses and listener bindings of one HTTPRoute. */
function attach(
  meta: ObjectMeta,
  spec: HTTPRouteSpec,
  gateways: ReadonlyMap<string, GatewayResult>,
): { parents: (ParentResult & { bindings: { listener: ListenerResult; hosts: string[] }[] })[] } {
  const parents: (ParentResult & { bindings: { listener: ListenerResult; hosts: string[] }[] })[] = [];
  for (const ref of spec.parentRefs) {
    if (ref.group !== GATEWAY_API_GROUP || ref.kind !== 'Gateway') continue;
    const gateway = gateways.get(`${ref.namespace ?? meta.namespace}/${ref.name}`);
    if (gateway === undefined) continue;
    const fail = (reason: string, message: string): void => {
      parents.push({ parentRef: ref, accepted: false, conditions: [condition(GwCondition.Accepted, false, reason, message)], bindings: [] });
    };
    if (!gateway.accepted) {
      fail(GwReason.NoMatchingParent, `Gateway "${gateway.key}" is not accepted`);
      continue;
    }
    const named = gateway.listeners.filter((l) => (ref.sectionName === undefined || l.name === ref.sectionName) && (ref.port === undefined || l.port === ref.port));
    if (named.length === 0) {
      fail(GwReason.NoMatchingParent, `Gateway "${gateway.key}" has no listener${ref.sectionName === undefined ? '' : ` named "${ref.sectionName}"`}${ref.port === undefined ? '' : ` on port ${ref.port}`}`);
      continue;
    }
    const usable = named.filter((l) => l.accepted);
    if (usable.length === 0) {
      fail(GwReason.NoMatchingParent, `no listener it names is accepted (${named.map((l) => l.name).join(', ')}); see the Gateway's status.listeners`);
      continue;
    }
    const allowed = usable.filter((l) => l.allowsNamespace(meta.namespace) && l.supportedKinds.some((k) => k.group === GATEWAY_API_GROUP && k.kind === 'HTTPRoute'));
    if (allowed.length === 0) {
      fail(GwReason.NotAllowedByListeners, `listeners ${usable.map((l) => `"${l.name}"`).join(', ')} of Gateway "${gateway.key}" do not allow HTTPRoutes from namespace "${meta.namespace}"`);
      continue;
    }
    const bindings = allowed.flatMap((listener) => {
      const hosts = intersectHostnames(listener.hostname, spec.hostnames);
      return hosts === undefined ? [] : [{ listener, hosts }];
    });
    if (bindings.length === 0) {
      fail(GwReason.NoMatchingListenerHostname, `no hostname of the route matches ${allowed.map((l) => `"${l.hostname ?? '*'}" of listener "${l.name}"`).join(', ')}`);
      continue;
    }
    parents.push({
      parentRef: ref,
      accepted: true,
      conditions: [condition(GwCondition.Accepted, true, GwReason.Accepted, `attached to listener${bindings.length === 1 ? '' : 's'} ${bindings.map((b) => `"${b.listener.name}"`).join(', ')}`)],
      bindings,
    });
  }
  return { parents };
}

/** Compiles every HTTPRoute against the Gateways (which it marks with attached routes). */
export function compileHTTPRoutes(snapshot: Snapshot, api: GatewayApiSnapshot, gatewayResults: readonly GatewayResult[], grants: ReferenceGrants, upstreams: readonly UpstreamResult[]): HTTPRoutesResult {
  const compiler = new RouteCompiler(snapshot, api, grants, upstreams);
  const gateways = new Map(gatewayResults.map((g) => [g.key, g]));
  const routes: HTTPRouteResult[] = [];
  for (const r of api.httpRoutes) {
    if (r.spec === undefined) continue;
    const meta = r.meta;
    const key = keyOf(meta);
    const { parents } = attach(meta, r.spec, gateways);
    // Not (or no longer) attached to Switchyard: its status must still lose any entries Switchyard wrote before.
    if (parents.length === 0) {
      routes.push({ key, meta, parents: [], candidates: [] });
      continue;
    }
    const attached = new Set(parents.flatMap((p) => p.bindings.map((b) => b.listener)));
    for (const l of attached) l.attachedRoutes++;

    const issues: Issue[] = [];
    const rules = r.spec.rules.map((rule, i) => {
      const compiled = compiler.rule(meta, rule, issues);
      const matches = matchesOf(rule);
      const problem = compiled.problem ?? (typeof matches === 'string' ? matches : undefined);
      return { i, compiled, matches: typeof matches === 'string' ? [] : matches, problem };
    });

    // Hostnames per data plane listener (socket): served through programmed listeners only, sockets in a stable order.
    const hostsBySocket = new Map<string, Set<string> | 'any'>();
    for (const b of parents.flatMap((p) => p.bindings)) {
      const socket = b.listener.socket;
      if (!b.listener.programmed || socket === undefined) continue;
      const before = hostsBySocket.get(socket);
      if (before === 'any' || b.hosts.length === 0) hostsBySocket.set(socket, 'any');
      else hostsBySocket.set(socket, new Set([...(before ?? []), ...b.hosts]));
    }
    const sockets = [...hostsBySocket.keys()].sort();

    const candidates: RouteCandidate[] = [];
    const invalid: string[] = [];
    for (const rule of rules) {
      let problem = rule.problem;
      const entries: RouteCandidate[] = [];
      rule.matches.forEach((m, j) => {
        for (const socket of sockets) {
          const hosts = hostsBySocket.get(socket) as Set<string> | 'any';
          const route: Route = {
            id: `httproute:${key}/rules[${rule.i}].matches[${j}]@${socket}`,
            hosts: hosts === 'any' ? [] : [...hosts].sort(),
            path: m.path,
            methods: m.methods as Route['methods'],
            ...(m.headers ? { headers: m.headers } : {}),
            ...(m.queryParams ? { queryParams: m.queryParams } : {}),
            methodsAsCondition: true,
            listeners: [socket],
            backends: rule.compiled.backends,
            auth: { required: false, roles: [], permissions: [] },
            ...rule.compiled.fields,
            source: { kind: 'HTTPRoute', namespace: meta.namespace, name: meta.name, generation: meta.generation },
          };
          const bad = routeProblem(route);
          if (bad !== undefined) problem ??= `rules[${rule.i}].matches[${j}]: ${bad}`;
          entries.push({ route, kind: 'HTTPRoute', key, created: meta.creationTimestamp, seq: 0, where: `rules[${rule.i}].matches[${j}]` });
        }
      });
      if (problem !== undefined) invalid.push(`rules[${rule.i}]: ${problem}`);
      else candidates.push(...entries);
    }
    candidates.forEach((c, seq) => (c.seq = seq));

    const resolved =
      issues.length === 0
        ? condition(GwCondition.ResolvedRefs, true, GwReason.ResolvedRefs, 'all references resolved')
        : condition(GwCondition.ResolvedRefs, false, (issues[0] as Issue).reason, `${[...new Set(issues.map((x) => x.message))].join('; ')}; requests for them get 500`);
    const allInvalid = invalid.length === rules.length;
    for (const p of parents) {
      if (p.accepted && allInvalid) {
        p.accepted = false;
        p.conditions = [condition(GwCondition.Accepted, false, GwReason.UnsupportedValue, `no rule can be served: ${invalid.join('; ')}`)];
      }
      p.conditions.push(resolved);
      if (p.accepted && invalid.length > 0) p.conditions.push(condition(GwCondition.PartiallyInvalid, true, GwReason.UnsupportedValue, `left out: ${invalid.join('; ')}`));
    }
    routes.push({ key, meta, parents: parents.map(({ parentRef, accepted, conditions }) => ({ parentRef, accepted, conditions })), candidates });
  }

  const policies = api.routePolicies.map(
    (p): PolicyResult => ({
      key: keyOf(p.meta),
      meta: p.meta,
      conditions: [p.spec === undefined ? condition(ConditionType.Accepted, false, Reason.Invalid, p.error) : condition(ConditionType.Accepted, true, Reason.Accepted, 'the spec is valid')],
    }),
  );
  return { routes, upstreams: compiler.upstreams, policies };
}
