import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseDuration, formatDuration } from '../../../dataplane/src/contract/duration.ts';
import { ConfigError, parseConfig } from '../../../dataplane/src/config/load.ts';
import { compileConfig, gatewayDefaults } from '../../../dataplane/src/config/compile.ts';
import { withGatewayDefaults } from '../../../dataplane/src/contract/policy.ts';
import { RouteTableSchema } from '../../../dataplane/src/contract/schema.ts';
import { tableVersion } from '../../../dataplane/src/contract/version.ts';

const seed = readFileSync('test/fixtures/seed-gateway.yaml', 'utf8');

function problems(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(text, 'gw.yaml', env);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

describe('durations', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['1m', 60_000],
    ['1h30m', 5_400_000],
    ['1.5s', 1500],
    ['10', 10_000],
    [3, 3000],
  ])('%s is %d ms', (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(['', 'soon', '10 s', '5d', '-1s', 's'])('rejects %j', (text) => expect(parseDuration(text)).toBeUndefined());

  it('formats back', () => expect([60_000, 30_000, 250, 7_200_000].map(formatDuration)).toEqual(['1m', '30s', '250ms', '2h']));
});

describe('loading gateway.yaml', () => {
  it('accepts the seed as written, substituting ${JWT_SECRET}', () => {
    const { config } = parseConfig(seed, 'seed.yaml', { JWT_SECRET: 'a-seed-secret-of-at-least-32-bytes-for-hs256' });
    expect(config.server.http_port).toBe(8080);
    expect(config.routes).toHaveLength(10);
    expect(config.auth.jwt?.secret).toBe('a-seed-secret-of-at-least-32-bytes-for-hs256');
    expect(config.middleware.rate_limiting?.storage.type).toBe('Redis');
    expect(config.observability.tracing.backend?.type).toBe('Jaeger');
  });

  it('names the variable, the file, the line and the field when a ${VAR} is unset', () => {
    expect(problems(seed)).toEqual(['seed.yaml:226: auth.jwt.secret: environment variable JWT_SECRET is not set (referenced as ${JWT_SECRET})'.replace('seed.yaml', 'gw.yaml').replace(':226', `:${seed.split('\n').findIndex((l) => l.includes('${JWT_SECRET}')) + 1}`)]);
  });

  it('supports ${VAR:-default} and $$ for a literal dollar', () => {
    const { config } = parseConfig('server:\n  bind_address: "${BIND:-127.0.0.1}"\nauth:\n  jwt:\n    secret: "a$$b-and-enough-bytes-for-hs256-32"\n', 'gw.yaml', {});
    expect(config.server.bind_address).toBe('127.0.0.1');
    expect(config.auth.jwt?.secret).toBe('a$b-and-enough-bytes-for-hs256-32');
  });

  it('applies GATEWAY_* overrides by the documented rule and the seed aliases', () => {
    const { config, overrides, warnings } = parseConfig('server:\n  http_port: 8080\n', 'gw.yaml', {
      GATEWAY_SERVER_HTTP_PORT: '9000',
      GATEWAY_LOG_LEVEL: 'debug',
      GATEWAY_METRICS_ENABLED: 'false',
      GATEWAY_SERVER_TIMEOUTS_UPSTREAM_TIMEOUT: '2s',
      GATEWAY_MIDDLEWARE_CORS_ALLOWED_ORIGINS: 'https://a.example, https://b.example',
      GATEWAY_NOT_A_SETTING: 'x',
    });
    expect(config.server.http_port).toBe(9000);
    expect(config.observability.logging.level).toBe('debug');
    expect(config.observability.metrics.prometheus_enabled).toBe(false);
    expect(config.server.timeouts.upstream_timeout).toBe('2s');
    expect(config.middleware.cors?.allowed_origins).toEqual(['https://a.example', 'https://b.example']);
    expect(overrides).toContain('GATEWAY_SERVER_HTTP_PORT -> server.http_port');
    expect(warnings).toEqual([expect.stringContaining('GATEWAY_NOT_A_SETTING does not name a setting')]);
  });

  it('drops header names with underscores unless told otherwise', () => {
    expect(parseConfig('{}', 'gw.yaml', {}).config.server.headers_with_underscores).toBe('drop');
    expect(parseConfig('{}', 'gw.yaml', { GATEWAY_SERVER_HEADERS_WITH_UNDERSCORES: 'allow' }).config.server.headers_with_underscores).toBe('allow');
  });

  it('says which variable produced a bad override', () => {
    expect(problems('{}', { GATEWAY_SERVER_HTTP_PORT: 'eighty' })).toEqual([expect.stringMatching(/server\.http_port: expected number.*\(from GATEWAY_SERVER_HTTP_PORT\)/)]);
  });

  it.each([
    ['routes:\n  - path: api\n    upstream: u\n', 'gw.yaml:2: routes[0].path: a route path must start with "/"'],
    ['routes:\n  - path: /a\n', 'gw.yaml:2: routes[0]: a route needs exactly one of "upstream" or "backends"'],
    ['routes:\n  - path: /a\n    upstream: u\n    timeout: soon\n', 'gw.yaml:4: routes[0].timeout: expected a duration such as "500ms", "30s", "1m" or "1h"'],
    ['server:\n  http_port: 70000\n', 'gw.yaml:2: server.http_port: Too big: expected number to be <=65535'],
    ['upstreams:\n  u:\n    discovery:\n      type: Static\n      endpoints: ["ftp://x"]\n', 'gw.yaml:5: upstreams.u.discovery.endpoints[0]: expected an http:// or https:// URL with a host and port'],
    ['upstreams:\n  u:\n    discovery:\n      type: Consul\n      endpoints: ["http://x:1"]\n', 'gw.yaml:4: upstreams.u.discovery.type: only "Static" discovery is available in a file; Kubernetes discovery comes from the operator'],
    ['server:\n  htp_port: 1\n', 'gw.yaml:2: server: unknown key "htp_port"'],
    ['routes: {}\n', 'gw.yaml:1: routes: expected array, got a mapping'],
    ['server: [1\n', 'gw.yaml:2:1: invalid YAML'],
    ['server:\n  headers_with_underscores: ignore\n', 'gw.yaml:2: server.headers_with_underscores: Invalid option: expected one of "drop"|"reject"|"allow"'],
  ])('reports %j precisely', (text, message) => {
    expect(problems(text).join('\n')).toContain(message);
  });
});

describe('compiling a config into a route table', () => {
  const compile = (text: string) => compileConfig(parseConfig(text, 'gw.yaml', { JWT_SECRET: 'a-seed-secret-of-at-least-32-bytes-for-hs256' }).config, 'gw.yaml');

  it('compiles the seed into a valid, versioned table', () => {
    const { table, warnings } = compile(seed);
    expect(RouteTableSchema.safeParse(table).success).toBe(true);
    expect(table.version).toBe(tableVersion(table));
    expect(table.routes.map((r) => r.id)).toContain('/api/v1/users/{id}');
    const users = table.routes.find((r) => r.id === '/api/v1/users/{id}');
    expect(users).toMatchObject({ path: { type: 'Template', value: '/api/v1/users/{id}' }, methods: ['GET', 'PUT', 'DELETE'], timeoutMs: 30_000, auth: { required: true, roles: ['user'], permissions: [] } });
    // The table holds each route's own policy; the gateway-wide one is laid under it when served.
    expect(users?.rateLimit).toBeUndefined();
    const defaults = gatewayDefaults(parseConfig(seed, 'gw.yaml', { JWT_SECRET: 'a-seed-secret-of-at-least-32-bytes-for-hs256' }).config);
    const served = (id: string) => withGatewayDefaults(table.routes.find((r) => r.id === id) as (typeof table.routes)[number], defaults);
    expect(served('/auth/login').rateLimit).toEqual({ limit: 10, windowMs: 60_000, key: { type: 'User' } });
    expect(served('/auth/login').policySources.rateLimit).toBe('middleware.rate_limiting.route_limits["/auth/login"]');
    expect(served('/api/v1/users/{id}').rateLimit).toEqual({ limit: 1000, windowMs: 60_000, key: { type: 'User' } });
    expect(served('/api/v1/users/{id}').policySources).toEqual({ rateLimit: 'middleware.rate_limiting.default_limit', cors: 'middleware.cors' });
    expect(served('/api/v1/users/{id}').cors).toMatchObject({ allowedOrigins: ['*'], maxAgeSeconds: 3600 });
    const userService = table.upstreams.find((u) => u.name === 'user-service');
    expect(userService).toMatchObject({
      endpoints: [{ url: 'http://user-service:3002', weight: 1 }],
      loadBalancer: 'RoundRobin',
      healthCheck: { path: '/health', intervalMs: 30_000, timeoutMs: 5000, healthyThreshold: 2, unhealthyThreshold: 3 },
      circuitBreaker: { failureThreshold: 5, openMs: 60_000, successThreshold: 3 },
    });
    // Unset timeouts stay unset in the table: each data plane applies its own server.timeouts, as for operator tables.
    expect(userService?.timeoutMs).toBeUndefined();
    expect(userService?.pool.keepAliveTimeoutMs).toBeUndefined();
    expect(table.routes.find((r) => r.id === '/health')?.invalid).toBe('upstream "health-service" is not defined');
    expect(warnings).toEqual(['gw.yaml: routes[9].upstream: upstream "health-service" is not defined in "upstreams"; the route answers 503 until it is']);
  });

  it('gives the same version for the same content, whatever the key order', () => {
    const a = compile('upstreams:\n  a: { discovery: { type: Static, endpoints: ["http://127.0.0.1:1"] } }\n  b: { discovery: { type: Static, endpoints: ["http://127.0.0.1:2"] } }\nroutes:\n  - { path: /x, upstream: a }\n');
    const b = compile('routes:\n  - { upstream: a, path: /x }\nupstreams:\n  b: { discovery: { endpoints: ["http://127.0.0.1:2"], type: Static } }\n  a: { discovery: { type: Static, endpoints: ["http://127.0.0.1:1"] } }\n');
    expect(a.table.version).toBe(b.table.version);
    const c = compile('upstreams:\n  a: { discovery: { type: Static, endpoints: ["http://127.0.0.1:1"] } }\nroutes:\n  - { path: /y, upstream: a }\n');
    expect(c.table.version).not.toBe(a.table.version);
  });

  it('applies route_limits by exact path first, then the longest glob', () => {
    const text = `
middleware:
  rate_limiting:
    default_limit: 1000
    window: 10s
    route_limits: { "/api/v1/admin/*": 50, "/api/*": 500, "/api/v1/admin/users": 7 }
routes:
  - { path: /api/v1/admin/users, upstream: a }
  - { path: /api/v1/admin/roles, upstream: a }
  - { path: /api/v1/users, upstream: a }
  - { path: /other, upstream: a, rate_limit: 3 }
  - { path: /free, upstream: a }
upstreams:
  a: { discovery: { type: Static, endpoints: ["http://127.0.0.1:1"] } }
`;
    const { table } = compile(text);
    const defaults = gatewayDefaults(parseConfig(text, 'gw.yaml', {}).config);
    const served = table.routes.map((r) => withGatewayDefaults(r, defaults));
    expect(served.map((r) => r.rateLimit?.limit)).toEqual([7, 50, 500, 3, 1000]);
    expect(served.map((r) => r.rateLimit?.windowMs)).toEqual([10_000, 10_000, 10_000, 10_000, 10_000]);
    expect(served.map((r) => r.policySources.rateLimit)).toEqual([
      'middleware.rate_limiting.route_limits["/api/v1/admin/users"]',
      'middleware.rate_limiting.route_limits["/api/v1/admin/*"]',
      'middleware.rate_limiting.route_limits["/api/*"]',
      'route',
      'middleware.rate_limiting.default_limit',
    ]);
  });

  it('a route\'s own CORS fields replace the gateway\'s one by one; enabled: false turns every limit off', () => {
    const text = `
middleware:
  rate_limiting: { enabled: false, default_limit: 5 }
  cors: { allowed_origins: ["https://a.test"], max_age: 60 }
routes:
  - { path: /own, upstream: a, rate_limit: 3, cors: { allowed_origins: ["https://b.test"] } }
  - { path: /base, upstream: a }
upstreams:
  a: { discovery: { type: Static, endpoints: ["http://127.0.0.1:1"] } }
`;
    const { table } = compile(text);
    const defaults = gatewayDefaults(parseConfig(text, 'gw.yaml', {}).config);
    const [own, base] = table.routes.map((r) => withGatewayDefaults(r, defaults));
    expect(own?.cors).toEqual({ allowedOrigins: ['https://b.test'], allowedMethods: ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS'], allowedHeaders: ['Content-Type', 'Authorization'], exposedHeaders: [], allowCredentials: false, maxAgeSeconds: 60 });
    expect(own?.policySources.cors).toBe('route over middleware.cors');
    expect(base?.cors?.allowedOrigins).toEqual(['https://a.test']);
    expect(own?.rateLimit).toBeUndefined();
    expect(base?.rateLimit).toBeUndefined();
  });

  it('a route shadowed by an earlier one is named, left out, and the earlier one serves', () => {
    const { table, warnings } = compile(`
routes:
  - { name: pfx, path: /pfx, path_type: Prefix, upstream: a }
  - { name: pfx-slash, path: /pfx/, path_type: Prefix, upstream: a }
  - { name: by-id, path: "/things/{id}", upstream: a, methods: [GET] }
  - { name: by-name, path: "/things/{name}", upstream: a, methods: [GET, POST] }
  - { name: canary, path: /pfx, path_type: Prefix, upstream: a, headers: [{ name: canary, value: "true" }] }
upstreams:
  a: { discovery: { type: Static, endpoints: ["http://127.0.0.1:1"] } }
`);
    expect(table.routes.map((r) => r.id)).toEqual(['pfx', 'by-id', 'canary']);
    expect(warnings).toEqual([
      'gw.yaml: routes[1]: shadowed by routes[0] ("pfx") on any method /pfx/: both match the same requests, and the earlier route wins, so this one never serves; remove one, or make their paths, methods, hosts or conditions differ',
      'gw.yaml: routes[3]: shadowed by routes[2] ("by-id") on GET /things/{name}: both match the same requests, and the earlier route wins, so this one never serves; remove one, or make their paths, methods, hosts or conditions differ',
    ]);
  });

  it('a route the matcher refuses makes the file invalid, naming the route', () => {
    expect(() =>
      compile(`
routes:
  - { path: "/a/{id", upstream: a }
  - { path: /b, upstream: a, headers: [{ name: x, type: Present, value: "1" }] }
upstreams:
  a: { discovery: { type: Static, endpoints: ["http://127.0.0.1:1"] } }
`),
    ).toThrow(/routes\[0\]\.path: path "\/a\/\{id": segment "\{id" has an unbalanced brace[\s\S]*routes\[1\]\.path: header condition "x" has a value, but type Present/);
  });

  it('header and query conditions reach the table', () => {
    const { table } = compile(`
routes:
  - path: /orders
    path_type: Prefix
    upstream: a
    headers: [{ name: canary, value: "true" }, { name: x-debug, type: Present }]
    query_params: [{ name: v, value: "2" }]
upstreams:
  a: { discovery: { type: Static, endpoints: ["http://127.0.0.1:1"] } }
`);
    expect(table.routes[0]).toMatchObject({
      headers: [{ name: 'canary', type: 'Exact', value: 'true' }, { name: 'x-debug', type: 'Present' }],
      queryParams: [{ name: 'v', type: 'Exact', value: '2' }],
    });
  });

  it('infers path types and names duplicate paths apart', () => {
    const { table } = compile(`
routes:
  - { path: /a, upstream: u, methods: [GET] }
  - { path: /a, upstream: u, methods: [POST] }
  - { path: /b/*, upstream: u }
  - { path: /c, path_type: Prefix, upstream: u }
  - { name: named, path: "/d/{x}", upstream: u }
upstreams:
  u: { discovery: { type: Static, endpoints: ["http://127.0.0.1:1"] } }
`);
    expect(table.routes.map((r) => [r.id, r.path.type])).toEqual([
      ['/a', 'Exact'],
      ['/a#2', 'Exact'],
      ['/b/*', 'Template'],
      ['/c', 'Prefix'],
      ['named', 'Template'],
    ]);
  });
});
