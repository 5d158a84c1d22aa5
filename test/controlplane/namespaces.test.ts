/**
 * `--namespaces a,b`: the operator lists and watches those namespaces only.
 * It runs here as a service account with Roles in `a` and `b` and no right
 * anywhere else, so any cluster-wide list or watch would be refused and it
 * would never become ready. Routes in `a` and `b` are served and reported;
 * routes in `c` never reach the table and get no status.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startControlPlane, type ControlPlane } from '../support/control-plane.ts';
import { startDataplaneProc, startOperatorProc, type DataplaneProc, type OperatorProc } from '../support/fleet.ts';
import { eventually, getObject, installCrds, kubeFor, waitCondition, type Kube } from '../support/kube.ts';
import { report, steadyLoad } from '../support/load.ts';
import { tempFile } from '../support/processes.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';

const WATCHED = ['team-a', 'team-b'];
const OTHER = 'team-c';

describe('--namespaces', () => {
  let cp: ControlPlane;
  let kube: Kube;
  let upstream: TestUpstream;
  const started: (OperatorProc | DataplaneProc)[] = [];

  beforeAll(async () => {
    cp = await startControlPlane();
    kube = kubeFor(cp);
    await installCrds(kube, ...WATCHED, OTHER);
    upstream = await startUpstream(echo('svc'));
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') for (const s of started) console.log(`--- ${'identity' in s ? s.identity : s.id}:\n${s.proc.logs.slice(-30).join('\n')}`);
  });

  afterAll(async () => {
    for (const s of started.reverse()) await s.stop('SIGKILL');
    await upstream?.close();
    await cp?.stop();
  });

  const route = (ns: string, name: string): string => `
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: ${name}, namespace: ${ns} }
spec: { static: { endpoints: ["${upstream.url}"] } }
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: ${name}, namespace: ${ns} }
spec: { path: { value: /${ns}/${name} }, upstream: ${name} }
`;

  /** A service account with what an operator needs in each watched namespace, and nothing cluster-wide. */
  const scopedKubeconfig = async (): Promise<string> => {
    const home = WATCHED[0] as string;
    await kube.apply(`apiVersion: v1\nkind: ServiceAccount\nmetadata: { name: operator, namespace: ${home} }\n`);
    for (const ns of WATCHED) {
      await kube.apply(`
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: switchyard-operator, namespace: ${ns} }
rules:
  - { apiGroups: [switchyard.dev], resources: [gatewayroutes, upstreams], verbs: [get, list, watch] }
  - { apiGroups: [switchyard.dev], resources: [gatewayroutes/status, upstreams/status], verbs: [get, patch] }
  - { apiGroups: [""], resources: [services], verbs: [list, watch] }
  - { apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch] }
  - { apiGroups: [""], resources: [secrets, configmaps], verbs: [list, watch] }
  - { apiGroups: [""], resources: [events], verbs: [create] }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: switchyard-operator, namespace: ${ns} }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: switchyard-operator }
subjects: [{ kind: ServiceAccount, name: operator, namespace: ${home} }]
`);
    }
    const token = (await kube.kubectl(['create', 'token', 'operator', '-n', home, '--duration=1h'])).trim();
    const ca = /certificate-authority-data: (\S+)/.exec(cp.kubeconfig)?.[1] ?? '';
    return tempFile(
      'kubeconfig',
      `apiVersion: v1
kind: Config
clusters: [{ name: test, cluster: { server: "${cp.server}", certificate-authority-data: ${ca} } }]
users: [{ name: operator, user: { token: ${token} } }]
contexts: [{ name: test, context: { cluster: test, user: operator } }]
current-context: test
`,
    );
  };

  it('serves routes in the namespaces it watches, and ignores the others, with rights in its namespaces only', async () => {
    await kube.apply(route(OTHER, 'before'));
    const operator = await startOperatorProc({ kubeconfig: await scopedKubeconfig(), identity: 'scoped', leaseNamespace: undefined, namespaces: WATCHED });
    started.push(operator);
    const dp = await startDataplaneProc({ id: 'dp-1', operatorUrls: [operator.url] });
    started.push(dp);
    for (const ns of WATCHED) await kube.apply(route(ns, 'one'));
    for (const ns of WATCHED) await waitCondition(kube, 'gatewayroutes', ns, 'one', 'Programmed', 'True', undefined, 30_000);
    const load = steadyLoad(WATCHED.map((ns) => `${dp.url}/${ns}/one`), { rate: 20 });

    // Created while it runs: in a watched namespace it is served; in the other, never.
    await kube.apply(route(OTHER, 'during'));
    await kube.apply(route(WATCHED[1] as string, 'two'));
    // The operator has compiled past the moment team-c's route appeared.
    await waitCondition(kube, 'gatewayroutes', WATCHED[1] as string, 'two', 'Programmed', 'True', undefined, 30_000);
    await eventually(async () => ((await request(`${dp.url}/${WATCHED[1]}/two`)).statusCode === 200 ? true : undefined), 30_000, 'team-b/two served');
    for (const name of ['before', 'during']) {
      const res = await request(`${dp.url}/${OTHER}/${name}`);
      await res.body.dump();
      expect(res.statusCode, name).toBe(404);
      expect((await getObject(kube, 'gatewayroutes', OTHER, name)).status, name).toBeUndefined();
      expect((await getObject(kube, 'upstreams', OTHER, name)).status, name).toBeUndefined();
    }
    await eventually(() => (load.sent >= 60 ? true : undefined), 30_000, 'three seconds of traffic');
    const table = (await (await request(`${operator.metricsUrl}/metrics`)).body.text()).match(/switchyard_operator_table_routes (\d+)/)?.[1];
    expect(table).toBe('3');
    const result = await load.stop();
    report('--namespaces', result);
    expect(result.failures).toEqual([]);
  });
});
