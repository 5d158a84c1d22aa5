/**
 * The request path of the traffic listeners:
 * request id → normalize → built-in probes → match → stages → proxy,
 * with one access-log line and the metrics written when the response closes.
 */
import { randomUUID } from 'node:crypto';
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { accessLogWriter, type AccessRecord, type Logger } from '../observability/logger.ts';
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
import { proxyUpgrade, upgradeAllowed, type TunnelRegistry } from '../proxy/upgrade.ts';
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
  /** Where upgraded connections (WebSocket) are kept, and their default idle timeout; without it upgrades are refused. */
  upgrades?: { tunnels: TunnelRegistry; idleMs: number } | undefined;
}

/** The connection of an upgrade request, as the server's `upgrade` event hands it over. */
interface UpgradeSocket {
  socket: Duplex;
  head: Buffer;
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
  const handle = createHandler(deps, tls, listener);
  return (req, res) => handle(req, res, undefined);
}

/**
 * Builds the `upgrade` listener of one traffic listener: the handshake request
 * takes the same path as any request (probes, match, CORS, authentication,
 * roles, rate limit), answered through a response on the raw connection, so
 * that a refused handshake gets the same JSON error and access-log line. The
 * connection closes after any answer but 101; after 101 it is a tunnel, and
 * the request's metrics and log line are written when it closes.
 */
export function createUpgradeHandler(deps: HandlerDeps, tls: boolean, listener: string = tls ? 'https' : 'http'): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
  const handle = createHandler(deps, tls, listener);
  return (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    const res = new ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket as Socket);
    // Node's server closes a connection that is not kept alive after its answer; this one is not the server's any more.
    res.once('finish', () => {
      if (res.statusCode !== 101) (socket as Socket).destroySoon();
    });
    handle(req, res, { socket, head });
  };
}

function createHandler(deps: HandlerDeps, tls: boolean, listener: string): (req: IncomingMessage, res: ServerResponse, upgrade: UpgradeSocket | undefined) => void {
  const { holder, metrics, log, lifecycle, tracing } = deps;
  const clients = deps.clientAddress ?? new ClientAddressResolver();
  const done: Finisher = { deps, access: deps.accessLog ? accessLogWriter(log) : undefined, labels: new RouteLabels() };

  return (req, res, upgrade) => {
    const start = process.hrtime.bigint();
    const offered = req.headers['x-request-id'];
    const requestId = typeof offered === 'string' && VALID_REQUEST_ID.test(offered) ? offered : randomUUID();
    const method = req.method ?? 'GET';
    // HTTP/2 has no Connection header; its clients get GOAWAY when the gateway drains.
    if (!lifecycle.accepting && req.httpVersionMajor !== 2) res.setHeader('connection', 'close');
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

    res.once('close', () => finish(ctx, done));

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
    if (upgrade !== undefined && (deps.upgrades === undefined || !upgradeAllowed(m.route.def))) {
      answer(ctx, new GatewayError('upgrade_not_allowed', `route "${m.route.id}" does not allow protocol upgrades (Upgrade: ${String(req.headers.upgrade)})`));
      return;
    }
    run(ctx, m.route, deps, upgrade).catch((err: unknown) => {
      log.error({ event: 'request_failed', requestId, err }, 'unexpected error while handling a request');
      answer(ctx, new GatewayError('internal_error', 'the gateway failed to handle the request'));
    });
  };
}

async function run(ctx: RequestContext, route: RouteRuntime, deps: HandlerDeps, upgrade: UpgradeSocket | undefined): Promise<void> {
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
  if (upgrade !== undefined && deps.upgrades !== undefined) {
    await proxyUpgrade(ctx, route, upgrade.socket, upgrade.head, { metrics: deps.metrics, timeouts: deps.timeouts, forwarding: deps.forwarding, tunnels: deps.upgrades.tunnels, idleMs: deps.upgrades.idleMs });
    return;
  }
  await proxyRequest(ctx, route, deps.metrics, deps.timeouts, deps.forwarding);
}

/** Label objects of the request metrics, made once per route, method and status class rather than per request. */
class RouteLabels {
  private readonly byRoute = new Map<string, { route: { route: string }; requests: Map<string, { route: string; method: string; status_class: string }> }>();

  route(route: string): { route: string } {
    return this.entry(route).route;
  }

  requests(route: string, method: string, status: string): { route: string; method: string; status_class: string } {
    const byKey = this.entry(route).requests;
    const key = `${method} ${status}`;
    let labels = byKey.get(key);
    if (labels === undefined) {
      labels = { route, method, status_class: status };
      // Methods come from clients: keep a bounded number per route, as prom-client's own series are.
      if (byKey.size < 64) byKey.set(key, labels);
    }
    return labels;
  }

  private entry(route: string): { route: { route: string }; requests: Map<string, { route: string; method: string; status_class: string }> } {
    let e = this.byRoute.get(route);
    if (e === undefined) {
      e = { route: { route }, requests: new Map() };
      // Routes come from the table; a table that changes a lot starts afresh rather than growing without end.
      if (this.byRoute.size >= 10_000) this.byRoute.clear();
      this.byRoute.set(route, e);
    }
    return e;
  }
}

/** What finish() needs, bound once per listener. */
interface Finisher {
  deps: HandlerDeps;
  access: ((record: AccessRecord) => void) | undefined;
  labels: RouteLabels;
}

function finish(ctx: RequestContext, done: Finisher): void {
  const { deps, labels } = done;
  const { metrics } = deps;
  metrics.inFlight.dec();
  deps.lifecycle.inFlight--;
  const res = ctx.res;
  const seconds = Number(process.hrtime.bigint() - ctx.start) / 1e9;
  // A response that never finished was cut off: by the client (499, as nginx logs it) or by an upstream failure.
  const status = res.writableFinished ? res.statusCode : res.headersSent ? res.statusCode : 499;
  const routeId = ctx.route?.id ?? '';
  const routeLabels = labels.route(routeId);
  metrics.requests.inc(labels.requests(routeId, ctx.method, statusClass(status)));
  metrics.requestDuration.observe(routeLabels, seconds);
  metrics.responseBytes.inc(routeLabels, ctx.bytesOut);
  if (ctx.errorCode) metrics.rejectedRequests.inc({ code: ctx.errorCode });
  ctx.trace?.end(ctx, status, res.writableFinished);
  done.access?.({
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
  });
}
