/**
 * One attempt to send a request to one endpoint and stream the answer back.
 *
 * Bodies stream both ways with backpressure: the client's request is piped
 * into undici, and each upstream chunk is written to the client; when the
 * client is slow the upstream read is paused. Nothing buffers a whole body.
 */
import type { Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import type { RequestContext } from '../pipeline/context.ts';
import type { UnderscoreHeaderAction } from '../pipeline/headers.ts';
import type { EndpointRuntime } from '../upstream/upstream.ts';
import { GatewayError } from './errors.ts';
import { applyHeaderModifier, responseHeaderModifiable } from './filters.ts';
import { isGrpcContentType } from './grpc.ts';

/** Headers that describe one connection, never the message (RFC 9110 section 7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authenticate',
  'proxy-authorization',
  'http2-settings',
]);

/**
 * Request headers the gateway sets itself, so client-sent values never pass. X-Forwarded-For is
 * rebuilt from the client address the handler determined (only trusted proxies' entries survive),
 * X-Real-IP is that address, and Forwarded (RFC 7239) is regenerated from the same data.
 */
const GATEWAY_SET = new Set(['x-forwarded-for', 'x-real-ip', 'forwarded', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id', 'expect']);

/** RFC 7239 section 6: a node is an IPv4 address, a quoted "[IPv6]", or "unknown". */
function forwardedNode(address: string): string {
  if (address === '') return 'unknown';
  return address.includes(':') ? `"[${address}]"` : address;
}

/** A Host value safe to repeat in a quoted-string; anything else is left out of Forwarded. */
const PLAIN_HOST = /^[A-Za-z0-9.:[\]-]{1,255}$/;

/**
 * Forwarded, consistent with X-Forwarded-*: one `for=` per X-Forwarded-For
 * entry, client first, and the first element also carries `host` and `proto`
 * (X-Forwarded-Host and -Proto), where frameworks read them.
 */
function forwardedHeader(ctx: RequestContext): string {
  const chain = ctx.clientChain;
  let first = `for=${forwardedNode(chain[0] ?? ctx.clientIp)}`;
  if (ctx.host !== '' && PLAIN_HOST.test(ctx.host)) first += `;host="${ctx.host}"`;
  first += `;proto=${ctx.tls ? 'https' : 'http'}`;
  let out = first;
  for (let i = 1; i < chain.length; i++) out += `, for=${forwardedNode(chain[i] as string)}`;
  return out;
}

/** Names whose look-alikes with "_" for "-" are never forwarded, whatever `headers_with_underscores` says. */
const PROTECTED_NAMES = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-real-ip', 'x-request-id', 'authorization', 'proxy-authorization'];

/** How client request headers are passed on; built once from the config. */
export interface ForwardPolicy {
  /** `server.headers_with_underscores`; "reject" never gets here with such a name, and forwards like "drop". */
  readonly underscores: UnderscoreHeaderAction;
  /** Lower-case names whose "_" look-alikes are dropped even when underscores are allowed (X-User-* always are). */
  readonly protectedNames: ReadonlySet<string>;
}

/** The forwarding policy from `server.headers_with_underscores` and the token header of `auth.jwt`, if any. */
export function forwardPolicy(underscores: UnderscoreHeaderAction, tokenHeader?: string): ForwardPolicy {
  const names = new Set(PROTECTED_NAMES);
  if (tokenHeader !== undefined) names.add(tokenHeader.toLowerCase());
  return { underscores, protectedNames: names };
}

const DEFAULT_POLICY = forwardPolicy('drop');

/**
 * Whether a header name containing "_" may be forwarded. Frameworks that map
 * "-" and "_" to the same variable would read `X_User_ID` as `X-User-ID`, so
 * with underscores allowed, a name that reads as an identity, forwarding or
 * credential header once "_" becomes "-" is still dropped.
 */
function underscoreNameForwarded(lower: string, policy: ForwardPolicy): boolean {
  if (policy.underscores !== 'allow') return false;
  const alias = lower.replaceAll('_', '-');
  return !alias.startsWith('x-user-') && !policy.protectedNames.has(alias) && !HOP_BY_HOP.has(alias);
}

function connectionTokens(raw: readonly string[]): Set<string> | undefined {
  let tokens: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as string).length !== 10 || (raw[i] as string).toLowerCase() !== 'connection') continue;
    for (const t of (raw[i + 1] as string).split(',')) {
      const name = t.trim().toLowerCase();
      if (name !== '') (tokens ??= new Set()).add(name);
    }
  }
  return tokens;
}

/**
 * The headers sent upstream: the client's, less hop-by-hop headers (and those the
 * client named in `Connection`), less any `X-User-*` header the client sent,
 * less names with "_" unless the policy allows them, plus the forwarding
 * headers and the identity the gateway vouches for.
 */
export function upstreamRequestHeaders(ctx: RequestContext, policy: ForwardPolicy = DEFAULT_POLICY, extra?: readonly string[]): string[] {
  const raw = ctx.req.rawHeaders;
  const named = connectionTokens(raw);
  const out: string[] = [];
  // With tracing on, each attempt carries its own traceparent (a child of the client's); without it, the client's pass untouched.
  const traced = ctx.trace !== undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || GATEWAY_SET.has(lower) || named?.has(lower) || lower.startsWith('x-user-')) continue;
    if (lower.includes('_') && !underscoreNameForwarded(lower, policy)) continue;
    if (traced && (lower === 'traceparent' || lower === 'tracestate')) continue;
    out.push(name, raw[i + 1] as string);
  }
  out.push('x-forwarded-for', ctx.clientChain.length === 1 ? ctx.clientIp : ctx.clientChain.join(', '));
  out.push('x-real-ip', ctx.clientIp);
  out.push('forwarded', forwardedHeader(ctx));
  out.push('x-forwarded-proto', ctx.tls ? 'https' : 'http');
  if (ctx.host !== '') out.push('x-forwarded-host', ctx.host);
  out.push('x-request-id', ctx.requestId);
  const id = ctx.identity;
  if (id) {
    out.push('x-user-id', id.subject, 'x-user-roles', id.roles.join(','), 'x-user-permissions', id.permissions.join(','));
  }
  if (extra) for (const h of extra) out.push(h);
  return out;
}

/** The upstream's response headers less hop-by-hop ones, plus the gateway's own. */
export function clientResponseHeaders(raw: readonly (Buffer | string)[], ctx: RequestContext): string[] {
  const strings: string[] = new Array(raw.length);
  for (let i = 0; i < raw.length; i++) strings[i] = raw[i]!.toString('latin1');
  const named = connectionTokens(strings);
  // A stage may already have set Vary (CORS: Origin). Node lets writeHead's list replace it, so the two merge here.
  const ownVary = ctx.res.getHeader('vary');
  const vary = ownVary === undefined ? undefined : String(ownVary).split(',').map((t) => t.trim()).filter((t) => t !== '');
  const out: string[] = [];
  for (let i = 0; i < strings.length; i += 2) {
    const lower = (strings[i] as string).toLowerCase();
    if (HOP_BY_HOP.has(lower) || named?.has(lower) || lower === 'x-request-id') continue;
    if (ctx.responseHeaders && Object.hasOwn(ctx.responseHeaders, lower)) continue;
    if (vary && lower === 'vary') {
      for (const t of (strings[i + 1] as string).split(',')) {
        const token = t.trim();
        if (token !== '' && !vary.some((v) => v.toLowerCase() === token.toLowerCase())) vary.push(token);
      }
      continue;
    }
    out.push(strings[i] as string, strings[i + 1] as string);
  }
  if (vary) out.push('vary', vary.join(', '));
  out.push('x-request-id', ctx.requestId);
  if (ctx.responseHeaders) for (const [k, v] of Object.entries(ctx.responseHeaders)) out.push(k, v);
  const modifier = ctx.route.responseHeaders;
  return modifier === undefined ? out : applyHeaderModifier(out, modifier, responseHeaderModifiable);
}

/** An HTTP/2 upstream's headers (undici gives an object there, not raw lines) as name/value pairs, pseudo-headers left out. */
function flatHeaders(headers: IncomingHttpHeaders | object): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (name.charCodeAt(0) === 58 || value === undefined) continue;
    if (Array.isArray(value)) for (const v of value) out.push(name, String(v));
    else out.push(name, String(value));
  }
  return out;
}

/** Name/value pairs grouped by lower-case name, for setHeader. */
function groupHeaders(pairs: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 0; i < pairs.length; i += 2) {
    const name = (pairs[i] as string).toLowerCase();
    const list = out.get(name);
    if (list === undefined) out.set(name, [pairs[i + 1] as string]);
    else list.push(pairs[i + 1] as string);
  }
  return out;
}

/** How an attempt ended. */
export type AttemptOutcome =
  | { kind: 'responded'; status: number; bytes: number; upstreamMs: number }
  /**
   * Failed before any response byte reached the client: safe to answer with an error or retry.
   * With `failure: 'status'` the upstream answered `status` and the answer was discarded to retry it.
   */
  | { kind: 'failed'; error: GatewayError; failure: FailureKind; upstreamMs: number; status?: number }
  /** Failed after the response started, or the client went away: the connection is closed. */
  | { kind: 'aborted'; status: number; bytes: number; reason: string; upstreamMs: number };

/** Why an attempt failed, in the terms retry policies use. */
export type FailureKind = 'connect-failure' | 'reset' | 'timeout' | 'status' | 'other';

/** Maps a transport error from undici or the socket to an answer for the client. */
function classifyError(err: Error & { code?: string }): { failure: FailureKind; error: GatewayError } {
  switch (err.code) {
    case 'ECONNREFUSED':
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return { failure: 'connect-failure', error: new GatewayError('bad_gateway', `upstream connection failed (${err.code})`) };
    case 'UND_ERR_CONNECT_TIMEOUT':
      return { failure: 'connect-failure', error: new GatewayError('upstream_timeout', 'upstream connection timed out') };
    case 'UND_ERR_HEADERS_TIMEOUT':
    case 'UND_ERR_BODY_TIMEOUT':
      return { failure: 'timeout', error: new GatewayError('upstream_timeout', 'upstream did not answer in time') };
    case 'ECONNRESET':
    case 'EPIPE':
    case 'UND_ERR_SOCKET':
    case 'UND_ERR_CLOSED':
      return { failure: 'reset', error: new GatewayError('bad_gateway', 'upstream closed the connection') };
    default:
      return { failure: 'other', error: new GatewayError('bad_gateway', `upstream request failed${err.code ? ` (${err.code})` : ''}`) };
  }
}

/** Options for one attempt. */
export interface AttemptOptions {
  path: string;
  headers: string[];
  body: Dispatcher.DispatchOptions['body'];
  /** Time to response headers for this attempt. */
  headersTimeoutMs: number;
  /** Longest silence between response body chunks. */
  bodyTimeoutMs: number;
  /**
   * Called with the upstream's status before anything is sent to the client.
   * Returning true discards the answer (the connection is closed) so that the
   * request can be retried; the outcome is then `failed` with `failure: 'status'`.
   */
  onResponseStart?: (status: number) => boolean;
  /** The upstream speaks HTTP/2: requests share its connections, none waits for another's answer. */
  multiplexed?: boolean;
}

/** The error an attempt is aborted with when its answer is discarded for a retry. */
class DiscardedForRetry extends Error {
  readonly status: number;
  constructor(status: number) {
    super(`upstream answered ${status}; retrying`);
    this.status = status;
  }
}

/** The handler undici calls back while the response arrives. */
class ResponseRelay implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private started = false;
  /** A gRPC answer's status and headers, not written yet (see onResponseStart). */
  private heldHead: { status: number; headers: string[] } | undefined;
  private status = 0;
  private bytes = 0;
  private upstreamMs = 0;
  private readonly sentAt = performance.now();
  private readonly ctx: RequestContext;
  private readonly done: (outcome: AttemptOutcome) => void;
  private readonly onStatus: ((status: number) => boolean) | undefined;
  private readonly onClientClose = (): void => {
    if (!this.ctx.res.writableFinished) this.controller?.abort(new Error('client disconnected'));
  };
  private readonly onDrain = (): void => this.controller?.resume();

  constructor(ctx: RequestContext, done: (outcome: AttemptOutcome) => void, onStatus: ((status: number) => boolean) | undefined) {
    this.ctx = ctx;
    this.done = done;
    this.onStatus = onStatus;
    ctx.res.once('close', this.onClientClose);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.ctx.res.destroyed) controller.abort(new Error('client disconnected'));
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, _headers: IncomingHttpHeaders, statusMessage?: string): void {
    this.upstreamMs = performance.now() - this.sentAt;
    if (this.onStatus?.(statusCode)) {
      controller.abort(new DiscardedForRetry(statusCode));
      return;
    }
    const res = this.ctx.res;
    const raw = Array.isArray(controller.rawHeaders) ? (controller.rawHeaders as (Buffer | string)[]) : flatHeaders(controller.rawHeaders ?? _headers);
    try {
      const headers = clientResponseHeaders(raw, this.ctx);
      if (isGrpcContentType(this.ctx.req.headers['content-type'])) {
        // Held until the first message or the end: a gRPC answer without messages must reach the client as Trailers-Only.
        this.heldHead = { status: statusCode, headers };
      } else if (statusMessage && this.ctx.req.httpVersionMajor !== 2) res.writeHead(statusCode, statusMessage, headers);
      // HTTP/2 has no reason phrase.
      else res.writeHead(statusCode, headers);
    } catch (err) {
      controller.abort(err as Error);
      return;
    }
    this.started = true;
    this.status = statusCode;
    res.on('drain', this.onDrain);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.heldHead !== undefined) {
      this.ctx.res.writeHead(this.heldHead.status, this.heldHead.headers);
      this.heldHead = undefined;
    }
    this.bytes += chunk.length;
    this.ctx.bytesOut = this.bytes;
    if (!this.ctx.res.write(chunk)) controller.pause();
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.cleanup();
    const res = this.ctx.res;
    const hasTrailers = trailers !== undefined && Object.keys(trailers).length > 0;
    const held = this.heldHead;
    if (held !== undefined && !hasTrailers) {
      // Trailers-Only: the headers (with grpc-status) go out with the end of the stream, which writeHead would not do.
      res.statusCode = held.status;
      for (const [name, values] of groupHeaders(held.headers)) res.setHeader(name, values.length === 1 ? (values[0] as string) : values);
    } else if (held !== undefined) res.writeHead(held.status, held.headers);
    this.heldHead = undefined;
    // gRPC puts its status in trailers; HTTP/1.1 clients get them on a chunked response.
    if (hasTrailers) res.addTrailers(trailers as Record<string, string>);
    res.end();
    this.done({ kind: 'responded', status: this.status, bytes: this.bytes, upstreamMs: this.upstreamMs });
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.cleanup();
    const res = this.ctx.res;
    if (res.destroyed || (res.writableEnded && !res.writableFinished)) {
      this.done({ kind: 'aborted', status: this.status || 499, bytes: this.bytes, reason: 'client disconnected', upstreamMs: this.upstreamMs });
      return;
    }
    if (this.started) {
      // Part of the response is already with the client: the only honest signal left is a broken connection.
      res.destroy(err);
      this.done({ kind: 'aborted', status: this.status, bytes: this.bytes, reason: err.message, upstreamMs: this.upstreamMs });
      return;
    }
    if (this.ctx.req.destroyed && !this.ctx.req.complete) {
      this.done({ kind: 'aborted', status: 499, bytes: 0, reason: 'client disconnected', upstreamMs: this.upstreamMs });
      return;
    }
    if (err instanceof DiscardedForRetry) {
      this.done({ kind: 'failed', error: new GatewayError('bad_gateway', err.message), failure: 'status', status: err.status, upstreamMs: this.upstreamMs });
      return;
    }
    const { failure, error } = classifyError(err as Error & { code?: string });
    this.done({ kind: 'failed', error, failure, upstreamMs: performance.now() - this.sentAt });
  }

  private cleanup(): void {
    this.ctx.res.off('close', this.onClientClose);
    this.ctx.res.off('drain', this.onDrain);
  }
}

/** Sends the request to `endpoint` and relays the response; never rejects. */
export function forwardOnce(ctx: RequestContext, endpoint: EndpointRuntime, options: AttemptOptions): Promise<AttemptOutcome> {
  return new Promise<AttemptOutcome>((resolve) => {
    endpoint.inFlight++;
    const finish = (outcome: AttemptOutcome): void => {
      endpoint.inFlight--;
      resolve(outcome);
    };
    const relay = new ResponseRelay(ctx, finish, options.onResponseStart);
    try {
      endpoint.pool.dispatch(
        {
          path: options.path,
          method: ctx.method as Dispatcher.HttpMethod,
          headers: options.headers,
          body: options.body,
          headersTimeout: options.headersTimeoutMs,
          bodyTimeout: options.bodyTimeoutMs,
          // Only the route's retry policy decides about retries; undici must not replay on its own.
          idempotent: false,
          blocking: options.multiplexed !== true,
        },
        relay,
      );
    } catch (err) {
      relay.onResponseError(undefined as unknown as Dispatcher.DispatchController, err as Error);
    }
  });
}
