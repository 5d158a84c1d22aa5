/**
 * The operator against a real API server: apply resources, watch traffic and
 * status follow. Upstream "pods" here are real HTTP servers on 127.0.0.1 named
 * by static endpoints (EndpointSlices refuse loopback addresses; the end-to-end
 * suite covers Service discovery with traffic, inside a network namespace).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { silentLogger } from '../../dataplane/src/observability/logger.ts';
import { GatewayMetrics } from '../../dataplane/src/observability/metrics.ts';
import { TableHolder } from '../../dataplane/src/table/holder.ts';
import { PoolRegistry } from '../../dataplane/src/upstream/pools.ts';
import { OperatorSource } from '../../dataplane/src/table/operator-source.ts';
import type { Operator } from '../../operator/src/operator.ts';
import { startControlPlane, type ControlPlane } from '../support/control-plane.ts';
import { OPERATOR_TOKEN, startDataplane, startOperator, type TestDataplane } from '../support/operator.ts';
import { eventually, getObject, kubeFor, setPodReady, waitCondition, type Kube, installCrds } from '../support/kube.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';

const TOKEN = OPERATOR_TOKEN;
const NS = 'shop';

async function get(url: string): Promise<{ status: number; upstream: string | undefined }> {
  const res = await request(url);
  await res.body.dump();
  const u = res.headers['x-upstream'];
  return { status: res.statusCode, upstream: typeof u === 'string' ? u : undefined };
}

describe('operator', () => {
  let cp: ControlPlane;
  let kube: Kube;
  let op: Operator;
  let a: TestUpstream;
  let b: TestUpstream;
  let dp: TestDataplane;

  beforeAll(async () => {
    cp = await startControlPlane();
    kube = kubeFor(cp);
    await installCrds(kube, NS);
    a = await startUpstream(echo('a'));
    b = await startUpstream(echo('b'));
    op = await startOperator(kube);
    dp = await startDataplane([`http://127.0.0.1:${op.port}`], 'dp-1');
  });

  afterAll(async () => {
    await dp?.stop();
    await op?.stop();
    await a?.close();
    await b?.close();
    await cp?.stop();
  });

  it('routes traffic once a GatewayRoute and its Upstream are applied, and reports it Programmed', async () => {
    // Ready once the first (empty) table arrived from the operator.
    await eventually(async () => ((await get(`${dp.url}/ready`)).status === 200 ? true : undefined), 30_000, 'data plane ready');
    await kube.apply(`
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: users, namespace: ${NS} }
spec: { static: { endpoints: ["${a.url}"] } }
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: users, namespace: ${NS} }
spec: { path: { value: "/api/v1/users/{id}", type: Template }, methods: [GET], upstream: users }
`);
    await eventually(async () => ((await get(`${dp.url}/api/v1/users/7`)).status === 200 ? true : undefined), 30_000, 'traffic through the route');
    expect(a.seen.at(-1)?.url).toBe('/api/v1/users/7');
    const accepted = await waitCondition(kube, 'gatewayroutes', NS, 'users', 'Accepted', 'True', 'Accepted');
    await waitCondition(kube, 'gatewayroutes', NS, 'users', 'ResolvedRefs', 'True');
    const programmed = await waitCondition(kube, 'gatewayroutes', NS, 'users', 'Programmed', 'True', 'Programmed');
    expect(programmed.message).toBe('applied by 1 data plane');
    const ups = await waitCondition(kube, 'upstreams', NS, 'users', 'Ready', 'True');
    expect(ups.message).toContain('1 of 1');
    expect((await getObject(kube, 'upstreams', NS, 'users')).status).toMatchObject({ readyEndpoints: 1, totalEndpoints: 1 });

    // Printer columns show it.
    const table = await kube.kubectl(['get', 'gwr', '-n', NS]);
    expect(table).toMatch(/users\s+\/api\/v1\/users\/\{id\}\s+users\s+True\s+True/);

    // lastTransitionTime stays put when nothing changes.
    await new Promise((r) => setTimeout(r, 1500));
    const again = (await getObject(kube, 'gatewayroutes', NS, 'users')).status?.conditions?.find((c) => c.type === 'Accepted');
    expect(again?.lastTransitionTime).toBe(accepted.lastTransitionTime);
  });

  it('follows an update (new generation) and a delete', async () => {
    const route = (path: string): string => `
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: accounts, namespace: ${NS} }
spec: { static: { endpoints: ["${a.url}"] } }
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: accounts, namespace: ${NS} }
spec: { path: { value: "${path}", type: Template }, methods: [GET], upstream: accounts }
`;
    await kube.apply(route('/api/v1/accounts/{id}'));
    await eventually(async () => ((await get(`${dp.url}/api/v1/accounts/1`)).status === 200 ? true : undefined), 30_000, 'the first path');
    await kube.apply(route('/api/v2/accounts/{id}'));
    await eventually(async () => ((await get(`${dp.url}/api/v2/accounts/1`)).status === 200 ? true : undefined), 30_000, 'the updated path');
    expect((await get(`${dp.url}/api/v1/accounts/1`)).status).toBe(404);
    const obj = await getObject(kube, 'gatewayroutes', NS, 'accounts');
    expect(obj.metadata.generation).toBe(2);
    await waitCondition(kube, 'gatewayroutes', NS, 'accounts', 'Programmed', 'True');

    await kube.kubectl(['delete', 'gwr', 'accounts', '-n', NS]);
    await eventually(async () => ((await get(`${dp.url}/api/v2/accounts/1`)).status === 404 ? true : undefined), 30_000, '404 after delete');
  });

  it('resolves conflicts oldest-first and says who won', async () => {
    await kube.apply(`
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: contested, namespace: ${NS} }
spec: { static: { endpoints: ["${a.url}"] } }
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: first, namespace: ${NS} }
spec: { path: { value: /conflict }, methods: [GET], upstream: contested }
`);
    await waitCondition(kube, 'gatewayroutes', NS, 'first', 'Accepted', 'True');
    await new Promise((r) => setTimeout(r, 1100)); // creationTimestamp has one-second resolution
    await kube.apply(`
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: second, namespace: ${NS} }
spec: { path: { value: /conflict }, methods: [GET, POST], upstream: contested }
`);
    const c = await waitCondition(kube, 'gatewayroutes', NS, 'second', 'Accepted', 'False', 'Conflicted');
    expect(c.message).toContain('"shop/first"');
    // The loser serves nothing: POST /conflict is 405 (only the winner's GET exists).
    const res = await request(`${dp.url}/conflict`, { method: 'POST' });
    await res.body.dump();
    expect(res.statusCode).toBe(405);
    // kubectl describe shows why, through the Event.
    const described = await eventually(async () => {
      const text = await kube.kubectl(['describe', 'gwr', 'second', '-n', NS]);
      return text.includes('Conflicted') && text.includes('Warning') ? text : undefined;
    }, 15_000, 'a Conflicted event');
    expect(described).toContain('shop/first');
    await kube.kubectl(['delete', 'gwr', 'first', 'second', '-n', NS]);
  });

  it('reports a missing Upstream and a missing Service, and answers 503 meanwhile', async () => {
    await kube.apply(`
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: orphan, namespace: ${NS} }
spec: { path: { value: /orphan }, upstream: nowhere }
---
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: ghost, namespace: ${NS} }
spec: { service: { name: ghost-service, port: 80 } }
`);
    const c = await waitCondition(kube, 'gatewayroutes', NS, 'orphan', 'ResolvedRefs', 'False', 'BackendNotFound');
    expect(c.message).toContain('"nowhere"');
    await eventually(async () => ((await get(`${dp.url}/orphan`)).status === 503 ? true : undefined), 30_000, '503 for the orphan route');
    const u = await waitCondition(kube, 'upstreams', NS, 'ghost', 'ResolvedRefs', 'False', 'ServiceNotFound');
    expect(u.message).toContain('ghost-service');

    // Creating the Upstream fixes the route without touching it.
    await kube.apply(`
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: nowhere, namespace: ${NS} }
spec: { static: { endpoints: ["${b.url}"] } }
`);
    await waitCondition(kube, 'gatewayroutes', NS, 'orphan', 'ResolvedRefs', 'True');
    await eventually(async () => ((await get(`${dp.url}/orphan`)).upstream === 'b' ? true : undefined), 30_000, 'traffic to the new Upstream');
    await kube.kubectl(['delete', 'gwr', 'orphan', '-n', NS]);
  });

  it('turns Services and EndpointSlices into endpoints as pods become ready', async () => {
    await kube.apply(`
apiVersion: v1
kind: Node
metadata: { name: node-1 }
---
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
apiVersion: v1
kind: Pod
metadata: { name: catalog-1, namespace: ${NS}, labels: { app: catalog } }
spec: { nodeName: node-1, containers: [{ name: app, image: example.invalid/catalog, ports: [{ containerPort: 8080 }] }] }
---
apiVersion: v1
kind: Pod
metadata: { name: catalog-2, namespace: ${NS}, labels: { app: catalog } }
spec: { nodeName: node-1, containers: [{ name: app, image: example.invalid/catalog, ports: [{ containerPort: 8080 }] }] }
`);
    const markReady = (pod: string, ip: string, ready: boolean): Promise<void> => setPodReady(kube, NS, pod, ip, ready);
    // Acting as the kubelet. These are API objects only: no traffic goes to these addresses.
    await markReady('catalog-1', '10.244.7.1', true);
    const endpointsOf = (): string[] => op.table?.upstreams.find((u) => u.name === `${NS}/catalog`)?.endpoints.map((e) => e.url) ?? [];
    await eventually(() => (endpointsOf().join() === 'http://10.244.7.1:8080' ? true : undefined), 30_000, 'the first pod in the table');
    await markReady('catalog-2', '10.244.7.2', true);
    await eventually(() => (endpointsOf().join() === 'http://10.244.7.1:8080,http://10.244.7.2:8080' ? true : undefined), 30_000, 'both pods');
    await eventually(async () => ((await getObject(kube, 'upstreams', NS, 'catalog')).status?.readyEndpoints === 2 ? true : undefined), 30_000, 'readyEndpoints 2');
    // The data plane has it too.
    await eventually(() => (dp.gw.holder.current?.upstreams.get(`${NS}/catalog`)?.endpoints.length === 2 ? true : undefined), 30_000, 'data plane endpoints');
    await markReady('catalog-1', '10.244.7.1', false);
    await eventually(() => (endpointsOf().join() === 'http://10.244.7.2:8080' ? true : undefined), 30_000, 'the unready pod leaves');
  });

  it('coalesces a burst of 300 changes into a handful of compiles', async () => {
    await kube.apply(`
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: users, namespace: ${NS} }
spec: { static: { endpoints: ["${a.url}"] } }
`);
    const before = op.compiles;
    const refreshesBefore = op.statusRefreshes;
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: 300 }, (_, i) =>
        kube.custom.createNamespacedCustomObject({
          group: 'switchyard.dev',
          version: 'v1alpha1',
          namespace: NS,
          plural: 'gatewayroutes',
          body: { apiVersion: 'switchyard.dev/v1alpha1', kind: 'GatewayRoute', metadata: { name: `burst-${i}`, namespace: NS, labels: { burst: 'yes' } }, spec: { path: { value: `/burst/${i}` }, upstream: 'users' } },
        }),
      ),
    );
    await eventually(() => (op.table?.routes.filter((r) => r.id.startsWith(`${NS}/burst-`)).length === 300 ? true : undefined), 60_000, 'all 300 routes compiled');
    const compiles = op.compiles - before;
    console.log(`burst: ${compiles} compiles, all compiled after ${Date.now() - t0} ms`);
    expect(compiles).toBeGreaterThan(0);
    expect(compiles).toBeLessThan(40);
    await eventually(async () => ((await get(`${dp.url}/burst/299`)).status === 200 ? true : undefined), 30_000, 'the last burst route serves');
    console.log(`burst: served after ${Date.now() - t0} ms`);
    // Every route's status gets written; the events those writes cause must not each recompute every status.
    // Each of the 300 routes has at least one such event (its own write), so one refresh per event
    // would be 300 or more; coalescing makes it one per window of events, however long the writes take.
    await eventually(async () => ((await getObject(kube, 'gatewayroutes', NS, 'burst-299')).status?.conditions?.some((c) => c.type === 'Programmed' && c.status === 'True') ? true : undefined), 60_000, 'burst statuses written');
    const refreshes = op.statusRefreshes - refreshesBefore;
    console.log(`burst: ${refreshes} status refreshes for 300 routes`);
    expect(refreshes).toBeLessThan(300);
    await kube.custom.deleteCollectionNamespacedCustomObject({ group: 'switchyard.dev', version: 'v1alpha1', namespace: NS, plural: 'gatewayroutes', labelSelector: 'burst=yes' });
    console.log(`burst: deleted after ${Date.now() - t0} ms`);
  });

  it('shows a table a data plane cannot apply as Programmed=False with its reason, while it keeps the old table', async () => {
    // A second data plane that cannot build one particular route (as an older or differently
    // configured data plane might not); the operator and the protocol are the real ones.
    const metrics = new GatewayMetrics({ defaultMetrics: false });
    const pools = new PoolRegistry();
    const holder = new TableHolder(
      pools,
      (route) => {
        if (route.id === `${NS}/unbuildable`) throw new Error('route "shop/unbuildable": this data plane cannot serve it');
        return [];
      },
      metrics,
      silentLogger(),
    );
    const picky = new OperatorSource({ urls: [`http://127.0.0.1:${op.port}`], token: TOKEN, id: 'dp-picky', holder, log: silentLogger(), backoff: { initialMs: 50, maxMs: 500 } });
    picky.start();
    try {
      await eventually(() => (holder.current?.version === op.table?.version ? true : undefined), 30_000, 'the picky data plane in sync');
      const before = holder.current?.version;
      await kube.apply(`
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: users, namespace: ${NS} }
spec: { static: { endpoints: ["${a.url}"] } }
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: unbuildable, namespace: ${NS} }
spec: { path: { value: /unbuildable }, upstream: users }
`);
      const c = await waitCondition(kube, 'gatewayroutes', NS, 'unbuildable', 'Programmed', 'False', 'Rejected');
      expect(c.message).toContain('data plane "dp-picky" rejected table');
      expect(c.message).toContain('this data plane cannot serve it');
      expect(holder.current?.version).toBe(before);
      // The data plane that could apply it serves it.
      await eventually(async () => ((await get(`${dp.url}/unbuildable`)).status === 200 ? true : undefined), 30_000, 'the other data plane serves it');
      const metricsText = await op.metrics.registry.metrics();
      expect(metricsText).toMatch(/switchyard_operator_acks_total\{result="rejected"\} [1-9]/);
    } finally {
      await picky.stop();
      await pools.closeAll(true);
    }
    await kube.kubectl(['delete', 'gwr', 'unbuildable', '-n', NS]);
  });

  it('reuses its connections to the API server instead of a new TLS connection per request', async () => {
    const { subscribe, unsubscribe } = await import('node:diagnostics_channel');
    const { CoreV1Api, KubeConfig } = await import('@kubernetes/client-node');
    const { PooledKubeConfig } = await import('../../operator/src/kube/config.ts');
    const connectionsFor = async (kc: InstanceType<typeof KubeConfig>): Promise<number> => {
      let connections = 0;
      const count = (): void => {
        connections++;
      };
      subscribe('undici:client:connected', count);
      try {
        kc.loadFromString(cp.kubeconfig);
        const core = kc.makeApiClient(CoreV1Api);
        for (let i = 0; i < 20; i++) await core.readNamespace({ name: NS });
      } finally {
        unsubscribe('undici:client:connected', count);
      }
      return connections;
    };
    const plain = await connectionsFor(new KubeConfig());
    const pooled = await connectionsFor(new PooledKubeConfig());
    console.log(`API connections for 20 requests: ${plain} with the client's KubeConfig, ${pooled} pooled`);
    expect(plain).toBeGreaterThanOrEqual(20);
    expect(pooled).toBeLessThanOrEqual(2);
  });

  it('refuses a data plane without the token, with 401 and nothing else', async () => {
    const res = await request(`http://127.0.0.1:${op.port}/v1/tables/watch?dataplane=intruder`, { headers: { authorization: 'Bearer wrong' } });
    expect(res.statusCode).toBe(401);
    expect(await res.body.text()).not.toContain('routes');
    const none = await request(`http://127.0.0.1:${op.port}/v1/tables/watch?dataplane=intruder`);
    expect(none.statusCode).toBe(401);
    await none.body.dump();
  });
});
