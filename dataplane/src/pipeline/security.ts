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
import { RedisRateLimitStore, ResilientRateLimiter } from './ratelimit-store.ts';

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
  let shared: RedisRateLimitStore | undefined;
  if (rl?.enabled && storage?.type === 'Redis' && storage.url !== undefined) {
    shared = new RedisRateLimitStore({ url: storage.url, timeoutMs, keyPrefix: storage.key_prefix, log });
    if (!(await shared.waitReady(REDIS_START_WAIT_MS))) {
      log.warn({ event: 'ratelimit_store_unavailable', policy: storage.failure_policy }, `Redis for rate limiting is not reachable yet; until it is, ${storage.failure_policy === 'open' ? 'limits are counted in this process only' : 'rate-limited routes answer 503'}`);
    }
  }
  const limiter = new ResilientRateLimiter({ shared, policy: storage?.failure_policy ?? 'open', timeoutMs, metrics, log });
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
