/**
 * Rate-limit settings against real Redis: who each key type counts, and the
 * ways to reach Redis: a password from the environment or from a file, an
 * ACL user, TLS with a CA file and a client certificate, for one server, a
 * Sentinel group (whose sentinels have a password of their own) and a Redis
 * Cluster. Two gateways share each store, so a limit that holds across them
 * proves the store is in use; a wrong password proves the password is.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import pino from 'pino';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { makeTestTls, redisCall, startRedisCluster, startRedisNode, startSentinelGroup, type TestTls } from '../support/redis-ha.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';

const SECRET = 'rate-limit-keys-secret-of-at-least-32-bytes';
const token = (sub: string): Promise<string> => new SignJWT({ sub }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('10m').sign(new TextEncoder().encode(SECRET));

type LogLine = { event?: string; reason?: string; msg: string };

let up: TestUpstream;
let dir: string;
let tls: TestTls;

beforeAll(async () => {
  up = await startUpstream(echo('u'));
  dir = mkdtempSync(path.join(tmpdir(), 'switchyard-rl-redis-'));
  tls = makeTestTls(dir);
});
afterAll(async () => {
  await up.close();
  rmSync(dir, { recursive: true, force: true });
});

async function statuses(n: number, url: string, headers: Record<string, string> = {}): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const res = await request(url, { headers });
    await res.body.dump();
    out.push(res.statusCode);
  }
  return out;
}

async function metric(g: TestGateway, pattern: RegExp): Promise<number> {
  const text = await (await request(g.metricsUrl)).body.text();
  return [...text.matchAll(pattern)].reduce((n, m) => n + Number(m[1]), 0);
}

const REDIS_DECISIONS = /switchyard_ratelimit_decisions_total\{result="\w+",store="redis"\} (\d+)/g;
const FALLBACK_DECISIONS = /switchyard_ratelimit_decisions_total\{result="\w+",store="fallback"\} (\d+)/g;

/** Two gateways on one store, alternating: 3 allowed in all, then 429, and every decision made by Redis. */
async function expectShared(storage: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Promise<void> {
  const gateways: TestGateway[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      gateways.push(
        await startGateway(
          {
            routes: [
              { path: '/limited', upstream: 'u', rate_limit: 3 },
              { path: '/probe', upstream: 'u', rate_limit: 1_000_000 },
            ],
            upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
            middleware: { rate_limiting: { window: '1h', storage: { timeout: '500ms', ...storage } } },
          },
          { env },
        ),
      );
    }
    // Connecting (TLS to every node, the cluster's slots) can outlast the second a gateway waits at start on a busy machine.
    for (const g of gateways) {
      const deadline = Date.now() + 20_000;
      for (;;) {
        await statuses(1, `${g.url}/probe`);
        if ((await metric(g, REDIS_DECISIONS)) > 0) break;
        if (Date.now() > deadline) throw new Error('the gateway never reached the store');
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const before = await Promise.all(gateways.map(async (g) => [await metric(g, REDIS_DECISIONS), await metric(g, FALLBACK_DECISIONS)]));
    const out: number[] = [];
    for (let i = 0; i < 6; i++) out.push(...(await statuses(1, `${(gateways[i % 2] as TestGateway).url}/limited`)));
    expect(out).toEqual([200, 200, 200, 429, 429, 429]);
    for (const [i, g] of gateways.entries()) {
      const [redis, fallback] = before[i] as number[];
      expect((await metric(g, REDIS_DECISIONS)) - (redis as number)).toBe(3);
      expect((await metric(g, FALLBACK_DECISIONS)) - (fallback as number)).toBe(0);
    }
  } finally {
    await Promise.all(gateways.map((g) => g.stop()));
  }
}

describe('who a limit counts (key types), on a real Redis', () => {
  let redis: Awaited<ReturnType<typeof startRedisNode>>;
  let gw: TestGateway;
  beforeAll(async () => {
    redis = await startRedisNode();
    gw = await startGateway({
      server: { trusted_proxies: { hops: 1 } },
      routes: [
        { path: '/ip', upstream: 'u', auth_required: true, rate_limit: { requests: 2, key: { type: 'ClientIP' } } },
        { path: '/user', upstream: 'u', auth_required: true, rate_limit: 2 },
        { path: '/api-key', upstream: 'u', rate_limit: { requests: 2, key: { type: 'Header', header: 'X-API-Key' } } },
        { path: '/route', upstream: 'u', rate_limit: { requests: 3, key: { type: 'Route' } } },
      ],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
      auth: { jwt: { secret: SECRET, algorithm: 'HS256' } },
      middleware: { rate_limiting: { window: '1h', storage: { type: 'Redis', url: `redis://127.0.0.1:${redis.port}`, key_prefix: 'keys:' } } },
    });
  });
  afterAll(async () => {
    await gw.stop();
    await redis.stop();
  });
  const from = (ip: string, extra: Record<string, string> = {}): Record<string, string> => ({ 'x-forwarded-for': ip, ...extra });

  it('ClientIP: one budget per address, whoever signs in from it', async () => {
    const alice = { authorization: `Bearer ${await token('alice')}` };
    const bob = { authorization: `Bearer ${await token('bob')}` };
    expect(await statuses(2, `${gw.url}/ip`, from('192.0.2.1', alice))).toEqual([200, 200]);
    expect(await statuses(1, `${gw.url}/ip`, from('192.0.2.1', bob))).toEqual([429]);
    expect(await statuses(1, `${gw.url}/ip`, from('192.0.2.2', alice))).toEqual([200]);
  });

  it('User (the default): one budget per caller, from whatever address', async () => {
    const carol = { authorization: `Bearer ${await token('carol')}` };
    const dave = { authorization: `Bearer ${await token('dave')}` };
    expect(await statuses(1, `${gw.url}/user`, from('192.0.2.10', carol))).toEqual([200]);
    expect(await statuses(2, `${gw.url}/user`, from('192.0.2.11', carol))).toEqual([200, 429]);
    expect(await statuses(1, `${gw.url}/user`, from('192.0.2.10', dave))).toEqual([200]);
  });

  it('Header: one budget per API key, whatever the address; without the header, per address; the key never stored in clear', async () => {
    expect(await statuses(1, `${gw.url}/api-key`, from('192.0.2.20', { 'x-api-key': 'k-one' }))).toEqual([200]);
    expect(await statuses(2, `${gw.url}/api-key`, from('192.0.2.21', { 'x-api-key': 'k-one' }))).toEqual([200, 429]);
    expect(await statuses(1, `${gw.url}/api-key`, from('192.0.2.20', { 'X-Api-Key': 'k-two' }))).toEqual([200]);
    expect(await statuses(3, `${gw.url}/api-key`, from('192.0.2.22'))).toEqual([200, 200, 429]);
    const keys = String(await redisCall(redis.port, ['KEYS', 'keys:*%2Fapi-key*']));
    expect(keys).toMatch(/hdr:/);
    expect(keys).not.toContain('k-one');
  });

  it('Route: one budget for everyone', async () => {
    expect(await statuses(1, `${gw.url}/route`, from('192.0.2.30'))).toEqual([200]);
    expect(await statuses(1, `${gw.url}/route`, from('192.0.2.31', { 'x-api-key': 'k-one' }))).toEqual([200]);
    expect(await statuses(2, `${gw.url}/route`, from('192.0.2.32'))).toEqual([200, 429]);
  });
});

describe('reaching Redis: passwords, ACL users, TLS', () => {
  it('one Redis: an ACL user, its password from the environment, TLS with a CA file and a client certificate', async () => {
    const redis = await startRedisNode({ username: 'gateway', password: 'env-password', tls });
    try {
      const storage = { type: 'Redis', url: `rediss://127.0.0.1:${redis.port}`, username: 'gateway', password: '${REDIS_PASSWORD}', tls: { ca_file: tls.caFile, cert_file: tls.certFile, key_file: tls.keyFile } };
      await expectShared(storage, { REDIS_PASSWORD: 'env-password' });

      // The password is really used: a wrong one leaves the gateway on its own, and says so once.
      const lines: LogLine[] = [];
      const wrong = await startGateway(
        {
          routes: [{ path: '/limited', upstream: 'u', rate_limit: 3 }],
          upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
          middleware: { rate_limiting: { window: '1h', storage: { ...storage, password: 'not-the-password' } } },
        },
        { log: pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) }) },
      );
      try {
        expect(await statuses(4, `${wrong.url}/limited`)).toEqual([200, 200, 200, 429]);
        expect(await metric(wrong, FALLBACK_DECISIONS)).toBe(4);
        expect(lines.filter((l) => l.event === 'ratelimit_store_unavailable')).toHaveLength(1);
        expect(JSON.stringify(lines)).not.toContain('not-the-password');
      } finally {
        await wrong.stop();
      }
    } finally {
      await redis.stop();
    }
  });

  it('a Sentinel group over TLS: the nodes\' password from a file, the sentinels\' own from the environment', async () => {
    const group = await startSentinelGroup({ password: 'node-password', sentinelPassword: 'sentinel-password', tls });
    try {
      const passwordFile = path.join(dir, 'node-password');
      writeFileSync(passwordFile, 'node-password\n');
      await expectShared(
        { type: 'RedisSentinel', sentinels: group.sentinels, name: group.name, password_file: passwordFile, sentinel_password: '${SENTINEL_PASSWORD}', tls: { ca_file: tls.caFile } },
        { SENTINEL_PASSWORD: 'sentinel-password' },
      );
    } finally {
      await group.stop();
    }
  }, 60_000);

  it('a Redis Cluster over TLS: an ACL user, its password from a file', async () => {
    const cluster = await startRedisCluster({ username: 'gateway', password: 'cluster-password', tls });
    try {
      const passwordFile = path.join(dir, 'cluster-password');
      writeFileSync(passwordFile, 'cluster-password');
      await expectShared({ type: 'RedisCluster', nodes: cluster.seeds.slice(0, 2), username: 'gateway', password_file: passwordFile, tls: { ca_file: tls.caFile, server_name: 'localhost' } });
    } finally {
      await cluster.stop();
    }
  }, 60_000);

  it('refuses to start when a password file cannot be read, naming the setting', async () => {
    await expect(
      startGateway({
        routes: [{ path: '/limited', upstream: 'u', rate_limit: 3 }],
        upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
        middleware: { rate_limiting: { storage: { type: 'RedisCluster', nodes: ['127.0.0.1:1'], password_file: path.join(dir, 'missing') } } },
      }),
    ).rejects.toThrow(/middleware\.rate_limiting\.storage\.password_file: cannot read .*missing/);
  });
});
