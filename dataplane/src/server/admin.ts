/**
 * The admin listener (default 127.0.0.1:8081, never the public port): what the
 * gateway is serving and why. Secrets in the config are redacted.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GatewayConfig } from '../config/schema.ts';
import { Dashboard } from '../observability/dashboard.ts';
import { explainQuery, type ExplainRequest } from '../observability/explain.ts';
import type { Explanation } from '../observability/explain-format.ts';
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
  /** What the gateway would do with a request, from its own live state (observability/explain.ts). */
  explain(request: ExplainRequest): Promise<Explanation>;
}

/** A request body up to `limit` bytes, or undefined when it is longer. */
function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
    });
    req.on('end', () => resolve(size <= limit ? Buffer.concat(chunks).toString('utf8') : undefined));
    req.on('error', reject);
  });
}

/** Answers GET /explain?… (query parameters) or POST /explain (the same fields as JSON, which keeps a token out of URLs and shell history). */
function explain(gw: AdminTarget, req: IncomingMessage, res: ServerResponse, url: URL): void {
  const parsed: Promise<ExplainRequest | string> =
    req.method === 'GET'
      ? Promise.resolve(explainQuery(url.searchParams))
      : readBody(req, 64 * 1024).then((text) => {
          if (text === undefined) return 'the body is over 64 KiB';
          try {
            return explainQuery(JSON.parse(text) as unknown);
          } catch {
            return 'the body is not JSON';
          }
        });
  parsed
    .then(async (input) => (typeof input === 'string' ? json(res, 400, { error: { code: 'bad_request', message: input } }) : json(res, 200, await gw.explain(input))))
    .catch((err: unknown) => json(res, 500, { error: { code: 'internal_error', message: (err as Error).message } }));
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
        return json(res, 200, { endpoints: ['GET /version', 'GET /config', 'GET /table', 'GET /routes', 'GET /upstreams', 'GET /explain', 'POST /explain', 'GET /dashboard', 'POST /reload'] });
      case 'GET /explain':
      case 'POST /explain':
        return explain(gw, req, res, url);
      case 'GET /version':
        return json(res, 200, { version: rt?.version ?? null, source: rt?.source ?? null, routes: rt?.table.routes.length ?? 0 });
      case 'GET /config':
        return json(res, 200, redact(gw.config));
      case 'GET /table':
        // Routes as served: each with the gateway-wide policy laid under its own, and where each policy came from.
        return rt ? json(res, 200, redact({ ...rt.table, routes: rt.routes.map((r) => r.def) })) : json(res, 404, { error: { code: 'no_table', message: 'no route table has been applied yet' } });
      case 'GET /routes': {
        const text = !rt
          ? '(no table)\n'
          : rt.listenerMatchers.size === 2 && rt.tlsMatcher === rt.matcher
            ? rt.matcher.print()
            : [...rt.listenerMatchers].map(([name, m]) => `listener ${name}\n${m.print()}`).join('\n');
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
