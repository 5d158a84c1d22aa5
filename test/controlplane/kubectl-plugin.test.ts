/**
 * `kubectl switchyard` against a real API server: the operator serves the
 * aggregated API observe.switchyard.dev (an APIService the API server proxies
 * to through its front proxy), two data planes subscribed to it answer
 * explanations from their live state, and the plugin runs as a separate
 * process with the credentials of a ServiceAccount bound to the documented
 * least-privilege role, in namespace shop only. Each outcome (a route that
 * serves, 404 with near misses, 405, 401, 403 with the missing role, 429, 503
 * with no eligible endpoint) is predicted and then checked with the request
 * itself.
 *
 * The APIService names an ExternalName Service for localhost: the API server
 * refuses to proxy to loopback Endpoints, and the operator here runs on
 * 127.0.0.1. In a cluster the chart points it at the operator's Service.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { silentLogger } from '../../dataplane/src/observability/logger.ts';
import type { Explanation } from '../../dataplane/src/observability/explain-format.ts';
import { readFrontProxyTrust } from '../../operator/src/kube/front-proxy.ts';
import { ObserveServer } from '../../operator/src/observe/api.ts';
import type { Operator } from '../../operator/src/operator.ts';
import { startControlPlane, type ControlPlane } from '../support/control-plane.ts';
import { eventually, installCrds, kubeFor, waitCondition, type Kube } from '../support/kube.ts';
import { startDataplane, startOperator, type TestDataplane } from '../support/operator.ts';
import { closedPort, echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');
const PLUGIN = path.join(ROOT, 'kubectl/bin/kubectl-switchyard.ts');
const SECRET = 'kubectl-plugin-test-secret-0123456789-abcdef';
const IDENTITY = 'operator-test';

async function token(subject: string, roles: string[]): Promise<string> {
  return new SignJWT({ roles, permissions: [] }).setProtectedHeader({ alg: 'HS256' }).setSubject(subject).setIssuer('auth-service').setAudience('api-gateway').setExpirationTime('10m').sign(new TextEncoder().encode(SECRET));
}

describe('kubectl switchyard', () => {
  let cp: ControlPlane;
  let kube: Kube;
  let op: Operator;
  let observe: ObserveServer;
  let observePort: number;
  let users: TestUpstream;
  const dataplanes: TestDataplane[] = [];
  let viewerKubeconfig: string;
  let userToken: string;

  /** Runs the plugin as a user would, with the viewer's kubeconfig. */
  const plugin = async (args: string[], kubeconfig = viewerKubeconfig): Promise<{ code: number; stdout: string; stderr: string }> => {
    try {
      const { stdout, stderr } = await run(process.execPath, [PLUGIN, '--kubeconfig', kubeconfig, ...args]);
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code: number; stdout: string; stderr: string };
      return { code: e.code, stdout: e.stdout, stderr: e.stderr };
    }
  };
  const explain = async (args: string[]): Promise<{ code: number; e: Explanation }> => {
    const r = await plugin(['explain', '-n', 'shop', '-o', 'json', ...args]);
    if (r.stdout === '') throw new Error(`kubectl switchyard explain ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return { code: r.code, e: JSON.parse(r.stdout) as Explanation };
  };
  const send = async (method: string, target: string, headers: Record<string, string> = {}): Promise<number> => {
    const res = await request(`${(dataplanes[0] as TestDataplane).url}${target}`, { method: method as 'GET', headers });
    await res.body.dump();
    return res.statusCode;
  };

  beforeAll(async () => {
    cp = await startControlPlane();
    kube = kubeFor(cp);
    await installCrds(kube, 'shop', 'other', 'switchyard-system');
    users = await startUpstream(echo('users'));
    op = await startOperator(kube, IDENTITY);

    // The serving certificate for the name the API server checks: <service>.<namespace>.svc.
    const dir = mkdtempSync(path.join(tmpdir(), 'switchyard-observe-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=switchyard-observe', '-addext', 'subjectAltName=DNS:switchyard-observe.switchyard-system.svc', '-addext', 'basicConstraints=critical,CA:TRUE', '-keyout', path.join(dir, 'tls.key'), '-out', path.join(dir, 'tls.crt')], { stdio: 'ignore' });
    const cert = readFileSync(path.join(dir, 'tls.crt'), 'utf8');
    const trust = await readFrontProxyTrust(kube.kc);
    if (!trust) throw new Error('the test control plane has no front proxy (requestheader) configured');
    observe = new ObserveServer({ source: { get table() { return op.table; }, get isLeader() { return op.isLeader; }, identity: IDENTITY, server: op.server }, tls: { cert, key: readFileSync(path.join(dir, 'tls.key')) }, trust, log: silentLogger() });
    observePort = await observe.listen(0, '127.0.0.1');
    const port = observePort;
    await kube.apply(stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'switchyard-observe', namespace: 'switchyard-system' }, spec: { type: 'ExternalName', externalName: 'localhost' } }));
    await kube.apply(
      stringify({
        apiVersion: 'apiregistration.k8s.io/v1',
        kind: 'APIService',
        metadata: { name: 'v1alpha1.observe.switchyard.dev' },
        spec: { group: 'observe.switchyard.dev', version: 'v1alpha1', service: { name: 'switchyard-observe', namespace: 'switchyard-system', port }, caBundle: Buffer.from(cert).toString('base64'), groupPriorityMinimum: 1000, versionPriority: 15 },
      }),
    );
    await kube.kubectl(['wait', '--for=condition=Available', '--timeout=60s', 'apiservice/v1alpha1.observe.switchyard.dev']);

    const downPort = await closedPort();
    await kube.apply(`
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: users, namespace: shop }
spec: { static: { endpoints: ["${users.url}"] } }
---
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: down, namespace: shop }
spec:
  static: { endpoints: ["http://127.0.0.1:${downPort}"] }
  healthCheck: { path: /health, interval: 200ms, timeout: 100ms, unhealthyThreshold: 1, healthyThreshold: 1 }
  whenAllUnhealthy: fail
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: user, namespace: shop }
spec: { path: { type: Template, value: "/api/v1/users/{id}" }, methods: [GET, PUT], upstream: users, auth: { required: true, roles: [user] } }
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: admin, namespace: shop }
spec: { path: { value: /api/v1/admin/users }, methods: [GET], upstream: users, auth: { required: true, roles: [admin] } }
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: limited, namespace: shop }
spec: { path: { value: /limited }, upstream: users, rateLimit: { requests: 2, window: 1m } }
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: down, namespace: shop }
spec: { path: { value: /down }, upstream: down }
---
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: hidden, namespace: other }
spec: { static: { endpoints: ["${users.url}"] } }
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: secret-admin, namespace: other }
spec: { path: { type: Prefix, value: /internal }, upstream: hidden }
`);
    const bootstrap = `auth: { jwt: { secret: "${SECRET}", algorithm: HS256, issuer: auth-service, audience: api-gateway } }\nmiddleware: { rate_limiting: { window: 60s, storage: { type: Memory } } }\nobservability: { logging: { access_log: false } }\n`;
    for (const id of ['dp-1', 'dp-2']) dataplanes.push(await startDataplane([`http://127.0.0.1:${op.port}`], id, { bootstrap }));
    for (const name of ['user', 'admin', 'limited', 'down']) await waitCondition(kube, 'gatewayroutes', 'shop', name, 'Programmed', 'True');

    // The documented least privilege, for a ServiceAccount in shop: explain and list routes there, and read the fleet.
    await kube.apply(readFileSync(path.join(ROOT, 'examples/rbac/kubectl-switchyard.yaml'), 'utf8').replaceAll('NAMESPACE', 'shop'));
    await kube.kubectl(['create', 'serviceaccount', 'viewer', '-n', 'shop']);
    await kube.kubectl(['create', 'rolebinding', 'viewer', '-n', 'shop', '--role=switchyard-viewer', '--serviceaccount=shop:viewer']);
    await kube.kubectl(['create', 'clusterrolebinding', 'viewer-status', '--clusterrole=switchyard-status', '--serviceaccount=shop:viewer']);
    const sa = (await kube.kubectl(['create', 'token', 'viewer', '-n', 'shop', '--duration=1h'])).trim();
    const admin = JSON.parse(await kube.kubectl(['config', 'view', '--raw', '-o', 'json'])) as { clusters: Array<{ cluster: Record<string, unknown> }> };
    viewerKubeconfig = path.join(dir, 'viewer.kubeconfig');
    writeFileSync(viewerKubeconfig, stringify({ apiVersion: 'v1', kind: 'Config', clusters: [{ name: 'test', cluster: admin.clusters[0]?.cluster }], users: [{ name: 'viewer', user: { token: sa } }], contexts: [{ name: 'viewer', context: { cluster: 'test', user: 'viewer', namespace: 'shop' } }], 'current-context': 'viewer' }));
    userToken = await token('alice', ['user']);
  }, 240_000);

  afterAll(async () => {
    for (const d of dataplanes) await d.stop();
    await observe?.close();
    await op?.stop();
    await users?.close();
    await cp?.stop();
  });

  it('status: the leader, the table version and each data plane serving it', async () => {
    const r = await eventually(async () => {
      const x = await plugin(['status']);
      return x.code === 0 && /2 connected, 2 serving it/.test(x.stdout) ? x : undefined;
    }, 30_000, 'both data planes to serve the current table');
    expect(r.stdout).toContain(`operator leader   ${IDENTITY}`);
    expect(r.stdout).toContain(`table version     ${op.table?.version}`);
    expect(r.stdout).toMatch(/dp-1\s+\S+\s+yes/);
    expect(r.stdout).toMatch(/dp-2\s+\S+\s+yes/);
  });

  it('routes: the effective table of the namespace, each route with its GatewayRoute', async () => {
    const r = await plugin(['routes']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`table ${op.table?.version}: 4 routes in shop`);
    expect(r.stdout).toMatch(/shop\s+GatewayRoute\/user\s+shop\/user\s+GET,PUT Template \/api\/v1\/users\/\{id\}\s+shop\/users\s+role:user\s+-/);
    expect(r.stdout).toMatch(/shop\s+GatewayRoute\/limited\s+shop\/limited\s+\* Exact \/limited\s+shop\/users\s+public\s+2\/60s/);
    expect(r.stdout).not.toContain('secret-admin');
    // Other namespaces are the RBAC's to refuse.
    const other = await plugin(['routes', '-n', 'other']);
    expect(other.code).toBe(3);
    expect(other.stderr).toContain('forbidden');
    const all = await plugin(['routes', '-A']);
    expect(all.code).toBe(3);
  });

  it('explain 200: the route, its GatewayRoute and the upstream URL, answered by a data plane', async () => {
    const { code, e } = await explain(['GET', '/api/v1/users/42', '-H', `Authorization: Bearer ${userToken}`]);
    expect(code).toBe(0);
    expect(e.route).toMatchObject({ id: 'shop/user', source: { kind: 'GatewayRoute', namespace: 'shop', name: 'user' } });
    expect(e.outcome).toMatchObject({ by: 'upstream', status: null });
    expect(e.upstream?.backends[0]).toMatchObject({ url: `${users.url}/api/v1/users/42`, verdict: 'ok' });
    expect(e.answeredBy).toMatch(/^data plane dp-[12]$/);
    expect(await send('GET', '/api/v1/users/42', { authorization: `Bearer ${userToken}` })).toBe(200);
  });

  it('explain 404 with near misses, and routes of other namespaces only as placeholders', async () => {
    const { code, e } = await explain(['GET', '/api/v1/userz/42']);
    expect(code).toBe(1);
    expect(e.outcome).toMatchObject({ status: 404, code: 'route_not_found' });
    expect(e.match.nearMisses.find((n) => 'id' in n.route && n.route.id === 'shop/user')?.failed).toEqual([{ what: 'path', detail: 'segment 3 is "userz"; Template /api/v1/users/{id} needs "users"' }]);
    const hidden = await explain(['GET', '/internal/x']);
    expect(hidden.e.route).toEqual({ hidden: true });
    expect(JSON.stringify(hidden.e)).not.toContain('secret-admin');
    expect(hidden.e.outcome.message).toBe('a route in another namespace serves this request');
    expect(await send('GET', '/api/v1/userz/42')).toBe(404);
  });

  it('explain 405, 401 and 403 with the missing role; the token is never printed', async () => {
    const methods = await explain(['DELETE', '/api/v1/users/42']);
    expect(methods.e.outcome.status).toBe(405);
    expect(methods.e.match.allow).toEqual(['GET', 'HEAD', 'PUT']);
    expect(await send('DELETE', '/api/v1/users/42')).toBe(405);
    const anonymous = await explain(['GET', '/api/v1/users/42']);
    expect(anonymous.e.outcome).toMatchObject({ status: 401, code: 'unauthorized' });
    expect(await send('GET', '/api/v1/users/42')).toBe(401);
    const text = await plugin(['explain', 'GET', '/api/v1/admin/users', '-H', `authorization: Bearer ${userToken}`]);
    expect(text.code).toBe(1);
    expect(text.stdout).toContain('→ 403 forbidden');
    expect(text.stdout).toContain('this route requires one of the roles: admin');
    expect(text.stdout + text.stderr).not.toContain(userToken.split('.')[2] as string);
    const json = await explain(['GET', '/api/v1/admin/users', '-H', `authorization: Bearer ${userToken}`]);
    expect(json.e.stages.find((s) => s.stage === 'authorize')).toMatchObject({ result: 'fail', missingRoles: ['admin'] });
    expect(await send('GET', '/api/v1/admin/users', { authorization: `Bearer ${userToken}` })).toBe(403);
  });

  it('explain 429 from the data plane\'s own counter', async () => {
    expect(await send('GET', '/limited')).toBe(200);
    expect(await send('GET', '/limited')).toBe(200);
    const { code, e } = await explain(['GET', '/limited', '--client', '127.0.0.1', '--dataplane', 'dp-1']);
    expect(code).toBe(1);
    expect(e.answeredBy).toBe('data plane dp-1');
    expect(e.outcome).toMatchObject({ status: 429, code: 'rate_limited' });
    expect(e.stages.find((s) => s.stage === 'rate-limit')).toMatchObject({ result: 'fail', used: 2, bucket: 'shop%2Flimited:60000:ip:127.0.0.1' });
    expect(await send('GET', '/limited')).toBe(429);
    // The other data plane counts on its own.
    const other = await explain(['GET', '/limited', '--client', '127.0.0.1', '--dataplane', 'dp-2']);
    expect(other.e.stages.find((s) => s.stage === 'rate-limit')).toMatchObject({ result: 'pass', used: 0 });
  });

  it('explain 503: no eligible endpoint, with the endpoint\'s failing health check', async () => {
    const e = await eventually(async () => {
      const x = await explain(['GET', '/down', '--dataplane', 'dp-1']);
      return x.e.outcome.status === 503 ? x.e : undefined;
    }, 15_000, 'the down upstream\'s health check to fail');
    expect(e.outcome.code).toBe('no_healthy_upstream');
    expect(e.upstream?.backends[0]?.endpoints[0]).toMatchObject({ eligible: false, health: 'failing' });
    expect(await send('GET', '/down')).toBe(503);
  });

  it('refuses what RBAC does not allow, and requests that do not come through the API server', async () => {
    const elsewhere = await plugin(['explain', '-n', 'other', 'GET', '/']);
    expect(elsewhere.code).toBe(3);
    expect(elsewhere.stderr).toContain('forbidden');
    const insecure = new Agent({ connect: { rejectUnauthorized: false } });
    const direct = await request(`https://127.0.0.1:${observePort}/apis/observe.switchyard.dev/v1alpha1/dataplanes`, { dispatcher: insecure });
    expect(direct.statusCode).toBe(401);
    await direct.body.dump();
    await insecure.close();
  });
});
