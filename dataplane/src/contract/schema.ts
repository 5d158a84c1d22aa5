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
  /** The upstream's name; for an unresolved backend, what it was meant to be (for messages only). */
  upstream: z.string().min(1),
  weight: z.number().int().min(0).max(1_000_000).default(1),
  /**
   * Set when the backend cannot be served (a missing Service, a reference not
   * permitted): the requests its weight draws get 500 with this message, as the
   * Gateway API asks, while the route's other backends keep serving.
   */
  unresolved: z.string().optional(),
});

/**
 * The data plane's own traffic listeners: `http` (`server.http_port`) and
 * `https` (`server.https_port`). A table may declare more (`listeners`).
 */
export const TRAFFIC_LISTENERS = ['http', 'https'] as const;
export type TrafficListener = (typeof TRAFFIC_LISTENERS)[number];

/**
 * A traffic listener a table asks the data planes to open besides their own:
 * each Gateway gets sockets of its own, so that its routes answer only on its
 * address. The data plane opens it when a table declares it and closes it when
 * a table no longer does.
 */
export const ListenerSchema = z.object({
  /** Routes and certificates name it; never `http` or `https`. */
  name: z.string().min(1).max(256),
  /** The container port it binds (on `server.bind_address`). */
  port: z.number().int().min(1).max(65535),
  protocol: z.enum(['http', 'https']),
});
export type Listener = z.infer<typeof ListenerSchema>;

/** A header name as RFC 9110 5.1 allows it (a token). */
const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'not a valid header name');
/** A header value no request or response can smuggle a line break or NUL through. */
const headerValue = z.string().max(4096).regex(/^[^\r\n\0]*$/, 'a header value must not contain CR, LF or NUL');

/** Changes to a message's headers, applied in this order: remove, set, add. Names are case-insensitive. */
export const HeaderModifierSchema = z.object({
  /** Replaces every line of the header, or adds it. */
  set: z.array(z.object({ name: headerName, value: headerValue })).max(16).optional(),
  /** Adds a line after the ones the message already has. */
  add: z.array(z.object({ name: headerName, value: headerValue })).max(16).optional(),
  remove: z.array(headerName).max(16).optional(),
});
export type HeaderModifier = z.infer<typeof HeaderModifierSchema>;

/** Answer with a redirect instead of proxying; each part not given is the request's own. */
export const RedirectSchema = z.object({
  scheme: z.enum(['http', 'https']).optional(),
  /** A host name, without a port. */
  hostname: z.string().min(1).max(253).optional(),
  /**
   * Absent: the default port of the redirect's scheme when `scheme` is given,
   * else the port the client connected to (the Gateway listener's). Default
   * ports are left out of the Location header.
   */
  port: z.number().int().min(1).max(65535).optional(),
  /** `Full` replaces the whole path; `Prefix` replaces the part the route matched, as `rewritePath` does. */
  path: z.object({ type: z.enum(['Full', 'Prefix']), value: z.string().startsWith('/') }).optional(),
  statusCode: z.union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)]).default(302),
});
export type Redirect = z.infer<typeof RedirectSchema>;

/** A copy of each request, sent to another upstream whose answer is thrown away. */
export const MirrorSchema = z.object({
  upstream: z.string().min(1),
  /** Share of requests mirrored. */
  percent: z.number().min(0).max(100).default(100),
});

export const AuthPolicySchema = z.object({
  required: z.boolean().default(false),
  /** Any of these roles grants access (empty: any authenticated caller). */
  roles: z.array(z.string()).default([]),
  /** All of these permissions are needed. */
  permissions: z.array(z.string()).default([]),
});

/**
 * Who a rate limit counts, each with a budget of its own: `User` the verified
 * caller (the token's subject), else the client address; `ClientIP` the client
 * address always; `Header` the value of `header` (an API key), else the client
 * address; `Route` everyone together.
 */
export const RATE_LIMIT_KEY_TYPES = ['User', 'ClientIP', 'Header', 'Route'] as const;
export type RateLimitKeyType = (typeof RATE_LIMIT_KEY_TYPES)[number];

export const RateLimitKeySchema = z
  .object({
    type: z.enum(RATE_LIMIT_KEY_TYPES),
    /** The request header whose value is counted, with type `Header` only. */
    header: headerName.max(256).optional(),
  })
  .refine((k) => (k.type === 'Header') === (k.header !== undefined), { message: 'a rate-limit key of type Header names its header, and only that type does' });
export type RateLimitKey = z.infer<typeof RateLimitKeySchema>;

/** A route's own rate limit; the gateway-wide settings fill in the rest (see `withGatewayDefaults`). */
export const RateLimitPolicySchema = z.object({
  /** Requests allowed per window and client key. */
  limit: z.number().int().min(0),
  /** Absent: the gateway-wide window (`middleware.rate_limiting.window`). */
  windowMs: durationMs.min(1).optional(),
  /** Absent: the gateway-wide key (`middleware.rate_limiting.key`), else `User`. */
  key: RateLimitKeySchema.optional(),
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
  /** At least one, unless the route redirects. */
  backends: z.array(BackendRefSchema),
  /** Total time allowed for the upstream to start answering, retries included. Absent: the data plane's `server.timeouts.request_timeout`. */
  timeoutMs: durationMs.optional(),
  /** Per-attempt time to first response byte and between body chunks, over the upstream's own. Absent: the upstream's `timeoutMs`. */
  attemptTimeoutMs: durationMs.min(1).optional(),
  auth: AuthPolicySchema.default({ required: false, roles: [], permissions: [] }),
  rateLimit: RateLimitPolicySchema.optional(),
  cors: CorsPolicySchema.optional(),
  retries: RetryPolicySchema.optional(),
  /** Replace the matched prefix (Prefix routes) or the whole path (Exact) with this. */
  rewritePath: z.string().startsWith('/').optional(),
  /** Replace the whole path with this, whatever the route's path type (not with `rewritePath`). */
  rewriteFullPath: z.string().startsWith('/').optional(),
  /** The Host header the upstream receives. */
  rewriteHost: z.string().min(1).max(253).optional(),
  /** Headers changed on the way to the upstream, after the gateway's own (X-Forwarded-*, identity). */
  requestHeaders: HeaderModifierSchema.optional(),
  /** Headers changed on the way back to the client. */
  responseHeaders: HeaderModifierSchema.optional(),
  /** Answer with a redirect; such a route needs no backend. */
  redirect: RedirectSchema.optional(),
  mirrors: z.array(MirrorSchema).max(8).optional(),
  /**
   * HTTP/1.1 Upgrade (WebSocket and any other protocol): a route that takes
   * GET tunnels upgrade requests once its stages pass, unless `enabled` is
   * false; elsewhere an upgrade request is refused (403 `upgrade_not_allowed`).
   * Absent: allowed on routes that take GET, idle timeout from the data plane's
   * `server.timeouts.upgrade_idle_timeout`.
   */
  upgrade: z
    .object({
      enabled: z.boolean().default(true),
      /** An upgraded connection with no bytes either way for this long is closed. */
      idleTimeoutMs: durationMs.min(1).optional(),
    })
    .optional(),
  /** The traffic listeners that serve the route: `http`, `https` or ones the table declares (absent: `http` and `https`). */
  listeners: z.array(z.string().min(1)).min(1).optional(),
  /**
   * The method is one more condition, as in the Gateway API: a request whose
   * method the route does not take passes it over (404 when nothing else
   * matches), never 405, and HEAD does not fall back to GET.
   */
  methodsAsCondition: z.boolean().optional(),
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
  /**
   * The HTTP version spoken to the endpoints: `http1` (HTTP/1.1 only, also over TLS), `h2c`
   * (HTTP/2 with prior knowledge over cleartext) or `h2` (HTTP/2 over TLS by ALPN). Absent: http1.
   */
  protocol: z.enum(['http1', 'h2c', 'h2']).optional(),
  tls: z
    .object({
      /** PEM bundle to trust instead of the system roots. */
      caPem: z.string().optional(),
      serverName: z.string().optional(),
      insecureSkipVerify: z.boolean().default(false),
      /** A client certificate (PEM chain) and its key, for endpoints that ask for one (mutual TLS). */
      certPem: z.string().optional(),
      keyPem: z.string().optional(),
    })
    .optional(),
  source: z
    .object({ kind: z.string(), namespace: z.string().optional(), name: z.string(), generation: z.number().int().optional() })
    .optional(),
});
export type Upstream = z.infer<typeof UpstreamSchema>;

/**
 * A certificate for an HTTPS listener, chosen by the client's SNI: an exact
 * host first, then the longest matching `*.suffix`, then the first certificate
 * without hosts, then (on `https`) the data plane's own `server.tls`.
 */
export const CertificateSchema = z.object({
  /** Stable identifier, for logs: where the certificate came from. */
  name: z.string().min(1),
  /** The listener that presents it: `https` or an `https` listener the table declares. */
  listener: z.string().min(1).default('https'),
  /** Lower-case host names or `*.suffix` wildcards; empty: any name no other certificate claims. */
  hosts: z.array(z.string().min(1)).default([]),
  certificatePem: z.string().min(1),
  /** Never shown: admin endpoints redact it. */
  privateKeyPem: z.string().min(1),
});
export type Certificate = z.infer<typeof CertificateSchema>;

/** One problem of a table as a whole (names, references across its lists), with its field path. */
export interface TableIssue {
  path: (string | number)[];
  message: string;
}

/**
 * The checks across a table's lists: unique upstream, listener and route names,
 * references to upstreams and listeners that exist, certificates on HTTPS
 * listeners. The schema runs them; a data plane applying a delta runs them on
 * the table the delta leads to, whose new entries it validated one by one.
 */
export function tableIssues(table: { routes: readonly Route[]; upstreams: readonly Upstream[]; listeners?: readonly Listener[] | undefined; certificates?: readonly Certificate[] | undefined }): TableIssue[] {
  const issues: TableIssue[] = [];
  const issue = (i: TableIssue): void => {
    issues.push(i);
  };
  const names = new Set<string>();
  table.upstreams.forEach((u, i) => {
    if (names.has(u.name)) issue({ path: ['upstreams', i, 'name'], message: `duplicate upstream name "${u.name}"` });
    names.add(u.name);
  });
  const declared = new Map<string, 'http' | 'https'>(TRAFFIC_LISTENERS.map((l) => [l, l]));
  const ports = new Set<number>();
  (table.listeners ?? []).forEach((l, i) => {
    if (declared.has(l.name)) issue({ path: ['listeners', i, 'name'], message: `duplicate listener name "${l.name}"` });
    if (ports.has(l.port)) issue({ path: ['listeners', i, 'port'], message: `port ${l.port} has an earlier listener` });
    declared.set(l.name, l.protocol);
    ports.add(l.port);
  });
  const ids = new Set<string>();
  table.routes.forEach((r, i) => {
    (r.listeners ?? []).forEach((l, j) => {
      if (!declared.has(l)) issue({ path: ['routes', i, 'listeners', j], message: `unknown listener "${l}"` });
    });
    if (ids.has(r.id)) issue({ path: ['routes', i, 'id'], message: `duplicate route id "${r.id}"` });
    ids.add(r.id);
    if (r.backends.length === 0 && r.redirect === undefined) issue({ path: ['routes', i, 'backends'], message: 'a route needs at least one backend unless it redirects' });
    if (r.rewritePath !== undefined && r.rewriteFullPath !== undefined) issue({ path: ['routes', i, 'rewriteFullPath'], message: 'rewritePath and rewriteFullPath exclude each other' });
    (r.mirrors ?? []).forEach((m, j) => {
      if (!names.has(m.upstream)) issue({ path: ['routes', i, 'mirrors', j, 'upstream'], message: `unknown upstream "${m.upstream}"` });
    });
    if (r.invalid !== undefined) return;
    r.backends.forEach((b, j) => {
      if (b.unresolved === undefined && !names.has(b.upstream)) {
        issue({ path: ['routes', i, 'backends', j, 'upstream'], message: `unknown upstream "${b.upstream}"` });
      }
    });
  });
  const hostsSeen = new Set<string>();
  (table.certificates ?? []).forEach((c, i) => {
    if (declared.get(c.listener) !== 'https') issue({ path: ['certificates', i, 'listener'], message: `"${c.listener}" is no HTTPS listener of the table` });
    for (const h of c.hosts) {
      const key = `${c.listener} ${h}`;
      if (hostsSeen.has(key)) issue({ path: ['certificates', i, 'hosts'], message: `host "${h}" has an earlier certificate on listener "${c.listener}"` });
      hostsSeen.add(key);
    }
  });
  return issues;
}

const RouteTableShape = z.object({
  /** Hash of the canonical table without this field; see `tableVersion`. */
  version: z.string().min(1),
  routes: z.array(RouteSchema),
  upstreams: z.array(UpstreamSchema),
  /** Listeners to open besides `http` and `https`. */
  listeners: z.array(ListenerSchema).optional(),
  /** Certificates HTTPS listeners present, chosen by SNI. Absent: only the data plane's own `server.tls`, on `https`. */
  certificates: z.array(CertificateSchema).optional(),
});

export const RouteTableSchema = RouteTableShape.superRefine((table, ctx) => {
  for (const i of tableIssues(table)) ctx.addIssue({ code: 'custom', path: i.path, message: i.message });
});
export type RouteTable = z.infer<typeof RouteTableSchema>;
export type RouteTableInput = z.input<typeof RouteTableSchema>;

const TableWithoutRoutesSchema = RouteTableShape.omit({ routes: true });

/**
 * `RouteTableSchema.parse`, validating each route once per object: `validated`
 * maps a route object to its parsed form. A caller that builds an unchanged
 * route as the same object on every call (the operator's compile) gets the
 * same parsed object back, so the table hash and the matcher reuse their work
 * for it (`tableVersion`'s `reuse`, the matcher's `reuseParsed`). The result
 * equals `RouteTableSchema.parse(input)`; a bad table throws as that does.
 * Only for route objects that are never changed once given here.
 */
export function parseTableReusing(input: RouteTableInput, validated: WeakMap<object, Route>): RouteTable {
  const routes: Route[] = [];
  for (const r of input.routes) {
    let v = validated.get(r);
    if (v === undefined) {
      const parsed = RouteSchema.safeParse(r);
      // The whole-table parse throws the error with its place in the table.
      if (!parsed.success) return RouteTableSchema.parse(input);
      v = parsed.data;
      validated.set(r, v);
    }
    routes.push(v);
  }
  const rest = TableWithoutRoutesSchema.parse({ ...input, routes: undefined });
  const table: RouteTable = { version: rest.version, routes, upstreams: rest.upstreams };
  if (rest.listeners !== undefined) table.listeners = rest.listeners;
  if (rest.certificates !== undefined) table.certificates = rest.certificates;
  if (tableIssues(table).length > 0) return RouteTableSchema.parse(input);
  return table;
}
