/**
 * HTTP/1.1 Upgrade (WebSocket, or any protocol named in `Upgrade`): the last
 * stage for a handshake request whose route's stages passed.
 *
 * The handshake goes to one endpoint (the route's backend, the upstream's
 * breaker and balancer, no retry: a handshake is not replayed) with the same
 * forwarding and identity headers as any request. A 101 answer turns both
 * connections into a byte tunnel; any other answer is relayed as a response
 * and the client's connection closed. Tunnels are kept in a registry so that
 * a drain can tell WebSocket peers it is going away (a Close frame each way,
 * put between frames) and wait for them to leave.
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { GatewayMetrics } from '../observability/metrics.ts';
import type { RequestContext } from '../pipeline/context.ts';
import { respondWithError as fail } from '../server/respond.ts';
import type { RouteRuntime } from '../table/runtime.ts';
import { connectOptions } from '../upstream/pools.ts';
import { GatewayError } from './errors.ts';
import { applyHeaderModifier, requestHeaderModifiable, upstreamPath } from './filters.ts';
import { clientResponseHeaders, upstreamRequestHeaders, type ForwardPolicy } from './forward.ts';
import type { DefaultTimeouts } from './proxy.ts';
import { closeFrame, FrameCursor, OPCODE_CLOSE } from './ws-frames.ts';
import type { ServedRoute } from '../contract/policy.ts';

/** Close code 1001: the endpoint is going away (RFC 6455 section 7.4.1). */
const GOING_AWAY = 1001;

/** Whether a route tunnels upgrade requests: it takes GET (or any method) and does not turn upgrades off. */
export function upgradeAllowed(route: Pick<ServedRoute, 'methods' | 'upgrade'>): boolean {
  if (route.upgrade?.enabled === false) return false;
  return route.methods.length === 0 || route.methods.includes('GET');
}

/** What the upgrade stage needs besides the request. */
export interface UpgradeDeps {
  metrics: GatewayMetrics;
  timeouts: DefaultTimeouts;
  forwarding?: ForwardPolicy | undefined;
  tunnels: TunnelRegistry;
  /** `server.timeouts.upgrade_idle_timeout`, for routes that set none. */
  idleMs: number;
}

/**
 * Sends the handshake upstream and, on 101, joins the two connections;
 * otherwise answers the client. Resolves once the handshake is decided (the
 * tunnel lives on, in `deps.tunnels`).
 */
export async function proxyUpgrade(ctx: RequestContext, route: RouteRuntime, client: Duplex, head: Buffer, deps: UpgradeDeps): Promise<void> {
  const backend = route.pickBackend();
  if (backend?.unresolved !== undefined) return fail(ctx, new GatewayError('backend_unresolved', backend.unresolved));
  const upstream = backend?.upstream;
  if (!upstream) return fail(ctx, new GatewayError('route_unavailable', 'the route has no upstream with weight'));
  ctx.upstream = upstream.name;
  const breaker = upstream.breaker;
  const permit = breaker?.tryPass();
  if (breaker && permit === undefined) {
    return fail(ctx, new GatewayError('circuit_open', `the circuit breaker of upstream "${upstream.name}" is open`, { 'retry-after': String(breaker.retryAfterSeconds()) }));
  }
  const endpoint = upstream.pick();
  if (!endpoint) {
    if (permit !== undefined) breaker?.record(permit, 'neutral');
    return fail(ctx, new GatewayError('no_healthy_upstream', `upstream "${upstream.name}" has no available endpoint`));
  }
  ctx.endpoint = endpoint;
  ctx.attempts = 1;

  const def = ctx.route;
  let headers = upstreamRequestHeaders(ctx, deps.forwarding);
  if (def.requestHeaders !== undefined) headers = applyHeaderModifier(headers, def.requestHeaders, requestHeaderModifiable);
  if (def.rewriteHost !== undefined) {
    headers = applyHeaderModifier(headers, { remove: ['host'] }, () => true);
    headers.push('host', def.rewriteHost);
  }
  // Hop-by-hop headers were dropped above; these two are what this hop is about.
  headers.push('connection', 'upgrade', 'upgrade', String(ctx.req.headers.upgrade));

  const url = new URL(endpoint.origin);
  const secure = url.protocol === 'https:';
  const { timeout: _connectTimeout, ...tlsOptions } = (connectOptions(upstream.def) ?? {}) as Record<string, unknown>;
  const waitMs = Math.min(def.attemptTimeoutMs ?? upstream.def.timeoutMs ?? deps.timeouts.upstreamMs, def.timeoutMs ?? deps.timeouts.requestMs);
  const started = performance.now();

  await new Promise<void>((resolve) => {
    let settled = false;
    const settle = (verdict: 'ok' | 'fail' | 'neutral'): void => {
      if (settled) return;
      settled = true;
      upstream.report(endpoint, permit, verdict);
      resolve();
    };
    const options: https.RequestOptions = {
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
      method: ctx.method,
      path: upstreamPath(ctx),
      headers,
      setHost: false,
      agent: false,
      ...(secure ? tlsOptions : {}),
    };
    const upReq = (secure ? https : http).request(options);
    const timer = setTimeout(() => upReq.destroy(Object.assign(new Error('no handshake answer in time'), { code: 'UPGRADE_TIMEOUT' })), Math.max(1, waitMs));
    const clientGone = (): void => {
      upReq.destroy();
      settle('neutral');
    };
    client.once('close', clientGone);

    upReq.on('error', (err: Error & { code?: string }) => {
      clearTimeout(timer);
      client.off('close', clientGone);
      if (settled) return;
      deps.metrics.upstreamErrors.inc({ upstream: upstream.name, kind: err.code === 'UPGRADE_TIMEOUT' ? 'timeout' : err.code === 'ECONNREFUSED' ? 'connect-failure' : 'reset' });
      fail(ctx, err.code === 'UPGRADE_TIMEOUT' ? new GatewayError('upstream_timeout', 'the upstream did not answer the upgrade request in time') : new GatewayError('bad_gateway', `upstream connection failed (${err.code ?? err.message})`));
      settle('fail');
    });

    // Any answer but 101: relayed as it is, and the client's connection closes after it.
    upReq.on('response', (upRes) => {
      clearTimeout(timer);
      client.off('close', clientGone);
      const status = upRes.statusCode ?? 502;
      deps.metrics.upstreamDuration.observe({ upstream: upstream.name, status_class: `${Math.floor(status / 100)}xx` }, (performance.now() - started) / 1000);
      const res = ctx.res;
      res.writeHead(status, upRes.statusMessage, clientResponseHeaders(upRes.rawHeaders, ctx));
      upRes.on('data', (chunk: Buffer) => {
        ctx.bytesOut += chunk.length;
        if (!res.write(chunk)) upRes.pause();
      });
      res.on('drain', () => upRes.resume());
      upRes.on('end', () => res.end());
      upRes.on('error', () => res.destroy());
      settle(status >= 500 ? 'fail' : 'ok');
    });

    upReq.on('upgrade', (upRes, upSocket: Socket, upHead: Buffer) => {
      clearTimeout(timer);
      client.off('close', clientGone);
      deps.metrics.upstreamDuration.observe({ upstream: upstream.name, status_class: '1xx' }, (performance.now() - started) / 1000);
      if (client.destroyed) {
        upSocket.destroy();
        settle('neutral');
        return;
      }
      const protocol = String(upRes.headers.upgrade ?? ctx.req.headers.upgrade);
      // Through the request's response, so that the access log and metrics see a 101 (written when the tunnel closes).
      const res = ctx.res;
      res.writeHead(101, upRes.statusMessage || 'Switching Protocols', [...clientResponseHeaders(upRes.rawHeaders, ctx), 'connection', 'Upgrade', 'upgrade', protocol]);
      res.end();
      if (upHead.length > 0) client.write(upHead);
      if (head.length > 0) upSocket.write(head);
      ctx.bytesOut = upHead.length;
      const routeId = def.id;
      deps.metrics.upgraded.inc({ route: routeId });
      deps.tunnels.add(
        new Tunnel(client, upSocket, {
          websocket: protocol.toLowerCase() === 'websocket',
          idleMs: def.upgrade?.idleTimeoutMs ?? deps.idleMs,
          counted: (outBytes) => {
            ctx.bytesOut += outBytes;
          },
        }),
        routeId,
      );
      settle('ok');
    });
    upReq.end();
  });
}

/** How a tunnel behaves. */
interface TunnelOptions {
  /** Frames are followed, so that Close frames can be put between them. */
  websocket: boolean;
  /** No bytes either way for this long closes the tunnel. */
  idleMs: number;
  /** Bytes passed from the upstream to the client. */
  counted: (outBytes: number) => void;
}

/** Two connections joined after a 101, with flow control both ways. */
export class Tunnel {
  private readonly client: Duplex;
  private readonly upstream: Duplex;
  private readonly websocket: boolean;
  private readonly down = new FrameCursor();
  private readonly up = new FrameCursor();
  /** Set by `close`: the next frame boundary each way gets a Close frame, and nothing more passes. */
  private closing = false;
  private sentToClient = false;
  private sentToUpstream = false;
  private closeReason = 'going away';
  private readonly closedCallbacks: (() => void)[] = [];
  private done = false;

  constructor(client: Duplex, upstream: Duplex, options: TunnelOptions) {
    this.client = client;
    this.upstream = upstream;
    this.websocket = options.websocket;
    for (const s of [client, upstream] as Socket[]) if (typeof s.setNoDelay === 'function') s.setNoDelay(true);
    (upstream as Socket).setTimeout?.(0);
    // A socket's idle timer counts what is written to it as well as what is read, so the client's covers both directions.
    (client as Socket).setTimeout?.(options.idleMs, () => this.idle());

    upstream.on('data', (chunk: Buffer) => options.counted(this.fromUpstream(chunk)));
    client.on('data', (chunk: Buffer) => this.fromClient(chunk));
    client.on('drain', () => upstream.resume());
    upstream.on('drain', () => client.resume());
    upstream.on('end', () => {
      // While closing, the client still owes its Close reply; it gets ours now if the upstream cut a frame short.
      if (this.closing && this.websocket) this.sendClientClose();
      else client.end();
    });
    client.on('end', () => upstream.end());
    const gone = (other: Duplex) => (): void => {
      // What was written to the other side still goes out; then it closes too.
      if (!other.destroyed) (other as Socket).destroySoon();
      this.finished();
    };
    upstream.on('close', () => {
      // While closing, the upstream leaving does not end the client's part: it has its Close frame and its time to answer it.
      if (this.closing && this.websocket && !client.destroyed) {
        this.sendClientClose();
        this.finished();
        return;
      }
      gone(client)();
    });
    client.on('close', gone(upstream));
    upstream.on('error', () => upstream.destroy());
    client.on('error', () => client.destroy());
  }

  /** Called once when both sides are gone. */
  onClosed(cb: () => void): void {
    this.closedCallbacks.push(cb);
  }

  private finished(): void {
    if (this.done || !this.client.destroyed || !this.upstream.destroyed) return;
    this.done = true;
    for (const cb of this.closedCallbacks) cb();
  }

  private fromUpstream(chunk: Buffer): number {
    if (this.sentToClient) return 0;
    if (!this.closing || !this.websocket) {
      if (this.websocket) this.down.advance(chunk);
      if (!this.client.write(chunk)) this.upstream.pause();
      return chunk.length;
    }
    const end = this.down.atBoundary ? 0 : this.down.advance(chunk, true);
    const part = end === -1 ? chunk : chunk.subarray(0, end);
    if (part.length > 0) this.client.write(part);
    if (end !== -1) this.sendClientClose();
    return part.length;
  }

  private fromClient(chunk: Buffer): number {
    if (!this.websocket) {
      if (!this.upstream.write(chunk)) this.client.pause();
      return chunk.length;
    }
    if (this.sentToUpstream) {
      // The client's answer to our Close ends the exchange; the server side closes TCP (RFC 6455 section 7.1.1).
      this.up.advance(chunk);
      if (this.sentToClient && this.up.takeOpcodes().includes(OPCODE_CLOSE)) this.client.end();
      return 0;
    }
    if (!this.closing) {
      this.up.advance(chunk);
      this.up.takeOpcodes();
      if (!this.upstream.write(chunk)) this.client.pause();
      return chunk.length;
    }
    const end = this.up.atBoundary ? 0 : this.up.advance(chunk, true);
    this.up.takeOpcodes();
    const part = end === -1 ? chunk : chunk.subarray(0, end);
    if (part.length > 0) this.upstream.write(part);
    if (end !== -1) {
      this.sendUpstreamClose();
      const rest = chunk.subarray(end);
      if (rest.length > 0) this.fromClient(rest);
    }
    return part.length;
  }

  private sendClientClose(): void {
    if (this.sentToClient || this.client.destroyed) return;
    this.sentToClient = true;
    if (this.down.atBoundary) this.client.write(closeFrame(GOING_AWAY, this.closeReason, false));
    else this.client.end();
  }

  private sendUpstreamClose(): void {
    if (this.sentToUpstream || this.upstream.destroyed) return;
    this.sentToUpstream = true;
    if (this.up.atBoundary) this.upstream.write(closeFrame(GOING_AWAY, this.closeReason, true));
    this.upstream.end();
  }

  /**
   * Asks both peers to leave: a WebSocket gets a Close frame each way (1001)
   * at the next frame boundary; the client's reply ends the connection. Other
   * protocols have no such message and run on until they are destroyed.
   */
  close(reason = 'going away'): void {
    if (!this.websocket || this.closing) return;
    this.closing = true;
    this.closeReason = reason;
    this.client.resume();
    this.upstream.resume();
    if (this.down.atBoundary) this.sendClientClose();
    if (this.up.atBoundary) this.sendUpstreamClose();
  }

  /** No bytes for the idle timeout: Close frames where the protocol has them, then both connections end. */
  private idle(): void {
    this.close('idle timeout');
    this.client.end(() => this.client.destroy());
    this.upstream.end(() => this.upstream.destroy());
  }

  /** Cuts both connections. */
  destroy(): void {
    this.client.destroy();
    this.upstream.destroy();
  }
}

/** The open tunnels of a gateway, for metrics and the drain. */
export class TunnelRegistry {
  private readonly open = new Set<Tunnel>();
  private draining = false;
  private readonly metrics: GatewayMetrics;

  constructor(metrics: GatewayMetrics) {
    this.metrics = metrics;
  }

  /** Tracks a tunnel until both its connections are gone; one opened during a drain is asked to leave at once. */
  add(tunnel: Tunnel, route: string): void {
    this.open.add(tunnel);
    this.metrics.upgradedOpen.inc({ route });
    tunnel.onClosed(() => {
      this.open.delete(tunnel);
      this.metrics.upgradedOpen.dec({ route });
    });
    if (this.draining) tunnel.close();
  }

  /** Tunnels open now. */
  get size(): number {
    return this.open.size;
  }

  /** The drain begins: every WebSocket peer is told the gateway is going away. */
  closeAll(): void {
    this.draining = true;
    for (const t of this.open) t.close();
  }

  /** The grace period is over: whatever is left is cut. */
  destroyAll(): void {
    for (const t of this.open) t.destroy();
  }
}
