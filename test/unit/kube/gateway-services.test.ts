/**
 * Gateways' own Services without an API server: applied when missing or
 * changed, left alone when up to date (defaulted fields do not count),
 * deleted when no Gateway wants them, never someone else's, and only while
 * the replica leads.
 */
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../../dataplane/src/observability/logger.ts';
import { controllerLabel, GATEWAY_SERVICE_LABEL, type DesiredService } from '../../../operator/src/compile/index.ts';
import { GatewayServices, serviceUpToDate, type ServiceClient } from '../../../operator/src/kube/gateway-services.ts';
import type { KubeObject } from '../../../operator/src/store/convert.ts';

const CONTROLLER = 'switchyard.dev/gateway-controller';
const mine = controllerLabel(CONTROLLER);

function desired(name: string, port = 80, targetPort = 20001): DesiredService {
  return {
    namespace: 'sy',
    name,
    labels: { 'app.kubernetes.io/managed-by': 'switchyard-operator', [GATEWAY_SERVICE_LABEL]: mine },
    annotations: { 'switchyard.dev/gateway': `infra/${name}` },
    spec: { type: 'LoadBalancer', selector: { app: 'dp' }, ports: [{ name: `port-${port}`, port, targetPort, protocol: 'TCP' }] },
  };
}

/** The Service as the API server returns it after an apply: defaults filled in, other fields present. */
function stored(d: DesiredService): KubeObject {
  const metadata = { namespace: d.namespace, name: d.name, labels: { ...d.labels, extra: 'x' }, annotations: { ...d.annotations, 'cloud/lb': 'y' } };
  return {
    metadata,
    spec: { ...d.spec, clusterIP: '198.19.0.9', sessionAffinity: 'None', ports: d.spec.ports.map((p) => ({ ...p, nodePort: 31000 })) },
  };
}

class MemoryServices implements ServiceClient {
  readonly objects = new Map<string, KubeObject>();
  readonly calls: string[] = [];
  failNext = 0;
  apply(s: DesiredService): Promise<void> {
    if (this.failNext-- > 0) return Promise.reject(new Error('API server away'));
    this.calls.push(`apply ${s.name}`);
    this.objects.set(s.name, stored(s));
    return Promise.resolve();
  }
  delete(_namespace: string, name: string): Promise<void> {
    this.calls.push(`delete ${name}`);
    this.objects.delete(name);
    return Promise.resolve();
  }
  list(): KubeObject[] {
    return [...this.objects.values()];
  }
}

describe('serviceUpToDate', () => {
  it('ignores what the API server and others add, and sees what Switchyard sets change', () => {
    const d = desired('a');
    expect(serviceUpToDate(d, stored(d))).toBe(true);
    expect(serviceUpToDate(desired('a', 80, 20002), stored(d))).toBe(false);
    expect(serviceUpToDate({ ...d, spec: { ...d.spec, type: 'ClusterIP' } }, stored(d))).toBe(false);
    expect(serviceUpToDate({ ...d, annotations: { ...d.annotations, 'switchyard.dev/gateway': 'infra/b' } }, stored(d))).toBe(false);
    expect(serviceUpToDate(d, undefined)).toBe(false);
  });
});

describe('GatewayServices', () => {
  const setup = (): { api: MemoryServices; keeper: GatewayServices } => {
    const api = new MemoryServices();
    return { api, keeper: new GatewayServices(api, { log: silentLogger(), controllerName: CONTROLLER, retryMs: 5 }) };
  };

  it('does nothing until it leads, then applies what is missing and only that', async () => {
    const { api, keeper } = setup();
    keeper.sync([desired('a'), desired('b')], []);
    await keeper.drained();
    expect(api.calls).toEqual([]);
    keeper.setEnabled(true);
    await keeper.drained();
    expect(api.calls).toEqual(['apply a', 'apply b']);
    keeper.sync([desired('a'), desired('b')], api.list());
    await keeper.drained();
    expect(api.calls).toHaveLength(2);
  });

  it("applies a changed Service, deletes its own orphans, and leaves others' Services alone", async () => {
    const { api, keeper } = setup();
    keeper.setEnabled(true);
    keeper.sync([desired('a'), desired('gone')], []);
    await keeper.drained();
    const foreign: KubeObject[] = [
      { metadata: { namespace: 'sy', name: 'chart-service', labels: {} } },
      { metadata: { namespace: 'sy', name: 'other-release', labels: { [GATEWAY_SERVICE_LABEL]: controllerLabel('example.com/other') } } },
    ];
    keeper.sync([desired('a', 443, 20003)], [...api.list(), ...foreign]);
    await keeper.drained();
    expect(api.calls).toEqual(['apply a', 'apply gone', 'apply a', 'delete gone']);
  });

  it('retries after an API error', async () => {
    const { api, keeper } = setup();
    api.failNext = 2;
    keeper.setEnabled(true);
    keeper.sync([desired('a')], []);
    await new Promise((r) => setTimeout(r, 100));
    await keeper.drained();
    expect(api.calls).toEqual(['apply a']);
    expect(keeper.counters.failed).toBe(2);
  });
});
