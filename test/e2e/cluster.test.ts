/**
 * End to end: a real API server and controller manager, the operator and two
 * data plane processes, and "pods" that are real HTTP servers in a network
 * namespace this test creates (EndpointSlices refuse loopback addresses). The
 * test acts as the kubelet: it starts each pod's process and marks the Pod
 * Ready with its address; the real EndpointSlice controller does the rest.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { startControlPlane, type ControlPlane } from '../support/control-plane.ts';
import { eventually, kubeFor, setPodReady, waitCondition, type Kube, installCrds } from '../support/kube.ts';
import { createPodNetwork, type PodNetwork } from '../support/netns.ts';
import { freePort, startProcess, tempFile, type Proc } from '../support/processes.ts';

const NS = 'shop';
const TOKEN = 'e2e-token-0123456789abcdef';
const JWT_SECRET = 'e2e-jwt-secret-0123456789abcdef0123';

describe('end to end', () => {
  let cp: ControlPlane;
  let kube: Kube;
  let net: PodNetwork;
  let operator: Proc;
  const dataplanes: { proc: Proc; url: string }[] = [];
  const agent = new Agent({ connections: 8 });

  const podYaml = (name: string, app: string, port: number): string => `
apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: ${NS}, labels: { app: ${app} } }
spec: { nodeName: node-1, containers: [{ name: app, image: example.invalid/${app}, ports: [{ containerPort: ${port} }] }] }
`;

  /** Acting as the kubelet: the pod's process runs, then its status says Ready with its address. */
  const setReady = (name: string, address: string, ready: boolean): Promise<void> => setPodReady(kube, NS, name, address, ready);

  /** The pods' processes, by pod name: the test is their kubelet. */
  const podProcs = new Map<string, Proc>();

  const startPod = async (kind: 'auth' | 'echo', name: string, app: string, port: number): Promise<string> => {
    const address = net.allocate();
    podProcs.set(name, await net.startPod(kind, name, address, port, JWT_SECRET));
    await kube.apply(podYaml(name, app, port));
    await setReady(name, address, true);
    return address;
  };

  const call = async (base: string, path: string, init: { method?: string; body?: string; token?: string } = {}): Promise<{ status: number; body: string; servedBy: string | undefined }> => {
    const res = await request(`${base}${path}`, {
      dispatcher: agent,
      method: (init.method ?? 'GET') as 'GET',
      body: init.body,
      headers: { 'content-type': 'application/json', ...(init.token ? { authorization: `Bearer ${init.token}` } : {}) },
    });
    const body = await res.body.text();
    const servedBy = res.headers['x-served-by'];
    return { status: res.statusCode, body, servedBy: typeof servedBy === 'string' ? servedBy : undefined };
  };

  beforeAll(async () => {
    net = createPodNetwork();
    cp = await startControlPlane();
    kube = kubeFor(cp);
    await installCrds(kube);
    await kube.apply('apiVersion: v1\nkind: Node\nmetadata: { name: node-1 }\n');
    for (const f of readdirSync('examples/kubernetes').filter((n) => n.endsWith('.yaml')).sort()) await kube.apply(readFileSync(`examples/kubernetes/${f}`, 'utf8'));

    const tokenFile = tempFile('token', TOKEN);
    const opPort = await freePort();
    operator = startProcess('operator/bin/switchyard-operator.ts', ['--kubeconfig', cp.kubeconfigPath, '--listen', `127.0.0.1:${opPort}`, '--metrics', 'off', '--token-file', tokenFile, '--lease-namespace', 'default', '--identity', 'e2e-operator']);
    await operator.waitForLog('"event":"listening"');
    const bootstrap = tempFile(
      'gateway.yaml',
      `server: { bind_address: 127.0.0.1 }
auth:
  jwt: { secret: "\${JWT_SECRET}", algorithm: HS256, issuer: auth-service, audience: api-gateway }
observability: { logging: { access_log: false } }
`,
    );
    for (const id of ['dp-1', 'dp-2']) {
      const port = await freePort();
      const proc = startProcess('dataplane/bin/switchyard-dataplane.ts', ['--config', bootstrap, '--operator', `http://127.0.0.1:${opPort}`, '--token-file', tokenFile, '--dataplane-id', id], {
        JWT_SECRET,
        GATEWAY_SERVER_HTTP_PORT: String(port),
        GATEWAY_SERVER_ADMIN_PORT: '0',
        GATEWAY_SERVER_METRICS_PORT: '0',
      });
      await proc.waitForLog('"event":"listening"');
      dataplanes.push({ proc, url: `http://127.0.0.1:${port}` });
    }

    // The example services as pods: Services with selectors, one pod each.
    for (const [svc, port] of [['auth-service', 3001], ['user-service', 3002], ['metrics-service', 3003]] as const) {
      await kube.apply(`
apiVersion: v1
kind: Service
metadata: { name: ${svc}, namespace: ${NS} }
spec: { selector: { app: ${svc} }, ports: [{ name: http, port: ${port}, targetPort: ${port} }] }
`);
      await startPod(svc === 'auth-service' ? 'auth' : 'echo', `${svc}-0`, svc, port);
    }
  }, 300_000);

  afterAll(async () => {
    for (const d of dataplanes) await d.proc.kill('SIGTERM');
    await operator?.kill('SIGTERM');
    await agent.close();
    await net?.destroy();
    await cp?.stop();
  });

  it('serves the example routes through both data planes, and kubectl shows them live', async () => {
    const routes = ['auth-login', 'auth-register', 'users', 'user', 'user-profile', 'admin-users', 'metrics'];
    for (const r of routes) {
      await waitCondition(kube, 'gatewayroutes', NS, r, 'Programmed', 'True', undefined, 60_000);
      await waitCondition(kube, 'gatewayroutes', NS, r, 'Accepted', 'True');
      await waitCondition(kube, 'gatewayroutes', NS, r, 'ResolvedRefs', 'True');
    }
    const table = await kube.kubectl(['get', 'gwr', '-n', NS]);
    for (const r of routes) expect(table).toMatch(new RegExp(`\\n${r}\\s+\\S+\\s+\\S+\\s+True\\s+True`));

    for (const [i, dp] of dataplanes.entries()) {
      const user = `alice${i}`;
      const reg = await eventually(async () => {
        const r = await call(dp.url, '/auth/register', { method: 'POST', body: JSON.stringify({ username: user, password: 'password123', email: `${user}@example.com` }) });
        return r.status === 201 ? r : undefined;
      }, 60_000, `register through ${dp.url}`);
      expect(JSON.parse(reg.body)).toMatchObject({ username: user });
      const login = await call(dp.url, '/auth/login', { method: 'POST', body: JSON.stringify({ username: user, password: 'password123' }) });
      expect(login.status).toBe(200);
      const token = (JSON.parse(login.body) as { token: string }).token;
      const me = await eventually(async () => {
        const r = await call(dp.url, '/api/v1/users/me', { token });
        return r.status === 200 ? r : undefined;
      }, 60_000, 'the user service through the gateway');
      expect(me.servedBy).toBe('user-service-0');
      const echoed = JSON.parse(me.body) as { url: string; user: { id: string; roles: string } };
      expect(echoed.url).toBe('/api/v1/users/me');
      expect(echoed.user.roles).toBe('user');
      // The subject of the token the auth service issued, as the gateway verified it.
      expect(echoed.user.id).toBe(decodeJwt(token).sub);
      expect((await call(dp.url, '/api/v1/users/me')).status).toBe(401);
      expect((await call(dp.url, '/api/v1/admin/users', { token })).status).toBe(403);
      const metrics = await call(dp.url, '/api/v1/metrics', { token });
      expect(metrics.status).toBe(200);
      expect(metrics.servedBy).toBe('metrics-service-0');
    }
  });

  it('follows pods as they scale up, become unready and go away, without failing requests', async () => {
    await kube.apply(`
apiVersion: v1
kind: Service
metadata: { name: catalog, namespace: ${NS} }
spec: { selector: { app: catalog }, ports: [{ name: http, port: 80, targetPort: 8080 }] }
---
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: catalog, namespace: ${NS} }
spec: { service: { name: catalog, port: http } }
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: catalog, namespace: ${NS} }
spec: { path: { type: Prefix, value: /catalog }, upstream: catalog }
`);
    await startPod('echo', 'catalog-0', 'catalog', 8080);
    const dp = dataplanes[0] as { url: string };
    await eventually(async () => ((await call(dp.url, '/catalog/items')).servedBy === 'catalog-0' ? true : undefined), 60_000, 'the first catalog pod');

    // Steady load through every phase: scale up, a pod turning unready, a pod deleted.
    const served = new Map<string, number>();
    const failures: string[] = [];
    let sent = 0;
    let running = true;
    const worker = async (): Promise<void> => {
      while (running) {
        sent++;
        try {
          const r = await call(dp.url, '/catalog/items');
          if (r.status === 200) served.set(r.servedBy ?? '?', (served.get(r.servedBy ?? '?') ?? 0) + 1);
          else failures.push(`${r.status} ${r.body}`);
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    };
    /** Waits until the pods serving the last 60 requests are exactly `pods`. */
    const servingExactly = (pods: string[], what: string): Promise<true> =>
      eventually(
        async () => {
          served.clear();
          await eventually(() => ([...served.values()].reduce((n, c) => n + c, 0) >= 60 ? true : undefined), 30_000, '60 answers');
          return [...served.keys()].sort().join() === pods.join() ? true : undefined;
        },
        60_000,
        what,
      );
    const load = Promise.all([worker(), worker(), worker(), worker()]);
    try {
      await startPod('echo', 'catalog-1', 'catalog', 8080);
      await startPod('echo', 'catalog-2', 'catalog', 8080);
      await servingExactly(['catalog-0', 'catalog-1', 'catalog-2'], 'all three pods receiving traffic');
      console.log(`scale-up: requests per pod ${JSON.stringify(Object.fromEntries(served))}`);

      // One pod turns unready (its process still runs): it leaves the rotation.
      const address1 = JSON.parse(await kube.kubectl(['get', 'pod', 'catalog-1', '-n', NS, '-o', 'json'])).status.podIP as string;
      await setReady('catalog-1', address1, false);
      await servingExactly(['catalog-0', 'catalog-2'], 'catalog-1 out of rotation');

      // One pod is deleted, as a kubelet handles it: the Pod turns Terminating, its
      // endpoint stops being ready, and only once no traffic goes to it does its process stop.
      await kube.kubectl(['delete', 'pod', 'catalog-2', '-n', NS, '--wait=false']);
      await servingExactly(['catalog-0'], 'catalog-2 out of rotation');
      await podProcs.get('catalog-2')?.kill('SIGTERM');
      await kube.kubectl(['delete', 'pod', 'catalog-2', '-n', NS, '--grace-period=0', '--force']);
      await servingExactly(['catalog-0'], 'catalog-0 alone');
    } finally {
      running = false;
      await load;
    }
    console.log(`scale up, unready, delete: ${sent} requests sent, ${failures.length} failed`);
    expect(failures).toEqual([]);

    // Scale to zero: 503 from the gateway.
    await kube.kubectl(['delete', 'pod', 'catalog-0', 'catalog-1', '-n', NS, '--grace-period=0', '--force']);
    await eventually(async () => {
      const r = await call(dp.url, '/catalog/items');
      return r.status === 503 && r.body.includes('no_healthy_upstream') ? true : undefined;
    }, 60_000, '503 with no pods');
    await waitCondition(kube, 'upstreams', NS, 'catalog', 'Ready', 'False', 'NoReadyEndpoints');
  });

  it('moves a route to a new path and deletes it; reports the time from apply to first served request', async () => {
    const base = (dataplanes[1] as { url: string }).url;
    const samples: number[] = [];
    for (let i = 0; i < 20; i++) {
      const started = Date.now();
      await kube.apply(`
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: moving, namespace: ${NS} }
spec: { path: { value: /moving/v${i} }, upstream: metrics-service }
`);
      await eventually(async () => ((await call(base, `/moving/v${i}`)).status === 200 ? true : undefined), 30_000, `/moving/v${i}`);
      samples.push(Date.now() - started);
      if (i > 0) expect((await call(base, `/moving/v${i - 1}`)).status).toBe(404);
    }
    samples.sort((x, y) => x - y);
    const pct = (p: number): number => samples[Math.min(samples.length - 1, Math.ceil((p / 100) * samples.length) - 1)] as number;
    console.log(`apply → first served request over ${samples.length} changes (kubectl apply included): p50 ${pct(50)} ms, p99 ${pct(99)} ms`);
    await kube.kubectl(['delete', 'gwr', 'moving', '-n', NS]);
    await eventually(async () => ((await call(base, '/moving/v19')).status === 404 ? true : undefined), 30_000, '404 after delete');
  });
});
