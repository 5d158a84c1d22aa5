/**
 * The gateway's security rules against real upstreams on 127.0.0.1: every
 * refusal asserts the exact status and that the upstream never saw the
 * refused request.
 */
import net from 'node:net';
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT, type JWTPayload } from 'jose';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { codeOf, rawRequest as raw, statusOf } from '../support/raw.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';

const SECRET = 'gateway-security-test-secret-32-bytes-plus';
const ISSUER = 'auth-service';
const AUDIENCE = 'api-gateway';

async function sign(claims: JWTPayload, options: { secret?: string | Uint8Array; alg?: string; exp?: number | null } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: 'user-42', iat: now, roles: ['user'], permissions: ['users:read'], ...claims }).setProtectedHeader({ alg: options.alg ?? 'HS256', typ: 'JWT' });
  if (options.exp !== null) jwt.setExpirationTime(options.exp ?? now + 600);
  const secret = options.secret ?? SECRET;
  return jwt.sign(typeof secret === 'string' ? new TextEncoder().encode(secret) : secret);
}

describe('authentication and authorization', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  const get = async (path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; json: { error?: { code: string; message: string } } }> => {
    const res = await request(`${gw.url}${path}`, { headers });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, json: text.startsWith('{') ? JSON.parse(text) : {} };
  };
  const bearer = async (claims: JWTPayload = {}, options: Parameters<typeof sign>[1] = {}): Promise<Record<string, string>> => ({ authorization: `Bearer ${await sign(claims, options)}` });

  beforeAll(async () => {
    up = await startUpstream(echo('users'));
    gw = await startGateway({
      routes: [
        { path: '/public', upstream: 'u' },
        { path: '/private', upstream: 'u', auth_required: true },
        { path: '/admin', upstream: 'u', auth_required: true, required_roles: ['admin'] },
        { path: '/write', upstream: 'u', auth_required: true, required_permissions: ['users:read', 'users:write'] },
        { path: '/internal', upstream: 'u', auth_required: true, required_roles: ['service'] },
        { path: '/implied', upstream: 'u', required_roles: ['admin'] },
      ],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
      auth: { jwt: { secret: SECRET, algorithm: 'HS256', issuer: ISSUER, audience: AUDIENCE, leeway: '60s', cookie: 'session', header: 'X-Auth-Token' } },
    });
  });
  afterAll(async () => {
    await gw.stop();
    await up.close();
  });
  afterEach(() => {
    up.seen.length = 0;
  });

  it('lets a valid token through and tells the upstream who the caller is', async () => {
    const r = await get('/private', await bearer({ roles: ['user', 'editor'], permissions: 'users:read users:write' }));
    expect(r.status).toBe(200);
    const h = up.seen[0]?.headers ?? {};
    expect(h['x-user-id']).toBe('user-42');
    expect(h['x-user-roles']).toBe('user,editor');
    expect(h['x-user-permissions']).toBe('users:read,users:write');
  });

  it('reads the token from the configured cookie and header too', async () => {
    const token = await sign({ sub: 'cookie-user' });
    expect((await get('/private', { cookie: `theme=dark; session=${token}` })).status).toBe(200);
    expect((await get('/private', { 'x-auth-token': await sign({ sub: 'header-user' }) })).status).toBe(200);
    expect(up.seen.map((s) => s.headers['x-user-id'])).toEqual(['cookie-user', 'header-user']);
  });

  it.each([
    ['no token', async () => ({}), undefined, 'Bearer'],
    ['a Basic credential', async () => ({ authorization: 'Basic YWRtaW46YWRtaW4=' }), undefined, 'Bearer'],
    ['an expired token', async () => bearer({}, { exp: Math.floor(Date.now() / 1000) - 3600 }), 'the token has expired', undefined],
    ['a token not valid yet', async () => bearer({ nbf: Math.floor(Date.now() / 1000) + 3600 }), 'the token is not valid yet', undefined],
    ['a token without exp', async () => bearer({}, { exp: null }), 'the token has no expiry (exp)', undefined],
    ['a forged signature', async () => bearer({ roles: ['admin'] }, { secret: 'guessed-secret-guessed-secret-guessed' }), 'the token signature is invalid', undefined],
    ['another issuer', async () => bearer({ iss: 'evil' }), 'the token was not issued by an accepted issuer', undefined],
    ['another audience', async () => bearer({ aud: 'other-api' }), 'the token is not meant for this audience', undefined],
    ['an HS512 token (algorithm not configured)', async () => bearer({}, { alg: 'HS512' }), 'the token is signed with an algorithm that is not accepted', undefined],
    ['garbage', async () => ({ authorization: 'Bearer abc.def.ghi' }), 'the token is malformed', undefined],
  ])('refuses %s with 401 and a Bearer challenge', async (_what, headers, description, exact) => {
    const r = await get('/private', await headers());
    expect(r.status).toBe(401);
    expect(r.json.error?.code).toBe('unauthorized');
    const challenge = r.headers['www-authenticate'];
    if (exact) expect(challenge).toBe(exact);
    else expect(challenge).toBe(`Bearer error="invalid_token", error_description="${description as string}"`);
    expect(up.seen).toHaveLength(0);
  });

  it('refuses key confusion: an HS256 token keyed with an RSA public key', async () => {
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const r = await get('/admin', await bearer({ roles: ['admin'] }, { secret: pem }));
    expect(r.status).toBe(401);
    expect(up.seen).toHaveLength(0);
  });

  it('answers 403 when the token is valid but the roles or permissions are not enough', async () => {
    const user = await bearer({ roles: ['user'], permissions: ['users:read'] });
    const admin = await get('/admin', user);
    expect(admin.status).toBe(403);
    expect(admin.json.error?.code).toBe('forbidden');
    expect(admin.headers['www-authenticate']).toMatch(/^Bearer error="insufficient_scope"/);
    const write = await get('/write', user);
    expect(write.status).toBe(403);
    expect(write.json.error?.message).toContain('users:write');
    expect(up.seen).toHaveLength(0);

    expect((await get('/admin', await bearer({ roles: 'user admin' }))).status).toBe(200);
    expect((await get('/write', await bearer({ permissions: 'users:read,users:write' }))).status).toBe(200);
  });

  it('treats a route that names roles as requiring authentication', async () => {
    expect((await get('/implied')).status).toBe(401);
    expect(up.seen).toHaveLength(0);
  });

  it('serves service-account tokens like any other', async () => {
    const service = await bearer({ sub: 'user-service', roles: ['service'], permissions: ['users:read', 'users:write'] });
    expect((await get('/internal', service)).status).toBe(200);
    expect(up.seen[0]?.headers['x-user-id']).toBe('user-service');
    expect((await get('/admin', service)).status).toBe(403);
    expect((await get('/internal', await bearer())).status).toBe(403);
    expect(up.seen).toHaveLength(1);
  });

  it.each([
    ['CR LF in the subject', { sub: 'alice\r\nX-User-Roles: admin' }],
    ['a non-ASCII subject', { sub: 'jos\u00e9' }],
    ['a role with a comma', { roles: ['user,admin'] }],
    ['a permission with a newline', { permissions: ['users:read\nadmin'] }],
  ])('refuses with 400 an identity that cannot be forwarded safely: %s', async (_what, claims) => {
    const r = await get('/private', await bearer(claims));
    expect(r.status).toBe(400);
    expect(r.json.error?.code).toBe('bad_request');
    expect(up.seen).toHaveLength(0);
  });

  // Client X-User-* headers in any spelling, and a Connection header naming the gateway's own: test/dataplane/advisories.test.ts (GHSA-62c8-mh53-4cqv).

  it('on public routes drops client X-User-* headers and does not look at tokens', async () => {
    const token = await sign({ sub: 'someone' });
    const text = await raw(gw.gw.ports.http, `GET /public HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nX-User-Id: admin\r\nx-user-roles: admin\r\nConnection: close\r\n\r\n`);
    expect(statusOf(text)).toBe(200);
    const h = up.seen[0]?.headers ?? {};
    expect(Object.keys(h).filter((k) => k.startsWith('x-user-'))).toEqual([]);
    // The Authorization header itself passes through for the upstream's own use.
    expect(h.authorization).toBe(`Bearer ${token}`);
    const invalid = await get('/public', { authorization: 'Bearer not-a-token' });
    expect(invalid.status).toBe(200);
  });
});

describe('header names with underscores (server.headers_with_underscores)', () => {
  let up: TestUpstream;
  afterEach(() => {
    up.seen.length = 0;
  });
  beforeAll(async () => {
    up = await startUpstream(echo('app'));
  });
  afterAll(async () => {
    await up.close();
  });
  const config = (server: Record<string, unknown> = {}): Record<string, unknown> => ({
    server,
    routes: [{ path: '/app', path_type: 'Prefix', upstream: 'u' }],
    upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
    auth: { jwt: { secret: SECRET, algorithm: 'HS256', header: 'X-Auth-Token' } },
  });
  const request_ = 'GET /app HTTP/1.1\r\nHost: x\r\nX_Custom: kept\r\nX_User_ID: admin\r\nX_Forwarded_For: 10.9.9.9\r\nX_Real_IP: 10.9.9.9\r\nX_Auth_Token: forged\r\nAuthori_zation: x\r\nConnection: close\r\n\r\n';

  it('drops them by default', async () => {
    const gw = await startGateway(config());
    try {
      expect(statusOf(await raw(gw.gw.ports.http, request_))).toBe(200);
      expect((up.seen[0]?.rawHeaders ?? []).filter((h, i) => i % 2 === 0 && h.includes('_'))).toEqual([]);
    } finally {
      await gw.stop();
    }
  });

  it('reject (here from GATEWAY_SERVER_HEADERS_WITH_UNDERSCORES): 400 naming the header, before routing', async () => {
    const gw = await startGateway(config(), { env: { GATEWAY_SERVER_HEADERS_WITH_UNDERSCORES: 'reject' } });
    try {
      const text = await raw(gw.gw.ports.http, 'GET /app HTTP/1.1\r\nHost: x\r\nX_Custom: 1\r\nConnection: close\r\n\r\n');
      expect(statusOf(text)).toBe(400);
      expect(codeOf(text)).toBe('bad_request');
      expect(text).toContain('header \\"X_Custom\\" contains \\"_\\"');
      // Unrouted paths too: the rule does not depend on the route.
      expect(statusOf(await raw(gw.gw.ports.http, 'GET /nowhere HTTP/1.1\r\nHost: x\r\nA_B: 1\r\nConnection: close\r\n\r\n'))).toBe(400);
      expect(statusOf(await raw(gw.gw.ports.http, 'GET /app HTTP/1.1\r\nHost: x\r\nX-Custom: 1\r\nConnection: close\r\n\r\n'))).toBe(200);
      expect(up.seen).toHaveLength(1);
    } finally {
      await gw.stop();
    }
  });

  it('allow: forwards them, except look-alikes of identity, forwarding and credential headers', async () => {
    const gw = await startGateway(config({ headers_with_underscores: 'allow' }));
    try {
      expect(statusOf(await raw(gw.gw.ports.http, request_))).toBe(200);
      const rawHeaders = up.seen[0]?.rawHeaders ?? [];
      expect(rawHeaders.filter((h, i) => i % 2 === 0 && h.includes('_'))).toEqual(['X_Custom', 'Authori_zation']);
      expect(up.seen[0]?.headers['x-forwarded-for']).toBe('127.0.0.1');
    } finally {
      await gw.stop();
    }
  });
});

describe('client address (server.trusted_proxies)', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  const lines: { event?: string; client?: string; status?: number; path?: string }[] = [];
  beforeAll(async () => {
    up = await startUpstream(echo('app'));
  });
  afterAll(async () => {
    await up.close();
  });
  afterEach(async () => {
    await gw.stop();
    up.seen.length = 0;
    lines.length = 0;
  });
  const start = async (trusted: Record<string, unknown>): Promise<void> => {
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as (typeof lines)[number]) });
    gw = await startGateway(
      {
        server: { trusted_proxies: trusted },
        routes: [{ path: '/limited', upstream: 'u', rate_limit: 1 }],
        upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
        middleware: { rate_limiting: { window: '1h' } },
      },
      { log },
    );
  };
  const send = (xff: string, extra = ''): Promise<string> => raw(gw.gw.ports.http, `GET /limited HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: ${xff}\r\nX-Real-IP: 198.51.100.66\r\nForwarded: for=198.51.100.66\r\n${extra}Connection: close\r\n\r\n`);
  const forwarding = (i: number): Record<string, string | string[] | undefined> => {
    const h = up.seen[i]?.headers ?? {};
    return { xff: h['x-forwarded-for'], real: h['x-real-ip'], forwarded: h.forwarded };
  };
  const accessClients = (): [string | undefined, number | undefined][] => lines.filter((l) => l.event === 'access').map((l) => [l.client, l.status]);

  it('believes X-Forwarded-For from a peer in cidrs: one client address for the upstream, the rate limit and the access log', async () => {
    await start({ cidrs: ['127.0.0.1/32', '10.0.0.0/8'] });
    expect(statusOf(await send('198.51.100.1, 203.0.113.9, 10.1.1.1'))).toBe(200);
    expect(forwarding(0)).toEqual({ xff: '203.0.113.9, 10.1.1.1, 127.0.0.1', real: '203.0.113.9', forwarded: 'for=203.0.113.9;host="x";proto=http, for=10.1.1.1, for=127.0.0.1' });
    // Another client behind the same proxies has its own budget; the same client does not, whatever it writes further left.
    expect(statusOf(await send('203.0.113.10'))).toBe(200);
    expect(statusOf(await send('192.0.2.77, 203.0.113.9'))).toBe(429);
    expect(up.seen).toHaveLength(2);
    await new Promise((r) => setTimeout(r, 50));
    expect(accessClients()).toEqual([
      ['203.0.113.9', 200],
      ['203.0.113.10', 200],
      ['203.0.113.9', 429],
    ]);
  });

  it('ignores X-Forwarded-For, X-Real-IP and Forwarded from a peer that is not trusted', async () => {
    await start({ cidrs: ['10.0.0.0/8'] });
    expect(statusOf(await send('203.0.113.9'))).toBe(200);
    expect(forwarding(0)).toEqual({ xff: '127.0.0.1', real: '127.0.0.1', forwarded: 'for=127.0.0.1;host="x";proto=http' });
    // Every spoofed address is the same client: the peer.
    expect(statusOf(await send('203.0.113.10'))).toBe(429);
    await new Promise((r) => setTimeout(r, 50));
    expect(accessClients()).toEqual([
      ['127.0.0.1', 200],
      ['127.0.0.1', 429],
    ]);
  });

  it('with hops, takes the entry the nearest proxies appended', async () => {
    await start({ hops: 2 });
    expect(statusOf(await send('192.0.2.1, 203.0.113.9', 'X-Forwarded-For: 10.2.2.2\r\n'))).toBe(200);
    expect(forwarding(0)).toEqual({ xff: '203.0.113.9, 10.2.2.2, 127.0.0.1', real: '203.0.113.9', forwarded: 'for=203.0.113.9;host="x";proto=http, for=10.2.2.2, for=127.0.0.1' });
  });
});

describe('weak keys', () => {
  it('refuses a secret shorter than the hash at start and on reload; the old table keeps serving', async () => {
    const up = await startUpstream(echo('app'));
    const config = (secret: string, path = '/app'): Record<string, unknown> => ({
      routes: [{ path, upstream: 'u', auth_required: true }],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
      auth: { jwt: { secret, algorithm: 'HS256', issuer: ISSUER, audience: AUDIENCE } },
    });
    await expect(startGateway(config('tiny-secret'))).rejects.toThrow(/auth\.jwt\.secret: the secret is 11 bytes; HS256 needs at least 32 bytes/);
    const gw = await startGateway(config(SECRET));
    try {
      gw.writeConfig(config('tiny-secret', '/moved'));
      const result = await gw.gw.reload('test');
      if (result.applied) throw new Error('a config with a weak secret was applied');
      expect(result.error).toMatch(/gateway\.yaml:\d+: auth\.jwt\.secret: the secret is 11 bytes; HS256 needs at least 32 bytes/);
      expect(result.error).not.toContain('tiny-secret');
      const r = await request(`${gw.url}/app`, { headers: { authorization: `Bearer ${await sign({})}` } });
      await r.body.dump();
      expect(r.statusCode).toBe(200);
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});

describe('CORS', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  const APP = 'https://app.example.com';
  beforeAll(async () => {
    up = await startUpstream(echo('api'));
    gw = await startGateway({
      routes: [
        { path: '/api/items', methods: ['GET', 'POST'], upstream: 'u' },
        { path: '/api/private', methods: ['GET'], upstream: 'u', auth_required: true },
        { path: '/api/any-origin', methods: ['GET'], upstream: 'u', cors: { allowed_origins: ['*'], allow_credentials: false } },
        { path: '/api/star-with-credentials', methods: ['GET'], upstream: 'u', cors: { allowed_origins: ['*'] } },
      ],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
      auth: { jwt: { secret: SECRET, algorithm: 'HS256' } },
      middleware: {
        cors: {
          allowed_origins: [APP, 'https://*.partner.example'],
          allowed_methods: ['GET', 'POST', 'PUT'],
          allowed_headers: ['Content-Type', 'Authorization', 'X-Client-Version'],
          exposed_headers: ['X-Request-ID', 'RateLimit-Remaining'],
          allow_credentials: true,
          max_age: 600,
        },
      },
    });
  });
  afterAll(async () => {
    await gw.stop();
    await up.close();
  });
  afterEach(() => {
    up.seen.length = 0;
  });

  const preflight = (path: string, origin: string, method: string, headers?: string): Promise<Awaited<ReturnType<typeof request>>> =>
    request(`${gw.url}${path}`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': method, ...(headers ? { 'access-control-request-headers': headers } : {}) } });

  it('answers an allowed preflight itself with 204, even though the route does not list OPTIONS', async () => {
    const res = await preflight('/api/items', APP, 'POST', 'content-type, authorization');
    expect(res.statusCode).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe(APP);
    expect(res.headers['access-control-allow-credentials']).toBe('true');
    expect(res.headers['access-control-allow-methods']).toBe('GET, POST, PUT');
    expect(res.headers['access-control-allow-headers']).toBe('Content-Type, Authorization, X-Client-Version');
    expect(res.headers['access-control-max-age']).toBe('600');
    expect(res.headers.vary).toContain('Origin');
    expect(await res.body.text()).toBe('');
    // A preflight on a route that requires auth carries no token, and needs none.
    expect((await preflight('/api/private', 'https://shop.partner.example', 'GET')).statusCode).toBe(204);
    expect(up.seen).toHaveLength(0);
  });

  it.each([
    ['an origin that is not listed', 'https://evil.example', 'POST', undefined],
    ['a look-alike origin', 'https://app.example.com.evil.example', 'GET', undefined],
    ['the bare parent of a wildcard', 'https://partner.example', 'GET', undefined],
    ['a request header that is not allowed', APP, 'POST', 'content-type, x-evil'],
  ])('refuses a preflight with %s: 403 and no Access-Control-Allow-* header', async (_what, origin, method, headers) => {
    const res = await preflight('/api/items', origin, method, headers);
    expect(res.statusCode).toBe(403);
    expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('forbidden');
    expect(Object.keys(res.headers).filter((h) => h.startsWith('access-control-'))).toEqual([]);
    expect(res.headers.vary).toContain('Origin');
    expect(up.seen).toHaveLength(0);
  });

  it('a preflight for a method the route does not serve falls through to 405', async () => {
    const res = await preflight('/api/items', APP, 'DELETE');
    expect(res.statusCode).toBe(405);
    await res.body.dump();
    expect(up.seen).toHaveLength(0);
  });

  it('adds Access-Control-Allow-Origin to actual requests only for allowed origins, never "*" with credentials', async () => {
    const ok = await request(`${gw.url}/api/items`, { headers: { origin: APP } });
    expect(ok.headers['access-control-allow-origin']).toBe(APP);
    expect(ok.headers['access-control-allow-credentials']).toBe('true');
    expect(ok.headers['access-control-expose-headers']).toBe('X-Request-ID, RateLimit-Remaining');
    expect(ok.headers.vary).toContain('Origin');
    await ok.body.dump();

    const evil = await request(`${gw.url}/api/items`, { headers: { origin: 'https://evil.example' } });
    expect(evil.statusCode).toBe(200);
    expect(evil.headers['access-control-allow-origin']).toBeUndefined();
    expect(evil.headers['access-control-allow-credentials']).toBeUndefined();
    expect(evil.headers.vary).toContain('Origin');
    await evil.body.dump();

    // A route override of "*" while credentials stay on allows no origin at all, rather than echoing one.
    const star = await request(`${gw.url}/api/star-with-credentials`, { headers: { origin: 'https://evil.example' } });
    expect(star.headers['access-control-allow-origin']).toBeUndefined();
    await star.body.dump();
  });

  it('merges its Vary: Origin with the Vary the upstream sends', async () => {
    const varying = await startUpstream((_req, res) => {
      res.writeHead(200, { vary: 'Accept-Encoding, origin', 'content-type': 'text/plain' });
      res.end('ok');
    });
    const g = await startGateway({
      routes: [{ path: '/v', upstream: 'u' }],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [varying.url] } } },
      middleware: { cors: { allowed_origins: [APP] } },
    });
    try {
      const res = await request(`${g.url}/v`, { headers: { origin: APP } });
      await res.body.dump();
      expect(res.headers['access-control-allow-origin']).toBe(APP);
      expect(res.headers.vary).toBe('Origin, Accept-Encoding');
    } finally {
      await g.stop();
      await varying.close();
    }
  });

  it('answers "*" without Vary where any origin may read and credentials are off', async () => {
    const res = await request(`${gw.url}/api/any-origin`, { headers: { origin: 'https://anyone.example' } });
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect(res.headers['access-control-allow-credentials']).toBeUndefined();
    expect(res.headers.vary).toBeUndefined();
    await res.body.dump();
  });

  it('puts the CORS headers on the gateway\'s own errors too, so the page can read a 401', async () => {
    const res = await request(`${gw.url}/api/private`, { headers: { origin: APP } });
    expect(res.statusCode).toBe(401);
    expect(res.headers['access-control-allow-origin']).toBe(APP);
    await res.body.dump();
    expect(up.seen).toHaveLength(0);
  });
});

describe('hostile input', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  let victim: net.Server;
  let victimConnections = 0;
  beforeAll(async () => {
    up = await startUpstream(echo('app'));
    victim = net.createServer((s) => {
      victimConnections++;
      s.destroy();
    });
    await new Promise<void>((r) => victim.listen(0, '127.0.0.1', () => r()));
    gw = await startGateway({
      server: { timeouts: { client_header_timeout: '500ms' }, limits: { max_body_size: '1KiB', max_header_size: 2048, max_headers_count: 20, max_url_length: 256 } },
      routes: [
        { path: '/upload', methods: ['POST', 'PUT'], upstream: 'u' },
        { path: '/app', path_type: 'Prefix', upstream: 'u' },
        { path: '/tenant', upstream: 'u', hosts: ['api.example.com'] },
      ],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
    });
  });
  afterAll(async () => {
    await gw.stop();
    await up.close();
    await new Promise<void>((r) => victim.close(() => r()));
  });
  afterEach(() => {
    up.seen.length = 0;
  });
  const port = (): number => gw.gw.ports.http;

  it('answers 414 for a request target over max_url_length', async () => {
    const text = await raw(port(), `GET /app/${'a'.repeat(300)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(statusOf(text)).toBe(414);
    expect(codeOf(text)).toBe('uri_too_long');
    // Also where no route matches: the length is refused before any routing.
    const unmatched = await raw(port(), `GET /nowhere/${'a'.repeat(300)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(statusOf(unmatched)).toBe(414);
    expect(up.seen).toHaveLength(0);
  });

  it('answers 431 for headers over max_header_size, with the JSON shape', async () => {
    const text = await raw(port(), `GET /app HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(4000)}\r\nConnection: close\r\n\r\n`);
    expect(statusOf(text)).toBe(431);
    expect(codeOf(text)).toBe('request_header_fields_too_large');
    expect(up.seen).toHaveLength(0);
  });

  it('answers 431 for more header lines than max_headers_count, instead of dropping the extra ones', async () => {
    const many = Array.from({ length: 25 }, (_, i) => `X-H${i}: ${i}\r\n`).join('');
    const text = await raw(port(), `GET /app HTTP/1.1\r\nHost: x\r\n${many}Connection: close\r\n\r\n`);
    expect(statusOf(text)).toBe(431);
    expect(up.seen).toHaveLength(0);
  });

  it('refuses a Content-Length over max_body_size at once, before the body is sent', async () => {
    // Only the headers are sent: the answer must come without waiting for the 2 KiB the header announces.
    const text = await raw(port(), 'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2048\r\n\r\n', 2_000);
    expect(statusOf(text)).toBe(413);
    expect(codeOf(text)).toBe('payload_too_large');
    expect(text.toLowerCase()).toContain('connection: close');
    expect(up.seen).toHaveLength(0);
  });

  it('cuts a chunked body when it passes max_body_size; the upstream never gets a complete request', async () => {
    const chunk = 'x'.repeat(600);
    const body = `258\r\n${chunk}\r\n258\r\n${chunk}\r\n0\r\n\r\n`;
    const text = await raw(port(), `POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${body}`);
    expect(statusOf(text)).toBe(413);
    await new Promise((r) => setTimeout(r, 100));
    expect(up.seen).toHaveLength(0);

    // Under the limit, a chunked body passes intact.
    const small = await raw(port(), `POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n258\r\n${chunk}\r\n0\r\n\r\n`);
    expect(statusOf(small)).toBe(200);
    expect(up.seen[0]?.body.length).toBe(600);
  });

  it.each([
    ['Content-Length with Transfer-Encoding (CL.TE)', 'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG'],
    ['Transfer-Encoding with Content-Length (TE.CL)', 'POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST /app HTTP/1.1\r\n\r\n0\r\n\r\n'],
    ['two different Content-Lengths', 'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 10\r\n\r\nabc'],
    ['two equal Content-Lengths', 'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc'],
    ['a Content-Length list', 'POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc'],
    ['chunked that is not the final encoding', 'POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n'],
    ['a bad chunk size', 'POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n'],
    ['two Host headers', 'GET /app HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n'],
    // Transfer-Encoding spellings, obs-fold, bare CR and LF: test/dataplane/advisories.test.ts (CVE-2022-32213, CVE-2024-27982, CVE-2023-30589).
  ])('refuses request smuggling material with 400: %s', async (_what, payload) => {
    const text = await raw(port(), payload);
    expect(statusOf(text)).toBe(400);
    expect(codeOf(text)).toBe('bad_request');
    await new Promise((r) => setTimeout(r, 50));
    expect(up.seen).toHaveLength(0);
  });

  it('refuses a request without Host with 400 (Node answers it before routing)', async () => {
    expect(statusOf(await raw(port(), 'GET /app HTTP/1.1\r\nConnection: close\r\n\r\n'))).toBe(400);
    expect(up.seen).toHaveLength(0);
  });

  // Slow headers (408 at client_header_timeout): test/dataplane/advisories.test.ts (CVE-2018-12122).

  it('is not an open proxy: absolute-form, CONNECT and foreign Host values never reach another address', async () => {
    const victimPort = (victim.address() as net.AddressInfo).port;
    const absolute = await raw(port(), `GET http://127.0.0.1:${victimPort}/ HTTP/1.1\r\nHost: 127.0.0.1:${victimPort}\r\nConnection: close\r\n\r\n`);
    expect(statusOf(absolute)).toBe(400);
    const connect = await raw(port(), `CONNECT 127.0.0.1:${victimPort} HTTP/1.1\r\nHost: 127.0.0.1:${victimPort}\r\n\r\n`, 1_000);
    expect(connect).not.toMatch(/^HTTP\/1.1 200/);
    // A foreign Host on a routed path goes to the route's upstream, never to the host named.
    const foreignHost = await raw(port(), `GET /app HTTP/1.1\r\nHost: 127.0.0.1:${victimPort}\r\nConnection: close\r\n\r\n`);
    expect(statusOf(foreignHost)).toBe(200);
    expect(up.seen).toHaveLength(1);
    // A route bound to a host does not answer for another.
    const otherHost = await raw(port(), 'GET /tenant HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n');
    expect(statusOf(otherHost)).toBe(404);
    const rightHost = await raw(port(), 'GET /tenant HTTP/1.1\r\nHost: API.example.com:8080\r\nConnection: close\r\n\r\n');
    expect(statusOf(rightHost)).toBe(200);
    expect(victimConnections).toBe(0);
  });
});
