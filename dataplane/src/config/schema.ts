/**
 * The gateway's configuration file, in the shape of the seed's `gateway.yaml`:
 * `server`, `routes`, `upstreams`, `auth`, `middleware`, `observability`.
 *
 * Objects are strict so that a misspelt key ("auth_requried") is an error that
 * names it, not a silently ignored setting. Durations stay strings here and
 * are turned into milliseconds when the table is compiled.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { UPSTREAM_DEFAULTS as D } from '../contract/defaults.ts';
import { formatDuration, parseDuration } from '../contract/duration.ts';
import { HTTP_METHODS, RATE_LIMIT_KEY_TYPES } from '../contract/schema.ts';
import { cidrProblem } from '../server/client-address.ts';
import { secretProblem, weakRsaKeyProblems } from './key-strength.ts';

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
  /**
   * The TLS listener's own certificates: `cert_file`/`key_file` for clients
   * without SNI (and names no other certificate claims), `certificates` chosen
   * by SNI. Every file is watched: a changed certificate serves new handshakes
   * at once, open connections keep theirs.
   */
  tls: z
    .strictObject({
      cert_file: z.string().min(1).optional(),
      key_file: z.string().min(1).optional(),
      certificates: z
        .array(
          z.strictObject({
            cert_file: z.string().min(1),
            key_file: z.string().min(1),
            /** Names this certificate serves (exact or `*.suffix`); absent: the DNS names of its subjectAltName. */
            hosts: z.array(z.string().min(1)).min(1).optional(),
          }),
        )
        .max(256)
        .optional(),
      /** The oldest protocol version a client may use. */
      min_version: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2'),
      /** Client certificates (mutual TLS) on this listener: verified against `ca_file`; `required: false` lets clients without one in. */
      client_auth: z.strictObject({ ca_file: z.string().min(1), required: z.boolean().default(true) }).optional(),
    })
    .superRefine((t, ctx) => {
      if ((t.cert_file === undefined) !== (t.key_file === undefined)) ctx.addIssue({ code: 'custom', path: [t.cert_file === undefined ? 'cert_file' : 'key_file'], message: 'cert_file and key_file go together' });
      if (t.cert_file === undefined && (t.certificates ?? []).length === 0) ctx.addIssue({ code: 'custom', path: ['cert_file'], message: 'a TLS listener needs cert_file and key_file, or at least one entry in certificates' });
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
      /** An upgraded connection (WebSocket) with no bytes either way for this long is closed (a route's `upgrade.idle_timeout` overrides it). */
      upgrade_idle_timeout: duration.default('1h'),
    })
    .default({ request_timeout: '30s', keepalive_timeout: '60s', upstream_timeout: '10s', client_header_timeout: '10s', upgrade_idle_timeout: '1h' }),
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
  /**
   * HTTP/2: h2 offered by ALPN on the TLS listener (HTTP/1.1 still offered), h2c with prior knowledge
   * on the cleartext listener when `cleartext` is set, and the limits against HTTP/2 attacks
   * (see server/http2.ts and docs/security.md).
   */
  http2: z
    .strictObject({
      enabled: z.boolean().default(true),
      cleartext: z.boolean().default(false),
      /** SETTINGS_MAX_CONCURRENT_STREAMS: streams one connection may have open at once. */
      max_concurrent_streams: z.number().int().min(1).max(10_000).default(100),
      /** SETTINGS_MAX_HEADER_LIST_SIZE in bytes (names, values and 32 per field); default: limits.max_header_size. */
      max_header_list_size: z.number().int().min(1024).max(1_048_576).optional(),
      /** Streams a connection may reset before their response ended, within reset_window; past it, GOAWAY and close (CVE-2023-44487). */
      max_resets: z.number().int().min(1).max(100_000).default(200),
      reset_window: duration.default('10s'),
    })
    .default({ enabled: true, cleartext: false, max_concurrent_streams: 100, max_resets: 200, reset_window: '10s' }),
  /**
   * Request header names containing "_": CGI, WSGI, Rack and PHP map "-" and "_" to the same variable,
   * so `X_User_ID` would arrive as the identity the gateway vouches for. "drop" (default) removes them,
   * "reject" answers 400, "allow" forwards them except look-alikes of the headers the gateway sets.
   */
  headers_with_underscores: z.enum(['drop', 'reject', 'allow']).default('drop'),
  /**
   * Which proxies in front of the gateway are believed about the client's address (X-Forwarded-For):
   * none by default; peers in `cidrs` (recursively), or the nearest `hops` hops (only from a peer in
   * `cidrs` when both are set). See server/client-address.ts.
   */
  trusted_proxies: z
    .strictObject({
      cidrs: z
        .array(z.string().superRefine((text, ctx) => {
          const problem = cidrProblem(text);
          if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
        }))
        .default([]),
      hops: z.number().int().min(0).max(32).default(0),
    })
    .default({ cidrs: [], hops: 0 }),
});

/**
 * CORS settings: `middleware.cors` for every route, and a route's `cors`, whose
 * fields replace the gateway's one by one. Unset everywhere: the built-in
 * defaults of contract/defaults.ts (methods GET, POST, PUT, DELETE, OPTIONS;
 * headers Content-Type, Authorization; no origin).
 */
const CorsSchema = z.strictObject({
  allowed_origins: z.array(z.string()).optional(),
  allowed_methods: z.array(method).optional(),
  allowed_headers: z.array(z.string()).optional(),
  exposed_headers: z.array(z.string()).optional(),
  allow_credentials: z.boolean().optional(),
  max_age: z.number().int().min(0).optional(),
});

/** A header or query condition of a route: `value` for an exact match, or `type: Present`. */
const ConditionSchema = z.strictObject({
  name: z.string().min(1),
  type: z.enum(['Exact', 'Present']).default('Exact'),
  value: z.string().optional(),
});

/** Who a rate limit counts (see docs/security.md, "Who is counted"). */
const RateLimitKeySchema = z
  .strictObject({
    type: z.enum(RATE_LIMIT_KEY_TYPES, { message: `expected one of ${RATE_LIMIT_KEY_TYPES.join(', ')}` }),
    /** With type Header: the request header whose value is counted (an API key). */
    header: z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'expected a header name').max(256).optional(),
  })
  .superRefine((k, ctx) => {
    if (k.type === 'Header' && k.header === undefined) ctx.addIssue({ code: 'custom', path: ['header'], message: 'type Header counts the value of a request header: name it (header: X-API-Key)' });
    if (k.type !== 'Header' && k.header !== undefined) ctx.addIssue({ code: 'custom', path: ['header'], message: `header is only read with type Header, not ${k.type}` });
  });

/** `host:port`, or `[v6 address]:port`. */
const HOST_PORT = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/@[\]]+):(\d{1,5})$/;
const hostPort = z.string().regex(HOST_PORT, 'expected host:port, e.g. redis-0.redis:6379');

/** TLS to Redis (and to the sentinels): on when this section is present, or with a rediss:// URL. */
const RedisTlsSchema = z.strictObject({
  /** PEM CA certificates that sign the servers' certificates; absent: the system's. */
  ca_file: z.string().min(1).optional(),
  /** A client certificate and its key, for servers that ask for one (tls-auth-clients). */
  cert_file: z.string().min(1).optional(),
  key_file: z.string().min(1).optional(),
  /** The name the servers' certificates must hold; absent: the host connected to. */
  server_name: z.string().min(1).optional(),
  insecure_skip_verify: z.boolean().default(false),
});

/** Settings that belong to one storage type only, with the type that reads them. */
const STORAGE_FIELDS_OF = { url: 'Redis', sentinels: 'RedisSentinel', name: 'RedisSentinel', sentinel_username: 'RedisSentinel', sentinel_password: 'RedisSentinel', sentinel_password_file: 'RedisSentinel', nodes: 'RedisCluster' } as const;
const REDIS_ONLY_FIELDS = ['username', 'password', 'password_file', 'tls'] as const;

/**
 * Where rate-limit counts are kept: this process (Memory), one Redis, a
 * Sentinel group or a Redis Cluster. Passwords come from the environment
 * (`${REDIS_PASSWORD}`) or a file (`password_file`), never from the file itself.
 */
const RateLimitStorageSchema = z
  .strictObject({
    type: z.enum(['Memory', 'Redis', 'RedisSentinel', 'RedisCluster'], { message: 'expected one of Memory, Redis, RedisSentinel, RedisCluster' }),
    /** Redis: redis://host:6379 or rediss:// for TLS. */
    url: z.string().optional(),
    /** RedisSentinel: the sentinels, host:port (26379 is their usual port). */
    sentinels: z.array(hostPort).min(1).optional(),
    /** RedisSentinel: the group's name, as in the sentinels' `sentinel monitor <name> ...`. */
    name: z.string().min(1).optional(),
    /** RedisCluster: some of the cluster's nodes, host:port; the rest are discovered from them. */
    nodes: z.array(hostPort).min(1).optional(),
    /** ACL user and password of the Redis nodes (requirepass: the password alone). */
    username: z.string().min(1).optional(),
    password: z.string().min(1).optional(),
    /** A file holding the password (a mounted Secret); read at start, a trailing newline ignored. */
    password_file: z.string().min(1).optional(),
    /** RedisSentinel: the sentinels' own user and password, when they require one. */
    sentinel_username: z.string().min(1).optional(),
    sentinel_password: z.string().min(1).optional(),
    sentinel_password_file: z.string().min(1).optional(),
    tls: RedisTlsSchema.optional(),
    /** Longest wait for the store on one request. */
    timeout: duration.default('50ms'),
    /** When the store is unreachable: "open" counts in this process only, "closed" answers 503. */
    failure_policy: z.enum(['open', 'closed']).default('open'),
    /** Prefix of every key written to Redis. */
    key_prefix: z.string().regex(/^[^{}]*$/, 'braces are Redis Cluster hash tags, which the gateway places itself: leave them out of the prefix').default('switchyard:rl:'),
  })
  .superRefine((st, ctx) => {
    const problem = (path: string, message: string): void => void ctx.addIssue({ code: 'custom', path: [path], message });
    for (const [field, type] of Object.entries(STORAGE_FIELDS_OF)) {
      if (st[field as keyof typeof STORAGE_FIELDS_OF] !== undefined && st.type !== type) problem(field, `${field} is only read with storage.type ${type}, not ${st.type}`);
    }
    if (st.type === 'Memory') {
      for (const field of REDIS_ONLY_FIELDS) if (st[field] !== undefined) problem(field, `${field} is a Redis setting; storage.type is Memory`);
      return;
    }
    if (st.password !== undefined && st.password_file !== undefined) problem('password_file', 'set either password or password_file, not both');
    if (st.sentinel_password !== undefined && st.sentinel_password_file !== undefined) problem('sentinel_password_file', 'set either sentinel_password or sentinel_password_file, not both');
    if (st.tls && (st.tls.cert_file === undefined) !== (st.tls.key_file === undefined)) problem('tls', 'a client certificate needs both tls.cert_file and tls.key_file');
    if (st.type === 'Redis') {
      if (st.url === undefined) return problem('url', 'a Redis URL (redis://host:6379) is needed when storage.type is Redis');
      const url = /^(rediss?):\/\/(?:([^:@/]*)(?::([^@/]*))?@)?[^/@]+/.exec(st.url);
      if (!url) return problem('url', 'expected a redis:// or rediss:// URL');
      if (url[3] !== undefined && (st.password !== undefined || st.password_file !== undefined)) problem('url', 'the URL holds a password and so does password or password_file: give it once');
      if (st.tls && url[1] === 'redis') problem('url', 'tls is set, so the URL should say rediss://');
    } else if (st.type === 'RedisSentinel') {
      if (st.sentinels === undefined) problem('sentinels', 'a Sentinel group needs its sentinels (host:port, e.g. ["sentinel-0:26379", "sentinel-1:26379", "sentinel-2:26379"])');
      if (st.name === undefined) problem('name', 'a Sentinel group needs its name, as in the sentinels\' "sentinel monitor <name> ..."');
    } else if (st.nodes === undefined) {
      problem('nodes', 'a Redis Cluster needs some of its nodes (host:port) to discover the rest from');
    }
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
    /** Request headers that must be present, or have an exact value, for this route to match. */
    headers: z.array(ConditionSchema).max(16).optional(),
    /** Query parameters that must be present, or have an exact value (the first one), for this route to match. */
    query_params: z.array(ConditionSchema).max(16).optional(),
    upstream: z.string().min(1).optional(),
    backends: z.array(z.strictObject({ upstream: z.string().min(1), weight: z.number().int().min(0).max(1_000_000).default(1) })).min(1).optional(),
    auth_required: z.boolean().default(false),
    required_roles: z.array(z.string()).default([]),
    required_permissions: z.array(z.string()).default([]),
    timeout: duration.optional(),
    /** Requests per window for this route: a number, or { requests, window, key }. */
    rate_limit: z
      .union([
        z.number().int().min(0),
        z.strictObject({
          requests: z.number().int().min(0),
          /** Absent: middleware.rate_limiting.window. From 1s to 24h, as a GatewayRoute's. */
          window: duration
            .refine((v) => {
              const ms = parseDuration(v) ?? 0;
              return ms >= 1_000 && ms <= 86_400_000;
            }, { message: 'a route\'s rate-limit window is from 1s to 24h' })
            .optional(),
          /** Absent: middleware.rate_limiting.key. */
          key: RateLimitKeySchema.optional(),
        }),
      ])
      .optional(),
    cors: CorsSchema.optional(),
    retries: RetriesSchema.optional(),
    rewrite_path: z.string().startsWith('/').optional(),
    /** HTTP/1.1 Upgrade (WebSocket): allowed on routes that take GET unless `enabled: false`; `idle_timeout` closes a quiet connection. */
    upgrade: z
      .strictObject({
        enabled: z.boolean().default(true),
        idle_timeout: duration
          .refine((v) => (parseDuration(v) ?? 0) >= 1, { message: 'an idle timeout is at least 1ms' })
          .optional(),
      })
      .optional(),
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
      interval: duration.default(formatDuration(D.healthCheck.intervalMs)),
      timeout: duration.default(formatDuration(D.healthCheck.timeoutMs)),
      healthy_threshold: z.number().int().min(1).default(D.healthCheck.healthyThreshold),
      unhealthy_threshold: z.number().int().min(1).default(D.healthCheck.unhealthyThreshold),
    })
    .optional(),
  circuit_breaker: z
    .strictObject({
      failure_threshold: z.number().int().min(1),
      timeout: duration.default(formatDuration(D.circuitBreaker.openMs)),
      success_threshold: z.number().int().min(1).default(D.circuitBreaker.successThreshold),
      /** Requests let through at once while half-open. */
      half_open_requests: z.number().int().min(1).max(1000).default(D.circuitBreaker.halfOpenRequests),
    })
    .optional(),
  /** Passive health checking: eject endpoints that keep failing real requests. */
  outlier_detection: z
    .strictObject({
      consecutive_failures: z.number().int().min(1).default(D.outlierDetection.consecutiveFailures),
      base_ejection_time: duration.default(formatDuration(D.outlierDetection.baseEjectionMs)),
      max_ejection_time: duration.default(formatDuration(D.outlierDetection.maxEjectionMs)),
      max_ejection_percent: z.number().int().min(0).max(100).default(D.outlierDetection.maxEjectionPercent),
    })
    .optional(),
  /** No healthy endpoint: "panic" sends to all endpoints anyway (default), "fail" answers 503 no_healthy_upstream. */
  when_all_unhealthy: z.enum(['panic', 'fail']).optional(),
  /** Retries in flight to this upstream: at most `percent` of the requests in flight, but always `min_concurrent`. */
  retry_budget: z
    .strictObject({
      percent: z.number().min(0).max(100).default(D.retryBudget.percent),
      min_concurrent: z.number().int().min(0).default(D.retryBudget.minConcurrent),
    })
    .optional(),
  /** Per attempt: time to the first response byte and between body chunks (default: server.timeouts.upstream_timeout). */
  timeout: duration.optional(),
  max_connections: z.number().int().min(1).max(10_000).optional(),
  /** How long a TCP (and TLS) connect to an endpoint may take. */
  connect_timeout: duration.optional(),
  /** How long an idle connection to an endpoint is kept (default: server.timeouts.keepalive_timeout). */
  idle_timeout: duration.optional(),
  /** HTTP version to the endpoints: http1 (default), h2c (HTTP/2 cleartext, prior knowledge) or h2 (HTTP/2 over TLS). gRPC needs h2c or h2. */
  protocol: z.enum(['http1', 'h2c', 'h2']).default('http1'),
  tls: z
    .strictObject({
      /** PEM bundle of the CAs the endpoints' certificates must chain to (default: the system roots). Re-read on each reload. */
      ca_file: z.string().optional(),
      /** The name the endpoints' certificates must carry, and the SNI sent (default: the endpoint's host). */
      server_name: z.string().optional(),
      insecure_skip_verify: z.boolean().default(false),
      /** A client certificate and its key, for endpoints that ask for one (mutual TLS). */
      cert_file: z.string().optional(),
      key_file: z.string().optional(),
    })
    .superRefine((t, ctx) => {
      if ((t.cert_file === undefined) !== (t.key_file === undefined)) ctx.addIssue({ code: 'custom', path: [t.cert_file === undefined ? 'cert_file' : 'key_file'], message: 'a client certificate needs both cert_file and key_file' });
    })
    .optional(),
}).superRefine((u, ctx) => {
  const scheme = u.protocol === 'h2c' ? 'http:' : u.protocol === 'h2' ? 'https:' : undefined;
  if (scheme === undefined) return;
  u.discovery.endpoints.forEach((e, i) => {
    if (URL.canParse(e) && new URL(e).protocol !== scheme) ctx.addIssue({ code: 'custom', path: ['discovery', 'endpoints', i], message: `protocol ${u.protocol} speaks to ${scheme}// endpoints, not ${e}` });
  });
});

/** JWS algorithms a token may be signed with; `none` is never accepted. */
export const JWT_ALGORITHMS = ['HS256', 'HS384', 'HS512', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

/** The algorithms a jwt section accepts: as configured, else HS256 with a secret and RS256 with keys. */
export function jwtAlgorithms(jwt: { algorithm?: string | undefined; algorithms?: string[] | undefined; secret?: string | undefined; secrets?: string[] | undefined; public_key?: string | undefined; public_key_file?: string | undefined; jwks_url?: string | undefined }): string[] {
  if (jwt.algorithms) return jwt.algorithms;
  if (jwt.algorithm) return [jwt.algorithm];
  const out: string[] = [];
  if (jwt.secret !== undefined || (jwt.secrets?.length ?? 0) > 0) out.push('HS256');
  if (jwt.public_key !== undefined || jwt.public_key_file !== undefined || jwt.jwks_url !== undefined) out.push('RS256');
  return out;
}

const TOKEN_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

const JwtConfigSchema = z
  .strictObject({
    /** Shared secret for HS* tokens (UTF-8 bytes), usually `${JWT_SECRET}`. */
    secret: z.string().optional(),
    /** More shared secrets, all valid at once: for rotation. */
    secrets: z.array(z.string()).optional(),
    algorithm: z.string().optional(),
    algorithms: z.array(z.string()).min(1).optional(),
    /** PEM public key(s) or certificate(s) for RS*, PS*, ES*, EdDSA. */
    public_key_file: z.string().optional(),
    public_key: z.string().optional(),
    /** A JSON Web Key Set URL, fetched and cached; refetched on an unknown `kid` at most once per `jwks_cooldown`. */
    jwks_url: z.string().optional(),
    jwks_cooldown: duration.optional(),
    jwks_max_age: duration.optional(),
    jwks_timeout: duration.optional(),
    issuer: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
    audience: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
    /** Clock skew allowed for `exp` and `nbf`. */
    leeway: duration.optional(),
    require_exp: z.boolean().optional(),
    /** Also read the token from this request header (the raw token, no "Bearer "). */
    header: z.string().regex(TOKEN_NAME, 'expected a header name').optional(),
    /** Also read the token from this cookie. */
    cookie: z.string().regex(TOKEN_NAME, 'expected a cookie name').optional(),
    /** Claim holding the roles (a list, or a space- or comma-separated string); dots reach into objects. */
    roles_claim: z.string().min(1).optional(),
    permissions_claim: z.string().min(1).optional(),
    /** Verified tokens remembered (by SHA-256) until they expire; 0 turns the cache off. */
    cache_size: z.number().int().min(0).optional(),
  })
  .superRefine((jwt, ctx) => {
    const problem = (path: (string | number)[], message: string): void => void ctx.addIssue({ code: 'custom', path, message });
    if (jwt.algorithm !== undefined && jwt.algorithms !== undefined) problem(['algorithms'], 'set either auth.jwt.algorithm or auth.jwt.algorithms, not both');
    const secrets = [...(jwt.secret !== undefined ? [jwt.secret] : []), ...(jwt.secrets ?? [])];
    if (jwt.secret === '') problem(['secret'], 'the secret is empty');
    jwt.secrets?.forEach((s, i) => s === '' && problem(['secrets', i], 'the secret is empty'));
    const hasKeys = jwt.public_key !== undefined || jwt.public_key_file !== undefined || jwt.jwks_url !== undefined;
    const algs = jwtAlgorithms(jwt);
    const at = (i: number): (string | number)[] => (jwt.algorithms ? ['algorithms', i] : ['algorithm']);
    if (algs.length === 0) problem([], 'set auth.jwt.secret (HS256), auth.jwt.public_key, auth.jwt.public_key_file or auth.jwt.jwks_url');
    algs.forEach((alg, i) => {
      if (alg.toLowerCase() === 'none') return problem(at(i), '"none" (unsigned tokens) is never accepted');
      if (!(JWT_ALGORITHMS as readonly string[]).includes(alg)) return problem(at(i), `"${alg}" is not supported; use one of ${JWT_ALGORITHMS.join(', ')}`);
      if (alg.startsWith('HS') && secrets.length === 0) problem(at(i), `auth.jwt.algorithm ${alg} needs auth.jwt.secret (or auth.jwt.secrets)`);
      if (!alg.startsWith('HS') && !hasKeys) problem(at(i), `auth.jwt.algorithm ${alg} needs auth.jwt.public_key, auth.jwt.public_key_file or auth.jwt.jwks_url`);
    });
    if (secrets.length > 0 && algs.length > 0 && !algs.some((a) => a.startsWith('HS'))) {
      problem([jwt.secret !== undefined ? 'secret' : 'secrets'], `a shared secret is set but no HS* algorithm is accepted (algorithms: ${algs.join(', ')})`);
    }
    if (hasKeys && algs.length > 0 && algs.every((a) => a.startsWith('HS'))) {
      problem([jwt.jwks_url !== undefined ? 'jwks_url' : jwt.public_key !== undefined ? 'public_key' : 'public_key_file'], `public keys are set but only ${algs.join(', ')} is accepted; add e.g. RS256 to auth.jwt.algorithms`);
    }
    if (jwt.jwks_url !== undefined && !/^https?:\/\/[^/]/.test(jwt.jwks_url)) problem(['jwks_url'], 'expected an http:// or https:// URL');
    // Weak keys are refused here, so that start, reload and --check say so with the line (config/key-strength.ts).
    if (jwt.secret !== undefined) {
      const weak = secretProblem(jwt.secret, algs);
      if (weak !== undefined) problem(['secret'], weak);
    }
    jwt.secrets?.forEach((s, i) => {
      const weak = secretProblem(s, algs);
      if (weak !== undefined) problem(['secrets', i], weak);
    });
    if (jwt.public_key !== undefined) for (const weak of weakRsaKeyProblems(jwt.public_key)) problem(['public_key'], weak);
    if (jwt.public_key_file !== undefined) {
      let pem: string | undefined;
      try {
        pem = readFileSync(jwt.public_key_file, 'utf8');
      } catch {
        // An unreadable file is reported when the verifier is built, with the reason.
      }
      if (pem !== undefined) for (const weak of weakRsaKeyProblems(pem)) problem(['public_key_file'], `${jwt.public_key_file}: ${weak}`);
    }
  });

export const AuthConfigSchema = z.strictObject({
  jwt: JwtConfigSchema.optional(),
});

export const MiddlewareConfigSchema = z
  .strictObject({
    rate_limiting: z
      .strictObject({
        enabled: z.boolean().default(true),
        default_limit: z.number().int().min(0).optional(),
        /** Requests are counted per this window; the seed's numbers are per minute. */
        window: duration.default('1m'),
        route_limits: z.record(z.string(), z.number().int().min(0)).default({}),
        /** Deprecated: server.trusted_proxies.hops, which this sets (config/load.ts warns). */
        trusted_proxy_hops: z.number().int().min(0).max(32).optional(),
        /** Who each limit counts, for routes that do not say: User (default), ClientIP, Header or Route. */
        key: RateLimitKeySchema.optional(),
        storage: RateLimitStorageSchema.default({ type: 'Memory', timeout: '50ms', failure_policy: 'open', key_prefix: 'switchyard:rl:' }),
      })
      .optional(),
    cors: CorsSchema.optional(),
  })
  .superRefine((mw, ctx) => {
    if (mw.cors?.allow_credentials && mw.cors.allowed_origins?.includes('*')) {
      ctx.addIssue({ code: 'custom', path: ['cors', 'allowed_origins'], message: '"*" cannot be combined with allow_credentials: list the origins that may send credentials' });
    }
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
        .strictObject({
          type: z.enum(['OTLP', 'Jaeger']).default('OTLP'),
          /** OTLP/HTTP base URL, or Jaeger's collector URL (mapped to its OTLP receiver, see docs/observability.md). */
          endpoint: z.url({ protocol: /^https?$/, message: 'expected an http:// or https:// URL' }),
        })
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
