/**
 * Upstream spec.tls references, resolved by compile from the snapshot's
 * ConfigMaps and kubernetes.io/tls Secrets (certificates made with openssl),
 * and the store deciding which Secret and ConfigMap changes recompile.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from '../../../operator/src/compile/index.ts';
import { Reason } from '../../../operator/src/status/conditions.ts';
import { toSnapshot, type KubeObject } from '../../../operator/src/store/convert.ts';
import { PARSERS } from '../../../operator/src/store/parsers.ts';
import { Store } from '../../../operator/src/store/store.ts';
import { issue, makeCa, type Pair } from '../../support/pki.ts';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const meta = (name: string) => ({ namespace: 'shop', name, generation: 1, creationTimestamp: '2026-01-01T00:00:00Z' });

function upstream(tls: Record<string, unknown>): KubeObject {
  return { apiVersion: 'switchyard.dev/v1alpha1', kind: 'Upstream', metadata: meta('orders'), spec: { static: { endpoints: ['https://orders.internal:8443'] }, protocol: 'https', tls } };
}
const route = (name: string, upstreamName: string): KubeObject => ({
  apiVersion: 'switchyard.dev/v1alpha1',
  kind: 'GatewayRoute',
  metadata: meta(name),
  spec: { path: { type: 'Prefix', value: `/${name}` }, upstream: upstreamName },
});
const plain: KubeObject = { apiVersion: 'switchyard.dev/v1alpha1', kind: 'Upstream', metadata: meta('users'), spec: { static: { endpoints: ['http://users.internal:8080'] } } };
const configMap = (name: string, data: Record<string, string>): KubeObject => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { namespace: 'shop', name }, data });
const tlsSecret = (name: string, data: Record<string, string>, type = 'kubernetes.io/tls'): KubeObject => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { namespace: 'shop', name },
  type,
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
});

function run(u: KubeObject, objects: { secrets?: KubeObject[]; configMaps?: KubeObject[] }) {
  const result = compile(
    toSnapshot({ routes: [route('orders', 'orders'), route('users', 'users')], upstreams: [u, plain], services: [], endpointSlices: [], secrets: objects.secrets ?? [], configMaps: objects.configMaps ?? [] }, PARSERS),
  );
  const status = (kind: string, name: string) => [...result.statuses.values()].find((s) => s.kind === kind && s.name === name);
  const refs = status('Upstream', 'orders')?.conditions.find((c) => c.type === 'ResolvedRefs');
  const routeRefs = status('GatewayRoute', 'orders')?.conditions.find((c) => c.type === 'ResolvedRefs');
  return { result, refs, routeRefs, table: result.table.upstreams.find((x) => x.name === 'shop/orders') };
}

describe('Upstream TLS references', () => {
  let dir: string;
  let ca: Pair;
  let ca2: Pair;
  let client: Pair;
  let stranger: Pair;

  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'switchyard-upstream-tls-refs-'));
    ca = makeCa(dir, 'ca');
    ca2 = makeCa(dir, 'ca-next');
    client = issue(dir, ca, 'gateway', 'extendedKeyUsage=clientAuth\n');
    stranger = issue(dir, ca2, 'stranger', 'extendedKeyUsage=clientAuth\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('puts the CA of a ConfigMap and the client certificate of a kubernetes.io/tls Secret into the table', () => {
    const { table, refs } = run(upstream({ serverName: 'orders.internal', caCertificateRef: { kind: 'ConfigMap', name: 'internal-ca' }, clientCertificateRef: { name: 'gateway-client' } }), {
      configMaps: [configMap('internal-ca', { 'ca.crt': ca.certPem })],
      secrets: [tlsSecret('gateway-client', { 'tls.crt': client.certPem, 'tls.key': client.keyPem })],
    });
    expect(refs).toMatchObject({ status: 'True' });
    expect(table?.tls).toEqual({ serverName: 'orders.internal', insecureSkipVerify: false, caPem: ca.certPem, certPem: client.certPem, keyPem: client.keyPem });
  });

  it('reads a CA from a kubernetes.io/tls Secret under the key named, and a bundle of several CAs', () => {
    const bundle = ca.certPem + ca2.certPem;
    const { table } = run(upstream({ caCertificateRef: { kind: 'Secret', name: 'issuer', key: 'bundle.pem' } }), {
      secrets: [tlsSecret('issuer', { 'tls.crt': client.certPem, 'tls.key': client.keyPem, 'bundle.pem': bundle })],
    });
    expect(table?.tls?.caPem).toBe(bundle);
  });

  const failures: [string, Record<string, unknown>, { secrets?: () => KubeObject[]; configMaps?: () => KubeObject[] }, RegExp][] = [
    ['a missing ConfigMap', { caCertificateRef: { kind: 'ConfigMap', name: 'internal-ca' } }, {}, /^tls\.caCertificateRef: ConfigMap "internal-ca" in namespace "shop" not found$/],
    ['a ConfigMap in another namespace', { caCertificateRef: { kind: 'ConfigMap', name: 'internal-ca' } }, { configMaps: () => [{ ...configMap('internal-ca', { 'ca.crt': ca.certPem }), metadata: { namespace: 'other', name: 'internal-ca' } }] }, /ConfigMap "internal-ca" in namespace "shop" not found/],
    ['a missing key', { caCertificateRef: { kind: 'ConfigMap', name: 'internal-ca' } }, { configMaps: () => [configMap('internal-ca', { 'root.pem': ca.certPem })] }, /ConfigMap "internal-ca" in namespace "shop" has no key "ca\.crt"/],
    ['no PEM at all', { caCertificateRef: { kind: 'ConfigMap', name: 'internal-ca' } }, { configMaps: () => [configMap('internal-ca', { 'ca.crt': 'hello' })] }, /key "ca\.crt": it holds no PEM certificate/],
    [
      'a certificate that does not parse',
      { caCertificateRef: { kind: 'ConfigMap', name: 'internal-ca' } },
      { configMaps: () => [configMap('internal-ca', { 'ca.crt': `${ca.certPem}-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n` })] },
      /key "ca\.crt": certificate 2 of 2 does not parse/,
    ],
    ['a CA in an Opaque Secret (never read)', { caCertificateRef: { kind: 'Secret', name: 'issuer' } }, { secrets: () => [tlsSecret('issuer', { 'ca.crt': ca.certPem }, 'Opaque')] }, /Secret "issuer" in namespace "shop" not found \(only Secrets of type kubernetes\.io\/tls are read/],
    ['a missing client Secret', { clientCertificateRef: { name: 'gateway-client' } }, {}, /^tls\.clientCertificateRef: Secret "gateway-client" in namespace "shop" not found/],
    ['a client key of another certificate', { clientCertificateRef: { name: 'gateway-client' } }, { secrets: () => [tlsSecret('gateway-client', { 'tls.crt': client.certPem, 'tls.key': stranger.keyPem })] }, /Secret "gateway-client" in namespace "shop": tls\.key does not belong to the certificate in tls\.crt/],
  ];

  it.each(failures)('%s: ResolvedRefs False, the Upstream out of the table, its routes unresolved, other routes served', (_, tls, objects, message) => {
    const { result, refs, routeRefs, table } = run(upstream(tls), { secrets: objects.secrets?.(), configMaps: objects.configMaps?.() });
    expect(refs).toMatchObject({ status: 'False', reason: Reason.InvalidCertificateRef });
    expect(refs?.message).toMatch(message);
    expect(table).toBeUndefined();
    expect(routeRefs).toMatchObject({ status: 'False', reason: Reason.BackendInvalid });
    expect(routeRefs?.message).toContain('Upstream "orders" has a TLS certificate reference that does not resolve');
    expect(result.table.upstreams.map((u) => u.name)).toEqual(['shop/users']);
    expect(result.table.routes.map((r) => r.id)).toContain('shop/users');
  });

  it('a rotated CA is a new table holding the new PEM', () => {
    const tls = { caCertificateRef: { kind: 'ConfigMap', name: 'internal-ca' } };
    const before = run(upstream(tls), { configMaps: [configMap('internal-ca', { 'ca.crt': ca.certPem })] });
    const after = run(upstream(tls), { configMaps: [configMap('internal-ca', { 'ca.crt': ca2.certPem })] });
    expect(after.table?.tls?.caPem).toBe(ca2.certPem);
    expect(after.result.table.version).not.toBe(before.result.table.version);
  });

  it('the store recompiles for the Secrets and ConfigMaps an Upstream names, and for no others', () => {
    const store = new Store();
    store.apply('Upstream', 'add', upstream({ caCertificateRef: { kind: 'ConfigMap', name: 'internal-ca' }, clientCertificateRef: { name: 'gateway-client' } }));
    expect(store.apply('ConfigMap', 'add', configMap('internal-ca', { 'ca.crt': ca.certPem }))).toBe(true);
    expect(store.apply('ConfigMap', 'update', configMap('internal-ca', { 'ca.crt': ca2.certPem }))).toBe(true);
    expect(store.apply('ConfigMap', 'update', { ...configMap('internal-ca', { 'ca.crt': ca2.certPem }), metadata: { namespace: 'shop', name: 'internal-ca', labels: { touched: 'yes' } } })).toBe(false);
    expect(store.apply('ConfigMap', 'add', configMap('app-settings', { 'ca.crt': ca.certPem }))).toBe(false);
    expect(store.apply('ConfigMap', 'add', { ...configMap('internal-ca', {}), metadata: { namespace: 'other', name: 'internal-ca' } })).toBe(false);
    expect(store.apply('Secret', 'add', tlsSecret('gateway-client', { 'tls.crt': client.certPem, 'tls.key': client.keyPem }))).toBe(true);
    expect(store.apply('Secret', 'add', tlsSecret('unrelated', { 'tls.crt': client.certPem, 'tls.key': client.keyPem }))).toBe(false);
    expect(store.apply('ConfigMap', 'delete', configMap('internal-ca', {}))).toBe(true);
    expect(store.upstreamTlsObjects('ConfigMap')).toEqual([]);
    store.apply('ConfigMap', 'add', configMap('internal-ca', { 'ca.crt': ca.certPem }));
    expect(store.upstreamTlsObjects('ConfigMap').map((o) => o.metadata?.name)).toEqual(['internal-ca']);
    expect(store.upstreamTlsObjects('Secret').map((o) => o.metadata?.name)).toEqual(['gateway-client']);
  });
});
