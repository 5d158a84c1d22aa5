/** Tokens verified with keys from a JWKS endpoint on 127.0.0.1: caching, rotation, floods of unknown kids, outages. */
import { createSign, generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { base64url, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';

interface KeyPair {
  kid: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function keyPair(kid: string): Promise<KeyPair> {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' } };
}

function sign(key: KeyPair, sub: string, kid = key.kid): Promise<string> {
  return new SignJWT({ sub, roles: ['user'] }).setProtectedHeader({ alg: 'RS256', kid }).setIssuer('idp').setExpirationTime('10m').sign(key.privateKey);
}

/** A JWKS endpoint whose keys and health the test controls. */
class JwksServer {
  keys: JWK[] = [];
  hits = 0;
  failing = false;
  /** Requests are taken and never answered (until release()), as by an endpoint that hangs. */
  hanging = false;
  private readonly held: http.ServerResponse[] = [];
  readonly server = http.createServer((req, res) => {
    this.hits++;
    if (this.hanging) {
      this.held.push(res);
      return;
    }
    if (this.failing) {
      res.writeHead(503).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: this.keys }));
  });
  port = 0;
  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }
  release(): void {
    this.hanging = false;
    for (const res of this.held.splice(0)) res.writeHead(503).end();
  }
  get url(): string {
    return `http://127.0.0.1:${this.port}/.well-known/jwks.json`;
  }
  close(): Promise<void> {
    return new Promise((r) => {
      this.server.closeAllConnections();
      this.server.close(() => r());
    });
  }
}

describe('JWKS', () => {
  let up: TestUpstream;
  let jwks: JwksServer;
  let k1: KeyPair;
  let k2: KeyPair;
  let stranger: KeyPair;
  const gateways: TestGateway[] = [];

  async function gateway(extra: Record<string, unknown> = {}): Promise<TestGateway> {
    const g = await startGateway({
      routes: [{ path: '/me', upstream: 'u', auth_required: true }],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
      auth: { jwt: { jwks_url: jwks.url, algorithm: 'RS256', issuer: 'idp', jwks_cooldown: '1s', ...extra } },
    });
    gateways.push(g);
    return g;
  }
  const call = async (g: TestGateway, token: string): Promise<{ status: number; body: { error?: { code: string; message: string } }; headers: Record<string, string | string[] | undefined> }> => {
    const res = await request(`${g.url}/me`, { headers: { authorization: `Bearer ${token}` } });
    const text = await res.body.text();
    return { status: res.statusCode, body: text.startsWith('{') ? JSON.parse(text) : {}, headers: res.headers };
  };

  beforeAll(async () => {
    up = await startUpstream(echo('u'));
    jwks = await new JwksServer().start();
    [k1, k2, stranger] = await Promise.all([keyPair('k1'), keyPair('k2'), keyPair('k-stranger')]);
  });
  afterEach(async () => {
    await Promise.all(gateways.splice(0).map((g) => g.stop()));
    up.seen.length = 0;
    jwks.failing = false;
    jwks.release();
    jwks.keys = [];
    jwks.hits = 0;
  });
  afterAll(async () => {
    await jwks.close();
    await up.close();
  });

  it('verifies tokens with the fetched keys, fetching once at start', async () => {
    jwks.keys = [k1.jwk];
    const g = await gateway();
    expect(jwks.hits).toBe(1);
    for (let i = 0; i < 5; i++) expect((await call(g, await sign(k1, `user-${i}`))).status).toBe(200);
    expect(jwks.hits).toBe(1);
    expect(up.seen.map((s) => s.headers['x-user-id'])).toEqual(['user-0', 'user-1', 'user-2', 'user-3', 'user-4']);
  });

  it('a flood of unknown kids refetches at most once per cooldown, and every such token is refused', async () => {
    jwks.keys = [k1.jwk];
    const g = await gateway();
    const tokens = await Promise.all(Array.from({ length: 60 }, (_, i) => sign(stranger, 'attacker', `random-${i}`)));
    const results = await Promise.all(tokens.map((t) => call(g, t)));
    expect(new Set(results.map((r) => r.status))).toEqual(new Set([401]));
    expect(results[0]?.body.error?.message).toBe('no known key matches the token');
    expect(jwks.hits).toBeLessThanOrEqual(2);
    expect(up.seen).toHaveLength(0);
    // A token signed by a stranger with a known kid fails on the signature.
    expect((await call(g, await sign(stranger, 'attacker', 'k1'))).body.error?.message).toBe('the token signature is invalid');
  });

  it('picks up a rotated key once the cooldown has passed', async () => {
    jwks.keys = [k1.jwk];
    const g = await gateway();
    jwks.keys = [k1.jwk, k2.jwk];
    const early = await call(g, await sign(k2, 'rotated'));
    // Within the cooldown of the start-up fetch, an unknown kid is not refetched.
    expect(early.status).toBe(401);
    expect(jwks.hits).toBe(1);
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await call(g, await sign(k2, 'rotated'))).status).toBe(200);
    expect(jwks.hits).toBe(2);
    expect(up.seen[0]?.headers['x-user-id']).toBe('rotated');
  });

  it('keeps verifying with the keys it has while the JWKS endpoint fails or hangs', async () => {
    jwks.keys = [k1.jwk];
    const g = await gateway({ jwks_max_age: '200ms' });
    jwks.failing = true;
    await new Promise((r) => setTimeout(r, 300));
    for (let i = 0; i < 3; i++) expect((await call(g, await sign(k1, `during-outage-${i}`))).status).toBe(200);
    expect(jwks.hits).toBeGreaterThanOrEqual(2);
    // A refresh that never gets an answer holds no request: each is verified with the keys at hand.
    jwks.failing = false;
    jwks.hanging = true;
    const before = jwks.hits;
    // Past the keys' max age and the refetch cooldown (1 s), so that the next request asks for a refresh.
    await new Promise((r) => setTimeout(r, 1_100));
    for (let i = 0; i < 3; i++) expect((await call(g, await sign(k1, `during-hang-${i}`))).status).toBe(200);
    expect(jwks.hits).toBeGreaterThan(before);
    expect(up.seen.map((s) => s.headers['x-user-id'])).toEqual(['during-outage-0', 'during-outage-1', 'during-outage-2', 'during-hang-0', 'during-hang-1', 'during-hang-2']);
  });

  it('answers 503 while it has never had keys, without hammering the endpoint, and recovers', async () => {
    jwks.failing = true;
    const g = await gateway();
    const token = await sign(k1, 'early');
    const results = await Promise.all(Array.from({ length: 20 }, () => call(g, token)));
    expect(new Set(results.map((r) => r.status))).toEqual(new Set([503]));
    expect(results[0]?.body.error?.code).toBe('route_unavailable');
    expect(results[0]?.headers['retry-after']).toBe('5');
    expect(jwks.hits).toBeLessThanOrEqual(3);
    expect(up.seen).toHaveLength(0);
    jwks.failing = false;
    jwks.keys = [k1.jwk];
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await call(g, token)).status).toBe(200);
  });

  it('skips RSA keys under 2048 bits in the set, logging each once, and keeps the others', async () => {
    const weak = generateKeyPairSync('rsa', { modulusLength: 1024 });
    jwks.keys = [{ ...(weak.publicKey.export({ format: 'jwk' }) as JWK), kid: 'weak', alg: 'RS256', use: 'sig' }, k1.jwk];
    const lines: { event?: string; kid?: string; bits?: number }[] = [];
    const g = await startGateway(
      {
        routes: [{ path: '/me', upstream: 'u', auth_required: true }],
        upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
        auth: { jwt: { jwks_url: jwks.url, algorithm: 'RS256', issuer: 'idp', jwks_cooldown: '1s' } },
      },
      { log: pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) }) },
    );
    gateways.push(g);
    // jose signs with 2048 bits or more only; the weak token is made by hand.
    const input = `${base64url.encode(JSON.stringify({ alg: 'RS256', kid: 'weak' }))}.${base64url.encode(JSON.stringify({ sub: 'weak-key-user', iss: 'idp', exp: Math.floor(Date.now() / 1000) + 600 }))}`;
    const weakToken = `${input}.${createSign('RSA-SHA256').update(input).sign(weak.privateKey).toString('base64url')}`;
    const refused = await call(g, weakToken);
    expect(refused.status).toBe(401);
    expect(refused.body.error?.message).toBe('no known key matches the token');
    expect((await call(g, await sign(k1, 'strong-key-user'))).status).toBe(200);
    // After the cooldown the unknown kid fetches the set again: the key is skipped again, but not logged again.
    await new Promise((r) => setTimeout(r, 1_100));
    expect((await call(g, weakToken)).status).toBe(401);
    expect(jwks.hits).toBe(2);
    await new Promise((r) => setTimeout(r, 50));
    expect(lines.filter((l) => l.event === 'jwks_key_skipped').map((l) => [l.kid, l.bits])).toEqual([['weak', 1024]]);
    expect(up.seen.map((s) => s.headers['x-user-id'])).toEqual(['strong-key-user']);
  });

  it('refuses a JWKS key used with an algorithm that is not configured', async () => {
    jwks.keys = [k1.jwk];
    const g = await gateway();
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const ps = await new SignJWT({ sub: 'x' }).setProtectedHeader({ alg: 'PS256', kid: 'k1' }).setIssuer('idp').setExpirationTime('5m').sign(rsa);
    const r = await call(g, ps);
    expect(r.status).toBe(401);
    expect(r.body.error?.message).toBe('the token is signed with an algorithm that is not accepted');
    expect(up.seen).toHaveLength(0);
  });
});
