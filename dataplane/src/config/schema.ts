/**
 * The gateway's configuration file, in the shape of the seed's `gateway.yaml`:
 * `server`, `routes`, `upstreams`, `auth`, `middleware`, `observability`.
 *
 * Objects are strict so that a misspelt key ("auth_requried") is an error that
 * names it, not a silently ignored setting. Durations stay strings here and
 * are turned into milliseconds when the table is compiled.
 */
import { z } from 'zod';
import { parseDuration } from './duration.ts';
import { HTTP_METHODS } from '../table/schema.ts';

const duration = z
  .union([z.string(), z.number()])
  .refine((v) => parseDuration(v) !== undefined, { message: 'expected a duration such as "500ms", "30s", "1m" or "1h"' });
const port = z.number().int().min(0).max(65535);
const method = z.string().transform((m) => m.toUpperCase()).pipe(z.enum(HTTP_METHODS, { message: `expected one of ${HTTP_METHODS.join(', ')}` }));

export const ServerConfigSchema = z.strictObject({
  http_port: port.default(8080),
  https_port: port.default(8443),
  admin_port: port.default(8081),
  metrics_port: port.default(9090),
  bind_address: z.string().default('0.0.0.0'),
  /** The admin listener is never on the public address unless asked for. */
  admin_bind_address: z.string().default('127.0.0.1'),
  tls: z
    .strictObject({
      cert_file: z.string(),
      key_file: z.string(),
    })
    .optional(),
  timeouts: z
    .strictObject({
      /** Default total time for an upstream to start answering (a route's `timeout` overrides it). */
      request_timeout: duration.default('30s'),
      /** Idle time before a client's or an upstream's keep-alive connection is closed. */
      keepalive_timeout: duration.default('60s'),
      /** Per-attempt time to the upstream's first byte and between body chunks. */
      upstream_timeout: duration.default('10s'),
      /** Time a client has to send its request headers. */
      client_header_timeout: duration.default('10s'),
    })
    .default({ request_timeout: '30s', keepalive_timeout: '60s', upstream_timeout: '10s', client_header_timeout: '10s' }),
  shutdown: z
    .strictObject({
      /** After SIGTERM, keep accepting this long (readiness already failing) so load balancers notice. */
      drain_delay: duration.default('0s'),
      /** Then wait this long for requests in flight before closing what is left. */
      grace_period: duration.default('30s'),
    })
    .default({ drain_delay: '0s', grace_period: '30s' }),
  limits: z
    .strictObject({
      max_body_size: z.union([z.number().int().min(0), z.string()]).default('10MiB'),
      max_header_size: z.number().int().min(1024).default(16384),
      max_headers_count: z.number().int().min(1).default(100),
      max_url_length: z.number().int().min(16).default(8192),
    })
    .default({ max_body_size: '10MiB', max_header_size: 16384, max_headers_count: 100, max_url_length: 8192 }),
});

const CorsSchema = z.strictObject({
  allowed_origins: z.array(z.string()).default([]),
  allowed_methods: z.array(method).default(['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS']),
  allowed_headers: z.array(z.string()).default(['Content-Type', 'Authorization']),
  exposed_headers: z.array(z.string()).default([]),
  allow_credentials: z.boolean().default(false),
  max_age: z.number().int().min(0).default(0),
});

const RetriesSchema = z.strictObject({
  attempts: z.number().int().min(0).max(10),
  on: z.array(z.enum(['connect-failure', 'reset', '502', '503', '504'])).optional(),
  non_idempotent: z.boolean().default(false),
  backoff: duration.optional(),
});

export const RouteConfigSchema = z
  .strictObject({
    /** Optional stable name (used in logs and metrics); defaults to the path. */
    name: z.string().min(1).optional(),
    path: z.string().startsWith('/', 'a route path must start with "/"'),
    /** Exact (default for plain paths), Prefix, or Template (default when the path has {param} or *). */
    path_type: z.enum(['Exact', 'Prefix', 'Template']).optional(),
    hosts: z.array(z.string().min(1)).default([]),
    methods: z.array(method).default([]),
    upstream: z.string().min(1).optional(),
    backends: z.array(z.strictObject({ upstream: z.string().min(1), weight: z.number().int().min(0).max(1_000_000).default(1) })).min(1).optional(),
    auth_required: z.boolean().default(false),
    required_roles: z.array(z.string()).default([]),
    required_permissions: z.array(z.string()).default([]),
    timeout: duration.optional(),
    rate_limit: z.number().int().min(0).optional(),
    cors: CorsSchema.partial().optional(),
    retries: RetriesSchema.optional(),
    rewrite_path: z.string().startsWith('/').optional(),
  })
  .refine((r) => (r.upstream === undefined) !== (r.backends === undefined), {
    message: 'a route needs exactly one of "upstream" or "backends"',
  });

export const UpstreamConfigSchema = z.strictObject({
  discovery: z.strictObject({
    type: z.literal('Static', { message: 'only "Static" discovery is available in a file; Kubernetes discovery comes from the operator' }),
    endpoints: z.array(z.url({ protocol: /^https?$/, message: 'expected an http:// or https:// URL with a host and port' })).min(1),
  }),
  load_balancer: z
    .strictObject({ type: z.enum(['RoundRobin', 'LeastRequest', 'Random']).default('RoundRobin') })
    .default({ type: 'RoundRobin' }),
  health_check: z
    .strictObject({
      path: z.string().startsWith('/'),
      interval: duration.default('10s'),
      timeout: duration.default('2s'),
      healthy_threshold: z.number().int().min(1).default(2),
      unhealthy_threshold: z.number().int().min(1).default(3),
    })
    .optional(),
  circuit_breaker: z
    .strictObject({
      failure_threshold: z.number().int().min(1),
      timeout: duration.default('60s'),
      success_threshold: z.number().int().min(1).default(1),
    })
    .optional(),
  timeout: duration.optional(),
  max_connections: z.number().int().min(1).max(10_000).optional(),
  tls: z
    .strictObject({
      ca_file: z.string().optional(),
      server_name: z.string().optional(),
      insecure_skip_verify: z.boolean().default(false),
    })
    .optional(),
});

export const AuthConfigSchema = z.strictObject({
  jwt: z
    .strictObject({
      secret: z.string().optional(),
      secrets: z.array(z.string()).optional(),
      algorithm: z.string().optional(),
      algorithms: z.array(z.string()).optional(),
      public_key_file: z.string().optional(),
      public_key: z.string().optional(),
      jwks_url: z.string().optional(),
      issuer: z.string().optional(),
      audience: z.union([z.string(), z.array(z.string())]).optional(),
      leeway: duration.optional(),
      require_exp: z.boolean().optional(),
      header: z.string().optional(),
      cookie: z.string().optional(),
      roles_claim: z.string().optional(),
      permissions_claim: z.string().optional(),
      cache_size: z.number().int().min(0).optional(),
    })
    .optional(),
});

export const MiddlewareConfigSchema = z.strictObject({
  rate_limiting: z
    .strictObject({
      enabled: z.boolean().default(true),
      default_limit: z.number().int().min(0).optional(),
      /** Requests are counted per this window; the seed's numbers are per minute. */
      window: duration.default('1m'),
      route_limits: z.record(z.string(), z.number().int().min(0)).default({}),
      trusted_proxy_hops: z.number().int().min(0).default(0),
      storage: z
        .strictObject({
          type: z.enum(['Redis', 'Memory']),
          url: z.string().optional(),
          timeout: duration.default('50ms'),
          failure_policy: z.enum(['open', 'closed']).default('open'),
        })
        .default({ type: 'Memory', timeout: '50ms', failure_policy: 'open' }),
    })
    .optional(),
  cors: CorsSchema.optional(),
});

export const ObservabilityConfigSchema = z.strictObject({
  metrics: z
    .strictObject({
      prometheus_enabled: z.boolean().default(true),
      endpoint_path: z.string().startsWith('/').default('/metrics'),
    })
    .default({ prometheus_enabled: true, endpoint_path: '/metrics' }),
  logging: z
    .strictObject({
      level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
      format: z.enum(['json', 'pretty']).default('json'),
      access_log: z.boolean().default(true),
      output: z.strictObject({ type: z.enum(['Stdout', 'Stderr']).default('Stdout') }).default({ type: 'Stdout' }),
    })
    .default({ level: 'info', format: 'json', access_log: true, output: { type: 'Stdout' } }),
  tracing: z
    .strictObject({
      enabled: z.boolean().default(false),
      backend: z
        .strictObject({ type: z.enum(['OTLP', 'Jaeger']).default('OTLP'), endpoint: z.string() })
        .optional(),
      sampling_rate: z.number().min(0).max(1).default(1),
      service_name: z.string().default('switchyard-gateway'),
    })
    .default({ enabled: false, sampling_rate: 1, service_name: 'switchyard-gateway' }),
});

export const GatewayConfigSchema = z.strictObject({
  server: ServerConfigSchema.default(ServerConfigSchema.parse({})),
  routes: z.array(RouteConfigSchema).default([]),
  upstreams: z.record(z.string().min(1), UpstreamConfigSchema).default({}),
  auth: AuthConfigSchema.default({}),
  middleware: MiddlewareConfigSchema.default({}),
  observability: ObservabilityConfigSchema.default(ObservabilityConfigSchema.parse({})),
});

export type GatewayConfig = z.infer<typeof GatewayConfigSchema>;
export type RouteConfig = z.infer<typeof RouteConfigSchema>;
export type UpstreamConfig = z.infer<typeof UpstreamConfigSchema>;
