/**
 * "Which route, and why": what the gateway would do with a request, worked
 * out with the same code the request path runs (the matcher's explain, the
 * authentication and authorization checks, the CORS preflight verdict, the
 * rate limiter's own counters, the upstreams' endpoint state, the rewrite)
 * and without sending anything anywhere or counting the request.
 *
 * Live state (health checks, breakers, outlier ejections, rate-limit counts)
 * is read from the running gateway's own objects, the ones the metrics read;
 * offline (`switchyard-dataplane explain`) there is none, and the answer says
 * so. Tokens are verified with the gateway's verifier and never repeated.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { ServedRoute } from '../contract/policy.ts';
import { authenticateRequest, requiresAuth, tokenLocation, type TokenVerifier } from '../pipeline/auth.ts';
import { authorizationFailure } from '../pipeline/authorize.ts';
import type { Identity } from '../pipeline/context.ts';
import { compileCors, isPreflight, originAllowed, preflightVerdict } from '../pipeline/cors.ts';
import { peekCounts, rateLimitBucket, type RateLimiter, type RatePeek } from '../pipeline/ratelimit.ts';
import { GatewayError } from '../proxy/errors.ts';
import { redirectLocation, upstreamPath } from '../proxy/filters.ts';
import { requestFacts, type MatchExplanation, type MatchResult } from '../routing/matcher.ts';
import { normalizeTarget } from '../routing/normalize.ts';
import type { RouteRuntime, TableRuntime } from '../table/runtime.ts';
import type { UpstreamRuntime } from '../upstream/upstream.ts';
import type { BackendExplanation, EndpointExplanation, Explanation, Outcome, ShownRoute, StageExplanation } from './explain-format.ts';

/** The request to explain, as a client would send it. */
export interface ExplainRequest {
  method: string;
  /** The request target: the path and query as sent. */
  target: string;
  /** The Host header. */
  host: string;
  /** Header names in any case; a list value is several lines of one header. */
  headers: Record<string, string | readonly string[]>;
  /** The client address, for a rate limit counted per address. */
  client?: string | undefined;
  listener?: 'http' | 'https' | undefined;
}

/** What explain reads: the gateway's own objects. */
export interface ExplainSources {
  runtime: TableRuntime | undefined;
  verifier: TokenVerifier | undefined;
  /** The gateway's rate limiter, whose counts are read without counting; absent offline. */
  limiter?: RateLimiter | undefined;
  /** Whether endpoint states are a running gateway's (false: nothing was probed). */
  live: boolean;
  /** Which routes the asker may see; others are shown as placeholders. Default: all. */
  visible?: (route: ServedRoute) => boolean;
  /** How many near misses and outranked routes to list. */
  limit?: number;
}

const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * The request to explain from the admin API's query parameters (`method`,
 * `path`, `host`, `header=Name: value` repeated, `client`, `listener`) or the
 * same fields as JSON (`headers` an object or a list of [name, value]); a
 * message when they do not describe a request. The host defaults to the
 * request's Host header.
 */
export function explainQuery(input: URLSearchParams | unknown): ExplainRequest | string {
  const get = (k: string): unknown => (input instanceof URLSearchParams ? (input.get(k) ?? undefined) : (input as Record<string, unknown> | null)?.[k]);
  if (!(input instanceof URLSearchParams) && (typeof input !== 'object' || input === null)) return 'expected an object with method, path and headers';
  const method = get('method') ?? 'GET';
  const path = get('path');
  if (typeof method !== 'string' || !METHOD.test(method)) return 'method must be an HTTP method token';
  if (typeof path !== 'string' || path === '') return 'path is required (the request target, e.g. /api/v1/users/42?x=1)';
  const headers: Record<string, string[]> = {};
  const add = (name: string, value: string): void => {
    (headers[name.toLowerCase()] ??= []).push(value);
  };
  if (input instanceof URLSearchParams) {
    for (const line of input.getAll('header')) {
      const colon = line.indexOf(':');
      if (colon <= 0) return `header "${line.slice(0, 40)}" must be "Name: value"`;
      add(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
  } else {
    const h = get('headers') ?? {};
    const entries = Array.isArray(h) ? h : Object.entries(h as Record<string, unknown>);
    for (const entry of entries as unknown[]) {
      if (!Array.isArray(entry) || typeof entry[0] !== 'string') return 'headers must be an object or a list of [name, value]';
      for (const v of Array.isArray(entry[1]) ? (entry[1] as unknown[]) : [entry[1]]) {
        if (typeof v !== 'string') return `header ${entry[0]} must have string values`;
        add(entry[0], v);
      }
    }
  }
  const host = get('host') ?? headers.host?.[0] ?? '';
  const client = get('client');
  const listener = get('listener') ?? 'http';
  if (typeof host !== 'string') return 'host must be a string';
  if (client !== undefined && typeof client !== 'string') return 'client must be an address';
  if (listener !== 'http' && listener !== 'https') return 'listener must be http or https';
  return { method, target: path, host, headers, client, listener };
}

/** Explains one request; never throws for anything the request contains. */
export async function explainRequest(input: ExplainRequest, sources: ExplainSources): Promise<Explanation> {
  const rt = sources.runtime;
  const listener = input.listener ?? 'http';
  const headers = lowerHeaders(input.headers);
  const rawHeaders = Object.entries(input.headers).flatMap(([k, v]) => (typeof v === 'string' ? [k, v] : v.flatMap((x) => [k, x])));
  const target = normalizeTarget(input.target);
  const base: Explanation = {
    request: { method: input.method, host: input.host, path: target.ok ? target.path : input.target, query: target.ok ? target.query : '', listener, client: input.client ?? null, token: tokenLocation(headers, sources.verifier) ?? null },
    table: rt ? { version: rt.version, source: rt.source } : null,
    live: sources.live,
    outcome: { status: null, code: null, by: 'upstream', message: '' },
    route: null,
    match: { result: 'not-found', tier: null, rule: '', outranked: [], outrankedCount: 0, nearMisses: [], nearMissCount: 0 },
    stages: [],
    upstream: null,
  };
  if (!target.ok) {
    return { ...base, outcome: refused(new GatewayError('bad_request', `invalid request target: ${target.reason}`)), match: { ...base.match, result: 'bad-request', rule: 'the request target is refused before matching (see docs/routing.md, Normalization)' } };
  }
  if (!rt) {
    return { ...base, outcome: refused(new GatewayError('route_unavailable', 'the gateway has no route table yet')), match: { ...base.match, result: 'no-table', rule: 'no route table has been applied yet' } };
  }
  const visible = sources.visible ?? (() => true);
  const show = (r: RouteRuntime): ShownRoute => (visible(r.def) ? routeOf(r.def) : { hidden: true });
  const matcher = listener === 'https' ? rt.tlsMatcher : rt.matcher;
  const facts = requestFacts(headers, target.query);
  const explainWith = (method: string): MatchExplanation<RouteRuntime> => matcher.explain(input.host, method, target.path, facts, { limit: sources.limit ?? 10 });

  // A preflight is answered for the route that would serve the method it asks about, as the request handler does.
  if (isPreflight(input.method, headers)) {
    const asked = headers['access-control-request-method'] as string;
    const p = explainWith(asked);
    if (p.result.kind === 'match' && p.result.route.def.cors) {
      const def = p.result.route.def;
      const verdict = preflightVerdict(def.cors as NonNullable<ServedRoute['cors']>, headers);
      const outcome: Outcome = verdict.allowed
        ? { status: 204, code: null, by: 'gateway', message: `CORS preflight answered for ${asked}: allowed` }
        : refused(new GatewayError('forbidden', `CORS preflight refused: ${verdict.reason}`));
      return {
        ...base,
        outcome,
        route: show(p.result.route),
        match: { ...matchPart(p, show), preflightFor: asked },
        stages: visible(def) ? [{ stage: 'cors', result: verdict.allowed ? 'pass' : 'fail', detail: verdict.allowed ? 'preflight allowed' : verdict.reason, source: def.policySources.cors }] : [],
      };
    }
  }

  const e = explainWith(input.method);
  const match = matchPart(e, show);
  if (e.result.kind === 'not-found') return { ...base, match, outcome: refused(new GatewayError('route_not_found', `no route for ${input.method} ${target.path}`)) };
  if (e.result.kind === 'method-not-allowed') {
    return { ...base, match, outcome: refused(new GatewayError('method_not_allowed', `${input.method} is not allowed on ${target.path}; allowed: ${e.result.allow.join(', ')}`)) };
  }
  const route = e.result.route;
  const def = route.def;
  const shown = show(route);
  if (def.invalid !== undefined) {
    return { ...base, match, route: shown, outcome: refused(new GatewayError('route_unavailable', `route "${route.id}" cannot be served: ${def.invalid}`)) };
  }

  const { stages, failure } = await explainStages(def, headers, rawHeaders, input.client, sources);
  const upstream = explainUpstream(route, { route: def, path: target.path, query: target.query, matchedPrefix: e.result.matchedPrefix }, rt, sources.live);
  let outcome: Outcome;
  if (failure) outcome = refused(failure);
  else if (def.redirect) {
    const location = redirectLocation({ route: def, path: target.path, query: target.query, matchedPrefix: e.result.matchedPrefix, tls: listener === 'https', host: input.host }, def.redirect);
    outcome = { status: def.redirect.statusCode, code: null, by: 'gateway', message: `redirect to ${location}` };
  } else outcome = upstreamOutcome(upstream.backends);
  if (!visible(def)) {
    // The answer is what any client would see; the route's own settings are not the asker's to read.
    return { ...base, match, route: shown, outcome: { ...outcome, message: 'a route in another namespace serves this request' } };
  }
  return { ...base, match, route: shown, stages, upstream: def.redirect ? null : upstream, outcome };
}

function lowerHeaders(headers: Record<string, string | readonly string[]>): IncomingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) {
    const name = k.toLowerCase();
    const values = typeof v === 'string' ? [v] : [...v];
    const prev = out[name];
    // Node joins repeated lines of most headers with ", ", and keeps set-cookie as a list; requests never carry set-cookie.
    out[name] = prev === undefined ? (values.length === 1 ? (values[0] as string) : values.join(', ')) : `${String(prev)}, ${values.join(', ')}`;
  }
  return out;
}

function refused(err: GatewayError): Outcome {
  return { status: err.status, code: err.code, by: 'gateway', message: err.message };
}

function routeOf(def: ServedRoute): ShownRoute {
  return {
    id: def.id,
    ...(def.source ? { source: { kind: def.source.kind, namespace: def.source.namespace, name: def.source.name } } : {}),
    hosts: def.hosts,
    path: def.path,
    methods: def.methods,
  };
}

function matchPart(e: MatchExplanation<RouteRuntime>, show: (r: RouteRuntime) => ShownRoute): Explanation['match'] {
  const r: MatchResult<RouteRuntime> = e.result;
  return {
    result: r.kind,
    tier: e.tier ?? null,
    rule: e.rule,
    ...(r.kind === 'match' ? { params: { ...r.params }, matchedPrefix: r.matchedPrefix } : {}),
    ...(r.kind === 'method-not-allowed' ? { allow: r.allow } : {}),
    outranked: e.outranked.map((o) => ({ route: show(o.route), rule: o.rule })),
    outrankedCount: e.outrankedCount,
    nearMisses: e.nearMisses.map((n) => ({ route: show(n.route), failed: n.failed })),
    nearMissCount: e.nearMissCount,
  };
}

/** The route's stages in request order (CORS, authenticate, authorize, rate limit), and the first answer one of them gives. */
async function explainStages(
  def: ServedRoute,
  headers: IncomingHttpHeaders,
  rawHeaders: string[],
  client: string | undefined,
  sources: ExplainSources,
): Promise<{ stages: StageExplanation[]; failure: GatewayError | undefined }> {
  const stages: StageExplanation[] = [];
  let failure: GatewayError | undefined;
  const reached = (): boolean => failure === undefined;

  if (def.cors) {
    const origin = headers.origin;
    const allowed = typeof origin === 'string' && originAllowed(compileCors(def.cors), origin);
    const detail = typeof origin !== 'string' ? 'no Origin header: no CORS headers are added' : allowed ? `origin ${origin} is allowed: CORS headers are added` : `origin ${origin} is not allowed: no CORS headers (the browser will refuse the response; the gateway does not)`;
    stages.push({ stage: 'cors', result: 'pass', detail, source: def.policySources.cors });
  } else {
    stages.push({ stage: 'cors', result: 'skip', detail: 'no CORS policy on this route', source: null });
  }

  const token = tokenLocation(headers, sources.verifier) ?? null;
  let identity: Identity | undefined;
  if (!requiresAuth(def.auth)) {
    stages.push({ stage: 'authenticate', result: 'skip', detail: 'a public route: tokens are not looked at, and no X-User-* headers are sent', required: false, token });
  } else if (!sources.verifier) {
    failure = new GatewayError('unauthorized', 'this route requires authentication, and no token verification is configured (auth.jwt)');
    stages.push({ stage: 'authenticate', result: 'fail', detail: failure.message, required: true, token });
  } else {
    const caller = await authenticateRequest({ headers, rawHeaders }, sources.verifier);
    if (caller instanceof GatewayError) {
      failure = caller;
      stages.push({ stage: 'authenticate', result: 'fail', detail: `${caller.status}: ${caller.message}`, required: true, token });
    } else {
      identity = caller;
      stages.push({
        stage: 'authenticate',
        result: 'pass',
        detail: `a valid token (${token ?? 'presented'}) for ${caller.subject}`,
        required: true,
        token,
        identity: { subject: caller.subject, roles: [...caller.roles], permissions: [...caller.permissions] },
      });
    }
  }

  const { roles, permissions } = def.auth;
  if (roles.length > 0 || permissions.length > 0) {
    const needs = [roles.length ? `one of the roles ${roles.join(', ')}` : '', permissions.length ? `the permissions ${permissions.join(', ')}` : ''].filter((x) => x !== '').join(' and ');
    if (!reached()) {
      stages.push({ stage: 'authorize', result: 'not reached', detail: `needs ${needs}`, roles, permissions });
    } else {
      const denied = authorizationFailure(def.auth, identity);
      const missingRoles = identity && roles.length > 0 && !roles.some((r) => identity.roles.includes(r)) ? roles : [];
      const missingPermissions = identity ? permissions.filter((p) => !identity.permissions.includes(p)) : permissions;
      if (denied) failure = denied;
      const held = identity ? `; the token has roles ${identity.roles.join(', ') || '(none)'} and permissions ${identity.permissions.join(', ') || '(none)'}` : '';
      stages.push({
        stage: 'authorize',
        result: denied ? 'fail' : 'pass',
        detail: `${denied ? `${denied.status}: ${denied.message}` : `needs ${needs}`}${held}`,
        roles,
        permissions,
        ...(missingRoles.length ? { missingRoles } : {}),
        ...(missingPermissions.length ? { missingPermissions } : {}),
      });
    }
  }

  const rl = def.rateLimit;
  if (rl) {
    const wasReached = reached();
    const bucket = rateLimitBucket(def, { identity, clientIp: client, headers });
    const per = `${rl.limit} per ${rl.windowMs / 1000}s`;
    let peek: RatePeek | 'unavailable' | undefined;
    if (bucket !== undefined) {
      // Offline there are no counts: the answer is a freshly started gateway's, whose buckets are empty.
      peek = sources.limiter?.peek ? await sources.limiter.peek(bucket, rl.limit, rl.windowMs) : peekCounts(undefined, rl.limit, rl.windowMs, Date.now(), 'memory');
    }
    const offline = !sources.limiter?.peek ? ' (offline: a freshly started gateway\'s empty bucket)' : '';
    let result: StageExplanation['result'] = wasReached ? 'unknown' : 'not reached';
    let detail: string;
    let refusedFor: number | undefined;
    if (rl.limit === 0) {
      detail = `a limit of 0 per ${rl.windowMs / 1000}s refuses every request`;
      refusedFor = rl.windowMs;
    } else if (peek === undefined) {
      detail = `${per}, counted per client address: give the client address to see its count`;
    } else if (peek === 'unavailable') {
      detail = `${per} in bucket ${bucket}; the shared store is unavailable and the gateway refuses until it is back`;
      if (wasReached) {
        failure = new GatewayError('route_unavailable', 'rate limiting is unavailable right now, and this gateway is configured to refuse requests until it is back');
        result = 'fail';
      }
    } else {
      detail = `${Math.round(peek.used * 100) / 100} of ${per} used in bucket ${bucket}${offline || ` (${peek.store})`}; the next request is ${peek.allowed ? 'allowed' : `refused, retry in ${Math.max(1, Math.ceil(peek.retryAfterMs / 1000))}s`}`;
      if (!peek.allowed) refusedFor = peek.retryAfterMs;
      else if (wasReached) result = 'pass';
    }
    if (refusedFor !== undefined && wasReached) {
      result = 'fail';
      failure = new GatewayError('rate_limited', `too many requests: the limit is ${per}; retry in ${Math.max(1, Math.ceil(refusedFor / 1000))} s`);
    }
    const counts = peek !== undefined && peek !== 'unavailable' ? { used: peek.used, remaining: peek.remaining, ...(offline ? {} : { store: peek.store }) } : { used: null, remaining: null };
    stages.push({ stage: 'rate-limit', result, detail, limit: rl.limit, windowMs: rl.windowMs, source: def.policySources.rateLimit, bucket: bucket ?? null, ...counts });
  }
  return { stages, failure };
}

/** Each backend of the route, what its upstream would do with the request now, and where it would go. */
function explainUpstream(route: RouteRuntime, at: Parameters<typeof upstreamPath>[0], rt: TableRuntime, live: boolean): { path: string; backends: BackendExplanation[] } {
  const path = upstreamPath(at);
  const weighted = route.def.backends.filter((b) => b.weight > 0);
  const total = weighted.reduce((n, b) => n + b.weight, 0);
  const backends = weighted.map((b): BackendExplanation => {
    const share = total > 0 ? b.weight / total : 0;
    const base = { upstream: b.upstream, weight: b.weight, share, circuitBreaker: null, whenAllUnhealthy: 'panic' as const, endpoints: [], eligible: 0, url: null };
    if (b.unresolved !== undefined) return { ...base, verdict: 'unresolved', detail: `answers 500: ${b.unresolved}` };
    const u = rt.upstreams.get(b.upstream) as UpstreamRuntime;
    return explainBackend(u, { ...base, whenAllUnhealthy: u.def.whenAllUnhealthy ?? 'panic' }, path, live);
  });
  return { path, backends };
}

function explainBackend(u: UpstreamRuntime, base: Omit<BackendExplanation, 'verdict' | 'detail'>, path: string, live: boolean): BackendExplanation {
  const now = performance.now();
  const endpoints = u.endpoints.map((ep): EndpointExplanation => {
    const h = ep.health;
    const health = !live ? 'unknown' : !u.def.healthCheck ? 'no check' : h.checkPassing ? 'passing' : 'failing';
    const outlier = !live ? 'unknown' : !u.outlier ? 'off' : h.ejected ? 'ejected' : 'in rotation';
    return {
      origin: ep.origin,
      ...(ep.name ? { name: ep.name } : {}),
      weight: ep.weight,
      eligible: h.available,
      health,
      ...(h.lastProbeError ? { lastProbeError: h.lastProbeError } : {}),
      outlier,
      ...(h.ejected ? { ejectedForMs: Math.max(0, Math.round(h.ejectedUntil - now)) } : {}),
      ...(live ? { inFlight: ep.inFlight } : {}),
    };
  });
  const eligible = endpoints.filter((e) => e.eligible);
  const breaker = u.breaker;
  const circuitBreaker = breaker ? { state: breaker.state, ...(breaker.state === 'open' ? { retryAfterSeconds: breaker.retryAfterSeconds() } : {}) } : null;
  const out = { ...base, endpoints, eligible: eligible.length, circuitBreaker };
  if (breaker?.state === 'open') return { ...out, verdict: 'circuit open', detail: `the circuit breaker is open: 503 circuit_open, retry in ${breaker.retryAfterSeconds()}s` };
  if (endpoints.length === 0) return { ...out, verdict: 'no eligible endpoint', detail: 'the upstream has no endpoints: 503 no_healthy_upstream' };
  if (eligible.length === 0) {
    if (base.whenAllUnhealthy === 'fail') return { ...out, verdict: 'no eligible endpoint', detail: `none of ${endpoints.length} endpoints is healthy and when_all_unhealthy is fail: 503 no_healthy_upstream` };
    return { ...out, verdict: 'panic', detail: `none of ${endpoints.length} endpoints is healthy; panic mode sends to all of them`, url: `${(endpoints[0] as EndpointExplanation).origin}${path}` };
  }
  const halfOpen = breaker?.state === 'half-open' ? '; the breaker is half-open: only probe requests pass' : '';
  return { ...out, verdict: 'ok', detail: `${eligible.length} of ${endpoints.length} endpoints eligible (${u.def.loadBalancer})${halfOpen}`, url: `${(eligible[0] as EndpointExplanation).origin}${path}` };
}

/** The answer when every stage lets the request through: the upstream's, unless the backend that draws it cannot serve. */
function upstreamOutcome(backends: readonly BackendExplanation[]): Outcome {
  if (backends.length === 0) return refused(new GatewayError('route_unavailable', 'the route has no upstream with weight'));
  const answer = (b: BackendExplanation): Outcome => {
    if (b.verdict === 'unresolved') return refused(new GatewayError('backend_unresolved', b.detail.replace(/^answers 500: /, '')));
    if (b.verdict === 'circuit open') return refused(new GatewayError('circuit_open', `the circuit breaker of upstream "${b.upstream}" is open`));
    if (b.verdict === 'no eligible endpoint') return refused(new GatewayError('no_healthy_upstream', `upstream "${b.upstream}" has no available endpoint`));
    return { status: null, code: null, by: 'upstream', message: `forwarded to ${b.url ?? b.upstream}${b.verdict === 'panic' ? ' (panic mode: no endpoint is healthy)' : ''}` };
  };
  const heaviest = backends.reduce((a, b) => (b.weight > a.weight ? b : a));
  const outcome = answer(heaviest);
  const others = backends.filter((b) => b !== heaviest && answer(b).code !== outcome.code);
  if (others.length === 0) return outcome;
  const rest = others.map((b) => `${Math.round(b.share * 1000) / 10}% to ${b.upstream}: ${answer(b).code ?? 'forwarded'}`).join('; ');
  return { ...outcome, message: `${outcome.message} (${Math.round(heaviest.share * 1000) / 10}% of requests; ${rest})` };
}
