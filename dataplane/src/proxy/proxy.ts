/**
 * The last stage: choose an upstream and an endpoint, send, and retry when the
 * route allows it and nothing has reached the client yet.
 *
 * Each attempt passes the upstream's circuit breaker and reports its verdict
 * to the breaker and to outlier detection through an AttemptGuard
 * (upstream/attempt-guard.ts), and goes to a healthy endpoint (one not tried
 * yet when there is one). Whether to retry is decideRetry's answer
 * (proxy/retry.ts, pure), then a slot in the upstream's retry budget: this
 * loop only loops, keeping the state those two read.
 */
import type { RequestContext } from '../pipeline/context.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import { statusClass } from '../observability/metrics.ts';
import type { RouteRuntime } from '../table/runtime.ts';
import { AttemptGuard } from '../upstream/attempt-guard.ts';
import { backoffDelay } from '../upstream/retry-budget.ts';
import type { EndpointRuntime, UpstreamRuntime } from '../upstream/upstream.ts';
import { respondWithError as fail } from '../server/respond.ts';
import { GatewayError } from './errors.ts';
import type { Readable } from 'node:stream';
import { applyHeaderModifier, requestHeaderModifiable, upstreamPath } from './filters.ts';
import { forwardOnce, upstreamRequestHeaders, type AttemptOutcome, type ForwardPolicy } from './forward.ts';
import { mirrorRequest, teeBody, type UpstreamRequest } from './mirror.ts';
import { isGrpcContentType, parseGrpcTimeout } from './grpc.ts';
import { decideRetry, retriesAllowed, type AttemptResult } from './retry.ts';

/** Timeouts for routes and upstreams whose table entry does not set one (the config's `server.timeouts`). */
export interface DefaultTimeouts {
  requestMs: number;
  upstreamMs: number;
}

function hasBody(ctx: RequestContext): boolean {
  // HTTP/2 says so in the HEADERS frame: END_STREAM there means no DATA follows (Content-Length is optional).
  if (ctx.req.httpVersionMajor === 2) return !(ctx.req as unknown as { stream: { endAfterHeaders: boolean } }).stream.endAfterHeaders;
  const h = ctx.req.headers;
  return h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0');
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Proxies the request to one of `route`'s backends; always ends the response (or destroys it). */
export async function proxyRequest(ctx: RequestContext, route: RouteRuntime, metrics: GatewayMetrics, defaults: DefaultTimeouts, forwarding?: ForwardPolicy): Promise<void> {
  const backend = route.pickBackend();
  if (backend?.unresolved !== undefined) {
    fail(ctx, new GatewayError('backend_unresolved', backend.unresolved));
    return;
  }
  const upstream = backend?.upstream;
  if (!upstream) {
    fail(ctx, new GatewayError('route_unavailable', 'the route has no upstream with weight'));
    return;
  }
  ctx.upstream = upstream.name;
  const request = upstreamRequest(ctx, forwarding);
  const body = hasBody(ctx) ? (route.mirrors.length > 0 ? teeBody(ctx.req, route.mirrors.length) : { primary: ctx.req, copies: [] }) : undefined;
  route.mirrors.forEach((m, i) => {
    if (m.percent >= 100 || Math.random() * 100 < m.percent) mirrorRequest(ctx, m.upstream, request, body?.copies[i]);
    else body?.copies[i]?.destroy();
  });
  const budget = upstream.retryBudget;
  budget.active++;
  try {
    await attempts(ctx, upstream, metrics, defaults, request, body?.primary);
  } finally {
    budget.active--;
  }
}

/** The path and headers sent upstream: the gateway's forwarding rules, then the route's own changes. */
function upstreamRequest(ctx: RequestContext, forwarding: ForwardPolicy | undefined): UpstreamRequest {
  const route = ctx.route;
  let headers = upstreamRequestHeaders(ctx, forwarding);
  if (route.requestHeaders !== undefined) headers = applyHeaderModifier(headers, route.requestHeaders, requestHeaderModifiable);
  if (route.rewriteHost !== undefined) {
    headers = applyHeaderModifier(headers, { remove: ['host'] }, () => true);
    headers.push('host', route.rewriteHost);
  }
  // TE is hop-by-hop, but gRPC servers want "te: trailers" from whoever calls them (gRPC over HTTP/2 spec).
  if (isGrpcContentType(ctx.req.headers['content-type'])) headers.push('te', 'trailers');
  return { path: upstreamPath(ctx), headers };
}

/** Whether an attempt that got no usable answer failed because of the upstream (not because the client left). */
function isUpstreamFault(outcome: AttemptOutcome): boolean {
  return outcome.kind === 'failed' || (outcome.kind === 'aborted' && outcome.reason !== 'client disconnected');
}

/** The failure to record on the attempt's span, if any. */
function failureOf(outcome: AttemptOutcome): string | undefined {
  if (outcome.kind === 'failed') return outcome.failure === 'status' ? undefined : outcome.failure;
  return outcome.kind === 'aborted' ? outcome.reason : undefined;
}

async function attempts(ctx: RequestContext, upstream: UpstreamRuntime, metrics: GatewayMetrics, defaults: DefaultTimeouts, request: UpstreamRequest, bodyStream: Readable | undefined): Promise<void> {
  const route = ctx.route;
  const body = bodyStream !== undefined;
  const retry = route.retries;
  const maxRetries = retriesAllowed(retry, ctx.method, body);
  // Tables from the operator leave these unset unless a resource says; the bootstrap config's defaults apply then.
  let deadline = performance.now() + (route.timeoutMs ?? defaults.requestMs);
  const perAttempt = route.attemptTimeoutMs ?? upstream.def.timeoutMs ?? defaults.upstreamMs;
  // A gRPC call's own deadline bounds the whole call, streamed answer included; a stream may be quiet for long between messages otherwise.
  const grpc = isGrpcContentType(ctx.req.headers['content-type']);
  const grpcTimeout = grpc ? parseGrpcTimeout(ctx.req.headers['grpc-timeout'] as string | undefined) : undefined;
  if (grpcTimeout !== undefined) deadline = Math.min(deadline, performance.now() + grpcTimeout);
  const callTimer = grpcTimeout === undefined ? undefined : setTimeout(() => {
    // Before the answer starts, the attempt's header timeout answers DEADLINE_EXCEEDED; after, the stream is cut (the client's deadline has passed too).
    if (ctx.res.headersSent) ctx.res.destroy();
  }, grpcTimeout);
  const multiplexed = upstream.def.protocol === 'h2' || upstream.def.protocol === 'h2c';
  const { path, headers } = request;
  const budget = upstream.retryBudget;
  const watched = upstream.breaker !== undefined || upstream.outlier !== undefined;

  let tried: EndpointRuntime[] | undefined;
  let outcome: AttemptOutcome | undefined;
  // Whether this request holds a retry slot: from the decision to retry until that retry's attempt ends.
  let slot = false;
  const releaseSlot = (): void => {
    if (slot) budget.release();
    slot = false;
  };
  const claimRetry = (): boolean => {
    releaseSlot();
    slot = budget.tryAcquire();
    metrics.retries.inc({ upstream: upstream.name, result: slot ? 'retried' : 'budget_exhausted' });
    return slot;
  };
  // Whether to retry after `result`; the budget is asked last, since taking a slot has an effect.
  const shouldRetry = (attempt: number, result: AttemptResult, delayMs: number): boolean =>
    decideRetry({ policy: retry, method: ctx.method, hasBody: body, attempt, result, delayMs, now: performance.now(), deadline, clientGone: ctx.res.destroyed }).retry && claimRetry();
  try {
    for (let attempt = 0; ; attempt++) {
      const remaining = deadline - performance.now();
      if (remaining <= 0) break;
      const guard = AttemptGuard.admit<EndpointRuntime>(upstream);
      if (guard === undefined) {
        fail(ctx, new GatewayError('circuit_open', `the circuit breaker of upstream "${upstream.name}" is open`, { 'retry-after': String(upstream.breaker?.retryAfterSeconds() ?? 1) }));
        return;
      }
      const endpoint = upstream.pick(tried);
      if (!endpoint) {
        guard.abandon();
        fail(ctx, new GatewayError('no_healthy_upstream', `upstream "${upstream.name}" has no available endpoint`));
        return;
      }
      guard.sendTo(endpoint);
      ctx.endpoint = endpoint;
      ctx.attempts++;
      const canRetry = attempt < maxRetries;
      // Drawn before the attempt, so that an answer is discarded only when the retry fits before the deadline.
      const delay = canRetry ? backoffDelay((retry as NonNullable<typeof retry>).backoffMs, attempt) : 0;
      let retryStatus = false;
      const span = ctx.trace?.startAttempt(ctx.method, endpoint, path, attempt);
      outcome = await forwardOnce(ctx, endpoint, {
        path,
        headers: span ? headers.concat(span.headers) : headers,
        body: bodyStream ?? null,
        headersTimeoutMs: Math.max(1, Math.min(perAttempt, remaining)),
        bodyTimeoutMs: grpc ? 0 : perAttempt,
        multiplexed,
        // Nothing to learn from the status without a breaker, outlier detection or status retries: no callback then.
        onResponseStart: watched || canRetry
          ? (status) => {
              guard.answered(status);
              // Only a retry the budget allows discards the answer; otherwise the client gets it as it is.
              retryStatus = canRetry && shouldRetry(attempt, { status }, delay);
              return retryStatus;
            }
          : undefined,
      });
      // No response headers: a refused, reset or silent upstream is its fault; a client that left says nothing about it.
      guard.ended(isUpstreamFault(outcome));
      if (!retryStatus) releaseSlot();
      span?.end(outcome.status, failureOf(outcome));
      if (outcome.kind !== 'failed' || outcome.failure === 'status') {
        metrics.upstreamDuration.observe({ upstream: upstream.name, status_class: statusClass(outcome.status ?? 0) }, outcome.upstreamMs / 1000);
      }
      if (outcome.kind !== 'failed') return;
      if (outcome.failure !== 'status') {
        metrics.upstreamErrors.inc({ upstream: upstream.name, kind: outcome.failure });
        if (!canRetry || !shouldRetry(attempt, { failure: outcome.failure }, delay)) break;
      }
      (tried ??= []).push(endpoint);
      if (delay > 0) await sleep(delay);
      if (ctx.res.destroyed) return;
    }
  } finally {
    releaseSlot();
    clearTimeout(callTimer);
  }
  if (ctx.res.destroyed) return;
  const error = outcome?.kind === 'failed' ? outcome.error : new GatewayError('upstream_timeout', `no answer from upstream "${upstream.name}" within the route's timeout`);
  fail(ctx, error);
}
