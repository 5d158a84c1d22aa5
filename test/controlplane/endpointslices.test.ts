/**
 * What Upstream discovery relies on: kube-controller-manager's EndpointSlice
 * controller turns a Service's selected, ready Pods into EndpointSlice
 * endpoints. There is no kubelet here, so the test plays its part and patches
 * Pod status. The addresses are API data only; nothing is ever sent to them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane } from '../support/control-plane.ts';
import type { ControlPlane } from '../support/control-plane.ts';
import { eventually, kubeFor, setPodReady, type Kube } from '../support/kube.ts';

const NS = 'discovery';
let cp: ControlPlane;

let kube: Kube;
const kubectl = (args: string[], stdin?: string): Promise<string> => kube.kubectl(args, stdin);

interface SliceEndpoint {
  addresses: string[];
  conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
  targetRef?: { kind: string; name: string };
  nodeName?: string;
}
interface Slice {
  addressType: string;
  endpoints?: SliceEndpoint[] | null;
  ports?: { name?: string; port?: number; protocol?: string }[] | null;
}

async function slices(service: string): Promise<Slice[]> {
  const out = await kubectl(['get', 'endpointslices', '-n', NS, '-l', `kubernetes.io/service-name=${service}`, '-o', 'json']);
  return (JSON.parse(out) as { items: Slice[] }).items;
}

/** `address=ready` for every endpoint of the Service's slices, sorted. */
async function endpointStates(service: string): Promise<string[]> {
  return (await slices(service)).flatMap((s) => (s.endpoints ?? []).flatMap((e) => e.addresses.map((a) => `${a}=${String(e.conditions?.ready)}`))).sort();
}

const setPodStatus = (pod: string, ip: string, ready: boolean): Promise<void> => setPodReady(kube, NS, pod, ip, ready);

const pod = (name: string): Record<string, unknown> => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace: NS, labels: { app: 'user-service' } },
  spec: { nodeName: 'node-1', containers: [{ name: 'app', image: 'registry.invalid/user-service:1', ports: [{ name: 'http', containerPort: 3002 }] }] },
});

beforeAll(async () => {
  cp = await startControlPlane();
  kube = kubeFor(cp);
  const objects = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
    { apiVersion: 'v1', kind: 'Node', metadata: { name: 'node-1', labels: { 'topology.kubernetes.io/zone': 'zone-a' } } },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'user-service', namespace: NS },
      spec: { selector: { app: 'user-service' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] },
    },
    pod('user-service-1'),
    pod('user-service-2'),
  ];
  await kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects }));
});

afterAll(async () => {
  await cp?.stop();
});

describe('EndpointSlices from kube-controller-manager', () => {
  it('list the ready Pods of a Service, with the target port resolved by name', async () => {
    await setPodStatus('user-service-1', '10.244.1.10', true);
    await setPodStatus('user-service-2', '10.244.1.11', true);
    const states = await eventually(
      async () => {
        const now = await endpointStates('user-service');
        return now.join() === '10.244.1.10=true,10.244.1.11=true' ? now : undefined;
      },
      30_000,
      'both Pods ready in the EndpointSlice',
    );
    expect(states).toHaveLength(2);
    const [slice] = await slices('user-service');
    expect(slice?.addressType).toBe('IPv4');
    expect(slice?.ports).toEqual([{ name: 'http', port: 3002, protocol: 'TCP' }]);
    expect(slice?.endpoints?.map((e) => [e.targetRef?.kind, e.nodeName]).sort()).toEqual([
      ['Pod', 'node-1'],
      ['Pod', 'node-1'],
    ]);
  });

  it('mark a Pod that stops being Ready as not ready, and ready again when it recovers', async () => {
    await setPodStatus('user-service-2', '10.244.1.11', false);
    await eventually(async () => ((await endpointStates('user-service')).join() === '10.244.1.10=true,10.244.1.11=false' ? true : undefined), 30_000, 'user-service-2 not ready');
    await setPodStatus('user-service-2', '10.244.1.11', true);
    await eventually(async () => ((await endpointStates('user-service')).join() === '10.244.1.10=true,10.244.1.11=true' ? true : undefined), 30_000, 'user-service-2 ready again');
  });

  it('drop a deleted Pod', async () => {
    await kubectl(['delete', 'pod', 'user-service-1', '-n', NS, '--grace-period=0', '--force', '--wait=false']);
    await eventually(async () => ((await endpointStates('user-service')).join() === '10.244.1.11=true' ? true : undefined), 30_000, 'user-service-1 gone from the EndpointSlice');
  });
});
