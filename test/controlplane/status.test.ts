/**
 * Status against a real API server: every reason docs/operator.md lists is
 * reached by objects that call for it, and status writes survive another
 * writer changing the same objects (conflicts retried over a fresh read, no
 * condition of either writer lost).
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { parseAllDocuments, stringify } from 'yaml';
import { silentLogger } from '../../dataplane/src/observability/logger.ts';
import { GatewayMetrics } from '../../dataplane/src/observability/metrics.ts';
import { TableHolder } from '../../dataplane/src/table/holder.ts';
import { OperatorSource } from '../../dataplane/src/table/operator-source.ts';
import { PoolRegistry } from '../../dataplane/src/upstream/pools.ts';
import type { Operator } from '../../operator/src/operator.ts';
import { startControlPlane, type ControlPlane } from '../support/control-plane.ts';
import { metricSum } from '../support/fleet.ts';
import { eventually, getObject, installCrds, kubeFor, waitCondition, type ApiCondition, type Kube } from '../support/kube.ts';
import { report, steadyLoad } from '../support/load.ts';
import { OPERATOR_TOKEN, startDataplane, startOperator } from '../support/operator.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';

type Plural = 'gatewayroutes' | 'upstreams';

/** The reasons docs/operator.md lists, as "Kind Condition Reason". */
function documentedReasons(): string[] {
  const doc = readFileSync('docs/operator.md', 'utf8');
  const rows = [...doc.matchAll(/^\| (GatewayRoute|Upstream) \| `(\w+)` \| (.+) \|$/gm)];
  return rows.flatMap((m) => [...(m[3] as string).matchAll(/`(\w+)`/g)].map((r) => `${m[1]} ${m[2]} ${r[1]}`)).sort();
}

describe('status', () => {
  let cp: ControlPlane;
  let kube: Kube;
  let upstream: TestUpstream;
  const cleanup: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    cp = await startControlPlane();
    kube = kubeFor(cp);
    await installCrds(kube);
    upstream = await startUpstream(echo('svc'));
  });

  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  afterAll(async () => {
    await upstream?.close();
    await cp?.stop();
  });

  const operator = async (): Promise<Operator> => {
    const op = await startOperator(kube);
    cleanup.push(() => op.stop());
    return op;
  };

  it('reaches every reason the documentation lists', async () => {
    const ns = 'reasons';
    await kube.kubectl(['create', 'namespace', ns]);
    // A cluster with an older Upstream CRD, without the rule that a spec names a Service or
    // static endpoints but not both: compile is the second line of defence there.
    const crd = parseAllDocuments(readFileSync('crds/upstreams.switchyard.dev.yaml', 'utf8'))[0]?.toJS() as { spec: { versions: { schema: { openAPIV3Schema: { properties: { spec: Record<string, unknown> } } } }[] } };
    const spec = crd.spec.versions[0]?.schema.openAPIV3Schema.properties.spec as Record<string, unknown>;
    delete spec['x-kubernetes-validations'];
    await kube.apply(stringify(crd));
    cleanup.push(async () => void (await kube.apply(readFileSync('crds/upstreams.switchyard.dev.yaml', 'utf8'))));

    const seen = new Set<string>();
    const expectCondition = async (plural: Plural, name: string, type: string, status: string, reason: string): Promise<ApiCondition> => {
      const c = await waitCondition(kube, plural, ns, name, type, status, reason, 30_000);
      seen.add(`${plural === 'gatewayroutes' ? 'GatewayRoute' : 'Upstream'} ${type} ${reason}`);
      return c;
    };
    const op = await operator();
    await kube.apply(`
apiVersion: v1
kind: Service
metadata: { name: web, namespace: ${ns} }
spec: { selector: { app: web }, ports: [{ name: http, port: 80 }] }
---
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: ok, namespace: ${ns} }
spec: { static: { endpoints: ["${upstream.url}"] } }
---
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: no-service, namespace: ${ns} }
spec: { service: { name: ghost, port: 80 } }
---
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: no-port, namespace: ${ns} }
spec: { service: { name: web, port: grpc } }
---
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: no-pods, namespace: ${ns} }
spec: { service: { name: web, port: http } }
---
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: both, namespace: ${ns} }
spec: { service: { name: web, port: http }, static: { endpoints: ["${upstream.url}"] } }
---
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: no-ca, namespace: ${ns} }
spec: { protocol: https, static: { endpoints: ["https://127.0.0.1:1"] }, tls: { caCertificateRef: { kind: ConfigMap, name: missing-ca } } }
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: ok, namespace: ${ns} }
spec: { path: { value: /reasons/ok }, upstream: ok }
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: missing-backend, namespace: ${ns} }
spec: { path: { value: /reasons/missing }, upstream: nowhere }
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: invalid-backend, namespace: ${ns} }
spec: { path: { value: /reasons/invalid-backend }, upstream: both }
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: header-twice, namespace: ${ns} }
spec: { path: { value: /reasons/twice }, headers: [{ name: canary, value: "true" }, { name: CANARY, type: Present }], upstream: ok }
`);
    // creationTimestamp has one-second resolution: the newer route must be newer.
    await new Promise((r) => setTimeout(r, 1100));
    await kube.apply(`
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: conflicted, namespace: ${ns} }
spec: { path: { value: /reasons/ok }, upstream: ok }
`);

    // No data plane yet.
    await expectCondition('gatewayroutes', 'ok', 'Accepted', 'True', 'Accepted');
    await expectCondition('gatewayroutes', 'ok', 'ResolvedRefs', 'True', 'ResolvedRefs');
    await expectCondition('gatewayroutes', 'ok', 'Programmed', 'False', 'NoDataplanes');
    expect((await expectCondition('gatewayroutes', 'missing-backend', 'ResolvedRefs', 'False', 'BackendNotFound')).message).toContain('"nowhere"');
    await expectCondition('gatewayroutes', 'invalid-backend', 'ResolvedRefs', 'False', 'BackendInvalid');
    expect((await expectCondition('gatewayroutes', 'header-twice', 'Accepted', 'False', 'Invalid')).message).toBe('header condition "CANARY" is listed twice; a header can be matched once per route');
    expect((await expectCondition('gatewayroutes', 'conflicted', 'Accepted', 'False', 'Conflicted')).message).toContain('"reasons/ok"');
    await expectCondition('gatewayroutes', 'conflicted', 'ResolvedRefs', 'False', 'NotAccepted');
    await expectCondition('gatewayroutes', 'conflicted', 'Programmed', 'False', 'NotAccepted');
    await expectCondition('upstreams', 'ok', 'Accepted', 'True', 'Accepted');
    await expectCondition('upstreams', 'ok', 'ResolvedRefs', 'True', 'ResolvedRefs');
    await expectCondition('upstreams', 'ok', 'Ready', 'True', 'Ready');
    expect((await expectCondition('upstreams', 'no-service', 'ResolvedRefs', 'False', 'ServiceNotFound')).message).toContain('ghost');
    expect((await expectCondition('upstreams', 'no-port', 'ResolvedRefs', 'False', 'PortNotFound')).message).toContain('grpc');
    await expectCondition('upstreams', 'no-pods', 'Ready', 'False', 'NoReadyEndpoints');
    expect((await expectCondition('upstreams', 'no-ca', 'ResolvedRefs', 'False', 'InvalidCertificateRef')).message).toBe(`tls.caCertificateRef: ConfigMap "missing-ca" in namespace "${ns}" not found`);
    expect((await expectCondition('upstreams', 'both', 'Accepted', 'False', 'Invalid')).message).toBe('spec: set either service or static, not both');
    await expectCondition('upstreams', 'both', 'ResolvedRefs', 'False', 'NotAccepted');
    await expectCondition('upstreams', 'both', 'Ready', 'False', 'NotAccepted');

    // A data plane that subscribed and has not acknowledged anything yet.
    const silent = await new Promise<http.ClientRequest>((resolve) => {
      const req = http.get(`http://127.0.0.1:${op.port}/v1/tables/watch?dataplane=dp-silent`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } }, () => resolve(req));
    });
    await expectCondition('gatewayroutes', 'ok', 'Programmed', 'False', 'Pending');
    silent.destroy();

    // A data plane that applies the table.
    const dp = await startDataplane([`http://127.0.0.1:${op.port}`], 'dp-1');
    cleanup.push(() => dp.stop());
    expect((await expectCondition('gatewayroutes', 'ok', 'Programmed', 'True', 'Programmed')).message).toBe('applied by 1 data plane');

    // A data plane that cannot build one route rejects the table that brings it.
    const pools = new PoolRegistry();
    const holder = new TableHolder(
      pools,
      (route) => {
        if (route.id === `${ns}/unbuildable`) throw new Error(`route "${ns}/unbuildable": this data plane cannot serve it`);
        return [];
      },
      new GatewayMetrics({ defaultMetrics: false }),
      silentLogger(),
    );
    const picky = new OperatorSource({ urls: [`http://127.0.0.1:${op.port}`], token: OPERATOR_TOKEN, id: 'dp-picky', holder, log: silentLogger(), backoff: { initialMs: 50, maxMs: 500 } });
    picky.start();
    cleanup.push(async () => {
      await picky.stop();
      await pools.closeAll(true);
    });
    await eventually(() => (holder.current?.version === op.table?.version ? true : undefined), 30_000, 'the picky data plane in step');
    await kube.apply(`apiVersion: switchyard.dev/v1alpha1\nkind: GatewayRoute\nmetadata: { name: unbuildable, namespace: ${ns} }\nspec: { path: { value: /reasons/unbuildable }, upstream: ok }\n`);
    const rejected = await expectCondition('gatewayroutes', 'unbuildable', 'Programmed', 'False', 'Rejected');
    expect(rejected.message).toBe(`data plane "dp-picky" rejected table ${op.table?.version}: route "${ns}/unbuildable": this data plane cannot serve it`);

    const documented = documentedReasons();
    expect(documented.length).toBeGreaterThan(0);
    expect([...seen].sort()).toEqual(documented);
  });

  it('writes a new route once, already Programmed, with one Event naming every condition', async () => {
    const ns = 'once';
    await kube.kubectl(['create', 'namespace', ns]);
    // A hold far longer than the data plane needs, so the check does not depend on the machine's speed;
    // only this namespace, so the writes counted are this test's.
    const op = await startOperator(kube, 'operator-once', { pendingHoldMs: 60_000, namespaces: [ns] });
    cleanup.push(() => op.stop());
    const dp = await startDataplane([`http://127.0.0.1:${op.port}`], 'dp-once');
    cleanup.push(() => dp.stop());
    await kube.apply(`apiVersion: switchyard.dev/v1alpha1\nkind: Upstream\nmetadata: { name: svc, namespace: ${ns} }\nspec: { static: { endpoints: ["${upstream.url}"] } }\n`);
    await waitCondition(kube, 'upstreams', ns, 'svc', 'Ready', 'True');
    // Connected and in step: a route compiled now waits only on this data plane (Pending), not on none.
    await eventually(() => (op.table && dp.gw.holder.current?.version === op.table.version ? true : undefined), 30_000, 'the data plane in step');
    const routeWrites = async (): Promise<number> => metricSum(await op.metrics.registry.metrics(), 'switchyard_operator_status_writes_total', { kind: 'GatewayRoute', result: 'ok' });
    expect(await routeWrites()).toBe(0);

    await kube.apply(`apiVersion: switchyard.dev/v1alpha1\nkind: GatewayRoute\nmetadata: { name: fresh, namespace: ${ns} }\nspec: { path: { value: /once }, upstream: svc }\n`);
    const programmed = await waitCondition(kube, 'gatewayroutes', ns, 'fresh', 'Programmed', 'True', 'Programmed', 30_000);
    expect(programmed.message).toBe('applied by 1 data plane');
    await op.writer.drained();
    expect(await routeWrites()).toBe(1);
    const events = await eventually(async () => {
      const list = JSON.parse(await kube.kubectl(['get', 'events', '-n', ns, '--field-selector', 'involvedObject.kind=GatewayRoute,involvedObject.name=fresh', '-o', 'json'])) as { items: { type: string; reason: string; message: string }[] };
      return list.items.length > 0 ? list.items : undefined;
    }, 15_000, 'the route\'s Event');
    expect(events.map((e) => `${e.type} ${e.reason}`)).toEqual(['Normal Programmed']);
    expect(events[0]?.message).toBe('Accepted=True: the route is valid; ResolvedRefs=True: all references resolved; Programmed=True: applied by 1 data plane');

    // Someone clears the status: the operator, which had found it in place, writes it again.
    const ref = { group: 'switchyard.dev', version: 'v1alpha1', namespace: ns, plural: 'gatewayroutes', name: 'fresh' };
    const obj = (await kube.custom.getNamespacedCustomObjectStatus(ref)) as Record<string, unknown>;
    await kube.custom.replaceNamespacedCustomObjectStatus({ ...ref, body: { ...obj, status: {} } });
    await waitCondition(kube, 'gatewayroutes', ns, 'fresh', 'Programmed', 'True', 'Programmed', 30_000);
  });

  it('keeps every condition when another writer changes the same status meanwhile, retrying its conflicts', async () => {
    const ns = 'conflicts';
    await kube.kubectl(['create', 'namespace', ns]);
    const op = await operator();
    const dp = await startDataplane([`http://127.0.0.1:${op.port}`], 'dp-1');
    cleanup.push(() => dp.stop());
    await kube.apply(`
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: svc, namespace: ${ns} }
spec: { static: { endpoints: ["${upstream.url}"] } }
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: contested, namespace: ${ns} }
spec: { path: { value: /contested }, upstream: svc, timeout: 1s }
`);
    await waitCondition(kube, 'gatewayroutes', ns, 'contested', 'Programmed', 'True');
    const conflicts = async (): Promise<number> => metricSum(await op.metrics.registry.metrics(), 'switchyard_operator_status_writes_total', { result: 'conflict' });
    const ref = { group: 'switchyard.dev', version: 'v1alpha1', namespace: ns, plural: 'gatewayroutes', name: 'contested' };

    // Another controller owns a condition of its own on the same object, and writes it as
    // client-go would: read, change its condition, write back with the resourceVersion read.
    let written = 0;
    const lost: string[] = [];
    const otherWriter = async (): Promise<void> => {
      for (;;) {
        const obj = (await kube.custom.getNamespacedCustomObjectStatus(ref)) as { metadata: { resourceVersion: string }; status?: { conditions?: ApiCondition[] } };
        const conditions = obj.status?.conditions ?? [];
        const mine = conditions.find((c) => c.type === 'ExternalCheck');
        if (written > 0 && mine?.message !== `check ${written}`) lost.push(`after check ${written}, the object had ${JSON.stringify(mine?.message)}`);
        const next = written + 1;
        const condition = { type: 'ExternalCheck', status: 'True', reason: 'Checked', message: `check ${next}`, observedGeneration: 1, lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') };
        try {
          await kube.custom.replaceNamespacedCustomObjectStatus({ ...ref, body: { ...obj, status: { ...obj.status, conditions: [...conditions.filter((c) => c.type !== 'ExternalCheck'), condition] } } });
          written = next;
          return;
        } catch (err) {
          if ((err as { code?: number }).code !== 409) throw err;
        }
      }
    };

    // Both write at once, round after round, until the operator has met a conflict (and a
    // few more), while traffic goes through the route each round changes.
    await eventually(async () => {
      const res = await request(`${dp.url}/contested`);
      await res.body.dump();
      return res.statusCode === 200 ? true : undefined;
    }, 30_000, 'the contested route served');
    const load = steadyLoad([`${dp.url}/contested`], { rate: 30 });
    let rounds = 0;
    let result;
    try {
      while (rounds < 20 || ((await conflicts()) === 0 && rounds < 200)) {
        rounds++;
        await Promise.all([kube.kubectl(['patch', 'gwr', 'contested', '-n', ns, '--type=merge', '-p', JSON.stringify({ spec: { timeout: `${1 + (rounds % 9)}s` } })]), otherWriter()]);
      }
    } finally {
      result = await load.stop();
    }
    report('status written under conflicts', result);
    expect(result.failures).toEqual([]);
    expect(result.sent).toBeGreaterThan(0);
    const generation = (await getObject(kube, 'gatewayroutes', ns, 'contested')).metadata.generation;
    await waitCondition(kube, 'gatewayroutes', ns, 'contested', 'Programmed', 'True');
    await otherWriter();
    const final = (await getObject(kube, 'gatewayroutes', ns, 'contested')).status;
    console.log(`status conflicts: ${rounds} rounds, ${written} writes by the other writer, ${await conflicts()} conflicts met by the operator`);
    expect(lost).toEqual([]);
    expect(await conflicts()).toBeGreaterThan(0);
    expect(final?.observedGeneration).toBe(generation);
    expect(final?.conditions?.map((c) => `${c.type}=${c.status}`).sort()).toEqual(['Accepted=True', 'ExternalCheck=True', 'Programmed=True', 'ResolvedRefs=True']);
    expect(final?.conditions?.find((c) => c.type === 'ExternalCheck')?.message).toBe(`check ${written}`);
    for (const c of final?.conditions ?? []) if (c.type !== 'ExternalCheck') expect(c.observedGeneration, c.type).toBe(generation);
  });
});
