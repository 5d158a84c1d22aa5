/**
 * Connection pools to endpoints, shared across table versions: a reload that
 * keeps an endpoint keeps its warm connections; a pool whose endpoint left
 * the table is closed gracefully, so requests already on it finish.
 */
import { createHash } from 'node:crypto';
import { Pool } from 'undici';
import { UPSTREAM_DEFAULTS } from '../contract/defaults.ts';
import type { Upstream } from '../contract/schema.ts';

/** Pool settings that, when changed, need a new pool. */
function poolKey(origin: string, u: Upstream, keepAliveMs: number): string {
  // A digest, so that a client key never sits in a map key in the clear; a rotated CA or certificate makes a new pool.
  const tls = u.tls ? createHash('sha256').update(JSON.stringify([u.tls.serverName, u.tls.insecureSkipVerify, u.tls.caPem, u.tls.certPem, u.tls.keyPem])).digest('hex') : '';
  return `${origin}|${u.protocol ?? 'http1'}|${u.pool.connectionsPerEndpoint}|${keepAliveMs}|${u.pool.connectTimeoutMs}|${tls}`;
}

/**
 * The HTTP version towards an upstream's endpoints, as undici takes it:
 * HTTP/1.1 only unless the upstream says h2 (offered by ALPN over TLS) or
 * h2c (HTTP/2 with prior knowledge over cleartext).
 */
export function protocolOptions(upstream: Upstream): { allowH2: boolean; useH2c?: boolean } {
  switch (upstream.protocol) {
    case 'h2':
      return { allowH2: true };
    case 'h2c':
      // The connector reads useH2c (it marks the socket as h2 without ALPN); a Pool passes it on to its clients.
      return { allowH2: true, useH2c: true };
    default:
      return { allowH2: false };
  }
}

/** How connections to an upstream's endpoints are made (timeout, TLS); shared by traffic pools and health probes. */
export function connectOptions(upstream: Upstream): Pool.Options['connect'] {
  return {
    timeout: upstream.pool.connectTimeoutMs,
    ...(upstream.tls
      ? {
          ca: upstream.tls.caPem,
          servername: upstream.tls.serverName,
          rejectUnauthorized: !upstream.tls.insecureSkipVerify,
          cert: upstream.tls.certPem,
          key: upstream.tls.keyPem,
        }
      : {}),
  };
}

/** Owns every upstream connection pool of the process. */
export class PoolRegistry {
  private pools = new Map<string, Pool>();
  private readonly keepAliveMs: number;

  /** `keepAliveMs`: the gateway-wide idle time of upstream connections (`server.timeouts.keepalive_timeout`), for upstreams that set none. */
  constructor(keepAliveMs: number = UPSTREAM_DEFAULTS.pool.keepAliveTimeoutMs) {
    this.keepAliveMs = keepAliveMs;
  }

  /** The pool for this endpoint of this upstream, created on first use. */
  get(origin: string, upstream: Upstream): Pool {
    const keepAliveMs = upstream.pool.keepAliveTimeoutMs ?? this.keepAliveMs;
    const key = poolKey(origin, upstream, keepAliveMs);
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new Pool(origin, {
        connections: upstream.pool.connectionsPerEndpoint,
        keepAliveTimeout: keepAliveMs,
        keepAliveMaxTimeout: Math.max(keepAliveMs, 1000),
        // Pipelining would let one slow response delay others on the same connection.
        pipelining: 1,
        connect: connectOptions(upstream),
        ...protocolOptions(upstream),
      });
      this.pools.set(key, pool);
    }
    return pool;
  }

  /** Closes pools not in `live`; requests already on them finish first. */
  retainOnly(live: ReadonlySet<Pool>): void {
    for (const [key, pool] of this.pools) {
      if (live.has(pool)) continue;
      this.pools.delete(key);
      pool.close().catch(() => undefined);
    }
  }

  /** Closes every pool; with `force`, in-flight requests are aborted. */
  async closeAll(force = false): Promise<void> {
    const all = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(all.map((p) => (force ? p.destroy() : p.close())));
  }

  get size(): number {
    return this.pools.size;
  }
}
