/**
 * Explain against a real gateway: for each outcome (a route that serves, 404
 * with near misses, 405, 401, 403 with the missing role, 429, 503 with no
 * eligible endpoint) the admin `/explain` predicts what the same request then
 * gets from the gateway, and `switchyard-dataplane explain` says the same from
 * the config file alone, with an exit status scripts can use. Tokens never
 * appear in either answer.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Explanation } from '../../dataplane/src/observability/explain-format.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { eventually } from '../support/kube.ts';
import { startRedis } from '../support/redis.ts';
import { closedPort, echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const SECRET = 'explain-test-secret-0123456789-abcdefghij';

async function token(subject: string, roles: string[]): Promise<string> {
  return new SignJWT({ roles, permissions: [] }).setProtectedHeader({ alg: 'HS256' }).setSubject(subject).setIssuer('auth-service').setAudience('api-gateway').setExpirationTime('10m').sign(new TextEncoder().encode(SECRET));
}

describe('explain', () => {
  let users: TestUpstream;
  let gw: TestGateway;
  let userToken: string;

  const config = (downPort: number): Record<string, unknown> => ({
    routes: [
      { name: 'user', path: '/api/v1/users/{id}', methods: ['GET', 'PUT'], upstream: 'users', auth_required: true, required_roles: ['user'] },
      { name: 'me', path: '/api/v1/users/me', methods: ['GET'], upstream: 'users', auth_required: true },
      { name: 'admin', path: '/api/v1/admin/users', methods: ['GET'], upstream: 'users', required_roles: ['admin'] },
      { name: 'public', path: '/public/{rest}', methods: ['GET'], upstream: 'users' },
      { name: 'rewritten', path: '/v2', path_type: 'Prefix', upstream: 'users', rewrite_path: '/internal' },
      { name: 'limited', path: '/limited', upstream: 'users', rate_limit: 2 },
      { name: 'blocked', path: '/blocked', upstream: 'users', rate_limit: 0 },
      { name: 'down', path: '/down', upstream: 'down' },
      { name: 'gone', path: '/gone', upstream: 'nowhere' },
    ],
    upstreams: {
      users: { discovery: { type: 'Static', endpoints: [users.url] } },
      down: {
        discovery: { type: 'Static', endpoints: [`http://127.0.0.1:${downPort}`] },
        health_check: { path: '/health', interval: '100ms', timeout: '100ms', unhealthy_threshold: 1, healthy_threshold: 1 },
        when_all_unhealthy: 'fail',
      },
    },
    auth: { jwt: { secret: SECRET, algorithm: 'HS256', issuer: 'auth-service', audience: 'api-gateway' } },
    middleware: { rate_limiting: { enabled: true, window: '60s', storage: { type: 'Memory' } } },
    observability: { logging: { access_log: false } },
  });

  beforeAll(async () => {
    users = await startUpstream(echo('users'));
    gw = await startGateway(config(await closedPort()));
    userToken = await token('alice', ['user']);
  });
  afterAll(async () => {
    await gw?.stop();
    await users?.close();
  });

  /** Asks the admin /explain with query parameters. */
  const explainLive = async (method: string, target: string, headers: Record<string, string> = {}, extra: Record<string, string> = {}): Promise<Explanation> => {
    const q = new URLSearchParams({ method, path: target, ...extra });
    for (const [k, v] of Object.entries(headers)) q.append('header', `${k}: ${v}`);
    const res = await request(`${gw.adminUrl}/explain?${q}`);
    expect(res.statusCode).toBe(200);
    return (await res.body.json()) as Explanation;
  };

  /** Sends the request itself and returns the status the gateway answered. */
  const send = async (method: string, target: string, headers: Record<string, string> = {}): Promise<number> => {
    const res = await request(`${gw.url}${target}`, { method: method as 'GET', headers });
    await res.body.dump();
    return res.statusCode;
  };

  /** Runs the CLI on the gateway's own config file. */
  const explainOffline = async (args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    try {
      const { stdout, stderr } = await run(process.execPath, [path.join(ROOT, 'dataplane/bin/switchyard-dataplane.ts'), 'explain', '--config', gw.configFile, ...args], { env: { ...process.env } });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };
  const offlineJson = async (args: string[]): Promise<{ code: number; e: Explanation }> => {
    const r = await explainOffline([...args, '-o', 'json']);
    return { code: r.code, e: JSON.parse(r.stdout) as Explanation };
  };

  describe('admin /explain predicts what the gateway then answers', () => {
    it('200: the route, the rule, the stages and the URL after rewrite', async () => {
      const e = await explainLive('GET', '/v2/items/7?x=1');
      expect(e.outcome).toMatchObject({ status: null, by: 'upstream' });
      expect(e.route).toMatchObject({ id: 'rewritten', path: { type: 'Prefix', value: '/v2' } });
      expect(e.match.rule).toBe('the only route that fits, in the tier of routes for any host');
      expect(e.upstream?.path).toBe('/internal/items/7?x=1');
      expect(e.upstream?.backends[0]).toMatchObject({ upstream: 'users', verdict: 'ok', eligible: 1, url: `${users.url}/internal/items/7?x=1` });
      expect(e.upstream?.backends[0]?.endpoints[0]).toMatchObject({ origin: users.url, eligible: true, health: 'no check', outlier: 'off' });
      expect(e.live).toBe(true);
      expect(await send('GET', '/v2/items/7?x=1')).toBe(200);
      expect(users.seen.at(-1)?.url).toBe('/internal/items/7?x=1');
    });

    it('404: near misses, closest first, with what failed', async () => {
      const e = await explainLive('GET', '/api/v1/userz/42');
      expect(e.outcome).toMatchObject({ status: 404, code: 'route_not_found' });
      expect(e.match.nearMisses[0]).toEqual({ route: expect.objectContaining({ id: 'user' }), failed: [{ what: 'path', detail: 'segment 3 is "userz"; Template /api/v1/users/{id} needs "users"' }] });
      expect(await send('GET', '/api/v1/userz/42')).toBe(404);
    });

    it('405: the route whose method failed, and the Allow list', async () => {
      const e = await explainLive('DELETE', '/api/v1/users/42');
      expect(e.outcome).toMatchObject({ status: 405, code: 'method_not_allowed' });
      expect(e.match.allow).toEqual(['GET', 'HEAD', 'PUT']);
      expect(e.match.nearMisses[0]).toMatchObject({ route: { id: 'user' }, failed: [{ what: 'method' }] });
      expect(await send('DELETE', '/api/v1/users/42')).toBe(405);
    });

    it('401: authentication required and no token', async () => {
      const e = await explainLive('GET', '/api/v1/users/42');
      expect(e.outcome).toMatchObject({ status: 401, code: 'unauthorized' });
      expect(e.stages.find((s) => s.stage === 'authenticate')).toMatchObject({ result: 'fail', required: true, token: null });
      expect(e.stages.find((s) => s.stage === 'authorize')).toMatchObject({ result: 'not reached', roles: ['user'] });
      expect(await send('GET', '/api/v1/users/42')).toBe(401);
    });

    it('403: the token is valid, the role it lacks is named, and the token is never repeated', async () => {
      const res = await request(`${gw.adminUrl}/explain`, { method: 'POST', body: JSON.stringify({ method: 'GET', path: '/api/v1/admin/users', headers: { authorization: `Bearer ${userToken}` } }) });
      const text = await res.body.text();
      expect(text).not.toContain(userToken);
      expect(text).not.toContain(userToken.split('.')[2] as string);
      const e = JSON.parse(text) as Explanation;
      expect(e.outcome).toMatchObject({ status: 403, code: 'forbidden' });
      expect(e.request.token).toBe('Authorization header');
      expect(e.stages.find((s) => s.stage === 'authenticate')).toMatchObject({ result: 'pass', identity: { subject: 'alice', roles: ['user'] } });
      expect(e.stages.find((s) => s.stage === 'authorize')).toMatchObject({ result: 'fail', roles: ['admin'], missingRoles: ['admin'] });
      expect(await send('GET', '/api/v1/admin/users', { authorization: `Bearer ${userToken}` })).toBe(403);
      // With the role, the same request passes.
      const admin = await token('root', ['admin']);
      const ok = await explainLive('GET', '/api/v1/admin/users', { authorization: `Bearer ${admin}` });
      expect(ok.stages.find((s) => s.stage === 'authorize')).toMatchObject({ result: 'pass' });
      expect(ok.outcome.by).toBe('upstream');
    });

    it('429: the bucket and its count, read without counting', async () => {
      const before = await explainLive('GET', '/limited', {}, { client: '127.0.0.1' });
      expect(before.stages.find((s) => s.stage === 'rate-limit')).toMatchObject({ result: 'pass', limit: 2, bucket: 'limited:60000:ip:127.0.0.1', used: 0, store: 'memory' });
      // Explaining counts nothing: two requests still pass.
      expect(await send('GET', '/limited')).toBe(200);
      expect(await send('GET', '/limited')).toBe(200);
      const e = await explainLive('GET', '/limited', {}, { client: '127.0.0.1' });
      expect(e.outcome).toMatchObject({ status: 429, code: 'rate_limited' });
      expect(e.stages.find((s) => s.stage === 'rate-limit')).toMatchObject({ result: 'fail', used: 2, remaining: 0 });
      expect(await send('GET', '/limited')).toBe(429);
      // Another client's bucket is its own.
      const other = await explainLive('GET', '/limited', {}, { client: '10.9.8.7' });
      expect(other.stages.find((s) => s.stage === 'rate-limit')).toMatchObject({ result: 'pass', used: 0 });
      // Without the address the bucket is not known, and explain says so rather than guess.
      const unknown = await explainLive('GET', '/limited');
      expect(unknown.stages.find((s) => s.stage === 'rate-limit')).toMatchObject({ result: 'unknown', bucket: null, used: null });
    });

    it('503: no eligible endpoint, with each endpoint\'s health', async () => {
      const e = await eventually(async () => {
        const x = await explainLive('GET', '/down');
        return x.outcome.status === 503 ? x : undefined;
      }, 10_000, 'the down upstream\'s health check to fail');
      expect(e.outcome).toMatchObject({ status: 503, code: 'no_healthy_upstream' });
      expect(e.upstream?.backends[0]).toMatchObject({ upstream: 'down', verdict: 'no eligible endpoint', eligible: 0, whenAllUnhealthy: 'fail', url: null });
      expect(e.upstream?.backends[0]?.endpoints[0]).toMatchObject({ eligible: false, health: 'failing' });
      expect(await send('GET', '/down')).toBe(503);
    });

    it('a CORS preflight is explained for the method it asks about', async () => {
      const e = await explainLive('OPTIONS', '/public/x', { origin: 'https://app.test', 'access-control-request-method': 'GET' });
      // No route has a CORS policy here, so the preflight is an ordinary OPTIONS: 405.
      expect(e.outcome.status).toBe(405);
      expect(await send('OPTIONS', '/public/x', { origin: 'https://app.test', 'access-control-request-method': 'GET' })).toBe(405);
    });

    it('refuses what is not a request', async () => {
      const res = await request(`${gw.adminUrl}/explain?method=GET`);
      expect(res.statusCode).toBe(400);
      expect(((await res.body.json()) as { error: { message: string } }).error.message).toMatch(/path is required/);
      const bad = await explainLive('GET', '/a/%2e%2e/%2e%2e/etc');
      expect(bad.outcome).toMatchObject({ status: 400, code: 'bad_request' });
      expect(bad.match.result).toBe('bad-request');
    });
  });

  it('reads a shared Redis bucket where the gateway counts it, without counting', async () => {
    const redis = await startRedis();
    const shared = await startGateway({
      routes: [{ name: 'limited', path: '/limited', upstream: 'users', rate_limit: 3 }],
      upstreams: { users: { discovery: { type: 'Static', endpoints: [users.url] } } },
      middleware: { rate_limiting: { window: '60s', storage: { type: 'Redis', url: redis.url, timeout: '500ms', failure_policy: 'closed', key_prefix: 'explain:' } } },
    });
    try {
      const peek = async (): Promise<unknown> => {
        const res = await request(`${shared.adminUrl}/explain?method=GET&path=/limited&client=127.0.0.1`);
        return ((await res.body.json()) as Explanation).stages.find((s) => s.stage === 'rate-limit');
      };
      for (let i = 0; i < 2; i++) await (await request(`${shared.url}/limited`)).body.dump();
      expect(await peek()).toMatchObject({ result: 'pass', bucket: 'limited:60000:ip:127.0.0.1', used: 2, remaining: 1, store: 'redis' });
      expect(await peek()).toMatchObject({ used: 2 });
      // With Redis gone and failure_policy closed, the gateway refuses; explain says the same.
      await redis.kill();
      const e = await eventually(async () => {
        const res = await request(`${shared.adminUrl}/explain?method=GET&path=/limited&client=127.0.0.1`);
        const x = (await res.body.json()) as Explanation;
        return x.outcome.status === 503 ? x : undefined;
      }, 10_000, 'explain to see Redis gone');
      expect(e.outcome).toMatchObject({ code: 'route_unavailable' });
      const refused = await request(`${shared.url}/limited`);
      await refused.body.dump();
      expect(refused.statusCode).toBe(503);
    } finally {
      await shared.stop();
      await redis.stop();
    }
  });

  describe('switchyard-dataplane explain, offline from the same file', () => {
    it('200: exit 0, the route and the rewritten URL, no live state claimed', async () => {
      const { code, e } = await offlineJson(['GET', '/v2/items/7']);
      expect(code).toBe(0);
      expect(e.live).toBe(false);
      expect(e.route).toMatchObject({ id: 'rewritten' });
      expect(e.upstream?.backends[0]).toMatchObject({ verdict: 'ok', url: `${users.url}/internal/items/7` });
      expect(e.upstream?.backends[0]?.endpoints[0]).toMatchObject({ health: 'unknown', outlier: 'unknown' });
      const text = await explainOffline(['GET', '/v2/items/7']);
      expect(text.stdout).toContain(`→ ${users.url}/internal/items/7`);
      expect(text.stdout).toContain('offline');
    });

    it('404 with near misses, 405, 401: exit 1 and the same answers as the gateway', async () => {
      const notFound = await explainOffline(['GET', '/api/v1/userz/42']);
      expect(notFound.code).toBe(1);
      expect(notFound.stdout).toContain('→ 404 route_not_found');
      expect(notFound.stdout).toContain('segment 3 is "userz"; Template /api/v1/users/{id} needs "users"');
      const methods = await offlineJson(['DELETE', '/api/v1/users/42']);
      expect(methods).toMatchObject({ code: 1, e: { outcome: { status: 405 }, match: { allow: ['GET', 'HEAD', 'PUT'] } } });
      const anonymous = await offlineJson(['GET', '/api/v1/users/42']);
      expect(anonymous).toMatchObject({ code: 1, e: { outcome: { status: 401, code: 'unauthorized' } } });
    });

    it('403 names the missing role; the token is verified with the file\'s key and never printed', async () => {
      const r = await explainOffline(['GET', '/api/v1/admin/users', '-H', `Authorization: Bearer ${userToken}`]);
      expect(r.code).toBe(1);
      expect(r.stdout).toContain('→ 403 forbidden');
      expect(r.stdout).toContain('this route requires one of the roles: admin');
      expect(r.stdout + r.stderr).not.toContain(userToken.split('.')[2] as string);
      const forged = await offlineJson(['GET', '/api/v1/users/42', '-H', `authorization: Bearer ${userToken.slice(0, -4)}AAAA`]);
      expect(forged.e.outcome).toMatchObject({ status: 401 });
      const ok = await offlineJson(['GET', '/api/v1/users/42', '-H', `authorization: Bearer ${userToken}`]);
      expect(ok).toMatchObject({ code: 0, e: { outcome: { by: 'upstream' } } });
    });

    it('429 where the limit decides alone, and 503 for a route without an upstream', async () => {
      const limited = await offlineJson(['GET', '/blocked', '--client', '192.0.2.1']);
      expect(limited).toMatchObject({ code: 1, e: { outcome: { status: 429, code: 'rate_limited' } } });
      expect(await send('GET', '/blocked')).toBe(429);
      const fresh = await offlineJson(['GET', '/limited', '--client', '192.0.2.1']);
      expect(fresh.e.stages.find((s) => s.stage === 'rate-limit')).toMatchObject({ result: 'pass', used: 0 });
      const gone = await offlineJson(['GET', '/gone']);
      expect(gone).toMatchObject({ code: 1, e: { outcome: { status: 503, code: 'route_unavailable' } } });
      expect(await send('GET', '/gone')).toBe(503);
    });

    it('exit 2 for a usage error or a config the gateway would refuse', async () => {
      expect((await explainOffline(['GET'])).code).toBe(2);
      const r = await run(process.execPath, [path.join(ROOT, 'dataplane/bin/switchyard-dataplane.ts'), 'explain', '--config', path.join(ROOT, 'test/fixtures/invalid/route-bad-host.yaml'), 'GET', '/'], {}).catch((err: unknown) => err as { code: number; stderr: string });
      expect((r as { code: number }).code).toBe(2);
      expect((r as { stderr: string }).stderr).toContain('invalid configuration');
    });
  });
});
