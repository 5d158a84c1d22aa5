/**
 * The Gateway API against a real API server, with the upstream CRDs of
 * crds/gateway-api/: an operator that starts before they exist and picks them
 * up when they are installed, the documented example (examples/gateway-api/)
 * applied as it is, with the Gateway's own Service and sockets, traffic through
 * a real data plane on both of them, a Gateway that shares the data plane
 * Service and one conflict rule with GatewayRoutes there, ReferenceGrants, and
 * status written by the leader alone and only when it changes.
 *
 * Upstream "pods" are HTTP servers on 127.0.0.1 behind Upstreams with static
 * endpoints (EndpointSlices refuse loopback addresses); Services with
 * EndpointSlices are checked in the table the operator serves.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import pino from 'pino';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTROLLER_NAME } from '../../operator/src/api/gateway-api.ts';
import type { Operator } from '../../operator/src/operator.ts';
import { startControlPlane, type ControlPlane } from '../support/control-plane.ts';
import { eventually, installCrds, kubeFor, type ApiCondition, type Kube } from '../support/kube.ts';
import { startDataplane, startOperator, type TestDataplane } from '../support/operator.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';

const RELEASE_NS = 'switchyard-system';
const ADDRESS_SERVICE = `${RELEASE_NS}/switchyard-dataplane`;
const NS = 'storefront';
const HOST = 'store.example.com';

type Status = { conditions?: ApiCondition[]; addresses?: { type: string; value: string }[]; listeners?: { name: string; attachedRoutes: number; conditions: ApiCondition[]; supportedKinds: unknown[] }[]; parents?: { controllerName: string; parentRef: { name: string }; conditions: ApiCondition[] }[]; supportedFeatures?: { name: string }[] };
type Obj = { metadata: { generation: number; resourceVersion: string }; status?: Status };

const PLURALS = { GatewayClass: 'gatewayclasses', Gateway: 'gateways', HTTPRoute: 'httproutes' } as const;

async function gwObject(kube: Kube, kind: keyof typeof PLURALS, namespace: string, name: string): Promise<Obj> {
  const api = { group: 'gateway.networking.k8s.io', version: 'v1', plural: PLURALS[kind], name };
  return (kind === 'GatewayClass' ? await kube.custom.getClusterCustomObject(api) : await kube.custom.getNamespacedCustomObject({ ...api, namespace })) as Obj;
}

const find = (conditions: ApiCondition[] | undefined, type: string): ApiCondition | undefined => conditions?.find((c) => c.type === type);

/** Waits until `check` holds for the object's current status (every condition of the current generation). */
function waitStatus(kube: Kube, kind: keyof typeof PLURALS, namespace: string, name: string, what: string, check: (s: Status) => boolean, timeoutMs = 30_000): Promise<Obj> {
  return eventually(
    async () => {
      const obj = await gwObject(kube, kind, namespace, name);
      const s = obj.status ?? {};
      const all = [...(s.conditions ?? []), ...(s.listeners ?? []).flatMap((l) => l.conditions), ...(s.parents ?? []).flatMap((p) => p.conditions)];
      if (all.length === 0 || all.some((c) => c.observedGeneration !== obj.metadata.generation)) return undefined;
      return check(s) ? obj : undefined;
    },
    timeoutMs,
    `${kind} ${namespace}/${name}: ${what}`,
  );
}

/** The single parent entry Switchyard wrote on an HTTPRoute. */
const ours = (s: Status): NonNullable<Status['parents']>[number] | undefined => s.parents?.find((p) => p.controllerName === CONTROLLER_NAME);

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; upstream: string | undefined; location: string | undefined }> {
  const res = await request(url, { headers });
  await res.body.dump();
  const u = res.headers['x-upstream'];
  const l = res.headers.location;
  return { status: res.statusCode, upstream: typeof u === 'string' ? u : undefined, location: typeof l === 'string' ? l : undefined };
}

describe('Gateway API', () => {
  let cp: ControlPlane;
  let kube: Kube;
  let op: Operator;
  let dp: TestDataplane;
  let a: TestUpstream;
  let b: TestUpstream;
  let dir: string;
  let cert: { crt: string; key: string };
  const logs: { event?: string; missing?: string[] }[] = [];

  const certificate = (name: string): { crt: string; key: string } => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', `/CN=${name}`, '-keyout', path.join(dir, `${name}.key`), '-out', path.join(dir, `${name}.crt`)], { stdio: 'ignore' });
    return { crt: readFileSync(path.join(dir, `${name}.crt`), 'utf8'), key: readFileSync(path.join(dir, `${name}.key`), 'utf8') };
  };
  const tlsSecret = (name: string, c: { crt: string; key: string }): string => `
apiVersion: v1
kind: Secret
metadata: { name: ${name}, namespace: ${NS} }
type: kubernetes.io/tls
data: { tls.crt: ${Buffer.from(c.crt).toString('base64')}, tls.key: ${Buffer.from(c.key).toString('base64')} }
`;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'switchyard-gwapi-'));
    cert = certificate(HOST);
    cp = await startControlPlane();
    kube = kubeFor(cp);
    await installCrds(kube, RELEASE_NS, 'partners');
    a = await startUpstream(echo('a'));
    b = await startUpstream(echo('b'));
    const log = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as { event?: string }) });
    op = await startOperator(kube, 'gw-operator', { log, gatewayApi: { controllerName: CONTROLLER_NAME, addressService: ADDRESS_SERVICE, pollMs: 300 } });
    dp = await startDataplane([`http://127.0.0.1:${op.port}`], 'dp-gw');
    await eventually(async () => ((await get(`${dp.url}/ready`)).status === 200 ? true : undefined), 30_000, 'data plane ready');
  });

  afterAll(async () => {
    await dp?.stop();
    await op?.stop();
    await a?.close();
    await b?.close();
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves GatewayRoutes without the Gateway API CRDs, and says so once', async () => {
    await kube.apply(`
apiVersion: v1
kind: Namespace
metadata: { name: ${NS} }
---
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: legacy, namespace: ${NS} }
spec: { static: { endpoints: ["${a.url}"] } }
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: legacy, namespace: ${NS} }
spec: { hosts: [legacy.example.com], path: { type: Prefix, value: /shared }, upstream: legacy }
`);
    await eventually(async () => ((await get(`${dp.url}/shared`, { host: 'legacy.example.com' })).upstream === 'a' ? true : undefined), 30_000, 'the GatewayRoute serves');
    await new Promise((r) => setTimeout(r, 1000)); // several detection rounds
    const absent = logs.filter((l) => l.event === 'gateway_api_absent');
    expect(absent).toHaveLength(1);
    expect(absent[0]?.missing).toEqual(['gatewayclasses', 'gateways', 'httproutes', 'referencegrants']);
  });

  it('picks up the Gateway API when its CRDs are installed, without a restart, and accepts its GatewayClass with the features it serves', async () => {
    await kube.kubectl(['apply', '--server-side', '-f', 'crds/gateway-api/']);
    await kube.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/gatewayclasses.gateway.networking.k8s.io', 'crd/gateways.gateway.networking.k8s.io', 'crd/httproutes.gateway.networking.k8s.io', 'crd/referencegrants.gateway.networking.k8s.io']);
    await kube.apply(`
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: switchyard }
spec: { controllerName: ${CONTROLLER_NAME} }
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: someone-else }
spec: { controllerName: example.com/other }
`);
    const gc = await waitStatus(kube, 'GatewayClass', '', 'switchyard', 'Accepted', (s) => find(s.conditions, 'Accepted')?.status === 'True', 60_000);
    expect(gc.status?.supportedFeatures?.map((f) => f.name)).toEqual(expect.arrayContaining(['Gateway', 'HTTPRoute', 'ReferenceGrant']));
    expect(logs.filter((l) => l.event === 'gateway_api_watching')).toHaveLength(1);
    // Another controller's class is not Switchyard's to touch.
    expect((await gwObject(kube, 'GatewayClass', '', 'someone-else')).status?.conditions?.every((c) => c.reason === 'Pending')).toBe(true);
  });

  it('applies examples/gateway-api as written: the Gateway gets a Service and sockets of its own, its address, and both listeners serve the routes', async () => {
    await kube.apply(`
apiVersion: v1
kind: Service
metadata: { name: switchyard-dataplane, namespace: ${RELEASE_NS} }
spec: { type: ClusterIP, selector: { app.kubernetes.io/component: dataplane }, ports: [{ name: http, port: 80, targetPort: 8080 }, { name: https, port: 443, targetPort: 8443 }] }
---
apiVersion: v1
kind: Service
metadata: { name: catalog, namespace: ${NS} }
spec: { ports: [{ name: http, port: 8080, targetPort: 3000 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: catalog-1, namespace: ${NS}, labels: { kubernetes.io/service-name: catalog } }
addressType: IPv4
ports: [{ name: http, port: 3000, protocol: TCP }]
endpoints: [{ addresses: [198.18.7.1], conditions: { ready: true } }, { addresses: [198.18.7.2], conditions: { ready: false } }]
---
apiVersion: v1
kind: Service
metadata: { name: orders, namespace: ${NS} }
spec: { ports: [{ name: http, port: 8080, targetPort: 3000 }] }
---${tlsSecret('storefront-tls', cert)}`);
    await kube.kubectl(['apply', '-f', 'examples/gateway-api/']);

    // The Gateway gets a Service of its own, modelled on the data plane Service, and that Service's address.
    const own = await eventually(async () => {
      const list = JSON.parse(await kube.kubectl(['get', 'services', '-n', RELEASE_NS, '-l', 'app.kubernetes.io/managed-by=switchyard-operator', '-o', 'json'])) as { items: { metadata: { name: string; annotations: Record<string, string> }; spec: { clusterIP: string; ports: { port: number; targetPort: number }[] } }[] };
      return list.items.find((i) => i.metadata.annotations['switchyard.dev/gateway'] === `${NS}/storefront`);
    }, 30_000, "the Gateway's own Service");
    expect(own.spec.ports.map((p) => p.port)).toEqual([80, 443]);
    const gw = await waitStatus(kube, 'Gateway', NS, 'storefront', 'Programmed with two routes on each listener', (s) => find(s.conditions, 'Programmed')?.status === 'True' && (s.listeners ?? []).every((l) => l.attachedRoutes === 2));
    expect(gw.status?.addresses).toEqual([{ type: 'IPAddress', value: own.spec.clusterIP }]);
    expect(gw.status?.listeners?.map((l) => [l.name, find(l.conditions, 'Programmed')?.status, find(l.conditions, 'ResolvedRefs')?.status])).toEqual([
      ['http', 'True', 'True'],
      ['https', 'True', 'True'],
    ]);
    for (const name of ['catalog', 'orders']) {
      const route = await waitStatus(kube, 'HTTPRoute', NS, name, 'Accepted', (s) => find(ours(s)?.conditions, 'Accepted')?.status === 'True');
      expect(find(ours(route.status ?? {})?.conditions, 'ResolvedRefs')?.status).toBe('True');
    }
    // The Service backend resolves to its ready endpoints, as an Upstream's would.
    const catalog = op.table?.upstreams.find((u) => u.name === `service:${NS}/catalog:8080`);
    expect(catalog?.endpoints.map((e) => e.url)).toEqual(['http://198.18.7.1:3000']);

    // The data plane listens for the Gateway on the container ports its Service targets.
    const socket = (port: number): number | undefined => dp.gw.listenerPorts.get(`gateway:${NS}/storefront:${port}`);
    await eventually(() => (socket(80) !== undefined && socket(443) !== undefined ? true : undefined), 30_000, "the Gateway's sockets");
    expect(own.spec.ports.map((p) => p.targetPort)).toEqual([socket(80), socket(443)]);
    const plain = `http://127.0.0.1:${socket(80)}`;

    // Plain HTTP: a redirect rule answers itself; the orders route asks for a token (its RoutePolicy).
    await eventually(async () => ((await get(`${plain}/products/shoes`, { host: HOST })).status === 301 ? true : undefined), 30_000, 'the redirect rule serves');
    expect((await get(`${plain}/products/shoes?size=9`, { host: HOST })).location).toBe(`http://${HOST}/catalog/shoes?size=9`);
    expect((await get(`${plain}/orders/1`, { host: HOST })).status).toBe(401);
    // Only for the Gateway's hostname, and only at the Gateway's own sockets.
    expect((await get(`${plain}/products/shoes`, { host: 'elsewhere.example.com' })).status).toBe(404);
    expect((await get(`${dp.url}/products/shoes`, { host: HOST })).status).toBe(404);

    // HTTPS: the listener's certificate, chosen by SNI, on the Gateway's TLS socket.
    const port = socket(443) as number;
    const cn = await new Promise<string>((resolve, reject) => {
      const s = tls.connect({ host: '127.0.0.1', port, servername: HOST, rejectUnauthorized: false }, () => {
        resolve(String(s.getPeerCertificate().subject?.CN));
        s.end();
      });
      s.on('error', reject);
    });
    expect(cn).toBe(HOST);
    const location = await new Promise<string | undefined>((resolve, reject) => {
      https
        .get({ host: '127.0.0.1', port, path: '/products/hats', servername: HOST, headers: { host: HOST }, ca: cert.crt, checkServerIdentity: () => undefined }, (res) => {
          res.resume();
          resolve(res.headers.location);
        })
        .on('error', reject);
    });
    expect(location).toBe(`https://${HOST}/catalog/hats`);
  });

  it('sends requests to an Upstream backend with the rule\'s filters applied', async () => {
    await kube.apply(`
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: echo, namespace: ${NS} }
spec: { static: { endpoints: ["${b.url}"] } }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: echo, namespace: ${NS} }
spec:
  parentRefs: [{ name: storefront, sectionName: http }]
  hostnames: [${HOST}]
  rules:
    - matches: [{ path: { type: PathPrefix, value: /echo }, method: GET }]
      filters:
        - type: RequestHeaderModifier
          requestHeaderModifier: { set: [{ name: X-Team, value: storefront }] }
        - type: URLRewrite
          urlRewrite: { path: { type: ReplacePrefixMatch, replacePrefixMatch: /v2 } }
      backendRefs: [{ group: switchyard.dev, kind: Upstream, name: echo }]
`);
    const plain = `http://127.0.0.1:${dp.gw.listenerPorts.get(`gateway:${NS}/storefront:80`)}`;
    await eventually(async () => ((await get(`${plain}/echo/x`, { host: HOST })).upstream === 'b' ? true : undefined), 30_000, 'the echo route serves');
    expect(b.seen.at(-1)).toMatchObject({ url: '/v2/x', headers: expect.objectContaining({ 'x-team': 'storefront' }) });
    // The method is a condition: another method finds no route.
    expect((await request(`${plain}/echo/x`, { method: 'POST', headers: { host: HOST } })).statusCode).toBe(404);
  });

  it('resolves a GatewayRoute and an HTTPRoute on the same host and path by one rule, the older wins, and the loser says so', async () => {
    // A Gateway that shares the data plane Service is served where GatewayRoutes are.
    await kube.apply(`
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: shared, namespace: ${NS} }
spec:
  gatewayClassName: switchyard
  addresses: [{ type: NamedAddress, value: switchyard-dataplane }]
  listeners: [{ name: http, port: 80, protocol: HTTP }]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: newer, namespace: ${NS} }
spec:
  parentRefs: [{ name: shared }]
  hostnames: [legacy.example.com, fresh.example.com]
  rules: [{ matches: [{ path: { type: PathPrefix, value: /shared } }], backendRefs: [{ group: switchyard.dev, kind: Upstream, name: echo }] }]
`);
    const newer = await waitStatus(kube, 'HTTPRoute', NS, 'newer', 'Shadowed', (s) => find(ours(s)?.conditions, 'switchyard.dev/Shadowed')?.status === 'True');
    expect(find(ours(newer.status ?? {})?.conditions, 'Accepted')?.status).toBe('True');
    expect(find(ours(newer.status ?? {})?.conditions, 'switchyard.dev/Shadowed')?.message).toContain(`legacy.example.com: GatewayRoute "${NS}/legacy" comes first`);
    // The older GatewayRoute keeps its host; the HTTPRoute serves the other.
    await eventually(async () => ((await get(`${dp.url}/shared`, { host: 'fresh.example.com' })).upstream === 'b' ? true : undefined), 30_000, 'the HTTPRoute serves its other host');
    expect((await get(`${dp.url}/shared`, { host: 'legacy.example.com' })).upstream).toBe('a');

    await new Promise((r) => setTimeout(r, 1100)); // creationTimestamp has one-second resolution
    await kube.apply(`
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: late, namespace: ${NS} }
spec: { hosts: [fresh.example.com], path: { type: Prefix, value: /shared/ }, upstream: legacy }
`);
    const late = await eventually(
      async () => {
        const obj = (await kube.custom.getNamespacedCustomObject({ group: 'switchyard.dev', version: 'v1alpha1', namespace: NS, plural: 'gatewayroutes', name: 'late' })) as Obj;
        const c = find(obj.status?.conditions, 'Accepted');
        return c?.status === 'False' ? c : undefined;
      },
      30_000,
      'the younger GatewayRoute is Conflicted',
    );
    expect(late.reason).toBe('Conflicted');
    expect(late.message).toContain(`the older HTTPRoute "${NS}/newer" (rules[0].matches[0])`);
    expect((await get(`${dp.url}/shared`, { host: 'fresh.example.com' })).upstream).toBe('b');
  });

  it('refuses a backend in another namespace until a ReferenceGrant there allows it', async () => {
    await kube.apply(`
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: partner, namespace: partners }
spec: { static: { endpoints: ["${a.url}"] } }
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: { name: partner, namespace: ${NS} }
spec:
  parentRefs: [{ name: shared }]
  hostnames: [partner.example.com]
  rules: [{ backendRefs: [{ group: switchyard.dev, kind: Upstream, name: partner, namespace: partners }] }]
`);
    const denied = await waitStatus(kube, 'HTTPRoute', NS, 'partner', 'RefNotPermitted', (s) => find(ours(s)?.conditions, 'ResolvedRefs')?.reason === 'RefNotPermitted');
    expect(find(ours(denied.status ?? {})?.conditions, 'Accepted')?.status).toBe('True');
    await eventually(async () => ((await get(`${dp.url}/`, { host: 'partner.example.com' })).status === 500 ? true : undefined), 30_000, '500 for the denied backend');
    await kube.apply(`
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata: { name: storefront-routes, namespace: partners }
spec:
  from: [{ group: gateway.networking.k8s.io, kind: HTTPRoute, namespace: ${NS} }]
  to: [{ group: switchyard.dev, kind: Upstream }]
`);
    await waitStatus(kube, 'HTTPRoute', NS, 'partner', 'ResolvedRefs', (s) => find(ours(s)?.conditions, 'ResolvedRefs')?.status === 'True');
    await eventually(async () => ((await get(`${dp.url}/`, { host: 'partner.example.com' })).upstream === 'a' ? true : undefined), 30_000, 'traffic once granted');
  });

  it('writes status only when it changes, with the generation it was computed for', async () => {
    const before = await gwObject(kube, 'Gateway', NS, 'storefront');
    const route = await gwObject(kube, 'HTTPRoute', NS, 'catalog');
    const writes = op.gatewayStatus?.counters.written ?? 0;
    await new Promise((r) => setTimeout(r, 2500));
    expect((await gwObject(kube, 'Gateway', NS, 'storefront')).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    expect((await gwObject(kube, 'HTTPRoute', NS, 'catalog')).metadata.resourceVersion).toBe(route.metadata.resourceVersion);
    expect(op.gatewayStatus?.counters.written).toBe(writes);

    // A new generation (one more listener, with a protocol the data planes do not speak) is reported with it.
    await kube.kubectl(['patch', 'gateway', 'storefront', '-n', NS, '--type=json', '-p', JSON.stringify([{ op: 'add', path: '/spec/listeners/-', value: { name: 'raw', port: 9000, protocol: 'TCP' } }])]);
    const after = await waitStatus(kube, 'Gateway', NS, 'storefront', 'generation 2', (s) => (s.listeners ?? []).length === 3);
    expect(after.metadata.generation).toBe(2);
    expect(find(after.status?.conditions, 'Accepted')).toMatchObject({ status: 'True', reason: 'ListenersNotValid', observedGeneration: 2 });
    expect(find(after.status?.listeners?.find((l) => l.name === 'raw')?.conditions, 'Accepted')).toMatchObject({ status: 'False', reason: 'UnsupportedProtocol' });
    // The listener that did not change kept its lastTransitionTime.
    const http = (s: Status | undefined): ApiCondition | undefined => find(s?.listeners?.find((l) => l.name === 'http')?.conditions, 'Programmed');
    expect(http(after.status)?.lastTransitionTime).toBe(http(before.status)?.lastTransitionTime);
  });

  it('serves a rotated certificate, and forgets a deleted Gateway\'s routes and its parent entries', async () => {
    const rotated = certificate('rotated.example.com');
    await kube.apply(tlsSecret('storefront-tls', rotated));
    const port = dp.gw.listenerPorts.get(`gateway:${NS}/storefront:443`) as number;
    await eventually(
      () =>
        new Promise<true | undefined>((resolve) => {
          const s = tls.connect({ host: '127.0.0.1', port, servername: HOST, rejectUnauthorized: false }, () => {
            resolve(s.getPeerCertificate().subject?.CN === 'rotated.example.com' ? true : undefined);
            s.end();
          });
          s.on('error', () => resolve(undefined));
        }),
      30_000,
      'the rotated certificate',
    );

    await kube.kubectl(['delete', 'gateway', 'shared', '-n', NS]);
    // The HTTPRoute no longer serves, which frees its claim for the younger GatewayRoute it held off.
    await eventually(async () => ((await get(`${dp.url}/shared`, { host: 'fresh.example.com' })).upstream === 'a' ? true : undefined), 30_000, 'the younger GatewayRoute serves once the HTTPRoute is detached');
    await eventually(async () => ((await gwObject(kube, 'HTTPRoute', NS, 'newer')).status?.parents ?? []).length === 0 || undefined, 30_000, 'no parent entry left');
    expect((await get(`${dp.url}/`, { host: 'partner.example.com' })).status).toBe(404);

    // A Gateway with a Service of its own takes it along, and its sockets close.
    await kube.kubectl(['delete', 'gateway', 'storefront', '-n', NS]);
    await eventually(async () => (JSON.parse(await kube.kubectl(['get', 'services', '-n', RELEASE_NS, '-l', 'app.kubernetes.io/managed-by=switchyard-operator', '-o', 'json'])).items.length === 0 ? true : undefined), 30_000, "the Gateway's Service is deleted");
    await eventually(() => (dp.gw.listenerPorts.size === 0 ? true : undefined), 30_000, "the Gateway's sockets close");
  });
});

describe('Gateway API status with two operator replicas', () => {
  let cp: ControlPlane;
  let kube: Kube;
  const ops: Operator[] = [];

  beforeAll(async () => {
    cp = await startControlPlane();
    kube = kubeFor(cp);
    await installCrds(kube, RELEASE_NS);
    await kube.kubectl(['apply', '--server-side', '-f', 'crds/gateway-api/']);
    await kube.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/gatewayclasses.gateway.networking.k8s.io', 'crd/referencegrants.gateway.networking.k8s.io']);
    for (const id of ['op-a', 'op-b']) {
      ops.push(
        await startOperator(kube, id, {
          gatewayApi: { controllerName: CONTROLLER_NAME, addressService: ADDRESS_SERVICE },
          lease: { namespace: RELEASE_NS, name: 'switchyard-operator', durationMs: 4000, renewDeadlineMs: 3000, retryPeriodMs: 500 },
        }),
      );
    }
  });

  afterAll(async () => {
    for (const op of ops) await op.stop();
    await cp?.stop();
  });

  it('only the leader writes status and keeps Gateways\' Services', async () => {
    await kube.apply(`
apiVersion: v1
kind: Service
metadata: { name: switchyard-dataplane, namespace: ${RELEASE_NS} }
spec: { type: ClusterIP, selector: { app.kubernetes.io/component: dataplane }, ports: [{ name: http, port: 80, targetPort: 8080 }] }
---
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: { name: switchyard }
spec: { controllerName: ${CONTROLLER_NAME} }
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: { name: edge, namespace: ${RELEASE_NS} }
spec: { gatewayClassName: switchyard, listeners: [{ name: http, port: 80, protocol: HTTP }] }
`);
    await waitStatus(kube, 'GatewayClass', '', 'switchyard', 'Accepted', (s) => find(s.conditions, 'Accepted')?.status === 'True', 60_000);
    await waitStatus(kube, 'Gateway', RELEASE_NS, 'edge', 'Programmed', (s) => find(s.conditions, 'Programmed')?.status === 'True');
    const leader = await eventually(() => ops.find((o) => o.isServing), 30_000, 'a serving leader');
    const follower = ops.find((o) => o !== leader) as Operator;
    expect(leader.gatewayStatus?.counters.written).toBeGreaterThan(0);
    expect(leader.gatewayServices?.counters.applied).toBe(1);
    expect(follower.gatewayStatus?.counters).toMatchObject({ written: 0, unchanged: 0 });
    expect(follower.gatewayServices?.counters).toMatchObject({ applied: 0, deleted: 0 });
  });
});
