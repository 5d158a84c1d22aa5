/**
 * Public advisories against proxies and gateways, one test per class that
 * applies to this gateway, each named by the advisory id. Requests go over
 * real sockets (raw bytes where HTTP parsers differ) to real upstreams on
 * 127.0.0.1 that record what they received; every test asserts the status
 * the client gets and what the upstream saw (nothing, or only what is safe).
 * docs/security.md lists them in a table.
 */
import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { base64url, exportJWK, SignJWT, type JWTPayload } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { codeOf, rawRequest, statusOf } from '../support/raw.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';

const SECRET = 'advisory-suite-secret-of-more-than-32-bytes';
const ISSUER = 'auth-service';
const AUDIENCE = 'api-gateway';

const CLAIMS = { iss: ISSUER, aud: AUDIENCE, sub: 'user-42', roles: ['user'], permissions: ['users:read'] };

async function token(claims: JWTPayload = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ ...CLAIMS, ...claims })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(new TextEncoder().encode(SECRET));
}

/** A token with exactly this protected header, signed with HMAC-SHA256 over whatever the header says. */
async function hs256WithHeader(header: Record<string, unknown>, claims: JWTPayload = {}): Promise<string> {
  const { createHmac } = await import('node:crypto');
  const input = `${base64url.encode(JSON.stringify(header))}.${base64url.encode(JSON.stringify({ ...CLAIMS, exp: Math.floor(Date.now() / 1000) + 600, ...claims }))}`;
  return `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
}

/** Header names and values the upstream received, in order, lower-cased names. */
const receivedHeaders = (up: TestUpstream, i = 0): [string, string][] => {
  const raw = up.seen[i]?.rawHeaders ?? [];
  const out: [string, string][] = [];
  for (let j = 0; j < raw.length; j += 2) out.push([(raw[j] as string).toLowerCase(), raw[j + 1] as string]);
  return out;
};

describe('advisories', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  const send = (text: string, waitMs?: number): Promise<string> => rawRequest(gw.gw.ports.http, text, waitMs);

  beforeAll(async () => {
    up = await startUpstream(echo('app'));
    gw = await startGateway({
      routes: [
        { name: 'catch-all', path: '/', path_type: 'Prefix', upstream: 'u' },
        { path: '/api/private', path_type: 'Prefix', upstream: 'u', auth_required: true },
        { path: '/api/admin', upstream: 'u', auth_required: true, required_roles: ['admin'] },
        { name: 'admin-host', path: '/', path_type: 'Prefix', hosts: ['admin.example.com'], upstream: 'u', auth_required: true },
      ],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
      auth: { jwt: { secret: SECRET, algorithm: 'HS256', issuer: ISSUER, audience: AUDIENCE, cookie: 'session', header: 'X-Auth-Token' } },
    });
  });
  afterAll(async () => {
    await gw.stop();
    await up.close();
  });
  afterEach(() => {
    up.seen.length = 0;
  });

  it('CVE-2025-64484 (GHSA-vjrc-mh2v-45x6): "_" look-alikes of identity and forwarding headers never reach the upstream', async () => {
    const bearer = await token({ sub: 'real-user' });
    const text = await send(
      `GET /api/private/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${bearer}\r\nX_User_ID: admin\r\nx_user_roles: admin\r\nX-User_Permissions: admin:all\r\nX_Forwarded_For: 10.0.0.1\r\nX_Real_IP: 10.0.0.1\r\nConnection: close\r\n\r\n`,
    );
    expect(statusOf(text)).toBe(200);
    const names = receivedHeaders(up).map(([n]) => n);
    expect(names.filter((n) => n.includes('_'))).toEqual([]);
    expect(receivedHeaders(up).filter(([n]) => n.startsWith('x-user-'))).toEqual([
      ['x-user-id', 'real-user'],
      ['x-user-roles', 'user'],
      ['x-user-permissions', 'users:read'],
    ]);
    // Public routes too: the look-alike of the identity never arrives, whoever the caller is.
    const anonymous = await send('GET /anything HTTP/1.1\r\nHost: x\r\nX_User_ID: admin\r\nConnection: close\r\n\r\n');
    expect(statusOf(anonymous)).toBe(200);
    expect(receivedHeaders(up, 1).filter(([n]) => n.replaceAll('_', '-').startsWith('x-user-'))).toEqual([]);
  });

  it('envoyproxy/envoy#12089 (one token verified, another forwarded): more than one credential is refused with 400', async () => {
    const good = await token({ sub: 'real-user' });
    const forged = `${good.slice(0, good.lastIndexOf('.'))}.forged-signature`;
    const cases: [string, string][] = [
      ['two Authorization headers on a verifying route', `GET /api/private/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${good}\r\nAuthorization: Bearer ${forged}\r\n`],
      ['two Authorization headers on a public route', `GET /anything HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${good}\r\nauthorization: Basic YWRtaW46YWRtaW4=\r\n`],
      ['two cookies of the token\'s name in one Cookie header', `GET /api/private/me HTTP/1.1\r\nHost: x\r\nCookie: session=${good}; theme=dark; session=${forged}\r\n`],
      ['the token cookie in two Cookie headers', `GET /api/private/me HTTP/1.1\r\nHost: x\r\nCookie: session=${good}\r\nCookie: session=${forged}\r\n`],
      ['Authorization and the token cookie', `GET /api/private/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${good}\r\nCookie: session=${forged}\r\n`],
      ['the token header and the token cookie', `GET /api/private/me HTTP/1.1\r\nHost: x\r\nX-Auth-Token: ${good}\r\nCookie: session=${forged}\r\n`],
      ['the token header twice', `GET /api/private/me HTTP/1.1\r\nHost: x\r\nX-Auth-Token: ${good}\r\nx-auth-token: ${forged}\r\n`],
    ];
    for (const [what, head] of cases) {
      const text = await send(`${head}Connection: close\r\n\r\n`);
      expect(statusOf(text), what).toBe(400);
      expect(codeOf(text), what).toBe('bad_request');
      // The answer says where the credentials were, never what they were.
      expect(text, what).not.toContain(good.split('.')[2]);
    }
    expect(up.seen).toHaveLength(0);
    // One credential, wherever the route reads it from, is fine; other cookies travel with it.
    expect(statusOf(await send(`GET /api/private/me HTTP/1.1\r\nHost: x\r\nCookie: theme=dark; session=${good}\r\nConnection: close\r\n\r\n`))).toBe(200);
    expect(statusOf(await send(`GET /anything HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${forged}\r\nConnection: close\r\n\r\n`))).toBe(200);
    expect(up.seen).toHaveLength(2);
  });

  it('CVE-2024-45806 (X-Forwarded-For trust): a loopback or private peer is not a trusted proxy by default; spoofed forwarding headers are replaced', async () => {
    const text = await send(
      'GET /anything HTTP/1.1\r\nHost: api.example.com\r\nX-Forwarded-For: 10.0.0.1, 192.168.1.1\r\nX-Real-IP: 10.0.0.1\r\nForwarded: for=10.0.0.1;proto=https;by=10.0.0.254\r\nx-forwarded-for: 172.16.0.1\r\nConnection: close\r\n\r\n',
    );
    expect(statusOf(text)).toBe(200);
    const forwarding = receivedHeaders(up).filter(([n]) => ['x-forwarded-for', 'x-real-ip', 'forwarded', 'x-forwarded-proto', 'x-forwarded-host'].includes(n));
    expect(forwarding.sort()).toEqual([
      ['forwarded', 'for=127.0.0.1;host="api.example.com";proto=http'],
      ['x-forwarded-for', '127.0.0.1'],
      ['x-forwarded-host', 'api.example.com'],
      ['x-forwarded-proto', 'http'],
      ['x-real-ip', '127.0.0.1'],
    ]);
  });

  it('CVE-2019-9901 (path normalisation before policy): dot segments are resolved before matching, so they cannot step around a protected route', async () => {
    for (const target of ['/public/../api/admin', '/api/x/%2e%2e/admin', '/api/./admin', '/public/%2E%2E/api/private/me', '/api/private/./me', '/x/%2e%2e/api/admin']) {
      const text = await send(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(statusOf(text), target).toBe(401);
    }
    expect(up.seen).toHaveLength(0);
    // What is served gets the normalised path, the one that was matched.
    expect(statusOf(await send('GET /a/b/../c/./d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'))).toBe(200);
    expect(up.seen.map((r) => r.url)).toEqual(['/a/c/d']);
  });

  it('CVE-2021-29492 (escaped slashes): an encoded slash or backslash is refused with 400, never decoded into another route', async () => {
    for (const target of ['/public%2F..%2Fapi%2Fadmin', '/api%2fadmin', '/public%5C..%5Capi%5Cadmin', '/public/..%2Fapi/admin', '/api/admin%00']) {
      const text = await send(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(statusOf(text), target).toBe(400);
      expect(codeOf(text), target).toBe('bad_request');
    }
    expect(up.seen).toHaveLength(0);
  });

  it('CVE-2021-31920 (merged slashes): runs of slashes collapse before matching', async () => {
    for (const target of ['//api//admin', '/api///admin', '//api/private//me']) {
      const text = await send(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(statusOf(text), target).toBe(401);
    }
    expect(up.seen).toHaveLength(0);
  });

  it('CVE-2021-39156 (query and fragment against exact matches): a fragment is refused, a query does not take part in matching', async () => {
    const fragment = await send('GET /api/admin#public HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(statusOf(fragment)).toBe(400);
    for (const target of ['/api/admin?', '/api/admin?x=1', '/api/admin?/../public', '/api/admin?#']) {
      expect(statusOf(await send(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)), target).toBe(401);
    }
    expect(up.seen).toHaveLength(0);
  });

  it('CVE-2021-39155 (host case and trailing dot): the Host header selects the same routes in any case, with or without a trailing dot or port', async () => {
    for (const host of ['admin.example.com', 'ADMIN.Example.COM', 'admin.example.com.', 'Admin.Example.Com.:8080', 'admin.example.com:443']) {
      const text = await send(`GET /anything HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
      expect(statusOf(text), host).toBe(401);
    }
    expect(up.seen).toHaveLength(0);
    // Another host is served by the catch-all, as configured.
    expect(statusOf(await send('GET /anything HTTP/1.1\r\nHost: www.example.com\r\nConnection: close\r\n\r\n'))).toBe(200);
  });

  it('GHSA-62c8-mh53-4cqv (identity headers removed via Connection): a client cannot make the gateway drop or replace the headers it sets', async () => {
    const bearer = await token({ sub: 'real-user', roles: ['user'] });
    const text = await send(
      `GET /api/private/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${bearer}\r\nx-UsEr-Id: admin\r\nX-USER-ROLES: admin\r\nX-User-Permissions: admin:all\r\nX-User-Email: ceo@example.com\r\nConnection: close, X-User-ID, X-User-Roles, X-User-Permissions, X-Forwarded-For, X-Real-IP, Forwarded, X-Request-ID, X-Forwarded-Proto\r\n\r\n`,
    );
    expect(statusOf(text)).toBe(200);
    const received = receivedHeaders(up);
    expect(received.filter(([n]) => n.startsWith('x-user-'))).toEqual([
      ['x-user-id', 'real-user'],
      ['x-user-roles', 'user'],
      ['x-user-permissions', 'users:read'],
    ]);
    const names = received.map(([n]) => n);
    for (const name of ['x-forwarded-for', 'x-real-ip', 'forwarded', 'x-request-id', 'x-forwarded-proto']) expect(names.filter((n) => n === name), name).toHaveLength(1);
    // The client's Connection header is hop-by-hop: the upstream connection has its own, naming none of these.
    expect(received.filter(([n]) => n === 'connection').map(([, v]) => v)).toEqual(['keep-alive']);
  });

  it('alg "none" (the unsigned-token class of the 2015 JWT library advisories): refused in every spelling, with or without a signature', async () => {
    const payload = base64url.encode(JSON.stringify({ ...CLAIMS, roles: ['admin'], exp: Math.floor(Date.now() / 1000) + 600 }));
    for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
      for (const signature of ['', 'AAAA']) {
        const unsigned = `${base64url.encode(JSON.stringify({ alg, typ: 'JWT' }))}.${payload}.${signature}`;
        const text = await send(`GET /api/admin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${unsigned}\r\nConnection: close\r\n\r\n`);
        expect(statusOf(text), `${alg} ${signature}`).toBe(401);
      }
    }
    expect(up.seen).toHaveLength(0);
  });

  it('RFC 7515 section 4.1.11 ("crit" header parameters): a token that marks any extension critical is refused', async () => {
    const tokens = [
      await hs256WithHeader({ alg: 'HS256', crit: ['x-custom'], 'x-custom': true }),
      await hs256WithHeader({ alg: 'HS256', crit: ['b64'], b64: false }),
      await hs256WithHeader({ alg: 'HS256', crit: ['exp'] }),
    ];
    for (const t of tokens) {
      const text = await send(`GET /api/private/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t}\r\nConnection: close\r\n\r\n`);
      expect(statusOf(text)).toBe(401);
    }
    expect(up.seen).toHaveLength(0);
    // The same header without crit, signed the same way, is accepted: the refusal is about crit.
    expect(statusOf(await send(`GET /api/private/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${await hs256WithHeader({ alg: 'HS256', 'x-custom': true })}\r\nConnection: close\r\n\r\n`))).toBe(200);
  });

  it('CVE-2021-21378 (an invalid token treated as no token): a token that fails verification is a 401, never an anonymous pass, and public routes vouch for nobody', async () => {
    const strangers = [await token({ iss: 'another-issuer' }), await token({ aud: 'another-api' }), await hs256WithHeader({ alg: 'HS256', kid: 'unknown-key' }, { iss: 'another-issuer' }), 'not.a.token'];
    for (const t of strangers) {
      const text = await send(`GET /api/private/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t}\r\nConnection: close\r\n\r\n`);
      expect(statusOf(text)).toBe(401);
    }
    expect(up.seen).toHaveLength(0);
    // A public route looks at no token: the upstream gets no identity, valid token or not, and the client's X-User-* is gone.
    for (const t of [strangers[0] as string, await token({ sub: 'someone' })]) {
      expect(statusOf(await send(`GET /anything HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t}\r\nX-User-ID: admin\r\nConnection: close\r\n\r\n`))).toBe(200);
    }
    expect(up.seen.flatMap((r) => Object.keys(r.headers).filter((h) => h.startsWith('x-user-')))).toEqual([]);
  });
});

describe('advisories: embedded and remote token keys', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  let attackerHits = 0;
  let attacker: http.Server;
  const trusted = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rogue = generateKeyPairSync('rsa', { modulusLength: 2048 });

  beforeAll(async () => {
    up = await startUpstream(echo('app'));
    attacker = http.createServer((_req, res) => {
      attackerHits++;
      void exportJWK(rogue.publicKey).then((jwk) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [{ ...jwk, kid: 'rogue', alg: 'RS256', use: 'sig' }] })));
    });
    await new Promise<void>((r) => attacker.listen(0, '127.0.0.1', () => r()));
    gw = await startGateway({
      routes: [{ path: '/api/admin', upstream: 'u', auth_required: true, required_roles: ['admin'] }],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
      auth: { jwt: { public_key: trusted.publicKey.export({ type: 'spki', format: 'pem' }) as string, algorithm: 'RS256', issuer: ISSUER } },
    });
  });
  afterAll(async () => {
    await gw.stop();
    await up.close();
    await new Promise<void>((r) => attacker.close(() => r()));
  });

  it('CVE-2018-0114 (keys embedded in or named by the token): jwk, jku and x5u headers are never used to verify it, and never fetched', async () => {
    const rogueJwk = await exportJWK(rogue.publicKey);
    const jku = `http://127.0.0.1:${(attacker.address() as AddressInfo).port}/jwks.json`;
    const sign = (header: Record<string, unknown>): Promise<string> =>
      new SignJWT({ sub: 'attacker', roles: ['admin'] }).setProtectedHeader({ alg: 'RS256', ...header }).setIssuer(ISSUER).setExpirationTime('5m').sign(rogue.privateKey);
    const forged = [await sign({ jwk: rogueJwk }), await sign({ jku, kid: 'rogue' }), await sign({ x5u: jku }), await sign({ jwk: rogueJwk, jku, x5u: jku, kid: 'rogue' })];
    for (const t of forged) {
      const text = await rawRequest(gw.gw.ports.http, `GET /api/admin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${t}\r\nConnection: close\r\n\r\n`);
      expect(statusOf(text)).toBe(401);
    }
    expect(up.seen).toHaveLength(0);
    expect(attackerHits).toBe(0);
    // The configured key still works, with or without such headers.
    const real = await new SignJWT({ sub: 'admin-user', roles: ['admin'] }).setProtectedHeader({ alg: 'RS256', jwk: rogueJwk }).setIssuer(ISSUER).setExpirationTime('5m').sign(trusted.privateKey);
    expect(statusOf(await rawRequest(gw.gw.ports.http, `GET /api/admin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${real}\r\nConnection: close\r\n\r\n`))).toBe(200);
    expect(attackerHits).toBe(0);
  });
});

describe('advisories: HTTP/1.1 parsing and framing', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  const send = (text: string, waitMs?: number): Promise<string> => rawRequest(gw.gw.ports.http, text, waitMs);
  /** A second request hidden where a parser that disagrees with the gateway's would find it. */
  const SMUGGLED = 'GET /api/admin HTTP/1.1\r\nHost: x\r\n\r\n';
  /** What the upstream may see after such a payload: nothing at all, or only requests the gateway routed itself. */
  const noSmuggling = (): void => {
    expect(up.seen.filter((r) => r.url === '/api/admin')).toEqual([]);
    for (const r of up.seen) expect(r.body.toString('latin1')).not.toContain('GET /api/admin');
  };

  beforeAll(async () => {
    up = await startUpstream(echo('app'));
    gw = await startGateway({
      server: { timeouts: { client_header_timeout: '500ms' } },
      routes: [
        { name: 'catch-all', path: '/', path_type: 'Prefix', upstream: 'u' },
        { path: '/api/admin', upstream: 'u', auth_required: true },
      ],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
      auth: { jwt: { secret: SECRET, algorithm: 'HS256', issuer: ISSUER } },
    });
  });
  afterAll(async () => {
    await gw.stop();
    await up.close();
  });
  afterEach(() => {
    up.seen.length = 0;
  });

  it('CVE-2022-32213 (Transfer-Encoding variants): anything but a final, plain "chunked" is refused with 400, and nothing hidden in the body becomes a request', async () => {
    const refused: [string, string][] = [
      ['an unknown coding', 'Transfer-Encoding: xchunked'],
      ['a suffix', 'Transfer-Encoding: chunkedx'],
      ['chunked twice', 'Transfer-Encoding: chunked, chunked'],
      ['chunked, then another line', 'Transfer-Encoding: chunked\r\nTransfer-Encoding: identity'],
      ['parameters on chunked', 'Transfer-Encoding: chunked;q=1'],
      ['a vertical tab before the value', 'Transfer-Encoding:\x0bchunked'],
      ['a space before the colon', 'Transfer-Encoding : chunked'],
      ['with Content-Length', 'Transfer-Encoding: chunked\r\nContent-Length: 5'],
    ];
    for (const [what, te] of refused) {
      const text = await send(`POST /upload HTTP/1.1\r\nHost: x\r\n${te}\r\n\r\n0\r\n\r\n${SMUGGLED}`, 1_000);
      expect(statusOf(text), what).toBe(400);
      expect(codeOf(text), what).toBe('bad_request');
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(up.seen).toHaveLength(0);
    // Spellings every parser reads the same way are framed as chunked; what follows the last chunk is a request of its own, which the gateway routes (401 here).
    for (const te of ['Transfer-Encoding: CHUNKED', 'Transfer-Encoding:\tchunked', 'Transfer-Encoding: gzip, chunked']) {
      const text = await send(`POST /upload HTTP/1.1\r\nHost: x\r\n${te}\r\n\r\n0\r\n\r\n${SMUGGLED}`, 1_000);
      expect([...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]), te).toEqual(['200', '401']);
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(up.seen.map((r) => `${r.method} ${r.url} ${r.body.length}`)).toEqual(['POST /upload 0', 'POST /upload 0', 'POST /upload 0']);
    noSmuggling();
  });

  it('CVE-2024-27982, CVE-2023-30589 (obs-fold and bare CR or LF): header lines that parsers split differently are refused with 400', async () => {
    const payloads: [string, string][] = [
      ['a Content-Length line starting with a space (CVE-2024-27982)', `GET /a HTTP/1.1\r\nHost: x\r\n Content-Length: 36\r\n\r\n${SMUGGLED}`],
      ['a header folded over two lines (obs-fold)', `GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n X-User-ID: admin\r\n\r\n`],
      ['a bare CR ending a header line (CVE-2023-30589)', `GET /a HTTP/1.1\r\nHost: x\rX-User-ID: admin\r\n\r\n`],
      ['a bare CR inside a value', `GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\rX-User-ID: admin\r\n\r\n`],
      ['a bare LF inside a value', `GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\nX-User-ID: admin\r\n\r\n`],
      ['bare LF line ends', `GET /a HTTP/1.1\nHost: x\n\n`],
      ['a bare LF after a chunk size', `POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n`],
      ['a bare CR in a chunk extension', `POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;a\rb\r\nx\r\n0\r\n\r\n${SMUGGLED}`],
    ];
    for (const [what, payload] of payloads) {
      const text = await send(payload, 1_000);
      expect(statusOf(text), what).toBe(400);
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(up.seen).toHaveLength(0);
  });

  it('CVE-2024-22019 (chunk-extension floods): extension bytes are bounded, in one chunk and across many; the upstream never gets a complete request', async () => {
    const one = await send(`POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;${'a'.repeat(20_000)}\r\nx\r\n0\r\n\r\n`);
    expect(statusOf(one)).toBe(413);
    // Many chunks of one byte, each with an extension just under the per-chunk limit: the body is tiny, the bytes on the wire are not.
    const many = await send(`POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${`1;${'a'.repeat(8_000)}\r\nx\r\n`.repeat(60)}0\r\n\r\n`);
    expect(statusOf(many)).toBe(413);
    expect(codeOf(many)).toBe('payload_too_large');
    await new Promise((r) => setTimeout(r, 100));
    expect(up.seen).toHaveLength(0);
    // Ordinary chunk extensions and small chunks pass.
    const fine = await send(`POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${'1;name=value\r\nx\r\n'.repeat(200)}0\r\n\r\n`);
    expect(statusOf(fine)).toBe(200);
    expect(up.seen.map((r) => r.body.length)).toEqual([200]);
  });

  it('CVE-2018-12122 (slow headers): a client trickling header lines is cut off with 408 at client_header_timeout, however active it looks', async () => {
    // The client gives up after 5 s of trickling; a 408 means the gateway cut it off first.
    const socketText = await new Promise<{ text: string; lines: number; gaveUp: boolean }>((resolve) => {
      let gaveUp = false;
      const socket = net.connect(gw.gw.ports.http, '127.0.0.1');
      let text = '';
      let n = 0;
      socket.on('connect', () => socket.write('GET /anything HTTP/1.1\r\nHost: x\r\n'));
      const timer = setInterval(() => {
        if (!socket.destroyed) socket.write(`X-Trickle-${n++}: a\r\n`);
      }, 100);
      socket.on('data', (d) => (text += d.toString('latin1')));
      socket.on('error', () => undefined);
      socket.on('close', () => {
        clearInterval(timer);
        resolve({ text, lines: n, gaveUp });
      });
      setTimeout(() => {
        gaveUp = true;
        socket.destroy();
      }, 5_000);
    });
    expect(statusOf(socketText.text)).toBe(408);
    expect(socketText.gaveUp).toBe(false);
    // It kept sending header lines all along: activity did not keep it alive.
    expect(socketText.lines).toBeGreaterThan(3);
    expect(up.seen).toHaveLength(0);
  });
});
