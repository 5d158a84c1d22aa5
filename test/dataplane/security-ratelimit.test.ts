import { SignJWT } from 'jose';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { RedisRateLimitStore } from '../../dataplane/src/pipeline/ratelimit-store.ts';
import { slidingWindowHit, type WindowCounts } from '../../dataplane/src/pipeline/ratelimit.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';

const SECRET = 'rate-limit-test-secret-of-at-least-32-bytes';

type LogLine = { event?: string; msg: string };

function token(sub: string): Promise<string> {
  return new SignJWT({ sub, roles: ['user'] }).setProtectedHeader({ alg: 'HS256' }).setIssuer('auth-service').setExpirationTime('10m').sign(new TextEncoder().encode(SECRET));
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const res = await request(url, { headers });
  const body = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body };
}

const statuses = async (n: number, url: string, headers: Record<string, string> = {}): Promise<number[]> => {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await get(url, headers)).status);
  return out;
};

function routes(limit: number): Record<string, unknown>[] {
  return [
    { path: '/limited', upstream: 'u', rate_limit: limit },
    { path: '/me', upstream: 'u', auth_required: true, rate_limit: limit },
    { path: '/api/v1/admin/users', upstream: 'u' },
    { path: '/unlimited', upstream: 'u' },
  ];
}

describe('rate limiting in memory', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  beforeAll(async () => {
    up = await startUpstream(echo('u'));
    gw = await startGateway({
      routes: routes(3),
      upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
      auth: { jwt: { secret: SECRET, algorithm: 'HS256', issuer: 'auth-service' } },
      middleware: { rate_limiting: { route_limits: { '/api/v1/admin/*': 2 }, window: '1h', trusted_proxy_hops: 1, storage: { type: 'Memory' } } },
    });
  });
  afterAll(async () => {
    await gw.stop();
    await up.close();
  });
  afterEach(() => {
    up.seen.length = 0;
  });

  it('allows the limit, then answers 429 with Retry-After and RateLimit headers, and the upstream never sees the extra request', async () => {
    const xff = { 'x-forwarded-for': '198.51.100.10' };
    const seen: [number, string | string[] | undefined][] = [];
    for (let i = 0; i < 3; i++) {
      const r = await get(`${gw.url}/limited`, xff);
      seen.push([r.status, r.headers['ratelimit-remaining']]);
      expect(r.headers['ratelimit-limit']).toBe('3');
      expect(r.headers['ratelimit-policy']).toBe('3;w=3600');
      expect(Number(r.headers['ratelimit-reset'])).toBeGreaterThan(0);
    }
    expect(seen).toEqual([[200, '2'], [200, '1'], [200, '0']]);
    const refused = await get(`${gw.url}/limited`, xff);
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.body).error.code).toBe('rate_limited');
    const retry = Number(refused.headers['retry-after']);
    expect(retry).toBeGreaterThan(0);
    expect(retry).toBeLessThanOrEqual(2 * 3600);
    expect(refused.headers['ratelimit-remaining']).toBe('0');
    expect(refused.headers['ratelimit-reset']).toBe(String(retry));
    expect(up.seen).toHaveLength(3);
  });

  it('counts clients by the address the trusted proxy appended, not the one the client wrote', async () => {
    // trusted_proxy_hops: 1 — the last X-Forwarded-For entry is the client; anything left of it is the client's own claim.
    const a = await statuses(4, `${gw.url}/limited`, { 'x-forwarded-for': 'spoofed-1, 198.51.100.20' });
    const b = await statuses(1, `${gw.url}/limited`, { 'x-forwarded-for': '203.0.113.99, 198.51.100.20' });
    expect(a).toEqual([200, 200, 200, 429]);
    expect(b).toEqual([429]);
    expect(await statuses(1, `${gw.url}/limited`, { 'x-forwarded-for': '198.51.100.21' })).toEqual([200]);
  });

  it('counts an authenticated caller by user, whatever address they use', async () => {
    const alice = { authorization: `Bearer ${await token('alice')}` };
    const bob = { authorization: `Bearer ${await token('bob')}` };
    expect(await statuses(3, `${gw.url}/me`, { ...alice, 'x-forwarded-for': '192.0.2.1' })).toEqual([200, 200, 200]);
    expect(await statuses(1, `${gw.url}/me`, { ...alice, 'x-forwarded-for': '192.0.2.2' })).toEqual([429]);
    expect(await statuses(1, `${gw.url}/me`, { ...bob, 'x-forwarded-for': '192.0.2.1' })).toEqual([200]);
  });

  it('applies route_limits globs from the middleware section', async () => {
    expect(await statuses(3, `${gw.url}/api/v1/admin/users`, { 'x-forwarded-for': '198.51.100.30' })).toEqual([200, 200, 429]);
    const r = await get(`${gw.url}/unlimited`);
    expect(r.headers['ratelimit-limit']).toBeUndefined();
  });
});

describe('rate limiting in Redis', () => {
  let redis: TestRedis;
  let up: TestUpstream;
  const gateways: TestGateway[] = [];

  async function gateway(limit: number, policy: 'open' | 'closed' = 'open', prefix = 'test:', logs?: LogLine[]): Promise<TestGateway> {
    const g = await startGateway(
      {
        routes: routes(limit),
        upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
        auth: { jwt: { secret: SECRET, algorithm: 'HS256', issuer: 'auth-service' } },
        middleware: { rate_limiting: { window: '1h', storage: { type: 'Redis', url: redis.url, timeout: '50ms', failure_policy: policy, key_prefix: prefix } } },
      },
      logs ? { log: pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) }) } : {},
    );
    gateways.push(g);
    return g;
  }

  async function until(check: () => Promise<boolean>, ms = 5_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error('condition not reached');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  beforeAll(async () => {
    redis = await startRedis();
    up = await startUpstream(echo('u'));
  });
  afterEach(async () => {
    up.seen.length = 0;
    await Promise.all(gateways.splice(0).map((g) => g.stop()));
    redis.resume();
    if (!(await redis.command('PING').catch(() => ''))) await redis.restart();
    await redis.command('FLUSHALL');
  });
  afterAll(async () => {
    await redis.stop();
    await up.close();
  });

  it('decides exactly as the TypeScript arithmetic does (the Lua script mirrors it)', async () => {
    const store = new RedisRateLimitStore({ topology: { type: 'Redis', url: redis.url }, timeoutMs: 1_000, keyPrefix: 'mirror:' });
    try {
      expect(await store.waitReady(2_000)).toBe(true);
      const W = 10_000;
      const t0 = 1_000 * W;
      let state: WindowCounts | undefined;
      // Bursts, gaps and boundary crossings; Redis and TypeScript must agree on every field.
      const times = [0, 1, 2, 3, 4, 5, 9_999, 10_000, 10_001, 12_500, 12_501, 15_000, 17_000, 19_999, 25_000, 26_000, 26_001, 45_000];
      for (const dt of times) {
        const expected = slidingWindowHit(state, 4, W, t0 + dt);
        if (expected.next) state = expected.next;
        expect(await store.hit('k', 4, W, t0 + dt), `t0+${dt}`).toEqual(expected.decision);
      }
    } finally {
      await store.close();
    }
  });

  it('shares one limit between two gateways using the same Redis', async () => {
    const a = await gateway(5);
    const b = await gateway(5);
    const out: number[] = [];
    for (let i = 0; i < 8; i++) out.push((await get(`${(i % 2 === 0 ? a : b).url}/limited`)).status);
    expect(out).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    expect(up.seen).toHaveLength(5);
    const metrics = await (await request(a.metricsUrl)).body.text();
    expect(metrics).toMatch(/switchyard_ratelimit_decisions_total\{result="allowed",store="redis"\} 3/);
    expect(metrics).toMatch(/switchyard_ratelimit_decisions_total\{result="limited",store="redis"\} 1/);
  });

  it('keeps answering while Redis is dead (failure policy open), never with 500, continuing from the last shared counts, and hands them back to a Redis that restarts empty', async () => {
    const logs: { a: LogLine[]; b: LogLine[] } = { a: [], b: [] };
    const a = await gateway(3, 'open', 'test:', logs.a);
    const b = await gateway(3, 'open', 'test:', logs.b);
    expect(await statuses(2, `${a.url}/limited`)).toEqual([200, 200]);
    await redis.kill();
    // a saw this client's shared count (2) and continues from it; b never did, and counts from zero.
    // Every answer comes while Redis is still down: none waits for it to return.
    const fromA = [];
    for (let i = 0; i < 4; i++) fromA.push(await get(`${a.url}/limited`));
    const fromB = [];
    for (let i = 0; i < 4; i++) fromB.push(await get(`${b.url}/limited`));
    expect(fromA.map((r) => r.status)).toEqual([200, 429, 429, 429]);
    expect(fromB.map((r) => r.status)).toEqual([200, 200, 200, 429]);
    const metrics = await (await request(a.metricsUrl)).body.text();
    expect(metrics).toMatch(/switchyard_ratelimit_store_errors_total\{kind="unavailable"\} [1-9]/);
    expect(metrics).toMatch(/switchyard_ratelimit_decisions_total\{result="allowed",store="fallback"\} 1\n/);
    expect(metrics).toMatch(/switchyard_ratelimit_store_available\{type="Redis"\} 0/);

    await redis.restart();
    const redisDecisions = async (g: TestGateway): Promise<number> => {
      const text = await (await request(g.metricsUrl)).body.text();
      return [...text.matchAll(/switchyard_ratelimit_decisions_total\{result="\w+",store="redis"\} (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
    };
    // Redis came back empty; each gateway's first call hands it what that gateway counted, so the client stays limited.
    for (const g of [a, b]) {
      const before = await redisDecisions(g);
      await until(async () => (await get(`${g.url}/limited`)).status === 429 && (await redisDecisions(g)) > before);
    }
    expect(await redis.command('HGET test:{%2Flimited:3600000:ip:127.0.0.1} c')).toMatch(/^\$1\r\n3\r\n$/);
    // And limits are shared again: another caller, two requests through a, one through b, then none.
    const alice = { authorization: `Bearer ${await token('alice')}` };
    expect(await statuses(2, `${a.url}/me`, alice)).toEqual([200, 200]);
    expect(await statuses(2, `${b.url}/me`, alice)).toEqual([200, 429]);
    // One line and one metric update per change of state, not one per request.
    await until(async () => (await (await request(a.metricsUrl)).body.text()).includes('switchyard_ratelimit_store_available{type="Redis"} 1'));
    for (const lines of [logs.a, logs.b]) {
      expect(lines.filter((l) => l.event === 'ratelimit_store_unavailable')).toHaveLength(1);
    }
    expect(logs.a.filter((l) => l.event === 'ratelimit_store_recovered')).toHaveLength(1);
    const after = await (await request(a.metricsUrl)).body.text();
    expect(after).toMatch(/switchyard_ratelimit_store_transitions_total\{state="unavailable"\} 1\n/);
    expect(after).toMatch(/switchyard_ratelimit_store_transitions_total\{state="available"\} 1\n/);
  });

  it('answers 503 while Redis is down when the failure policy is closed, and the upstream sees nothing', async () => {
    const g = await gateway(3, 'closed');
    expect(await statuses(1, `${g.url}/limited`)).toEqual([200]);
    up.seen.length = 0;
    await redis.kill();
    const r = await get(`${g.url}/limited`);
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBe('1');
    expect(JSON.parse(r.body).error.code).toBe('route_unavailable');
    // Routes without a limit do not depend on Redis.
    expect((await get(`${g.url}/unlimited`)).status).toBe(200);
    expect(up.seen.map((s) => s.url)).toEqual(['/unlimited']);
  });

  it('bounds the wait on a Redis that accepts connections but never answers', async () => {
    const g = await gateway(100);
    expect((await get(`${g.url}/limited`)).status).toBe(200);
    redis.pause();
    const slow = [];
    for (let i = 0; i < 5; i++) slow.push(await get(`${g.url}/limited`));
    redis.resume();
    // All answered while Redis never answered. The first waited for the store's deadline; the
    // store is then skipped for a moment, so the rest did not ask it at all.
    expect(slow.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    const metrics = await (await request(g.metricsUrl)).body.text();
    expect(metrics).toMatch(/switchyard_ratelimit_store_errors_total\{kind="timeout"\} 1\n/);
    expect(metrics).toMatch(/switchyard_ratelimit_decisions_total\{result="allowed",store="fallback"\} 5\n/);
  });

  it('starts, and fails open, when Redis is not reachable at start', async () => {
    await redis.kill();
    // It starts while Redis stays down: a start that waited for Redis would never end here.
    const g = await gateway(2);
    expect(await statuses(3, `${g.url}/limited`)).toEqual([200, 200, 429]);
  });
});
