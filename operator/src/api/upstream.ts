/**
 * Upstream: one entry of the seed's `upstreams:` map as a namespaced object.
 * Its endpoints come from a Service's EndpointSlices (or a static list), so
 * traffic follows pods as they come and go.
 *
 * The source of truth for the resource, as gatewayroute.ts is for routes.
 */
import { z } from 'zod';
import { formatDuration, UPSTREAM_DEFAULTS } from '../../../dataplane/src/contract/index.ts';
import { API_VERSION, DNS1035_LABEL, DNS1123_SUBDOMAIN, DURATION_PATTERN, ObjectMetaSchema, conditions, duration, durationNs, observedGeneration } from './common.ts';
import { celString, matching, withRules } from './rules.ts';
import type { Rule } from './rules.ts';

/** Kind of the upstream resource. */
export const UPSTREAM_KIND = 'Upstream';
/** Resource (plural) name of Upstreams. */
export const UPSTREAM_PLURAL = 'upstreams';

/** An IANA service name, as Service port names are: lower case, digits and "-", at most 15. */
const PORT_NAME_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';

/** `spec.service.port`: a number, or the name of one of the Service's ports. */
const PortSchema = withRules(
  z.union([z.number().int().min(1).max(65535), z.string().min(1).max(15).regex(new RegExp(PORT_NAME_PATTERN))], {
    error: 'expected a port number (1-65535) or a port name such as "http"',
  }),
  [
    {
      rule: "type(self) != string || !self.matches('^[0-9]+$')",
      message: 'a port number must not be quoted; a port name contains at least one letter',
      check: (p) => typeof p !== 'string' || !/^[0-9]+$/.test(p),
    },
  ],
).describe('The Service port: its number (1-65535) or its name, e.g. "http". The gateway sends traffic to the matching target port of each ready endpoint.');

/** `spec.service`. */
export const ServiceRefSchema = z
  .object({
    name: withRules(z.string().min(1).max(63), [
      matching(DNS1035_LABEL, 'must be a Service name: a lower-case DNS-1035 label (letters, digits and "-", starting with a letter)'),
    ]).describe('Name of a Service in the same namespace.'),
    port: PortSchema,
  })
  .describe('Discover endpoints through a Service: the operator follows its EndpointSlices, so the gateway sends to the ready pods directly.');

const ENDPOINT_URL_MESSAGE = 'must be an http:// or https:// URL with a host and an optional port, and no path, query or credentials';

/** `spec.static`. */
export const StaticSchema = z
  .object({
    endpoints: z
      .array(
        withRules(z.string().min(1).max(2048), [
          {
            rule: "isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != '' && url(self).getEscapedPath() in ['', '/'] && url(self).getQuery().size() == 0 && !self.contains('@')",
            message: ENDPOINT_URL_MESSAGE,
            check: isEndpointUrl,
          },
        ]).describe('An endpoint URL, e.g. http://auth-service:3001.'),
      )
      .min(1)
      .max(64)
      .describe('Fixed endpoint URLs, e.g. http://auth-service:3001, for backends outside the cluster or without a selector.'),
  })
  .describe('Fixed endpoints instead of a Service.');

function isEndpointUrl(text: string): boolean {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return false;
  }
  return (u.protocol === 'http:' || u.protocol === 'https:') && u.hostname !== '' && (u.pathname === '' || u.pathname === '/') && u.search === '' && !text.includes('@');
}

/** The load-balancing policies, as in the route table. */
export const LOAD_BALANCERS = ['RoundRobin', 'LeastRequest', 'Random'] as const;
/** The protocols spoken to endpoints. */
export const PROTOCOLS = ['http', 'https'] as const;
/** The HTTP versions spoken to endpoints (`spec.appProtocol`). */
export const APP_PROTOCOLS = ['http1', 'h2c', 'h2'] as const;

/** `spec.healthCheck`. */
export const HealthCheckSchema = withRules(
  z.object({
    path: withRules(z.string().min(1).max(1024), [matching("^/([-A-Za-z0-9._~!$&'()*+,;=:@/?]|%[0-9A-Fa-f]{2})*$", 'must be a path starting with "/", e.g. /health')]).describe(
      'Path probed with GET on each endpoint; an answer from 200 to 399 counts as healthy.',
    ),
    interval: duration({ description: 'Time between probes of one endpoint.', min: '100ms', max: '1h' }).default(formatDuration(UPSTREAM_DEFAULTS.healthCheck.intervalMs)),
    timeout: duration({ description: 'How long a probe may take; must be shorter than interval.', min: '1ms', max: '1h' }).default(formatDuration(UPSTREAM_DEFAULTS.healthCheck.timeoutMs)),
    healthyThreshold: z.number().int().min(1).max(100).default(UPSTREAM_DEFAULTS.healthCheck.healthyThreshold).describe('Consecutive successful probes that mark an unhealthy endpoint healthy again.'),
    unhealthyThreshold: z.number().int().min(1).max(100).default(UPSTREAM_DEFAULTS.healthCheck.unhealthyThreshold).describe('Consecutive failed probes that mark an endpoint unhealthy.'),
  }),
  [
    {
      rule: `!self.timeout.matches(${celString(DURATION_PATTERN)}) || !self.interval.matches(${celString(DURATION_PATTERN)}) || duration(self.timeout) < duration(self.interval)`,
      message: 'timeout must be shorter than interval',
      fieldPath: '.timeout',
      check: (h) => {
        const t = durationNs(h.timeout);
        const i = durationNs(h.interval);
        return t === undefined || i === undefined || t < i;
      },
    },
  ],
).describe('Active health checking: endpoints that fail probes get no traffic until they pass again.');

/** `spec.circuitBreaker`. */
export const CircuitBreakerSchema = z
  .object({
    failureThreshold: z.number().int().min(1).max(10_000).describe('Consecutive failed requests to the upstream, on any of its endpoints, that open its breaker.'),
    timeout: duration({ description: 'How long an open breaker refuses requests before letting a trial request through.', min: '1s', max: '1h' }).default(formatDuration(UPSTREAM_DEFAULTS.circuitBreaker.openMs)),
    successThreshold: z.number().int().min(1).max(10_000).default(UPSTREAM_DEFAULTS.circuitBreaker.successThreshold).describe('Successful trial requests that close the breaker again.'),
    halfOpenRequests: z.number().int().min(1).max(1000).default(UPSTREAM_DEFAULTS.circuitBreaker.halfOpenRequests).describe('Trial requests let through at once while the breaker is half-open.'),
  })
  .describe('Circuit breaking for the whole upstream: after consecutive failed requests, answer 503 at once (with Retry-After) instead of calling it, then probe it with live requests.');

/** `spec.outlierDetection`. */
export const OutlierDetectionSchema = z
  .object({
    consecutiveFailures: z.number().int().min(1).max(10_000).default(UPSTREAM_DEFAULTS.outlierDetection.consecutiveFailures).describe('Consecutive 5xx answers or connection failures that eject an endpoint.'),
    baseEjectionTime: duration({ description: 'An ejection lasts this long times the number of times the endpoint has been ejected.', min: '1ms', max: '1h' }).default(formatDuration(UPSTREAM_DEFAULTS.outlierDetection.baseEjectionMs)),
    maxEjectionTime: duration({ description: 'The longest an ejection lasts.', min: '1ms', max: '24h' }).default(formatDuration(UPSTREAM_DEFAULTS.outlierDetection.maxEjectionMs)),
    maxEjectionPercent: z.number().int().min(0).max(100).default(UPSTREAM_DEFAULTS.outlierDetection.maxEjectionPercent).describe('Never eject more than this share of the endpoints (rounded down).'),
  })
  .describe('Passive health checking: endpoints that keep failing real requests are taken out of rotation for a while.');

/** `spec.retryBudget`. */
export const RetryBudgetSchema = z
  .object({
    percent: z.number().int().min(0).max(100).default(UPSTREAM_DEFAULTS.retryBudget.percent).describe('Retries in flight to this upstream, as a share of its requests in flight.'),
    minConcurrent: z.number().int().min(0).max(10_000).default(UPSTREAM_DEFAULTS.retryBudget.minConcurrent).describe('Retries always allowed at once, however few requests are in flight.'),
  })
  .describe('Caps retries so that they cannot multiply the load on an upstream that is failing. Unset: 20% of requests in flight, at least 3.');

/** `spec.connectionPool`. */
export const ConnectionPoolSchema = z
  .object({
    maxConnections: z.number().int().min(1).max(10_000).default(UPSTREAM_DEFAULTS.pool.connectionsPerEndpoint).describe('Most connections the gateway opens to one endpoint.'),
    connectTimeout: duration({ description: 'How long a TCP (and TLS) connect may take.', min: '1ms', max: '5m' }).default(formatDuration(UPSTREAM_DEFAULTS.pool.connectTimeoutMs)),
    idleTimeout: duration({ description: "How long an idle keep-alive connection is kept open. Unset: the gateway's server.timeouts.keepalive_timeout.", min: '1ms', max: '1h' }).optional(),
  })
  .describe('Connections from each gateway replica to each endpoint.');

const OBJECT_NAME_RULE = matching(DNS1123_SUBDOMAIN, 'must be an object name: a lower-case DNS-1123 subdomain');

/** `spec.tls.caCertificateRef`. */
export const CaCertificateRefSchema = z
  .object({
    kind: z.enum(['Secret', 'ConfigMap']).describe('Secret (of type kubernetes.io/tls, as cert-manager writes them: the operator reads no other Secrets) or ConfigMap.'),
    name: withRules(z.string().min(1).max(253), [OBJECT_NAME_RULE]).describe('Name of the Secret or ConfigMap, in the namespace of the Upstream.'),
    key: withRules(z.string().min(1).max(253), [matching('^[-._a-zA-Z0-9]+$', 'must be a data key: letters, digits, "-", "_" and "."')])
      .default('ca.crt')
      .describe('The key whose value is the PEM bundle of CA certificates.'),
  })
  .describe('CA certificates (PEM) to verify the endpoints with, instead of the system roots. A change to the object (a rotation) reaches the gateways without a restart.');

/** `spec.tls.clientCertificateRef`. */
export const ClientCertificateRefSchema = z
  .object({
    name: withRules(z.string().min(1).max(253), [OBJECT_NAME_RULE]).describe('Name of a kubernetes.io/tls Secret (tls.crt and tls.key) in the namespace of the Upstream.'),
  })
  .describe('A client certificate the gateway presents to endpoints that ask for one (mutual TLS).');

/** `spec.tls`. */
export const TlsSchema = z
  .object({
    serverName: withRules(z.string().min(1).max(253), [
      matching('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$', 'must be a lower-case DNS name'),
    ])
      .optional()
      .describe('Name sent in SNI and checked against the certificate. Unset: the endpoint host for static endpoints, <service>.<namespace>.svc for a Service.'),
    insecureSkipVerify: z.boolean().default(false).describe('Do not verify the endpoint certificate. For testing only: it allows anyone on the path to read and change the traffic.'),
    caCertificateRef: CaCertificateRefSchema.optional(),
    clientCertificateRef: ClientCertificateRefSchema.optional(),
  })
  .describe('TLS towards the endpoints, used with protocol https.');

type SpecShape = {
  service?: unknown;
  static?: { endpoints: string[] } | undefined;
  protocol: (typeof PROTOCOLS)[number];
  appProtocol?: (typeof APP_PROTOCOLS)[number] | undefined;
  tls?: unknown;
};

const specRules: Rule<SpecShape>[] = [
  {
    rule: '!(has(self.service) && has(self.static))',
    message: 'set either service or static, not both',
    check: (s) => !(s.service !== undefined && s.static !== undefined),
  },
  {
    rule: 'has(self.service) || has(self.static)',
    message: 'one of service (a Service name and port) or static (endpoint URLs) is required',
    reason: 'FieldValueRequired',
    check: (s) => s.service !== undefined || s.static !== undefined,
  },
  {
    rule: "!has(self.static) || self.static.endpoints.all(e, !isURL(e) || !(url(e).getScheme() in ['http', 'https']) || url(e).getScheme() == self.protocol)",
    message: 'static endpoints must use the scheme given by protocol (http unless set); set protocol: https for https:// endpoints',
    fieldPath: '.static',
    check: (s) =>
      s.static === undefined ||
      s.static.endpoints.every((e) => {
        const scheme = URL.canParse(e) ? new URL(e).protocol : undefined;
        return (scheme !== 'http:' && scheme !== 'https:') || scheme === `${s.protocol}:`;
      }),
  },
  {
    rule: "!has(self.tls) || self.protocol == 'https'",
    message: 'tls settings apply to protocol https only; set protocol: https',
    fieldPath: '.tls',
    check: (s) => s.tls === undefined || s.protocol === 'https',
  },
  {
    rule: "!has(self.appProtocol) || self.appProtocol != 'h2c' || self.protocol == 'http'",
    message: 'h2c is HTTP/2 over cleartext; with protocol https use appProtocol h2',
    fieldPath: '.appProtocol',
    check: (s) => s.appProtocol !== 'h2c' || s.protocol === 'http',
  },
  {
    rule: "!has(self.appProtocol) || self.appProtocol != 'h2' || self.protocol == 'https'",
    message: 'h2 is HTTP/2 over TLS and needs protocol https; for cleartext HTTP/2 use appProtocol h2c',
    fieldPath: '.appProtocol',
    check: (s) => s.appProtocol !== 'h2' || s.protocol === 'https',
  },
];

/** `spec` of an Upstream. */
export const UpstreamSpecSchema = withRules(
  z.object({
    service: ServiceRefSchema.optional(),
    static: StaticSchema.optional(),
    protocol: z.enum(PROTOCOLS).default('http').describe('Protocol spoken to the endpoints: http or https.'),
    appProtocol: z
      .enum(APP_PROTOCOLS)
      .optional()
      .describe('HTTP version spoken to the endpoints: http1 (HTTP/1.1 only, the behaviour when unset), h2c (HTTP/2 with prior knowledge, with protocol http) or h2 (HTTP/2 by ALPN, with protocol https). gRPC services need h2c or h2.'),
    loadBalancer: z
      .enum(LOAD_BALANCERS)
      .default('RoundRobin')
      .describe('How an endpoint is picked: RoundRobin, LeastRequest (fewest requests in flight; the better of two random picks beyond four endpoints) or Random.'),
    healthCheck: HealthCheckSchema.optional(),
    circuitBreaker: CircuitBreakerSchema.optional(),
    outlierDetection: OutlierDetectionSchema.optional(),
    whenAllUnhealthy: z
      .enum(['panic', 'fail'])
      .optional()
      .describe('When no endpoint is healthy: panic (the behaviour when unset) sends to all of them anyway (health checks may be wrong; the endpoints may still answer), fail answers 503.'),
    retryBudget: RetryBudgetSchema.optional(),
    timeout: duration({
      description: 'Per attempt: time to the first response byte and between body chunks. Unset: the gateway default.',
      min: '1ms',
      max: '1h',
    }).optional(),
    connectionPool: ConnectionPoolSchema.optional(),
    tls: TlsSchema.optional(),
  }),
  specRules,
).describe('Where requests for this upstream go and how the gateway treats its endpoints.');

/** `status` of an Upstream, written by the operator. */
export const UpstreamStatusSchema = z
  .object({
    conditions: conditions('Accepted (the spec is valid), ResolvedRefs (the Service exists and has the port) and Ready (at least one endpoint is ready).'),
    observedGeneration: observedGeneration(),
    readyEndpoints: z.number().int().min(0).max(1_000_000).optional().describe('Endpoints that are ready to receive traffic.'),
    totalEndpoints: z.number().int().min(0).max(1_000_000).optional().describe('All endpoints known, ready or not.'),
  })
  .describe('What the operator observed about this upstream.');

/** A whole Upstream object as the API server returns it. */
export const UpstreamSchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(UPSTREAM_KIND),
  metadata: ObjectMetaSchema,
  spec: UpstreamSpecSchema,
  status: UpstreamStatusSchema.optional(),
});

/** `spec` of an Upstream, defaults applied. */
export type UpstreamSpec = z.infer<typeof UpstreamSpecSchema>;
/** `status` of an Upstream. */
export type UpstreamStatus = z.infer<typeof UpstreamStatusSchema>;
/** An Upstream, defaults applied. */
export type Upstream = z.infer<typeof UpstreamSchema>;
/** An Upstream as written in a manifest (defaults optional). */
export type UpstreamInput = z.input<typeof UpstreamSchema>;
