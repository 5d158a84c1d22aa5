/**
 * Rate limiting without a network: who a limit counts (the bucket of each key
 * type, and what Redis Cluster makes of it), and the storage settings, each
 * half-configured storage refused with a message that says what is missing.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../dataplane/src/config/load.ts';
import { compileConfig, gatewayDefaults } from '../../dataplane/src/config/compile.ts';
import { withGatewayDefaults, type ServedRoute } from '../../dataplane/src/contract/policy.ts';
import { RateLimitPolicySchema, type Route } from '../../dataplane/src/contract/schema.ts';
import { rateLimitBucket, type BucketFacts } from '../../dataplane/src/pipeline/ratelimit.ts';

function problems(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  try {
    parseConfig(text, 'gw.yaml', env);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

const route = (key: ServedRoute['rateLimit'] extends infer R ? (R extends { key: infer K } ? K : never) : never, id = '/api/{id}'): ServedRoute =>
  withGatewayDefaults({ id, hosts: [], path: { type: 'Template', value: id }, methods: [], backends: [], auth: { required: false, roles: [], permissions: [] }, rateLimit: { limit: 5, windowMs: 60_000, key } } as Route, {});

const facts = (extra: Partial<BucketFacts> = {}): BucketFacts => ({ identity: undefined, clientIp: '203.0.113.7', headers: {}, ...extra });
const alice = { subject: 'alice', roles: [], permissions: [] };

/** Redis Cluster's slot rule: the text between the first "{" and the next "}", when not empty, else the whole key. */
function hashTag(key: string): string {
  const open = key.indexOf('{');
  const close = open < 0 ? -1 : key.indexOf('}', open + 1);
  return open >= 0 && close > open + 1 ? key.slice(open + 1, close) : key;
}

describe('rate-limit buckets', () => {
  it('User counts the verified caller, and the client address without one (the default)', () => {
    const r = route({ type: 'User' });
    expect(rateLimitBucket(r, facts({ identity: alice }))).toBe('%2Fapi%2F%7Bid%7D:60000:user:alice');
    expect(rateLimitBucket(r, facts())).toBe('%2Fapi%2F%7Bid%7D:60000:ip:203.0.113.7');
    expect(withGatewayDefaults({ ...r, rateLimit: { limit: 1 } } as Route, {}).rateLimit?.key).toEqual({ type: 'User' });
  });

  it('ClientIP counts the address even for a signed-in caller, IPv6 per /64', () => {
    const r = route({ type: 'ClientIP' });
    expect(rateLimitBucket(r, facts({ identity: alice }))).toBe('%2Fapi%2F%7Bid%7D:60000:ip:203.0.113.7');
    expect(rateLimitBucket(r, facts({ clientIp: '2001:db8:1:2:3:4:5:6' }))).toBe(rateLimitBucket(r, facts({ clientIp: '2001:db8:1:2::9' })));
  });

  it('Header counts the header value, hashed, whatever its case; without it, the client address', () => {
    const r = route({ type: 'Header', header: 'X-API-Key' });
    const one = rateLimitBucket(r, facts({ headers: { 'x-api-key': 'key-one' } }));
    expect(one).toMatch(/^%2Fapi%2F%7Bid%7D:60000:hdr:[A-Za-z0-9_-]{43}$/);
    expect(one).not.toContain('key-one');
    expect(rateLimitBucket(r, facts({ clientIp: '198.51.100.1', headers: { 'x-api-key': 'key-one' } }))).toBe(one);
    expect(rateLimitBucket(r, facts({ headers: { 'x-api-key': 'key-two' } }))).not.toBe(one);
    expect(rateLimitBucket(r, facts())).toBe('%2Fapi%2F%7Bid%7D:60000:ip:203.0.113.7');
    expect(rateLimitBucket(r, facts({ headers: { 'x-api-key': '' } }))).toBe('%2Fapi%2F%7Bid%7D:60000:ip:203.0.113.7');
  });

  it('Route counts everyone together', () => {
    const r = route({ type: 'Route' });
    expect(rateLimitBucket(r, facts({ identity: alice }))).toBe('%2Fapi%2F%7Bid%7D:60000:route');
    expect(rateLimitBucket(r, facts({ clientIp: undefined }))).toBe('%2Fapi%2F%7Bid%7D:60000:route');
  });

  it('is undefined when the route has no limit, or the bucket is an address that is not known', () => {
    expect(rateLimitBucket({ ...route({ type: 'Route' }), rateLimit: undefined } as unknown as ServedRoute, facts())).toBeUndefined();
    expect(rateLimitBucket(route({ type: 'ClientIP' }), facts({ clientIp: undefined }))).toBeUndefined();
  });

  it('holds no brace, so that the Redis store\'s hash tag around it is the whole bucket and every bucket has its own slot', () => {
    const r = route({ type: 'User' }, '/orders/{id}/items/{item}');
    const tricky = rateLimitBucket(r, facts({ identity: { ...alice, subject: 'a}b{c%7D' } })) as string;
    expect(tricky).not.toMatch(/[{}]/);
    expect(tricky).toContain('user:a%7Db%7Bc%257D');
    // The store writes prefix{bucket}: the slot is decided by the whole bucket, never by a prefix or a user-sent part.
    expect(hashTag(`switchyard:rl:{${tricky}}`)).toBe(tricky);
    // Distinct subjects stay distinct after escaping.
    expect(rateLimitBucket(r, facts({ identity: { ...alice, subject: 'a}' } }))).not.toBe(rateLimitBucket(r, facts({ identity: { ...alice, subject: 'a%7D' } })));
  });

  it('hashes a bucket that would be long', () => {
    const long = rateLimitBucket(route({ type: 'User' }), facts({ identity: { ...alice, subject: 'x'.repeat(300) } })) as string;
    expect(long).toMatch(/:sha256:[A-Za-z0-9_-]{43}$/);
  });
});

describe('rate-limit keys in the table and in gateway.yaml', () => {
  it('the table refuses a Header key without its header, and a header on another type', () => {
    expect(RateLimitPolicySchema.safeParse({ limit: 1, key: { type: 'Header' } }).success).toBe(false);
    expect(RateLimitPolicySchema.safeParse({ limit: 1, key: { type: 'Route', header: 'x' } }).success).toBe(false);
    expect(RateLimitPolicySchema.safeParse({ limit: 1, key: { type: 'Header', header: 'X-API-Key' } }).success).toBe(true);
  });

  it('a route takes a number, or { requests, window, key }; the gateway-wide key fills in', () => {
    const text = `
middleware:
  rate_limiting: { default_limit: 100, window: 1m, key: { type: ClientIP } }
routes:
  - { path: /a, upstream: u }
  - { path: /b, upstream: u, rate_limit: 7 }
  - { path: /c, upstream: u, rate_limit: { requests: 3, window: 10s, key: { type: Header, header: X-API-Key } } }
  - { path: /d, upstream: u, rate_limit: { requests: 2, key: { type: Route } } }
upstreams:
  u: { discovery: { type: Static, endpoints: ["http://127.0.0.1:1"] } }
`;
    const { config } = parseConfig(text, 'gw.yaml', {});
    const defaults = gatewayDefaults(config);
    const served = compileConfig(config, 'gw.yaml').table.routes.map((r) => withGatewayDefaults(r, defaults).rateLimit);
    expect(served).toEqual([
      { limit: 100, windowMs: 60_000, key: { type: 'ClientIP' } },
      { limit: 7, windowMs: 60_000, key: { type: 'ClientIP' } },
      { limit: 3, windowMs: 10_000, key: { type: 'Header', header: 'X-API-Key' } },
      { limit: 2, windowMs: 60_000, key: { type: 'Route' } },
    ]);
  });

  it.each([
    ['middleware:\n  rate_limiting: { key: { type: Header } }\n', 'gw.yaml:2: middleware.rate_limiting.key.header: type Header counts the value of a request header: name it (header: X-API-Key)'],
    ['middleware:\n  rate_limiting: { key: { type: User, header: X-API-Key } }\n', 'gw.yaml:2: middleware.rate_limiting.key.header: header is only read with type Header, not User'],
    ['middleware:\n  rate_limiting: { key: { type: Caller } }\n', 'gw.yaml:2: middleware.rate_limiting.key.type: expected one of User, ClientIP, Header, Route'],
    ['routes:\n  - { path: /a, upstream: u, rate_limit: { requests: 1, window: 500ms } }\n', "gw.yaml:2: routes[0].rate_limit.window: a route's rate-limit window is from 1s to 24h"],
  ])('refuses %j', (text, message) => {
    expect(problems(text)).toContain(message);
  });
});

describe('rate-limit storage settings', () => {
  const storage = (yaml: string): string => `middleware:\n  rate_limiting:\n    storage:\n${yaml.replace(/^/gm, '      ')}\n`;

  it('takes one Redis, a Sentinel group or a Redis Cluster', () => {
    const sentinel = parseConfig(storage('type: RedisSentinel\nsentinels: ["s-0:26379", "[2001:db8::1]:26379"]\nname: mymaster\npassword: ${REDIS_PASSWORD}\nsentinel_password_file: /run/secrets/sentinel\ntls: { ca_file: /etc/redis/ca.crt }'), 'gw.yaml', { REDIS_PASSWORD: 'from-the-environment' });
    expect(sentinel.config.middleware.rate_limiting?.storage).toMatchObject({ type: 'RedisSentinel', sentinels: ['s-0:26379', '[2001:db8::1]:26379'], name: 'mymaster', password: 'from-the-environment', tls: { ca_file: '/etc/redis/ca.crt', insecure_skip_verify: false } });
    const cluster = parseConfig(storage('type: RedisCluster\nnodes: ["r-0:6379", "r-1:6379"]\nusername: gateway\npassword_file: /run/secrets/redis'), 'gw.yaml', {});
    expect(cluster.config.middleware.rate_limiting?.storage).toMatchObject({ type: 'RedisCluster', nodes: ['r-0:6379', 'r-1:6379'], username: 'gateway', password_file: '/run/secrets/redis' });
    expect(problems(storage('type: Redis\nurl: rediss://redis:6380\ntls: { server_name: redis.internal }'))).toEqual([]);
  });

  it('lists of nodes come from the environment too', () => {
    const { config } = parseConfig(storage('type: RedisCluster\nnodes: ["placeholder:1"]'), 'gw.yaml', { GATEWAY_MIDDLEWARE_RATE_LIMITING_STORAGE_NODES: 'r-0:6379,r-1:6379' });
    expect(config.middleware.rate_limiting?.storage.nodes).toEqual(['r-0:6379', 'r-1:6379']);
  });

  it.each([
    ['a Redis without its URL', 'type: Redis', 'storage.url: a Redis URL (redis://host:6379) is needed when storage.type is Redis'],
    ['a Sentinel group without its name', 'type: RedisSentinel\nsentinels: ["s-0:26379"]', `storage.name: a Sentinel group needs its name, as in the sentinels' "sentinel monitor <name> ..."`],
    ['a Sentinel group without sentinels', 'type: RedisSentinel\nname: mymaster', 'storage.sentinels: a Sentinel group needs its sentinels (host:port, e.g. ["sentinel-0:26379", "sentinel-1:26379", "sentinel-2:26379"])'],
    ['a cluster without nodes', 'type: RedisCluster', 'storage.nodes: a Redis Cluster needs some of its nodes (host:port) to discover the rest from'],
    ['sentinels on a cluster', 'type: RedisCluster\nnodes: ["r-0:6379"]\nsentinels: ["s-0:26379"]', 'storage.sentinels: sentinels is only read with storage.type RedisSentinel, not RedisCluster'],
    ['a URL on a Sentinel group', 'type: RedisSentinel\nsentinels: ["s-0:26379"]\nname: m\nurl: redis://r:6379', 'storage.url: url is only read with storage.type Redis, not RedisSentinel'],
    ['a password for the memory store', 'type: Memory\npassword: x', 'storage.password: password is a Redis setting; storage.type is Memory'],
    ['two passwords', 'type: RedisCluster\nnodes: ["r-0:6379"]\npassword: x\npassword_file: /p', 'storage.password_file: set either password or password_file, not both'],
    ['a password in the URL and beside it', 'type: Redis\nurl: redis://:pw@r:6379\npassword_file: /p', 'storage.url: the URL holds a password and so does password or password_file: give it once'],
    ['TLS with a redis:// URL', 'type: Redis\nurl: redis://r:6379\ntls: {}', 'storage.url: tls is set, so the URL should say rediss://'],
    ['half a client certificate', 'type: RedisCluster\nnodes: ["r-0:6379"]\ntls: { cert_file: /c.pem }', 'storage.tls: a client certificate needs both tls.cert_file and tls.key_file'],
    ['a node without a port', 'type: RedisCluster\nnodes: ["r-0"]', 'storage.nodes[0]: expected host:port, e.g. redis-0.redis:6379'],
    ['braces in the prefix', 'type: Memory\nkey_prefix: "{rl}:"', 'storage.key_prefix: braces are Redis Cluster hash tags, which the gateway places itself: leave them out of the prefix'],
    ['an unknown type', 'type: Sentinel', 'storage.type: expected one of Memory, Redis, RedisSentinel, RedisCluster'],
  ])('refuses %s, saying what is missing', (_what, yaml, message) => {
    expect(problems(storage(yaml)).map((p) => p.replace(/^gw\.yaml:\d+: middleware\.rate_limiting\./, ''))).toContain(message);
  });

  it('warns about a password written in the file, which is often a ConfigMap, and not about one from the environment', () => {
    const literal = parseConfig(storage('type: RedisCluster\nnodes: ["r-0:6379"]\npassword: hunter2'), 'gw.yaml', {});
    expect(literal.warnings).toContainEqual(expect.stringContaining('middleware.rate_limiting.storage.password: written in the file'));
    expect(literal.warnings.join('\n')).not.toContain('hunter2');
    const inUrl = parseConfig(storage('type: Redis\nurl: redis://:hunter2@r:6379'), 'gw.yaml', {});
    expect(inUrl.warnings).toContainEqual(expect.stringContaining('middleware.rate_limiting.storage.url: written in the file'));
    const fromEnv = parseConfig(storage('type: RedisCluster\nnodes: ["r-0:6379"]\npassword: ${REDIS_PASSWORD}'), 'gw.yaml', { REDIS_PASSWORD: 'hunter2' });
    expect(fromEnv.warnings).toEqual([]);
    const override = parseConfig(storage('type: RedisCluster\nnodes: ["r-0:6379"]'), 'gw.yaml', { GATEWAY_MIDDLEWARE_RATE_LIMITING_STORAGE_PASSWORD: 'hunter2' });
    expect(override.warnings).toEqual([]);
  });
});
