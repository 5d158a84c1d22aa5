/**
 * The request path of the traffic listeners:
 * request id → normalize → built-in probes → match → stages → proxy,
 * with one access-log line and the metrics written when the response closes.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../observability/logger.ts';
import { statusClass, type GatewayMetrics } from '../observability/metrics.ts';
import type { Tracing } from '../observability/tracing.ts';
import type { RequestContext } from '../pipeline/context.ts';
import { answerPreflight, isPreflight } from '../pipeline/cors.ts';
import { GatewayError } from '../proxy/errors.ts';
import type { ForwardPolicy } from '../proxy/forward.ts';
import { proxyRequest, type DefaultTimeouts } from '../proxy/proxy.ts';
import { compileMatcher, requestFacts } from '../routing/matcher.ts';
import { normalizeTarget } from '../routing/normalize.ts';
import type { TableHolder } from '../table/holder.ts';
import { ClientAddressResolver } from './client-address.ts';
import type { RouteRuntime } from '../table/runtime.ts';
import { redirectLocation } from '../proxy/filters.ts';
import { respondRedirect, respondWithError as answer } from './respond.ts';

/** Process-wide flags the probes report. */
export interface LifecycleState {
  /** False while shutting down; /ready then answers 503. */
  accepting: boolean;
  /** Requests being handled now, for the graceful drain. */
  inFlight: number;
}

/** What the handler needs. */
export interface HandlerDeps {
  holder: TableHolder;
  metrics: GatewayMetrics;
  log: Logger;
  accessLog: boolean;
  /** Route-independent checks of the request head (URL length, header count, one Host), run before matching. */
  headCheck?: (req: IncomingMessage) => GatewayError | undefined;
  /** `server.timeouts` of the config, for table entries that set none. */
  timeouts: DefaultTimeouts;
  /** How client headers are passed upstream (`server.headers_with_underscores`); the safe default when absent. */
  forwarding?: ForwardPolicy;
  /** Who the client is (`server.trusted_proxies`); without it, the TCP peer. */
  clientAddress?: ClientAddressResolver;
  lifecycle: LifecycleState;
  /** Undefined when tracing is off: then no span, context or header work happens per request. */
  tracing?: Tracing | undefined;
}

const VALID_REQUEST_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;

/** Answers /health or /ready; returns the body bytes sent. */
function probe(res: ServerResponse, ok: boolean, body: Record<string, unknown>): number {
  const text = JSON.stringify(body);
  res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  if (res.req.method === 'HEAD') {
    res.end();
    return 0;
  }
  res.end(text);
  return Buffer.byteLength(text);
}

/** A listener the live table has no routes for (closed meanwhile): every request is not found. */
const NO_ROUTES = compileMatcher<RouteRuntime>([]);

/** Builds the request listener of one traffic listener: `http`, `https` or one the table declares (`tls` for its protocol). */
export function createRequestHandler(deps: HandlerDeps, tls: boolean, listener: string = tls ? 'https' : 'http'): (req: IncomingMessage, res: ServerResponse) => void {
  const { holder, metrics, log, lifecycle, tracing } = deps;
  const clients = deps.clientAddress ?? new ClientAddressResolver();

  return (req, res) => {
    const start = process.hrtime.bigint();
    const offered = req.headers['x-request-id'];
    const requestId = typeof offered === 'string' && VALID_REQUEST_ID.test(offered) ? offered : randomUUID();
    const method = req.method ?? 'GET';
    if (!lifecycle.accepting) res.setHeader('connection', 'close');
    // Decided once here; the rate limit, the access log, the span and the forwarding headers all read this.
    const client = clients.resolve(req);
    metrics.inFlight.inc();
    lifecycle.inFlight++;

    const ctx = {
      req,
      res,
      requestId,
      start,
      method,
      path: '',
      query: '',
      host: req.headers.host ?? '',
      clientIp: client.client,
      clientChain: client.chain,
      tls,
      route: undefined,
      params: {},
      matchedPrefix: '',
      identity: undefined,
      responseHeaders: undefined,
      upstream: undefined,
      endpoint: undefined,
      attempts: 0,
      bytesOut: 0,
      errorCode: undefined,
      trace: undefined,
    } as unknown as RequestContext;

    res.once('close', () => finish(ctx, deps));

    const refused = deps.headCheck?.(req);
    if (refused) {
      answer(ctx, refused);
      return;
    }
    const target = normalizeTarget(req.url ?? '');
    if (!target.ok) {
      answer(ctx, new GatewayError('bad_request', `invalid request target: ${target.reason}`));
      return;
    }
    (ctx as { path: string }).path = target.path;
    (ctx as { query: string }).query = target.query;

    if ((method === 'GET' || method === 'HEAD') && (target.path === '/health' || target.path === '/ready')) {
      if (target.path === '/health') ctx.bytesOut = probe(res, true, { status: 'ok' });
      else {
        const rt = holder.current;
        const ready = lifecycle.accepting && rt !== undefined;
        ctx.bytesOut = probe(res, ready, { status: ready ? 'ready' : 'not ready', version: rt?.version ?? null, ...(lifecycle.accepting ? {} : { reason: 'shutting down' }), ...(rt ? {} : { reason: 'no route table yet' }) });
      }
      return;
    }

    // Probes and unroutable targets get no span; everything else does, from here.
    if (tracing) ctx.trace = tracing.startRequest(req, method, tls, ctx.clientIp);
    const rt = holder.current;
    if (!rt) {
      answer(ctx, new GatewayError('route_unavailable', 'the gateway has no route table yet'));
      return;
    }
    const matcher = rt.listenerMatchers.get(listener) ?? NO_ROUTES;
    // A CORS preflight is answered for the route that would serve the method it asks about, even where OPTIONS itself would be a 405.
    if (isPreflight(method, req.headers)) {
      const p = matcher.match(ctx.host, req.headers['access-control-request-method'] as string, target.path, matcher.conditional ? requestFacts(req.headers, target.query) : undefined);
      if (p.kind === 'match' && p.route.def.cors) {
        ctx.route = p.route.def;
        answerPreflight(ctx, p.route.def.cors);
        return;
      }
    }
    const m = matcher.match(ctx.host, method, target.path, matcher.conditional ? requestFacts(req.headers, target.query) : undefined);
    if (m.kind === 'not-found') {
      answer(ctx, new GatewayError('route_not_found', `no route for ${method} ${target.path}`));
      return;
    }
    if (m.kind === 'method-not-allowed') {
      answer(ctx, new GatewayError('method_not_allowed', `${method} is not allowed on ${target.path}`, { allow: m.allow.join(', ') }));
      return;
    }
    ctx.route = m.route.def;
    ctx.params = m.params;
    ctx.matchedPrefix = m.matchedPrefix;
    if (m.route.def.invalid !== undefined) {
      answer(ctx, new GatewayError('route_unavailable', `route "${m.route.id}" cannot be served: ${m.route.def.invalid}`));
      return;
    }
    run(ctx, m.route, deps).catch((err: unknown) => {
      log.error({ event: 'request_failed', requestId, err }, 'unexpected error while handling a request');
      answer(ctx, new GatewayError('internal_error', 'the gateway failed to handle the request'));
    });
  };
}

async function run(ctx: RequestContext, route: RouteRuntime, deps: HandlerDeps): Promise<void> {
  const stages = route.stages;
  for (let i = 0; i < stages.length; i++) {
    const result = await (stages[i] as (typeof stages)[number])(ctx);
    if (result !== undefined) {
      answer(ctx, result);
      return;
    }
    if (ctx.res.writableEnded) return;
  }
  // A redirecting route answers after its stages (authentication included) and sends nothing upstream.
  const redirect = route.def.redirect;
  if (redirect !== undefined) {
    respondRedirect(ctx, redirect.statusCode, redirectLocation(ctx, redirect));
    return;
  }
  await proxyRequest(ctx, route, deps.metrics, deps.timeouts, deps.forwarding);
}

function finish(ctx: RequestContext, deps: HandlerDeps): void {
  const { metrics, log } = deps;
  metrics.inFlight.dec();
  deps.lifecycle.inFlight--;
  const res = ctx.res;
  const seconds = Number(process.hrtime.bigint() - ctx.start) / 1e9;
  // A response that never finished was cut off: by the client (499, as nginx logs it) or by an upstream failure.
  const status = res.writableFinished ? res.statusCode : res.headersSent ? res.statusCode : 499;
  const routeId = ctx.route?.id ?? '';
  metrics.requests.inc({ route: routeId, method: ctx.method, status_class: statusClass(status) });
  metrics.requestDuration.observe({ route: routeId }, seconds);
  metrics.responseBytes.inc({ route: routeId }, ctx.bytesOut);
  if (ctx.errorCode) metrics.rejectedRequests.inc({ code: ctx.errorCode });
  ctx.trace?.end(ctx, status, res.writableFinished);
  if (!deps.accessLog) return;
  log.info(
    {
      event: 'access',
      requestId: ctx.requestId,
      method: ctx.method,
      path: ctx.path || ctx.req.url,
      host: ctx.host,
      client: ctx.clientIp,
      route: routeId || null,
      upstream: ctx.upstream ?? null,
      endpoint: ctx.endpoint?.origin ?? null,
      attempts: ctx.attempts,
      status,
      completed: res.writableFinished,
      durationMs: Math.round(seconds * 1e6) / 1e3,
      bytesOut: ctx.bytesOut,
      error: ctx.errorCode ?? null,
      traceId: ctx.trace?.traceId,
    },
    'request',
  );
}
