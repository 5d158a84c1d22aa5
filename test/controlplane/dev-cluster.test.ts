/**
 * `hack/dev-cluster.sh up` as README's "Try the operator without a cluster"
 * runs it (the test control plane, the operator serving observe.switchyard.dev
 * through the API server's aggregation layer, two data planes on :8080 and
 * :8090, the example services and routes), and `kubectl switchyard` against
 * it: status, routes, and explain for each outcome (a route that serves, 404
 * with near misses, 405, 401, 403 with the missing role, 429, 503 with no
 * eligible endpoint), each checked with the request itself.
 *
 * The dev cluster uses fixed ports and .cache/control-plane: the test refuses
 * to start while one runs (stop it with hack/dev-cluster.sh down).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../support/kube.ts';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const DEV = path.join(ROOT, 'hack/dev-cluster.sh');
const env = { ...process.env, KUBECONFIG: path.join(ROOT, '.cache/control-plane/kubeconfig') };
const DP1 = 'http://127.0.0.1:8080';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function sh(file: string, args: string[], input?: string): Promise<Run> {
  try {
    const child = run(file, args, { env, cwd: ROOT, timeout: 300_000 });
    if (input !== undefined) {
      child.child.stdin?.end(input);
    }
    const { stdout, stderr } = await child;
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** kubectl switchyard, as the dev cluster's own instructions run it. */
const plugin = (args: string[]): Promise<Run> => sh(process.execPath, [path.join(ROOT, 'kubectl/bin/kubectl-switchyard.ts'), ...args]);

async function send(method: string, target: string, options: { headers?: Record<string, string>; body?: unknown } = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }> {
  const res = await request(`${DP1}${target}`, {
    method: method as 'GET',
    headers: { ...(options.body !== undefined && { 'content-type': 'application/json' }), ...options.headers },
    ...(options.body !== undefined && { body: JSON.stringify(options.body) }),
  });
  return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
}

describe('kubectl switchyard against hack/dev-cluster.sh', () => {
  let started = false;
  let token = '';
  let signature = '';

  beforeAll(async () => {
    const status = await sh(DEV, ['status']);
    if (/: running/.test(status.stdout)) throw new Error(`a dev cluster is running (it uses fixed ports and .cache/control-plane); stop it with hack/dev-cluster.sh down:\n${status.stdout}`);
    started = true;
    const up = await sh(DEV, ['up']);
    if (up.code !== 0) throw new Error(`hack/dev-cluster.sh up failed (${up.code}):\n${up.stdout}${up.stderr}`);
    expect(up.stdout).toContain('dev-cluster: up');
    const user = { username: 'dev-alice', password: 'password123' };
    expect((await send('POST', '/auth/register', { body: user })).status).toBe(201);
    const login = await send('POST', '/auth/login', { body: user });
    expect(login.status).toBe(200);
    token = (JSON.parse(login.text) as { token: string }).token;
    signature = token.split('.')[2] as string;
  }, 360_000);

  afterAll(async () => {
    if (started) await sh(DEV, ['down']);
  }, 120_000);

  it('status: the operator leads and both data planes serve its table', async () => {
    const r = await plugin(['status']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^operator leader\s+dev-operator$/m);
    expect(r.stdout).toMatch(/^data planes\s+2 connected, 2 serving it$/m);
  });

  it('routes: the example routes, each with its GatewayRoute', async () => {
    const r = await plugin(['routes', '-n', 'shop']);
    expect(r.code, r.stderr).toBe(0);
    for (const name of ['auth-login', 'auth-register', 'user', 'admin-users']) expect(r.stdout).toMatch(new RegExp(`GatewayRoute/${name}\\s+shop/${name}\\s`));
  });

  it('explain 200: the route and the URL the upstream gets', async () => {
    const r = await plugin(['explain', '-n', 'shop', 'GET', '/api/v1/users/42', '-H', `authorization: Bearer ${token}`]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('GET /api/v1/users/42 on (no host) (http) → the upstream answers');
    expect(r.stdout).toMatch(/^route\s+shop\/user \(GatewayRoute shop\/user\)$/m);
    expect(r.stdout).toContain('→ http://127.0.0.1:3002/api/v1/users/42');
    expect(r.stdout + r.stderr).not.toContain(signature);
    expect((await send('GET', '/api/v1/users/42', { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
  });

  it('explain 404 with near misses, 405 and 401', async () => {
    const notFound = await plugin(['explain', '-n', 'shop', 'GET', '/api/v1/userz/42']);
    expect(notFound.code).toBe(1);
    expect(notFound.stdout).toContain('→ 404 route_not_found');
    expect(notFound.stdout).toContain('segment 3 is "userz"; Template /api/v1/users/{id} needs "users"');
    expect((await send('GET', '/api/v1/userz/42')).status).toBe(404);

    const method = await plugin(['explain', '-n', 'shop', 'PATCH', '/api/v1/users/42']);
    expect(method.code).toBe(1);
    expect(method.stdout).toContain('→ 405 method_not_allowed');
    expect(method.stdout).toContain('PATCH is not allowed on /api/v1/users/42; allowed: DELETE, GET, HEAD, PUT');
    expect((await send('PATCH', '/api/v1/users/42')).status).toBe(405);

    const anonymous = await plugin(['explain', '-n', 'shop', 'GET', '/api/v1/users/42']);
    expect(anonymous.code).toBe(1);
    expect(anonymous.stdout).toContain('→ 401 unauthorized');
    expect((await send('GET', '/api/v1/users/42')).status).toBe(401);
  });

  it('explain 403 names the role the token lacks, and never prints the token', async () => {
    const r = await plugin(['explain', '-n', 'shop', 'GET', '/api/v1/admin/users', '-H', `authorization: Bearer ${token}`]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('→ 403 forbidden');
    expect(r.stdout).toContain('this route requires one of the roles: admin');
    expect(r.stdout + r.stderr).not.toContain(signature);
    expect((await send('GET', '/api/v1/admin/users', { headers: { authorization: `Bearer ${token}` } })).status).toBe(403);
  });

  it("explain 429 from data plane 1's count of registrations (5 a minute per address)", async () => {
    // Register until refused with at least 3 s to wait: the count stays over the limit while explain asks.
    let refused = false;
    for (let i = 0; i < 20 && !refused; i++) {
      const r = await send('POST', '/auth/register', { body: { username: `dev-spam-${i}`, password: 'password123' } });
      if (r.status === 429) {
        const wait = Number(r.headers['retry-after']);
        if (wait >= 3) refused = true;
        else await new Promise((resolve) => setTimeout(resolve, wait * 1000));
      } else expect(r.status).toBe(201);
    }
    expect(refused, 'a registration refused with Retry-After of 3 s or more').toBe(true);
    const r = await plugin(['explain', '-n', 'shop', '--dataplane', 'dev-dataplane-1', '--client', '127.0.0.1', 'POST', '/auth/register']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('→ 429 rate_limited');
    expect(r.stdout).toMatch(/rate-limit\s+fail\s+.* of 5 per 60s used in bucket shop%2Fauth-register:60000:ip:127\.0\.0\.1 \(memory\); the next request is refused/);
  });

  it('explain 503: no eligible endpoint, with the failing health check', async () => {
    const apply = await sh(path.join(ROOT, 'hack/kubectl.sh'), ['apply', '-f', '-'], `apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: down, namespace: shop }
spec:
  static: { endpoints: ["http://127.0.0.1:1"] }
  healthCheck: { path: /health, interval: 200ms, timeout: 100ms, unhealthyThreshold: 1, healthyThreshold: 1 }
  whenAllUnhealthy: fail
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: down, namespace: shop }
spec: { path: { value: /down }, upstream: down }
`);
    expect(apply.code, apply.stderr).toBe(0);
    const r = await eventually(async () => {
      const x = await plugin(['explain', '-n', 'shop', '--dataplane', 'dev-dataplane-1', 'GET', '/down']);
      return x.stdout.includes('→ 503 no_healthy_upstream') ? x : undefined;
    }, 30_000, 'the route served and its only endpoint failing its health check');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('shop/down: no eligible endpoint; none of 1 endpoints is healthy and when_all_unhealthy is fail: 503 no_healthy_upstream');
    expect(r.stdout).toMatch(/http:\/\/127\.0\.0\.1:1\s+not eligible\s+health failing/);
    expect((await send('GET', '/down')).status).toBe(503);
  });
});
