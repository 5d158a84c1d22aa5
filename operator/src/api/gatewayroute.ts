/**
 * GatewayRoute: one route of the seed's `routes:` list as a namespaced object.
 *
 * This file is the source of truth for the resource: the CRD's OpenAPI schema
 * (descriptions, defaults, bounds, CEL rules) is generated from it by
 * hack/gen-crds.ts, and the operator parses objects with it.
 */
import { z } from 'zod';
import { DEFAULT_RETRY_BACKOFF_MS, DEFAULT_RETRY_ON, formatDuration, HTTP_METHODS, RATE_LIMIT_KEY_TYPES, RETRY_TRIGGERS } from '../../../dataplane/src/contract/index.ts';
import { API_VERSION, ObjectMetaSchema, conditions, duration, mapList, objectName, observedGeneration, setList } from './common.ts';
import { celString, matching, withRules } from './rules.ts';
import type { Rule } from './rules.ts';

/** Kind of the route resource. */
export const GATEWAY_ROUTE_KIND = 'GatewayRoute';
/** Resource (plural) name of GatewayRoutes. */
export const GATEWAY_ROUTE_PLURAL = 'gatewayroutes';

/** Exact names or `*.suffix` wildcards; lower case, no port, no trailing dot. */
const HOST_PATTERN = '^(\\*\\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';

/**
 * The characters a path may hold: RFC 3986 pchar (unreserved, sub-delims, ':',
 * '@', percent-escapes), '/', and the braces of template parameters. No query,
 * fragment, space, backslash or non-ASCII: requests are normalized before
 * matching, so a route spelled with them could never match.
 */
const PATH_CHARS_PATTERN = "^/([-A-Za-z0-9._~!$&'()*+,;=:@/{}]|%[0-9A-F]{2})*$";
/** Normalized form: no empty segment inside the path, no `.` or `..` segment. */
const PATH_NOT_NORMALIZED_PATTERN = '//|/\\.\\.?(/|$)';
/** Each segment is literal text, a whole-segment `{name}`, or a whole-segment `*`. */
const TEMPLATE_PATTERN = '^(/([^/{}*]*|\\{[A-Za-z_][A-Za-z0-9_-]*\\}|\\*))+$';
const TEMPLATE_RE = new RegExp(TEMPLATE_PATTERN);
const NOT_NORMALIZED_RE = new RegExp(PATH_NOT_NORMALIZED_PATTERN);

const pathValueRules: Rule<string>[] = [
  { ...matching(PATH_CHARS_PATTERN, 'must start with "/" and hold only URL path characters (no query, fragment, spaces or backslashes; escapes as %XX in upper case)') },
  {
    rule: `!self.matches(${celString(PATH_NOT_NORMALIZED_PATTERN)})`,
    message: 'must be in normalized form: no empty segments ("//") and no "." or ".." segments',
    check: (v) => !NOT_NORMALIZED_RE.test(v),
  },
];

/** A path that the data plane can match as written. */
function pathValue(description: string): z.ZodString {
  return withRules(z.string().min(1).max(1024), pathValueRules).describe(description);
}

/** The path types, as in the route table. */
export const PATH_TYPES = ['Exact', 'Prefix', 'Template'] as const;

/** `spec.path`. */
export const PathMatchSchema = withRules(
  z.object({
    type: z
      .enum(PATH_TYPES)
      .default('Exact')
      .describe(
        'How the path is matched. Exact: the whole request path equals value. Prefix: value, or value followed by "/..." (segment-aware: /api matches /api/x, not /apix). Template: segments may be {name} (one segment, captured) or * (one segment; as the last segment, the rest of the path).',
      ),
    value: pathValue('The path to match, starting with "/", e.g. /auth/login, /api/v1 or /api/v1/users/{id}.'),
  }),
  [
    {
      rule: "self.type != 'Template' || self.value.contains('{') || self.value.contains('*')",
      message: 'a Template path needs at least one {param} or * segment; use type Exact or Prefix for a literal path',
      fieldPath: '.value',
      check: (p) => p.type !== 'Template' || p.value.includes('{') || p.value.includes('*'),
    },
    {
      rule: "self.type == 'Template' || !(self.value.contains('{') || self.value.contains('}') || self.value.contains('*'))",
      message: '"{", "}" and "*" are only allowed in a Template path; set type: Template',
      fieldPath: '.value',
      check: (p) => p.type === 'Template' || !/[{}*]/.test(p.value),
    },
    {
      rule: `self.type != 'Template' || self.value.matches(${celString(TEMPLATE_PATTERN)})`,
      message:
        'in a Template path each segment is literal text, a whole-segment {name} parameter (a letter or "_" first, then letters, digits, "_" or "-"), or a whole-segment *',
      fieldPath: '.value',
      check: (p) => p.type !== 'Template' || TEMPLATE_RE.test(p.value),
    },
  ],
).describe('Which request paths this route matches.');

/** `spec.backends[]`. */
export const BackendSchema = z
  .object({
    upstream: objectName('Name of an Upstream in the same namespace.'),
    weight: z
      .number()
      .int()
      .min(0)
      .max(1_000_000)
      .default(1)
      .describe('Share of requests relative to the other backends; 0 sends none (the backend stays configured, e.g. to drain it).'),
  })
  .describe('One Upstream that receives a share of the requests.');

/** `spec.auth`. */
export const AuthSchema = withRules(
  z.object({
    required: z.boolean().default(false).describe('Whether a valid bearer token (JWT) is needed. Requests without one get 401.'),
    roles: setList(z.string().min(1).max(253), 32)
      .default([])
      .describe('The caller needs at least one of these roles (an empty list: any authenticated caller). Otherwise 403.'),
    permissions: setList(z.string().min(1).max(253), 32)
      .default([])
      .describe('The caller needs all of these permissions. Otherwise 403.'),
  }),
  [
    {
      // Roles on a public route would read as protection while checking nothing.
      rule: 'self.required || (size(self.roles) == 0 && size(self.permissions) == 0)',
      message: 'roles and permissions are only checked when required is true; set required: true',
      fieldPath: '.required',
      check: (a) => a.required || (a.roles.length === 0 && a.permissions.length === 0),
    },
  ],
).describe('Authentication and authorization. The JWT issuer, audience and keys are gateway-wide settings.');

/** An HTTP header name (RFC 9110 token). */
const TOKEN_PATTERN = "^[-!#$%&'*+.^_`|~0-9A-Za-z]+$";

/** `spec.rateLimit.key`. */
export const RateLimitKeySchema = withRules(
  z.object({
    type: z
      .enum(RATE_LIMIT_KEY_TYPES)
      .describe(
        'Who is counted, each with a budget of its own. User: the verified caller (the token\'s subject), else the client address. ClientIP: the client address, signed in or not. Header: the value of the header named in header (an API key), else the client address. Route: everyone together, one budget for the route.',
      ),
    header: withRules(z.string().min(1).max(256), [matching(TOKEN_PATTERN, 'must be an HTTP header name')])
      .optional()
      .describe('With type Header: the request header whose value is counted, e.g. X-API-Key; case-insensitive.'),
  }),
  [
    {
      rule: "(self.type == 'Header') == has(self.header)",
      message: 'type Header counts the value of a request header: name it in header; other types take no header',
      fieldPath: '.header',
      check: (k) => (k.type === 'Header') === (k.header !== undefined),
    },
  ],
).describe('Who the limit counts. Unset: the gateway-wide key (middleware.rate_limiting.key of the gateway configuration), else User.');

/** `spec.rateLimit`. */
export const RateLimitSchema = z
  .object({
    requests: z
      .number()
      .int()
      .min(0)
      .max(1_000_000_000)
      .describe('Requests allowed per window and client; 0 refuses every request with 429.'),
    window: duration({ description: 'Length of the counting window. Unset: the gateway-wide window (middleware.rate_limiting.window, one minute unless configured).', min: '1s', max: '24h' }).optional(),
    key: RateLimitKeySchema.optional(),
  })
  .describe('Per-client request limit for this route, replacing the gateway-wide default (middleware.rate_limiting of the gateway configuration).');

/** The failures a retry can be made on, as in the route table. */
export const RETRY_ON = RETRY_TRIGGERS;

/** `spec.retries`. */
export const RetriesSchema = z
  .object({
    attempts: z.number().int().min(0).max(10).describe('Retries after the first attempt; 0 disables retrying.'),
    // Not `on`: YAML 1.1, which kubectl reads, turns an unquoted `on:` key into `true:`.
    retryOn: setList(z.enum(RETRY_ON), RETRY_ON.length)
      .default([...DEFAULT_RETRY_ON])
      .describe('Failures that are retried: connect-failure, reset (connection reset before a response), or the status codes 502, 503, 504.'),
    nonIdempotent: z
      .boolean()
      .default(false)
      .describe('Also retry POST, PATCH and other non-idempotent requests; only safe when the upstream de-duplicates them.'),
    backoff: duration({ description: 'Wait before each retry.', max: '10s' }).default(formatDuration(DEFAULT_RETRY_BACKOFF_MS)),
  })
  .describe('Retrying failed attempts, within the route timeout.');

const ORIGIN_PATTERN = '^(\\*|https?://[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?)$';
const HEADER_NAME_PATTERN = "^(\\*|[-!#$%&'*+.^_`|~0-9A-Za-z]+)$";

/** `spec.cors`. */
export const CorsSchema = withRules(
  z.object({
    allowedOrigins: setList(
      withRules(z.string().min(1).max(2048), [matching(ORIGIN_PATTERN, 'must be "*" or an origin such as https://shop.example.com (scheme, host and optional port; no path)')]),
      64,
    )
      .optional()
      .describe('Origins allowed to call this route from a browser, e.g. https://shop.example.com, or "*" for any.'),
    allowedMethods: setList(z.enum(HTTP_METHODS), HTTP_METHODS.length).optional().describe('Methods allowed in cross-origin requests.'),
    allowedHeaders: setList(withRules(z.string().min(1).max(256), [matching(HEADER_NAME_PATTERN, 'must be "*" or an HTTP header name')]), 64)
      .optional()
      .describe('Request headers a cross-origin request may send.'),
    exposedHeaders: setList(withRules(z.string().min(1).max(256), [matching(HEADER_NAME_PATTERN, 'must be "*" or an HTTP header name')]), 64)
      .optional()
      .describe('Response headers that browser scripts may read.'),
    allowCredentials: z.boolean().optional().describe('Allow cookies and Authorization headers in cross-origin requests.'),
    maxAge: z.number().int().min(0).max(86_400).optional().describe('How long, in seconds, browsers may cache a preflight response.'),
  }),
  [
    {
      rule: "!has(self.allowCredentials) || !self.allowCredentials || !has(self.allowedOrigins) || !('*' in self.allowedOrigins)",
      message: 'allowCredentials: true cannot be combined with the "*" origin (browsers refuse it); list the allowed origins',
      fieldPath: '.allowedOrigins',
      check: (c) => !c.allowCredentials || !(c.allowedOrigins ?? []).includes('*'),
    },
  ],
).describe('CORS settings for this route; each field set here replaces the gateway-wide default.');

const CONDITION_TYPES = ['Exact', 'Present'] as const;

type ConditionValue = { type: (typeof CONDITION_TYPES)[number]; value?: string | undefined };

/** Exact needs a value, Present takes none: checked by the API server and by the operator alike. */
const conditionRules: Rule<ConditionValue>[] = [
  {
    rule: "self.type != 'Exact' || has(self.value)",
    message: 'type Exact needs a value',
    fieldPath: '.value',
    reason: 'FieldValueRequired',
    check: (c) => c.type !== 'Exact' || c.value !== undefined,
  },
  {
    rule: "self.type != 'Present' || !has(self.value)",
    message: 'type Present matches any value; remove value, or use type Exact',
    fieldPath: '.value',
    check: (c) => c.type !== 'Present' || c.value === undefined,
  },
];

/** The type and value of a header or query parameter condition. */
function conditionFields(what: 'header' | 'query parameter') {
  return {
    type: z
      .enum(CONDITION_TYPES)
      .default('Exact')
      .describe(`Exact: the ${what} has exactly this value${what === 'query parameter' ? ' (its first occurrence, decoded)' : ''}. Present: the ${what} is there, whatever its value.`),
    value: z.string().max(4096).optional().describe('The value to match; required with type Exact, not allowed with Present.'),
  };
}

/** `spec.headers[]`. */
export const HeaderMatchSchema = withRules(
  z.object({
    name: withRules(z.string().min(1).max(256), [matching(TOKEN_PATTERN, 'must be an HTTP header name')]).describe('The header name; case-insensitive.'),
    ...conditionFields('header'),
  }),
  conditionRules,
).describe('A condition on a request header.');

/** `spec.queryParams[]`. */
export const QueryParamMatchSchema = withRules(
  z.object({ name: z.string().min(1).max(256).describe('The query parameter name; case-sensitive.'), ...conditionFields('query parameter') }),
  conditionRules,
).describe('A condition on a query parameter.');

/** `spec.rewrite`. */
export const RewriteSchema = z
  .object({
    path: withRules(z.string().min(1).max(1024), [
      ...pathValueRules,
      {
        rule: "!(self.contains('{') || self.contains('}') || self.contains('*'))",
        message: 'must be a literal path; "{", "}" and "*" are not substituted',
        check: (v) => !/[{}*]/.test(v),
      },
    ]).describe('Replaces the matched part of the path before forwarding: the whole path for Exact and Template routes, the matched prefix for Prefix routes (and for Templates ending in *).'),
  })
  .describe('Changes to the request before it is forwarded.');

/** `spec.upgrade`. */
export const UpgradeSchema = z
  .object({
    enabled: z
      .boolean()
      .default(true)
      .describe('Whether HTTP/1.1 Upgrade requests (WebSocket) are tunnelled to the upstream once authentication, roles and the rate limit pass on the handshake. Only routes that take GET (or any method) can allow it; false refuses upgrades with 403.'),
    idleTimeout: duration({ description: 'An upgraded connection with no bytes either way for this long is closed. Unset: the gateway default (server.timeouts.upgrade_idle_timeout, one hour unless configured).', min: '1s', max: '24h' }).optional(),
  })
  .describe('HTTP/1.1 Upgrade (WebSocket). Unset: upgrades are allowed on routes that take GET.');

const specRules: Rule<{ upstream?: string | undefined; backends?: unknown[] | undefined }>[] = [
  {
    rule: '!(has(self.upstream) && has(self.backends))',
    message: 'set either upstream or backends, not both',
    check: (s) => !(s.upstream !== undefined && s.backends !== undefined),
  },
  {
    rule: 'has(self.upstream) || has(self.backends)',
    message: 'one of upstream (an Upstream name) or backends (weighted Upstreams) is required',
    reason: 'FieldValueRequired',
    check: (s) => s.upstream !== undefined || s.backends !== undefined,
  },
];

/** `spec` of a GatewayRoute. */
export const GatewayRouteSpecSchema = withRules(
  z.object({
    hosts: setList(
      withRules(z.string().min(1).max(253), [
        matching(HOST_PATTERN, 'must be a lower-case host name (RFC 1123) or a wildcard such as *.example.com, without a port'),
      ]),
      16,
    )
      .optional()
      .describe('Host names this route answers for: exact names or *.suffix wildcards (at least one label before the suffix). Empty or unset: any host.'),
    path: PathMatchSchema,
    methods: setList(z.enum(HTTP_METHODS), HTTP_METHODS.length)
      .optional()
      .describe('HTTP methods this route answers (upper case). Empty or unset: any method. A route listing GET also answers HEAD.'),
    headers: mapList(HeaderMatchSchema, ['name'], 0, 16)
      .optional()
      .describe('Request headers that must all match for this route to serve a request, e.g. canary: "true". Among routes with the same path and method, the one with more header conditions is tried first, then the one with more query conditions.'),
    queryParams: mapList(QueryParamMatchSchema, ['name'], 0, 16)
      .optional()
      .describe('Query parameters that must all match for this route to serve a request.'),
    upstream: objectName('Name of the Upstream in the same namespace that receives every request. Set this or backends.').optional(),
    backends: withRules(mapList(BackendSchema, ['upstream'], 1, 16), [
      {
        rule: 'self.exists(b, b.weight > 0)',
        message: 'at least one backend needs a weight above 0',
        check: (bs) => bs.some((b) => b.weight > 0),
      },
    ])
      .optional()
      .describe('Upstreams in the same namespace that share the requests by weight, e.g. 90/10 for a canary. Set this or upstream.'),
    auth: AuthSchema.optional(),
    rateLimit: RateLimitSchema.optional(),
    timeout: duration({
      description: 'Total time the upstream has to start answering, retries included. Unset: the gateway default.',
      min: '1ms',
      max: '1h',
    }).optional(),
    retries: RetriesSchema.optional(),
    cors: CorsSchema.optional(),
    rewrite: RewriteSchema.optional(),
    upgrade: UpgradeSchema.optional(),
  }),
  specRules,
).describe('What the route matches and where it sends requests.');

/** `status` of a GatewayRoute, written by the operator. */
export const GatewayRouteStatusSchema = z
  .object({
    conditions: conditions('Accepted (the route is valid and wins its host, method and path), ResolvedRefs (its Upstreams exist) and Programmed (every connected gateway serves its current generation).'),
    observedGeneration: observedGeneration(),
  })
  .describe('What the operator observed about this route.');

/** A whole GatewayRoute object as the API server returns it. */
export const GatewayRouteSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(GATEWAY_ROUTE_KIND),
  metadata: ObjectMetaSchema,
  spec: GatewayRouteSpecSchema,
  status: GatewayRouteStatusSchema.optional(),
});

/** `spec` of a GatewayRoute, defaults applied. */
export type GatewayRouteSpec = z.infer<typeof GatewayRouteSpecSchema>;
/** `status` of a GatewayRoute. */
export type GatewayRouteStatus = z.infer<typeof GatewayRouteStatusSchema>;
/** A GatewayRoute, defaults applied. */
export type GatewayRoute = z.infer<typeof GatewayRouteSchema>;
/** A GatewayRoute as written in a manifest (defaults optional). */
export type GatewayRouteInput = z.input<typeof GatewayRouteSchema>;
