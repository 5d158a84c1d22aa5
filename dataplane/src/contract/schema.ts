/**
 * The route table: the contract between whoever produces routes (the standalone
 * config compiler, the operator) and the data plane that serves them.
 *
 * The consumer owns the schema: the data plane validates every table it is
 * given with `RouteTableSchema` before building anything from it, and the
 * operator imports the same schema to check its own output.
 *
 * Durations are integer milliseconds; names are stable identifiers; ordering of
 * every array is part of the contract (see `canonicalTable`).
 */
import { z } from 'zod';
import { DEFAULT_RETRY_BACKOFF_MS, DEFAULT_RETRY_ON, UPSTREAM_DEFAULTS } from './defaults.ts';

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

const durationMs = z.number().int().min(0).max(24 * 3600 * 1000);

export const PathMatchSchema = z.object({
  /**
   * Exact: the whole path equals `value`.
   * Prefix: `value` or `value/...` (segment-aware: /api matches /api/x, not /apix).
   * Template: segments may be `{name}` (one segment) or `*` (one segment; as the
   * last segment it matches the rest of the path, one or more segments).
   */
  type: z.enum(['Exact', 'Prefix', 'Template']),
  value: z.string().startsWith('/', 'a path must start with "/"'),
});
export type PathMatch = z.infer<typeof PathMatchSchema>;

export const BackendRefSchema = z.object({
  upstream: z.string().min(1),
  weight: z.number().int().min(0).max(1_000_000).default(1),
});

export const AuthPolicySchema = z.object({
  required: z.boolean().default(false),
  /** Any of these roles grants access (empty: any authenticated caller). */
  roles: z.array(z.string()).default([]),
  /** All of these permissions are needed. */
  permissions: z.array(z.string()).default([]),
});

/** A route's own rate limit; the gateway-wide settings fill in the rest (see `withGatewayDefaults`). */
export const RateLimitPolicySchema = z.object({
  /** Requests allowed per window and client key. */
  limit: z.number().int().min(0),
  /** Absent: the gateway-wide window (`middleware.rate_limiting.window`). */
  windowMs: durationMs.min(1).optional(),
});

/**
 * A route's own CORS settings: each field given replaces the gateway-wide
 * default (`middleware.cors`) and each field absent is taken from it.
 */
export const CorsPolicySchema = z.object({
  allowedOrigins: z.array(z.string()).optional(),
  allowedMethods: z.array(z.string()).optional(),
  allowedHeaders: z.array(z.string()).optional(),
  exposedHeaders: z.array(z.string()).optional(),
  allowCredentials: z.boolean().optional(),
  maxAgeSeconds: z.number().int().min(0).optional(),
});
export type CorsSettings = z.infer<typeof CorsPolicySchema>;

/**
 * A condition on a request header or query parameter. Header names are
 * case-insensitive, query parameter names case-sensitive; the matcher checks
 * the rest (routing/matcher.ts).
 */
export const RequestConditionSchema = z.object({
  name: z.string().min(1).max(256),
  /** Exact: the value equals `value`. Present: the header or parameter is there, whatever its value. */
  type: z.enum(['Exact', 'Present']).default('Exact'),
  value: z.string().max(4096).optional(),
});
export type RequestCondition = z.infer<typeof RequestConditionSchema>;

/** The failures a retry policy can name. */
export const RETRY_TRIGGERS = ['connect-failure', 'reset', '502', '503', '504'] as const;

export const RetryPolicySchema = z.object({
  attempts: z.number().int().min(0).max(10).default(0),
  on: z.array(z.enum(RETRY_TRIGGERS)).default([...DEFAULT_RETRY_ON]),
  /** Retry non-idempotent methods too. */
  nonIdempotent: z.boolean().default(false),
  backoffMs: durationMs.default(DEFAULT_RETRY_BACKOFF_MS),
});

export const RouteSchema = z.object({
  /** Stable identifier: `namespace/name[#index]` from the operator, `routes[i]` from a file. */
  id: z.string().min(1),
  /** Empty: any host. Entries are exact host names or `*.suffix` wildcards, lower case, no port. */
  hosts: z.array(z.string()).default([]),
  path: PathMatchSchema,
  /** Empty: any method. */
  methods: z.array(z.enum(HTTP_METHODS)).default([]),
  /** Every one must hold; absent or empty: no condition. */
  headers: z.array(RequestConditionSchema).max(16).optional(),
  queryParams: z.array(RequestConditionSchema).max(16).optional(),
  backends: z.array(BackendRefSchema).min(1),
  /** Total time allowed for the upstream to start answering, retries included. Absent: the data plane's `server.timeouts.request_timeout`. */
  timeoutMs: durationMs.optional(),
  auth: AuthPolicySchema.default({ required: false, roles: [], permissions: [] }),
  rateLimit: RateLimitPolicySchema.optional(),
  cors: CorsPolicySchema.optional(),
  retries: RetryPolicySchema.optional(),
  /** Replace the matched prefix (Prefix routes) or the whole path (Exact) with this. */
  rewritePath: z.string().startsWith('/').optional(),
  /** Set when this route cannot be served (e.g. an unknown upstream): it answers 503 with this message. */
  invalid: z.string().optional(),
  /** Where the route came from, for status reporting; opaque to the data plane. */
  source: z
    .object({ kind: z.string(), namespace: z.string().optional(), name: z.string(), generation: z.number().int().optional() })
    .optional(),
});
export type Route = z.infer<typeof RouteSchema>;

export const EndpointSchema = z.object({
  /** `http://host:port` or `https://host:port`. */
  url: z.url({ protocol: /^https?$/ }),
  weight: z.number().int().min(1).max(1000).default(1),
  /** Optional zone or pod name, for logs and metrics only. */
  name: z.string().optional(),
});
export type Endpoint = z.infer<typeof EndpointSchema>;

export const HealthCheckSchema = z.object({
  path: z.string().startsWith('/'),
  intervalMs: durationMs.min(100),
  timeoutMs: durationMs.min(1),
  healthyThreshold: z.number().int().min(1).default(UPSTREAM_DEFAULTS.healthCheck.healthyThreshold),
  unhealthyThreshold: z.number().int().min(1).default(UPSTREAM_DEFAULTS.healthCheck.unhealthyThreshold),
});

export const CircuitBreakerSchema = z.object({
  failureThreshold: z.number().int().min(1),
  /** How long the breaker stays open before letting probes through. */
  openMs: durationMs.min(1),
  successThreshold: z.number().int().min(1).default(UPSTREAM_DEFAULTS.circuitBreaker.successThreshold),
  /** Requests let through at once while half-open (absent: UPSTREAM_DEFAULTS.circuitBreaker.halfOpenRequests). */
  halfOpenRequests: z.number().int().min(1).max(1000).optional(),
});

/** Passive health: endpoints that keep failing real requests are ejected for a while. */
export const OutlierDetectionSchema = z.object({
  /** Consecutive 5xx answers or connection failures that eject an endpoint. */
  consecutiveFailures: z.number().int().min(1).default(UPSTREAM_DEFAULTS.outlierDetection.consecutiveFailures),
  /** An ejection lasts this long times the number of times the endpoint was ejected. */
  baseEjectionMs: durationMs.min(1).default(UPSTREAM_DEFAULTS.outlierDetection.baseEjectionMs),
  maxEjectionMs: durationMs.min(1).default(UPSTREAM_DEFAULTS.outlierDetection.maxEjectionMs),
  /** Never eject more than this share of the upstream's endpoints. */
  maxEjectionPercent: z.number().int().min(0).max(100).default(UPSTREAM_DEFAULTS.outlierDetection.maxEjectionPercent),
});

/** How many retries may be in flight to an upstream at once. */
export const RetryBudgetSchema = z.object({
  /** Retries in flight as a share of the requests in flight. */
  percent: z.number().min(0).max(100).default(UPSTREAM_DEFAULTS.retryBudget.percent),
  /** Retries always allowed at once, however few requests are in flight. */
  minConcurrent: z.number().int().min(0).default(UPSTREAM_DEFAULTS.retryBudget.minConcurrent),
});

export const UpstreamSchema = z.object({
  name: z.string().min(1),
  endpoints: z.array(EndpointSchema),
  loadBalancer: z.enum(['RoundRobin', 'LeastRequest', 'Random']).default('RoundRobin'),
  healthCheck: HealthCheckSchema.optional(),
  circuitBreaker: CircuitBreakerSchema.optional(),
  outlierDetection: OutlierDetectionSchema.optional(),
  /** When no endpoint is healthy: `panic` sends to all of them anyway, `fail` answers 503 (absent: panic). */
  whenAllUnhealthy: z.enum(['panic', 'fail']).optional(),
  /** Absent: 20% of the requests in flight, at least 3. */
  retryBudget: RetryBudgetSchema.optional(),
  /** Per-attempt time to first response byte and between body chunks. Absent: the data plane's `server.timeouts.upstream_timeout`. */
  timeoutMs: durationMs.optional(),
  pool: z
    .object({
      connectionsPerEndpoint: z.number().int().min(1).max(10_000).default(UPSTREAM_DEFAULTS.pool.connectionsPerEndpoint),
      /** Absent: the data plane's own `server.timeouts.keepalive_timeout`. */
      keepAliveTimeoutMs: durationMs.min(1).optional(),
      connectTimeoutMs: durationMs.min(1).default(UPSTREAM_DEFAULTS.pool.connectTimeoutMs),
    })
    .default({ connectionsPerEndpoint: UPSTREAM_DEFAULTS.pool.connectionsPerEndpoint, connectTimeoutMs: UPSTREAM_DEFAULTS.pool.connectTimeoutMs }),
  tls: z
    .object({
      /** PEM bundle to trust instead of the system roots. */
      caPem: z.string().optional(),
      serverName: z.string().optional(),
      insecureSkipVerify: z.boolean().default(false),
    })
    .optional(),
  source: z
    .object({ kind: z.string(), namespace: z.string().optional(), name: z.string(), generation: z.number().int().optional() })
    .optional(),
});
export type Upstream = z.infer<typeof UpstreamSchema>;

export const RouteTableSchema = z
  .object({
    /** Hash of the canonical table without this field; see `tableVersion`. */
    version: z.string().min(1),
    routes: z.array(RouteSchema),
    upstreams: z.array(UpstreamSchema),
  })
  .superRefine((table, ctx) => {
    const names = new Set<string>();
    table.upstreams.forEach((u, i) => {
      if (names.has(u.name)) ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'name'], message: `duplicate upstream name "${u.name}"` });
      names.add(u.name);
    });
    const ids = new Set<string>();
    table.routes.forEach((r, i) => {
      if (ids.has(r.id)) ctx.addIssue({ code: 'custom', path: ['routes', i, 'id'], message: `duplicate route id "${r.id}"` });
      ids.add(r.id);
      if (r.invalid !== undefined) return;
      r.backends.forEach((b, j) => {
        if (!names.has(b.upstream)) {
          ctx.addIssue({ code: 'custom', path: ['routes', i, 'backends', j, 'upstream'], message: `unknown upstream "${b.upstream}"` });
        }
      });
    });
  });
export type RouteTable = z.infer<typeof RouteTableSchema>;
export type RouteTableInput = z.input<typeof RouteTableSchema>;
