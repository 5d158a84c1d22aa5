/**
 * The admin listener (default 127.0.0.1:8081, never the public port): what the
 * gateway is serving and why. Secrets in the config are redacted.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GatewayConfig } from '../config/schema.ts';
import { Dashboard } from '../observability/dashboard.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import type { ApplyResult, TableHolder } from '../table/holder.ts';

const SECRET_KEYS = /secret|password|token|key$|key_file|private/i;

/** A deep copy with every secret-looking value replaced, lists of secrets (`secrets: [...]`) and URL passwords included. */
export function redact(value: unknown, secret = false): unknown {
  if (Array.isArray(value)) return value.map((v) => redact(v, secret));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redact(v, secret || SECRET_KEYS.test(k));
    return out;
  }
  if (value === undefined) return value;
  if (secret) return '[redacted]';
  // redis://user:password@host and the like.
  return typeof value === 'string' ? value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/:@]*):[^/@]*@/i, '$1:[redacted]@') : value;
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** What the admin endpoints read and control: the running gateway, as far as they need it. */
export interface AdminTarget {
  readonly holder: TableHolder;
  /** The gateway's metrics, which the dashboard's rates are computed from. */
  readonly metrics: GatewayMetrics;
  /** Read on each request: the config being served. */
  readonly config: GatewayConfig;
  reload(reason: string): Promise<ApplyResult>;
}

/** The admin request listener. */
export function createAdminHandler(gw: AdminTarget): (req: IncomingMessage, res: ServerResponse) => void {
  const dashboard = new Dashboard(gw);
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    if (url.pathname.startsWith('/dashboard') && dashboard.handle(req, res, url)) return;
    const rt = gw.holder.current;
    const route = `${req.method} ${url.pathname}`;
    switch (route) {
      case 'GET /':
        return json(res, 200, { endpoints: ['GET /version', 'GET /config', 'GET /table', 'GET /routes', 'GET /upstreams', 'GET /dashboard', 'POST /reload'] });
      case 'GET /version':
        return json(res, 200, { version: rt?.version ?? null, source: rt?.source ?? null, routes: rt?.table.routes.length ?? 0 });
      case 'GET /config':
        return json(res, 200, redact(gw.config));
      case 'GET /table':
        // Routes as served: each with the gateway-wide policy laid under its own, and where each policy came from.
        return rt ? json(res, 200, redact({ ...rt.table, routes: rt.routes.map((r) => r.def) })) : json(res, 404, { error: { code: 'no_table', message: 'no route table has been applied yet' } });
      case 'GET /routes': {
        const text = !rt ? '(no table)\n' : rt.tlsMatcher === rt.matcher ? rt.matcher.print() : `listener http\n${rt.matcher.print()}\nlistener https\n${rt.tlsMatcher.print()}`;
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(text.endsWith('\n') ? text : `${text}\n`);
        return;
      }
      case 'GET /upstreams':
        return json(
          res,
          200,
          rt
            ? [...rt.upstreams.values()].map((u) => ({
                name: u.name,
                loadBalancer: u.def.loadBalancer,
                ...(u.breaker ? { circuitBreaker: u.breaker.state } : {}),
                endpoints: u.endpoints.map((e) => ({
                  origin: e.origin,
                  weight: e.weight,
                  healthy: e.healthy,
                  inFlight: e.inFlight,
                  checkPassing: e.health.checkPassing,
                  ...(e.health.lastProbeError ? { lastProbeError: e.health.lastProbeError } : {}),
                  ejected: e.health.ejected,
                })),
              }))
            : [],
        );
      case 'POST /reload':
        gw.reload('admin').then(
          (result) => json(res, result.applied ? 200 : 422, result),
          (err: unknown) => json(res, 500, { error: String(err) }),
        );
        return;
      default:
        return json(res, 404, { error: { code: 'not_found', message: `no admin endpoint ${route}; GET / lists them` } });
    }
  };
}
