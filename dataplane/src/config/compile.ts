/**
 * Standalone mode: turn a validated gateway.yaml into the same route table the
 * operator produces, so both paths share everything after "table".
 */
import { readFileSync } from 'node:fs';
import { parseDuration } from '../contract/duration.ts';
import { formatPath } from './load.ts';
import type { GatewayConfig, RouteConfig, UpstreamConfig } from './schema.ts';
import { RouteTableSchema, type Route, type RouteTable, type Upstream } from '../contract/schema.ts';
import { corsPolicy, DEFAULT_RETRY_ON, inferPathType } from '../contract/defaults.ts';
import { tableVersion } from '../contract/version.ts';

/** The table compiled from a file, and what is wrong with it but not fatal. */
export interface CompiledConfig {
  table: RouteTable;
  /** e.g. a route naming an upstream that does not exist: that route answers 503. */
  warnings: string[];
}

const ms = (v: string | number | undefined): number | undefined => (v === undefined ? undefined : parseDuration(v));

function pathType(route: RouteConfig): Route['path']['type'] {
  if (route.path_type) return route.path_type;
  return inferPathType(route.path);
}

/** `route_limits` keys are paths where `*` stands for the rest of the path. */
function globMatches(pattern: string, path: string): boolean {
  if (pattern === path) return true;
  if (!pattern.includes('*')) return false;
  const rx = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.+')}$`);
  return rx.test(path);
}

function rateLimitFor(config: GatewayConfig, route: RouteConfig): Route['rateLimit'] {
  const rl = config.middleware.rate_limiting;
  if (!rl || !rl.enabled) return undefined;
  const windowMs = ms(rl.window) ?? 60_000;
  if (route.rate_limit !== undefined) return { limit: route.rate_limit, windowMs };
  // The most specific key wins: an exact path before globs, a longer glob before a shorter one.
  const keys = Object.keys(rl.route_limits).sort((a, b) => Number(b === route.path) - Number(a === route.path) || b.length - a.length || (a < b ? -1 : 1));
  for (const key of keys) if (globMatches(key, route.path)) return { limit: rl.route_limits[key] as number, windowMs };
  return rl.default_limit !== undefined ? { limit: rl.default_limit, windowMs } : undefined;
}

function corsFor(config: GatewayConfig, route: RouteConfig, warn: (message: string) => void): Route['cors'] {
  const base = config.middleware.cors;
  if (!base && !route.cors) return undefined;
  const overrides = Object.fromEntries(Object.entries(route.cors ?? {}).filter(([, v]) => v !== undefined));
  const merged = { ...(base ?? {}), ...overrides };
  if (merged.allow_credentials && merged.allowed_origins?.includes('*')) {
    warn('cors: allowed_origins "*" together with allow_credentials allows no origin at all; list the origins');
  }
  return corsPolicy({
    allowedOrigins: merged.allowed_origins,
    allowedMethods: merged.allowed_methods,
    allowedHeaders: merged.allowed_headers,
    exposedHeaders: merged.exposed_headers,
    allowCredentials: merged.allow_credentials,
    maxAgeSeconds: merged.max_age,
  });
}

function compileUpstream(config: GatewayConfig, name: string, u: UpstreamConfig): Upstream {
  return {
    name,
    endpoints: u.discovery.endpoints.map((url) => ({ url: new URL(url).origin, weight: 1 })),
    loadBalancer: u.load_balancer.type,
    healthCheck: u.health_check && {
      path: u.health_check.path,
      intervalMs: ms(u.health_check.interval) as number,
      timeoutMs: ms(u.health_check.timeout) as number,
      healthyThreshold: u.health_check.healthy_threshold,
      unhealthyThreshold: u.health_check.unhealthy_threshold,
    },
    circuitBreaker: u.circuit_breaker && {
      failureThreshold: u.circuit_breaker.failure_threshold,
      openMs: ms(u.circuit_breaker.timeout) as number,
      successThreshold: u.circuit_breaker.success_threshold,
      halfOpenRequests: u.circuit_breaker.half_open_requests,
    },
    outlierDetection: u.outlier_detection && {
      consecutiveFailures: u.outlier_detection.consecutive_failures,
      baseEjectionMs: ms(u.outlier_detection.base_ejection_time) as number,
      maxEjectionMs: ms(u.outlier_detection.max_ejection_time) as number,
      maxEjectionPercent: u.outlier_detection.max_ejection_percent,
    },
    whenAllUnhealthy: u.when_all_unhealthy,
    retryBudget: u.retry_budget && { percent: u.retry_budget.percent, minConcurrent: u.retry_budget.min_concurrent },
    timeoutMs: ms(u.timeout ?? config.server.timeouts.upstream_timeout),
    pool: {
      connectionsPerEndpoint: u.max_connections ?? 128,
      keepAliveTimeoutMs: ms(config.server.timeouts.keepalive_timeout) ?? 60_000,
      connectTimeoutMs: 5_000,
    },
    tls: u.tls && {
      caPem: u.tls.ca_file ? readFileSync(u.tls.ca_file, 'utf8') : undefined,
      serverName: u.tls.server_name,
      insecureSkipVerify: u.tls.insecure_skip_verify,
    },
  };
}

/** Compiles a validated config into a route table. `file` is used in messages only. */
export function compileConfig(config: GatewayConfig, file = 'gateway.yaml'): CompiledConfig {
  const warnings: string[] = [];
  const upstreams = Object.entries(config.upstreams)
    .map(([name, u]) => compileUpstream(config, name, u))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const known = new Set(upstreams.map((u) => u.name));
  const seen = new Map<string, number>();
  const defaultTimeout = ms(config.server.timeouts.request_timeout);

  // Routes keep file order: among identical matches the first one listed wins.
  const routes: Route[] = config.routes.map((r, i) => {
    const base = r.name ?? r.path;
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    const backends = r.backends ?? [{ upstream: r.upstream as string, weight: 1 }];
    const missing = backends.filter((b) => !known.has(b.upstream)).map((b) => b.upstream);
    let invalid: string | undefined;
    if (missing.length > 0) {
      invalid = `upstream ${missing.map((m) => `"${m}"`).join(', ')} is not defined`;
      warnings.push(`${file}: ${formatPath(['routes', i, r.upstream ? 'upstream' : 'backends'])}: ${invalid} in "upstreams"; the route answers 503 until it is`);
    }
    const retries = r.retries && {
      attempts: r.retries.attempts,
      on: r.retries.on ?? DEFAULT_RETRY_ON,
      nonIdempotent: r.retries.non_idempotent,
      backoffMs: ms(r.retries.backoff) ?? 25,
    };
    return {
      id: n === 1 ? base : `${base}#${n}`,
      hosts: r.hosts.map((h) => h.toLowerCase()),
      path: { type: pathType(r), value: r.path },
      methods: r.methods,
      backends,
      timeoutMs: ms(r.timeout) ?? defaultTimeout,
      auth: { required: r.auth_required, roles: r.required_roles, permissions: r.required_permissions },
      rateLimit: rateLimitFor(config, r),
      cors: corsFor(config, r, (w) => warnings.push(`${file}: ${formatPath(['routes', i])}.${w}`)),
      retries,
      rewritePath: r.rewrite_path,
      invalid,
    };
  });

  // Hash after defaults are filled in, so that equal tables get equal versions whoever wrote them.
  const table = RouteTableSchema.parse({ routes, upstreams, version: 'unversioned' });
  table.version = tableVersion(table);
  return { table, warnings };
}
