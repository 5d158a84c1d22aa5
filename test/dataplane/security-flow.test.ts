/**
 * The seed's integration flow, end to end: examples/gateway.yaml in front of
 * the example auth service (HS256 tokens with a shared secret) and echo
 * services, all on 127.0.0.1.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { decodeJwt } from 'jose';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startAuthService, startEchoService, type ExampleService } from '../../examples/services.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';

type Json = Record<string, unknown>;

describe('the seed integration flow through the gateway', () => {
  const secret = randomBytes(32).toString('base64url');
  let services: ExampleService[];
  let gw: TestGateway;
  let config: Json;
  let env: NodeJS.ProcessEnv;

  const call = async (method: 'GET' | 'POST' | 'OPTIONS', path: string, options: { body?: Json; token?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; json: Json; headers: Record<string, string | string[] | undefined> }> => {
    const headers: Record<string, string> = { ...options.headers };
    if (options.body) headers['content-type'] = 'application/json';
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    const res = await request(`${gw.url}${path}`, { method, headers, body: options.body ? JSON.stringify(options.body) : undefined });
    const text = await res.body.text();
    return { status: res.statusCode, json: text ? (JSON.parse(text) as Json) : {}, headers: res.headers };
  };
  const login = async (username: string): Promise<string> => {
    const res = await call('POST', '/auth/login', { body: { username, password: 'password123' } });
    expect(res.status).toBe(200);
    return res.json.token as string;
  };
  /** A user of the test's own (registrations are limited per client: the tests here make four in all). */
  const newUser = async (username: string): Promise<string> => {
    const res = await call('POST', '/auth/register', { body: { username, password: 'password123', email: `${username}@example.com` } });
    expect(res.status).toBe(201);
    return login(username);
  };

  beforeAll(async () => {
    services = await Promise.all([
      startAuthService({ port: 0, secret }),
      startEchoService('user-service', 0),
      startEchoService('metrics-service', 0),
      startEchoService('orders-v1', 0),
      startEchoService('orders-v2', 0),
    ]);
    config = parse(readFileSync(path.join(import.meta.dirname, '../../examples/gateway.yaml'), 'utf8')) as Json;
    delete config.server;
    env = {
      JWT_SECRET: secret,
      AUTH_SERVICE_PORT: String(services[0]!.port),
      USER_SERVICE_PORT: String(services[1]!.port),
      METRICS_SERVICE_PORT: String(services[2]!.port),
      ORDERS_V1_PORT: String(services[3]!.port),
      ORDERS_V2_PORT: String(services[4]!.port),
    };
    gw = await startGateway(config, { env });
  });
  afterAll(async () => {
    await gw.stop();
    await Promise.all(services.map((s) => s.close()));
  });

  it('registers, logs in, and reaches a protected route as the user the token names', async () => {
    const register = await call('POST', '/auth/register', { body: { username: 'testuser', password: 'password123', email: 'test@example.com' } });
    expect(register.status).toBe(201);
    const token = await login('testuser');
    const me = await call('GET', '/api/v1/users/me', { token });
    expect(me.status).toBe(200);
    expect(me.json.service).toBe('user-service');
    expect(me.json.url).toBe('/api/v1/users/me');
    const user = me.json.user as { id: string; roles: string; permissions: string };
    expect(user.id).toBe(decodeJwt(token).sub);
    expect(user.roles).toBe('user');
    expect(user.permissions).toBe('users:read');
    expect((await call('GET', '/api/v1/metrics', { token })).status).toBe(200);
  });

  it('refuses the protected route without a token (401) and the admin route to a user (403)', async () => {
    const anonymous = await call('GET', '/api/v1/users/me');
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers['www-authenticate']).toBe('Bearer');
    const token = await newUser('plain-bob');
    const admin = await call('GET', '/api/v1/admin/users', { token });
    expect(admin.status).toBe(403);
    expect((admin.json.error as { code: string }).code).toBe('forbidden');
  });

  it('lets an admin user through to the admin route', async () => {
    const token = await newUser('admin-alice');
    const admin = await call('GET', '/api/v1/admin/users', { token });
    expect(admin.status).toBe(200);
    expect((admin.json.user as { roles: string }).roles).toBe('user,admin');
  });

  it("sends the seed's canary as written: canary: true always to v2, the rest 90/10", async () => {
    const token = await newUser('canary-carol');
    const landed = async (headers: Record<string, string>, n: number): Promise<Record<string, number>> => {
      const counts: Record<string, number> = {};
      for (let i = 0; i < n; i++) {
        const res = await call('GET', `/api/v1/orders/${i}`, { token, headers });
        expect(res.status).toBe(200);
        const service = res.json.service as string;
        counts[service] = (counts[service] ?? 0) + 1;
      }
      return counts;
    };
    expect(await landed({ canary: 'true' }, 30)).toEqual({ 'orders-v2': 30 });
    expect(await landed({}, 100)).toEqual({ 'orders-v1': 90, 'orders-v2': 10 });
    // Only the exact value opts in.
    expect(await landed({ canary: 'false' }, 10)).toMatchObject({ 'orders-v1': 9, 'orders-v2': 1 });
    expect((await call('GET', '/api/v1/orders/1', { headers: { canary: 'true' } })).status).toBe(401);
  });

  it('answers CORS preflights with the seed defaults', async () => {
    const res = await call('OPTIONS', '/api/v1/users/me', { headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' } });
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect(res.headers['access-control-max-age']).toBe('3600');
  });

  it('limits registrations to the seed\'s 5 per minute', async () => {
    // A gateway of its own, whose limiter has counted nothing yet.
    const own = await startGateway(config, { env });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        const res = await request(`${own.url}/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: `spam-${i}`, password: 'password123' }) });
        await res.body.dump();
        statuses.push(res.statusCode);
      }
      expect(statuses).toEqual([201, 201, 201, 201, 201, 429]);
    } finally {
      await own.stop();
    }
  });
});
