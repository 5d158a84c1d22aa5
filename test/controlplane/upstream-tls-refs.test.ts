/**
 * Upstream TLS in cluster mode, with the real CLIs: a real API server, the
 * operator (its config stream over TLS) and a data plane, in front of a real
 * mutual-TLS upstream whose certificates openssl made. The Upstream names its
 * CA in a ConfigMap and its client certificate in a kubernetes.io/tls Secret;
 * a wrong CA gets 502, a missing ConfigMap a status condition while other
 * routes serve, and a CA rotation through the ConfigMap fails no request.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../support/control-plane.ts';
import { eventually, installCrds, kubeFor, type Kube } from '../support/kube.ts';
import { issue, makeCa, type Pair } from '../support/pki.ts';
import { freePort, startProcess, tempFile, type Proc } from '../support/processes.ts';

const NS = 'shop';
const TOKEN = 'upstream-tls-refs-token-0123456789';
const b64 = (s: string): string => Buffer.from(s).toString('base64');

describe('Upstream TLS from ConfigMaps and Secrets', () => {
  let dir: string;
  let cp: ControlPlane;
  let kube: Kube;
  let operator: Proc;
  let dataplane: Proc;
  let gateway: string;
  let caA: Pair;
  let caB: Pair;
  let stranger: Pair;
  let serverB: Pair;
  let clients: Pair;
  let upstream: https.Server;
  let upstreamUrl: string;
  const clientSubjects: string[] = [];

  const configMap = (name: string, pem: string): string => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { namespace: NS, name }, data: { 'ca.crt': pem } });
  const upstreamYaml = (name: string, ca: string): string =>
    JSON.stringify({
      apiVersion: 'switchyard.dev/v1alpha1',
      kind: 'Upstream',
      metadata: { namespace: NS, name },
      spec: { static: { endpoints: [upstreamUrl] }, protocol: 'https', tls: { serverName: 'orders.internal', caCertificateRef: { kind: 'ConfigMap', name: ca }, clientCertificateRef: { name: 'gateway-client' } } },
    });
  const route = (name: string, upstreamName: string): string =>
    JSON.stringify({ apiVersion: 'switchyard.dev/v1alpha1', kind: 'GatewayRoute', metadata: { namespace: NS, name }, spec: { path: { type: 'Prefix', value: `/${name}` }, upstream: upstreamName } });
  const get = async (p: string): Promise<{ status: number; body: string }> => {
    const res = await request(`${gateway}${p}`, { headersTimeout: 10_000, bodyTimeout: 10_000 });
    return { status: res.statusCode, body: await res.body.text() };
  };
  const conditions = async (kind: string, name: string): Promise<{ type: string; status: string; reason: string; message: string }[]> => {
    const out = JSON.parse(await kube.kubectl(['get', kind, name, '-n', NS, '-o', 'json'])) as { status?: { conditions?: { type: string; status: string; reason: string; message: string }[] } };
    return out.status?.conditions ?? [];
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'switchyard-upstream-tls-refs-'));
    caA = makeCa(dir, 'orders-ca-a');
    caB = makeCa(dir, 'orders-ca-b');
    stranger = makeCa(dir, 'stranger-ca');
    clients = makeCa(dir, 'client-ca');
    const serverExt = 'subjectAltName=DNS:orders.internal\nextendedKeyUsage=serverAuth\n';
    const serverA = issue(dir, caA, 'orders-a', serverExt);
    serverB = issue(dir, caB, 'orders-b', serverExt);
    const gatewayClient = issue(dir, clients, 'gateway', 'extendedKeyUsage=clientAuth\n');
    const serving = makeCa(dir, 'operator-ca');
    const operatorCert = issue(dir, serving, 'operator', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');

    // An upstream that requires a client certificate signed by the client CA.
    upstream = https.createServer({ cert: serverA.certPem, key: serverA.keyPem, ca: clients.certPem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
      clientSubjects.push(String((req.socket as TLSSocket).getPeerCertificate().subject?.CN));
      res.end('orders over mTLS');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
    upstreamUrl = `https://127.0.0.1:${(upstream.address() as AddressInfo).port}`;

    cp = await startControlPlane();
    kube = kubeFor(cp);
    await installCrds(kube, NS);
    const port = await freePort();
    operator = startProcess('operator/bin/switchyard-operator.ts', [
      '--kubeconfig', cp.kubeconfigPath,
      '--listen', `127.0.0.1:${port}`,
      '--listen-cert-file', operatorCert.cert,
      '--listen-key-file', operatorCert.key,
      '--metrics', 'off',
      '--token-file', tempFile('token', `${TOKEN}\n`),
      '--no-leader-elect',
      '--no-gateway-api',
      '--identity', 'op-upstream-tls',
    ]);
    await operator.waitForLog('"event":"listening"');
    const http = await freePort();
    dataplane = startProcess(
      'dataplane/bin/switchyard-dataplane.ts',
      ['--config', tempFile('bootstrap.yaml', 'server: { bind_address: 127.0.0.1 }\nobservability: { logging: { access_log: false } }\n'), '--operator', `https://127.0.0.1:${port}`, '--operator-ca', serving.cert, '--token-file', tempFile('token', `${TOKEN}\n`), '--dataplane-id', 'dp-upstream-tls'],
      { GATEWAY_SERVER_HTTP_PORT: String(http), GATEWAY_SERVER_ADMIN_PORT: '0', GATEWAY_SERVER_METRICS_PORT: '0' },
    );
    await dataplane.waitForLog('"event":"listening"');
    gateway = `http://127.0.0.1:${http}`;

    const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { namespace: NS, name: 'gateway-client' }, type: 'kubernetes.io/tls', data: { 'tls.crt': b64(gatewayClient.certPem), 'tls.key': b64(gatewayClient.keyPem) } };
    await kube.apply(
      [
        JSON.stringify(secret),
        configMap('orders-ca', caA.certPem),
        configMap('stranger-ca', stranger.certPem),
        upstreamYaml('orders', 'orders-ca'),
        upstreamYaml('wrong-ca', 'stranger-ca'),
        upstreamYaml('no-ca', 'missing-ca'),
        route('orders', 'orders'),
        route('wrong-ca', 'wrong-ca'),
        route('no-ca', 'no-ca'),
      ].join('\n---\n'),
    );
  });
  afterAll(async () => {
    await dataplane?.kill();
    await operator?.kill();
    await cp?.stop();
    upstream?.closeAllConnections();
    await new Promise<void>((r) => (upstream ? upstream.close(() => r()) : r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves an mTLS upstream with the CA from a ConfigMap and the client certificate from a Secret', async () => {
    const res = await eventually(async () => {
      const r = await get('/orders');
      return r.status === 200 ? r : undefined;
    }, 60_000, 'a 200 from /orders');
    expect(res.body).toBe('orders over mTLS');
    expect(clientSubjects).toContain('gateway');
    expect((await conditions('upstream', 'orders')).find((c) => c.type === 'ResolvedRefs')).toMatchObject({ status: 'True' });
    // The operator writes no PEM to its log.
    expect(operator.logs.some((l) => l.includes('BEGIN'))).toBe(false);
  });

  it('answers 502 for an upstream whose CA did not sign the endpoint certificate', async () => {
    const res = await eventually(async () => {
      const r = await get('/wrong-ca');
      return r.status === 404 ? undefined : r;
    }, 30_000, 'the wrong-ca route');
    expect(res.status).toBe(502);
  });

  it('gives an Upstream whose ConfigMap is missing a condition naming it, its route 503, and serves the others', async () => {
    const refs = await eventually(async () => {
      const c = (await conditions('upstream', 'no-ca')).find((x) => x.type === 'ResolvedRefs');
      return c?.status === 'False' ? c : undefined;
    }, 30_000, 'ResolvedRefs False on no-ca');
    expect(refs.reason).toBe('InvalidCertificateRef');
    expect(refs.message).toBe('tls.caCertificateRef: ConfigMap "missing-ca" in namespace "shop" not found');
    const routeRefs = (await conditions('gatewayroute', 'no-ca')).find((c) => c.type === 'ResolvedRefs');
    expect(routeRefs).toMatchObject({ status: 'False', reason: 'BackendInvalid' });
    // The route is in the table without its Upstream (never with TLS settings that were not resolved): it answers 503.
    expect((await get('/no-ca')).status).toBe(503);
    expect((await get('/orders')).status).toBe(200);
    // Creating the ConfigMap resolves it.
    await kube.apply(configMap('missing-ca', caA.certPem));
    await eventually(async () => ((await get('/no-ca')).status === 200 ? true : undefined), 30_000, 'a 200 from /no-ca once its ConfigMap exists');
  });

  it('rotates the CA through the ConfigMap without a failed request', async () => {
    const statuses = new Map<number, number>();
    let running = true;
    let sent = 0;
    const load = (async () => {
      // Bounded: at most 20,000 requests, one at a time.
      while (running && sent < 20_000) {
        sent++;
        const { status } = await get('/orders').catch(() => ({ status: 0 }));
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
    })();
    const version = async (): Promise<string | null> => ((await request(`${gateway}/ready`).then((r) => r.body.json())) as { version?: string | null }).version ?? null;
    /** Applies a ConfigMap and waits until the data plane serves the table it makes. */
    const rotate = async (pem: string): Promise<void> => {
      const before = await version();
      await kube.apply(configMap('orders-ca', pem));
      await eventually(async () => ((await version()) !== before ? true : undefined), 30_000, 'a new table on the data plane');
    };
    await new Promise((r) => setTimeout(r, 500));
    // 1. Trust both CAs; 2. the endpoint moves to a certificate of the new CA; 3. trust only the new one.
    await rotate(caA.certPem + caB.certPem);
    await new Promise((r) => setTimeout(r, 1_000));
    upstream.setSecureContext({ cert: serverB.certPem, key: serverB.keyPem, ca: clients.certPem });
    await new Promise((r) => setTimeout(r, 1_000));
    await rotate(caB.certPem);
    await new Promise((r) => setTimeout(r, 1_000));
    running = false;
    await load;
    expect(sent).toBeGreaterThan(10);
    expect(Object.fromEntries(statuses)).toEqual({ 200: sent });
    // New connections now verify against the new CA only: one made now succeeds against the endpoint's new certificate.
    upstream.closeAllConnections();
    expect((await get('/orders')).status).toBe(200);
  });
});
