/**
 * The last stage: choose an upstream and an endpoint, send, and retry when the
 * route allows it and nothing has reached the client yet.
 */
import type { RequestContext } from '../pipeline/context.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import { statusClass } from '../observability/metrics.ts';
import type { EndpointRuntime } from '../upstream/upstream.ts';
import { GatewayError, respondWithError as fail } from './errors.ts';
import { forwardOnce, upstreamRequestHeaders, type AttemptOutcome } from './forward.ts';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
const DEFAULT_UPSTREAM_TIMEOUT_MS = 10_000;

/** The path the upstream receives: the normalized path, rewritten if the route says so. */
function upstreamPath(ctx: RequestContext): string {
  const rewrite = ctx.route.def.rewritePath;
  if (rewrite === undefined) return ctx.path + ctx.query;
  const type = ctx.route.def.path.type;
  if (type === 'Exact') return rewrite + ctx.query;
  // Prefix and trailing-* routes replace only the part that matched.
  const rest = ctx.path.slice(ctx.matchedPrefix.length);
  const joined = rewrite.endsWith('/') && rest.startsWith('/') ? rewrite + rest.slice(1) : rest === '' || rest.startsWith('/') || rewrite.endsWith('/') ? rewrite + rest : `${rewrite}/${rest}`;
  return joined + ctx.query;
}

function hasBody(ctx: RequestContext): boolean {
  const h = ctx.req.headers;
  return h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0');
}

/** Proxies the request; always ends the response (or destroys it). */
export async function proxyRequest(ctx: RequestContext, metrics: GatewayMetrics): Promise<void> {
  const route = ctx.route;
  const upstream = route.pickBackend();
  if (!upstream) {
    fail(ctx, new GatewayError('route_unavailable', 'the route has no upstream with weight'));
    return;
  }
  ctx.upstream = upstream.name;
  const body = hasBody(ctx);
  const retry = route.def.retries;
  // A streamed request body cannot be sent twice, so only body-less requests are retried.
  const retriesAllowed = retry !== undefined && !body && (IDEMPOTENT.has(ctx.method) || retry.nonIdempotent) ? retry.attempts : 0;
  const deadline = route.def.timeoutMs !== undefined ? performance.now() + route.def.timeoutMs : Infinity;
  const perAttempt = upstream.def.timeoutMs ?? DEFAULT_UPSTREAM_TIMEOUT_MS;
  const path = upstreamPath(ctx);
  const headers = upstreamRequestHeaders(ctx);

  let previous: EndpointRuntime | undefined;
  let outcome: AttemptOutcome | undefined;
  for (let attempt = 0; attempt <= retriesAllowed; attempt++) {
    const endpoint = upstream.pick(previous);
    if (!endpoint) {
      fail(ctx, new GatewayError('no_healthy_upstream', `upstream "${upstream.name}" has no available endpoint`));
      return;
    }
    const remaining = deadline - performance.now();
    if (remaining <= 0) break;
    ctx.endpoint = endpoint;
    ctx.attempts++;
    outcome = await forwardOnce(ctx, endpoint, {
      path,
      headers,
      body: body ? ctx.req : null,
      headersTimeoutMs: Math.max(1, Math.min(perAttempt, remaining)),
      bodyTimeoutMs: perAttempt,
    });
    if (outcome.kind !== 'failed') {
      metrics.upstreamDuration.observe({ upstream: upstream.name, status_class: statusClass(outcome.status) }, outcome.upstreamMs / 1000);
      return;
    }
    metrics.upstreamErrors.inc({ upstream: upstream.name, kind: outcome.failure });
    const retryable = retry !== undefined && (outcome.failure === 'connect-failure' ? retry.on.includes('connect-failure') : outcome.failure === 'reset' ? retry.on.includes('reset') : false);
    if (!retryable || ctx.res.destroyed) break;
    previous = endpoint;
    if (retry.backoffMs > 0) await new Promise((r) => setTimeout(r, retry.backoffMs * 2 ** attempt));
  }
  if (ctx.res.destroyed) return;
  const error = outcome?.kind === 'failed' ? outcome.error : new GatewayError('upstream_timeout', `no answer from upstream "${upstream.name}" within the route's timeout`);
  fail(ctx, error);
}
