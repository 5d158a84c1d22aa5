/**
 * Parity: one scenario written twice, as the seed's gateway.yaml and as
 * GatewayRoutes and Upstreams, compiles to the same route table (same routes
 * in the same order, same upstreams, same rejected routes) and, with the same
 * gateway-wide settings, to the same effective policies. Names differ only by
 * the namespace the operator puts in front of them.
 */
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { compileConfig, gatewayDefaults } from '../../../dataplane/src/config/compile.ts';
import { parseConfig } from '../../../dataplane/src/config/load.ts';
import { withGatewayDefaults, type Route, type RouteTable } from '../../../dataplane/src/contract/index.ts';
import { compile } from '../../../operator/src/compile/index.ts';
import { PARSERS } from '../../../operator/src/store/parsers.ts';
import { toSnapshot, type KubeObject } from '../../../operator/src/store/convert.ts';

const SETTINGS = `
middleware:
  rate_limiting:
    default_limit: 100
    window: 30s
    route_limits: { "/api/v1/admin/*": 10 }
    key: { type: ClientIP }
  cors: { allowed_origins: ["https://shop.example"], max_age: 600 }
`;

const FILE = `${SETTINGS}
routes:
  - name: users
    path: "/api/v1/users/{id}"
    methods: [GET, PUT]
    upstream: users
    auth_required: true
    required_roles: [user]
    timeout: 5s
    retries: { attempts: 2, on: [connect-failure, "503"], backoff: 50ms }
    rate_limit: { requests: 100, window: 1m, key: { type: Header, header: X-API-Key } }
    upgrade: { idle_timeout: 10m }
  - name: admin
    path: /api/v1/admin/users
    hosts: [admin.shop.example]
    upstream: users
    auth_required: true
    required_roles: [admin]
    required_permissions: ["users:write"]
    upgrade: { enabled: false }
  - name: login
    path: /auth/login
    methods: [POST]
    upstream: auth
    rate_limit: 10
    cors: { allowed_origins: ["*"], allowed_methods: [POST, OPTIONS] }
  - name: orders-canary
    path: /api/v1/orders
    path_type: Prefix
    headers: [{ name: canary, value: "true" }]
    query_params: [{ name: debug, type: Present }]
    upstream: orders-v2
  - name: orders
    path: /api/v1/orders
    path_type: Prefix
    backends: [{ upstream: orders-v1, weight: 90 }, { upstream: orders-v2, weight: 10 }]
    rewrite_path: /orders
  - name: orders-slash
    path: /api/v1/orders/
    path_type: Prefix
    upstream: orders-v1
  - name: files
    path: "/files/*"
    methods: [GET]
    upstream: missing
upstreams:
  users:
    discovery: { type: Static, endpoints: ["http://10.0.0.1:8080"] }
    load_balancer: { type: LeastRequest }
    health_check: { path: /health, interval: 5s }
    circuit_breaker: { failure_threshold: 3 }
    outlier_detection: { consecutive_failures: 4 }
    retry_budget: { percent: 10 }
    timeout: 2s
    max_connections: 64
  auth:
    discovery: { type: Static, endpoints: ["http://10.0.0.2:3001"] }
  orders-v1:
    discovery: { type: Static, endpoints: ["http://10.0.0.3:8080"] }
  orders-v2:
    discovery: { type: Static, endpoints: ["http://10.0.0.4:8080"] }
    when_all_unhealthy: fail
`;

const RESOURCES = `
kind: Upstream
metadata: { name: users }
spec:
  static: { endpoints: ["http://10.0.0.1:8080"] }
  loadBalancer: LeastRequest
  healthCheck: { path: /health, interval: 5s }
  circuitBreaker: { failureThreshold: 3 }
  outlierDetection: { consecutiveFailures: 4 }
  retryBudget: { percent: 10 }
  timeout: 2s
  connectionPool: { maxConnections: 64 }
---
kind: Upstream
metadata: { name: auth }
spec: { static: { endpoints: ["http://10.0.0.2:3001"] } }
---
kind: Upstream
metadata: { name: orders-v1 }
spec: { static: { endpoints: ["http://10.0.0.3:8080"] } }
---
kind: Upstream
metadata: { name: orders-v2 }
spec: { static: { endpoints: ["http://10.0.0.4:8080"] }, whenAllUnhealthy: fail }
---
kind: GatewayRoute
metadata: { name: users }
spec:
  path: { type: Template, value: "/api/v1/users/{id}" }
  methods: [GET, PUT]
  upstream: users
  auth: { required: true, roles: [user] }
  timeout: 5s
  retries: { attempts: 2, retryOn: [connect-failure, "503"], backoff: 50ms }
  rateLimit: { requests: 100, window: 1m, key: { type: Header, header: X-API-Key } }
  upgrade: { idleTimeout: 10m }
---
kind: GatewayRoute
metadata: { name: admin }
spec:
  path: { value: /api/v1/admin/users }
  hosts: [admin.shop.example]
  upstream: users
  auth: { required: true, roles: [admin], permissions: ["users:write"] }
  upgrade: { enabled: false }
---
kind: GatewayRoute
metadata: { name: login }
spec:
  path: { value: /auth/login }
  methods: [POST]
  upstream: auth
  rateLimit: { requests: 10 }
  cors: { allowedOrigins: ["*"], allowedMethods: [POST, OPTIONS] }
---
kind: GatewayRoute
metadata: { name: orders-canary }
spec:
  path: { type: Prefix, value: /api/v1/orders }
  headers: [{ name: canary, value: "true" }]
  queryParams: [{ name: debug, type: Present }]
  upstream: orders-v2
---
kind: GatewayRoute
metadata: { name: orders }
spec:
  path: { type: Prefix, value: /api/v1/orders }
  backends: [{ upstream: orders-v1, weight: 90 }, { upstream: orders-v2, weight: 10 }]
  rewrite: { path: /orders }
---
kind: GatewayRoute
metadata: { name: orders-slash }
spec: { path: { type: Prefix, value: /api/v1/orders/ }, upstream: orders-v1 }
---
kind: GatewayRoute
metadata: { name: files }
spec: { path: { type: Template, value: "/files/*" }, methods: [GET], upstream: missing }
`;

/**
 * The operator's names without their namespace, and without what only the
 * operator records (the source object). Why a route cannot be served is said
 * in each front end's own terms (a file's "upstreams" section, a namespace):
 * that it cannot be served must agree.
 */
function withoutNamespace(table: RouteTable): unknown {
  const bare = (name: string): string => name.replace(/^shop\//, '');
  return {
    routes: table.routes.map(({ source: _source, ...r }) => ({
      ...r,
      id: bare(r.id),
      backends: r.backends.map((b) => ({ ...b, upstream: bare(b.upstream) })),
      invalid: r.invalid === undefined ? undefined : 'unservable',
    })),
    upstreams: table.upstreams.map(({ source: _source, ...u }) => ({ ...u, name: bare(u.name) })),
  };
}

function fromResources(): ReturnType<typeof compile> {
  // File order is age order: each object a minute younger than the one before.
  const objects = parseAllDocuments(RESOURCES).map((d, i) => {
    const o = d.toJS() as KubeObject & { metadata: Record<string, unknown> };
    o.apiVersion = 'switchyard.dev/v1alpha1';
    o.metadata = { ...o.metadata, namespace: 'shop', generation: 1, creationTimestamp: `2026-01-01T00:${String(i).padStart(2, '0')}:00Z` };
    return o;
  });
  const snapshot = toSnapshot(
    { routes: objects.filter((o) => o.kind === 'GatewayRoute'), upstreams: objects.filter((o) => o.kind === 'Upstream'), services: [], endpointSlices: [] },
    PARSERS,
  );
  return compile(snapshot);
}

describe('gateway.yaml and GatewayRoutes say the same thing', () => {
  const loaded = parseConfig(FILE, 'parity.yaml', {});
  const file = compileConfig(loaded.config, 'parity.yaml');
  const cluster = fromResources();

  it('compile to the same table', () => {
    expect(withoutNamespace(cluster.table)).toEqual(withoutNamespace(file.table));
    // Not vacuous: the scenario has every kind of setting, and something to reject.
    expect(file.table.routes.map((r) => r.id)).toEqual(['users', 'admin', 'login', 'orders-canary', 'orders', 'files']);
    expect(file.table.upstreams).toHaveLength(4);
  });

  it('reject the same route, naming the same winner', () => {
    expect(file.warnings).toContainEqual(expect.stringContaining('routes[5]: shadowed by routes[4] ("orders")'));
    const status = cluster.statuses.get('GatewayRoute/shop/orders-slash');
    expect(status?.conditions.find((c) => c.type === 'Accepted')).toMatchObject({ status: 'False', reason: 'Conflicted', message: expect.stringContaining('"shop/orders"') });
  });

  it('serve the same effective policies with the same gateway-wide settings', () => {
    const defaults = gatewayDefaults(loaded.config);
    const served = (routes: readonly Route[]): unknown =>
      routes.map((r) => {
        const { id: _id, source: _source, backends: _backends, invalid, ...rest } = withGatewayDefaults(r, defaults);
        return { ...rest, unservable: invalid !== undefined };
      });
    expect(served(cluster.table.routes)).toEqual(served(file.table.routes));
    const login = withGatewayDefaults(file.table.routes[2] as Route, defaults);
    expect(login.rateLimit).toEqual({ limit: 10, windowMs: 30_000, key: { type: 'ClientIP' } });
    expect(login.cors).toMatchObject({ allowedOrigins: ['*'], allowedMethods: ['POST', 'OPTIONS'], maxAgeSeconds: 600 });
    expect(withGatewayDefaults(file.table.routes[1] as Route, defaults).rateLimit).toEqual({ limit: 10, windowMs: 30_000, key: { type: 'ClientIP' } });
    expect(withGatewayDefaults(file.table.routes[0] as Route, defaults).rateLimit).toEqual({ limit: 100, windowMs: 60_000, key: { type: 'Header', header: 'X-API-Key' } });
  });
});
