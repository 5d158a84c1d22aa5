/**
 * Builds the security stages from the bootstrap config (`auth`, `middleware`,
 * `server.limits`): the token verifier, the rate limiter and its store, and
 * the per-route stage list in request order:
 *
 *     CORS headers → request limits → authenticate → authorize → rate limit
 *
 * CORS comes first so that every answer the gateway gives a browser (401,
 * 413, 429) carries the headers that let the page read it. The rate limit
 * comes after authentication so that a verified caller is counted by user.
 * Preflights never get here: the request handler answers them before method
 * matching (see cors.ts).
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { ConfigError } from '../config/load.ts';
import { parseDuration } from '../contract/duration.ts';
import type { GatewayConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import type { ServedRoute } from '../contract/policy.ts';
import { authStages, requiresAuth, type TokenVerifier } from './auth.ts';
import type { Stage } from './context.ts';
import { corsStage } from './cors.ts';
import { createJwtVerifier } from './jwt.ts';
import { headerRulesCheck } from './headers.ts';
import { requestHeadCheck, requestLimits, requestLimitsStage } from './limits.ts';
import type { IncomingMessage } from 'node:http';
import type { GatewayError } from '../proxy/errors.ts';
import type { RateLimiter } from './ratelimit.ts';
import { rateLimitStage } from './ratelimit.ts';
import { readSecretFile, RedisRateLimitStore, ResilientRateLimiter, type HostPort, type RedisStoreOptions, type RedisTopology } from './ratelimit-store.ts';

/** The security side of the request path, built once per process. */
export interface SecurityPipeline {
  /** The verifier built from `auth.jwt`, if configured. */
  readonly verifier: TokenVerifier | undefined;
  readonly limiter: RateLimiter;
  /** Route-independent checks of the request head, run before matching. */
  readonly headCheck: (req: IncomingMessage) => GatewayError | undefined;
  /** The stages of one route; `verifier` is the one to use (normally the one above). */
  stagesFor(route: ServedRoute, verifier: TokenVerifier | undefined): Stage[];
  /** Closes the Redis connection, if any. */
  close(): Promise<void>;
}

/** How long start-up waits for Redis before serving with the failure policy. */
const REDIS_START_WAIT_MS = 1_000;

type StorageConfig = NonNullable<GatewayConfig['middleware']['rate_limiting']>['storage'];

/** `host:port` (or `[v6]:port`), as the schema checked it. */
function hostPort(text: string): HostPort {
  const at = text.lastIndexOf(':');
  return { host: text.slice(0, at).replace(/^\[(.*)\]$/, '$1'), port: Number(text.slice(at + 1)) };
}

/** The Redis store's options from `middleware.rate_limiting.storage`, with the secret and TLS files read now. */
function redisStoreOptions(st: StorageConfig, timeoutMs: number): RedisStoreOptions {
  const field = `middleware.rate_limiting.storage`;
  const read = (path: string, name: string, as: (file: string) => string = (f) => readFileSync(f, 'utf8')): string => {
    try {
      return as(path);
    } catch (err) {
      throw new ConfigError([`${field}.${name}: cannot read ${path}: ${(err as Error).message}`]);
    }
  };
  const password = st.password_file !== undefined ? read(st.password_file, 'password_file', readSecretFile) : st.password;
  const sentinelPassword = st.sentinel_password_file !== undefined ? read(st.sentinel_password_file, 'sentinel_password_file', readSecretFile) : st.sentinel_password;
  const t = st.tls;
  const tls: ConnectionOptions | undefined = t && {
    ...(t.ca_file !== undefined && { ca: read(t.ca_file, 'tls.ca_file') }),
    ...(t.cert_file !== undefined && { cert: read(t.cert_file, 'tls.cert_file') }),
    ...(t.key_file !== undefined && { key: read(t.key_file, 'tls.key_file') }),
    ...(t.server_name !== undefined && { servername: t.server_name }),
    rejectUnauthorized: !t.insecure_skip_verify,
  };
  let topology: RedisTopology;
  if (st.type === 'RedisSentinel') {
    topology = { type: 'RedisSentinel', sentinels: (st.sentinels ?? []).map(hostPort), name: st.name ?? '', sentinelUsername: st.sentinel_username, sentinelPassword };
  } else if (st.type === 'RedisCluster') {
    topology = { type: 'RedisCluster', nodes: (st.nodes ?? []).map(hostPort) };
  } else {
    topology = { type: 'Redis', url: st.url ?? '' };
  }
  return { topology, username: st.username, password, tls, timeoutMs, keyPrefix: st.key_prefix };
}

/** Builds the pipeline; throws ConfigError naming the field when a setting cannot be used. */
export async function createSecurity(config: GatewayConfig, deps: { metrics: GatewayMetrics; log: Logger }): Promise<SecurityPipeline> {
  const { log, metrics } = deps;
  const limits = requestLimits(config.server);
  if (typeof limits === 'string') throw new ConfigError([limits]);

  let verifier: TokenVerifier | undefined;
  if (config.auth.jwt) {
    const built = await createJwtVerifier(config.auth.jwt, log);
    for (const w of built.warnings) log.warn({ event: 'config_warning' }, w);
    verifier = built.verifier;
  } else if (config.routes.some((r) => requiresAuth({ required: r.auth_required, roles: r.required_roles, permissions: r.required_permissions }))) {
    log.warn({ event: 'config_warning' }, 'some routes require authentication but auth.jwt is not configured: they answer 401 to every request');
  }

  const rl = config.middleware.rate_limiting;
  const storage = rl?.storage;
  const timeoutMs = parseDuration(storage?.timeout ?? '50ms') ?? 50;
  const shared = rl?.enabled && storage && storage.type !== 'Memory' ? new RedisRateLimitStore(redisStoreOptions(storage, timeoutMs)) : undefined;
  const limiter = new ResilientRateLimiter({ shared, policy: storage?.failure_policy ?? 'open', timeoutMs, metrics, log });
  if (shared && !(await shared.waitReady(REDIS_START_WAIT_MS))) limiter.unreachableAtStart();
  const limitsStage = requestLimitsStage(limits);
  const limitsCheck = requestHeadCheck(limits);
  const headerRules = headerRulesCheck({ headersWithUnderscores: config.server.headers_with_underscores });

  return {
    verifier,
    limiter,
    headCheck: (req) => limitsCheck(req) ?? headerRules(req),
    stagesFor(route, routeVerifier) {
      const stages: Stage[] = [];
      if (route.cors) stages.push(corsStage(route.cors));
      stages.push(limitsStage);
      stages.push(...authStages(route, routeVerifier));
      const rate = rateLimitStage(route, limiter);
      if (rate) stages.push(rate);
      return stages;
    },
    close: () => limiter.close(),
  };
}
