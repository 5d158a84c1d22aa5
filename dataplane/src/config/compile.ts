/**
 * Standalone mode: turn a validated gateway.yaml into the same route table the
 * operator produces, so both paths share everything after "table".
 */
import { readFileSync } from 'node:fs';
import { parseDuration } from '../contract/duration.ts';
import { ConfigError, formatPath } from './load.ts';
import type { GatewayConfig, RouteConfig, UpstreamConfig } from './schema.ts';
import {
  DEFAULT_RATE_LIMIT_WINDOW_MS,
  DEFAULT_RETRY_BACKOFF_MS,
  DEFAULT_RETRY_ON,
  describeClaim,
  inferPathType,
  resolveRoutes,
  RouteTableSchema,
  tableVersion,
  UPSTREAM_DEFAULTS,
  withGatewayDefaults,
  type CorsSettings,
  type GatewayDefaults,
  type Route,
  type RouteTable,
  type Upstream,
} from '../contract/index.ts';

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

/** `middleware.cors` or a route's `cors` in the table's terms: only the fields that are set. */
function corsSettings(c: NonNullable<RouteConfig['cors']>): CorsSettings {
  return {
    allowedOrigins: c.allowed_origins,
    allowedMethods: c.allowed_methods,
    allowedHeaders: c.allowed_headers,
    exposedHeaders: c.exposed_headers,
    allowCredentials: c.allow_credentials,
    maxAgeSeconds: c.max_age,
  };
}

/** A route's `rate_limit` in the table's terms: a bare number is the limit alone. */
function routeRateLimit(rl: RouteConfig['rate_limit']): Route['rateLimit'] {
  if (rl === undefined) return undefined;
  if (typeof rl === 'number') return { limit: rl };
  return { limit: rl.requests, windowMs: ms(rl.window), key: rl.key };
}

/**
 * The gateway-wide policy of a config (`middleware.rate_limiting`,
 * `middleware.cors`), which every data plane lays under each route's own,
 * whether its table comes from this file or from the operator.
 */
export function gatewayDefaults(config: GatewayConfig): GatewayDefaults {
  const rl = config.middleware.rate_limiting;
  const cors = config.middleware.cors;
  return {
    ...(rl && { rateLimit: { enabled: rl.enabled, defaultLimit: rl.default_limit, windowMs: ms(rl.window) ?? DEFAULT_RATE_LIMIT_WINDOW_MS, routeLimits: rl.route_limits, key: rl.key } }),
    ...(cors && { cors: corsSettings(cors) }),
  };
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
    // Unset timeouts stay unset: every data plane applies its own server.timeouts, whoever built the table.
    timeoutMs: ms(u.timeout),
    pool: {
      connectionsPerEndpoint: u.max_connections ?? UPSTREAM_DEFAULTS.pool.connectionsPerEndpoint,
      keepAliveTimeoutMs: ms(u.idle_timeout),
      connectTimeoutMs: ms(u.connect_timeout) ?? UPSTREAM_DEFAULTS.pool.connectTimeoutMs,
    },
    // Absent means http1: tables that say nothing stay as they were.
    protocol: u.protocol === 'http1' ? undefined : u.protocol,
    tls: u.tls && {
      caPem: u.tls.ca_file ? readFileSync(u.tls.ca_file, 'utf8') : undefined,
      serverName: u.tls.server_name,
      insecureSkipVerify: u.tls.insecure_skip_verify,
      certPem: u.tls.cert_file ? readFileSync(u.tls.cert_file, 'utf8') : undefined,
      keyPem: u.tls.key_file ? readFileSync(u.tls.key_file, 'utf8') : undefined,
    },
  };
}

/** Compiles a validated config into a route table. `file` is used in messages only. Throws ConfigError for a route the matcher refuses. */
export function compileConfig(config: GatewayConfig, file = 'gateway.yaml'): CompiledConfig {
  const warnings: string[] = [];
  const upstreams = Object.entries(config.upstreams)
    .map(([name, u]) => compileUpstream(config, name, u))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const known = new Set(upstreams.map((u) => u.name));
  const seen = new Map<string, number>();
  const defaults = gatewayDefaults(config);
  const where = (i: number, ...rest: (string | number)[]): string => `${file}: ${formatPath(['routes', i, ...rest])}`;

  const routes: Route[] = config.routes.map((r, i) => {
    const base = r.name ?? r.path;
    const n = (seen.get(base) ?? 0) + 1;
    seen.set(base, n);
    const backends = r.backends ?? [{ upstream: r.upstream as string, weight: 1 }];
    const missing = backends.filter((b) => !known.has(b.upstream)).map((b) => b.upstream);
    let invalid: string | undefined;
    if (missing.length > 0) {
      invalid = `upstream ${missing.map((m) => `"${m}"`).join(', ')} is not defined`;
      warnings.push(`${where(i, r.upstream ? 'upstream' : 'backends')}: ${invalid} in "upstreams"; the route answers 503 until it is`);
    }
    const retries = r.retries && {
      attempts: r.retries.attempts,
      on: r.retries.on ?? [...DEFAULT_RETRY_ON],
      nonIdempotent: r.retries.non_idempotent,
      backoffMs: ms(r.retries.backoff) ?? DEFAULT_RETRY_BACKOFF_MS,
    };
    const route: Route = {
      id: n === 1 ? base : `${base}#${n}`,
      hosts: r.hosts.map((h) => h.toLowerCase()),
      path: { type: pathType(r), value: r.path },
      methods: r.methods,
      headers: r.headers,
      queryParams: r.query_params,
      backends,
      timeoutMs: ms(r.timeout),
      auth: { required: r.auth_required, roles: r.required_roles, permissions: r.required_permissions },
      rateLimit: routeRateLimit(r.rate_limit),
      cors: r.cors && corsSettings(r.cors),
      retries,
      rewritePath: r.rewrite_path,
      upgrade: r.upgrade && { enabled: r.upgrade.enabled, idleTimeoutMs: ms(r.upgrade.idle_timeout) },
      invalid,
    };
    const served = withGatewayDefaults(route, defaults);
    if (served.cors?.allowCredentials && served.cors.allowedOrigins.includes('*')) {
      warnings.push(`${where(i)}.cors: allowed_origins "*" together with allow_credentials allows no origin at all; list the origins`);
    }
    return route;
  });

  // The matcher decides, in file order: a route it refuses makes the file invalid; a route it would shadow is left out.
  const index = new Map(routes.map((r, i) => [r, i]));
  const { accepted, rejected } = resolveRoutes(routes);
  const invalid = rejected.flatMap((x) => (x.reason === 'Invalid' ? [`${where(index.get(x.route) as number, 'path')}: ${x.message}`] : []));
  if (invalid.length > 0) throw new ConfigError(invalid);
  for (const x of rejected) {
    if (x.reason !== 'Conflicted') continue;
    const i = index.get(x.route) as number;
    const winner = routes.findIndex((r) => r.id === x.by);
    warnings.push(
      `${where(i)}: shadowed by routes[${winner}] ("${x.by}") on ${describeClaim(x)}: both match the same requests, and the earlier route wins, so this one never serves; remove one, or make their paths, methods, hosts or conditions differ`,
    );
  }

  // Hash after defaults are filled in, so that equal tables get equal versions whoever wrote them.
  const table = RouteTableSchema.parse({ routes: accepted, upstreams, version: 'unversioned' });
  table.version = tableVersion(table);
  return { table, warnings };
}
