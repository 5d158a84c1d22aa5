/**
 * Public advisories against proxies and gateways, one test per class that
 * applies to this gateway, each named by the advisory id. Requests go over
 * real sockets (raw bytes where HTTP parsers differ) to real upstreams on
 * 127.0.0.1 that record what they received; every test asserts the status
 * the client gets and what the upstream saw (nothing, or only what is safe).
 * docs/security.md lists them in a table.
 */
import { SignJWT, type JWTPayload } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { codeOf, rawRequest, statusOf } from '../support/raw.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';

const SECRET = 'advisory-suite-secret-of-more-than-32-bytes';
const ISSUER = 'auth-service';
const AUDIENCE = 'api-gateway';

async function token(claims: JWTPayload = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: ISSUER, aud: AUDIENCE, sub: 'user-42', roles: ['user'], permissions: ['users:read'], ...claims })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(new TextEncoder().encode(SECRET));
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
});
