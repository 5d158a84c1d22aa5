/**
 * The control plane restarting under steady traffic: the API server killed and
 * started again on the same etcd data, etcd killed and started again, and a
 * watch that expires (410 Gone) because etcd compacted past it while the
 * operator was cut off. The gateways keep serving through each; the operator
 * recovers its watches and serves changes made afterwards.
 *
 * Real processes throughout: the launcher restarts etcd and kube-apiserver
 * (test/support/control-plane.ts), the operator and data planes are the CLIs.
 */
import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startControlPlane, type ControlPlane } from '../support/control-plane.ts';
import { metricSum, operatorTableVersion, startDataplaneProc, startOperatorProc, type DataplaneProc, type OperatorProc } from '../support/fleet.ts';
import { eventually, installCrds, kubeFor, waitCondition, type Kube } from '../support/kube.ts';
import { report, steadyLoad } from '../support/load.ts';
import { tempFile } from '../support/processes.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';

// How long the operator may take to serve a change once the API server is back: its
// watches retry within 5 s (backoff with jitter), compiles coalesce within 1 s, and a
// shared 2-core machine adds its share. A bound on behaviour, not a measurement.
const RECOVERY_MS = 30_000;

describe('the control plane restarting under traffic', () => {
  let cp: ControlPlane;
  let kube: Kube;
  let upstream: TestUpstream;
  const started: (OperatorProc | DataplaneProc)[] = [];
  let startedBefore = 0;
  const proxies: TcpProxy[] = [];

  const status = async (url: string): Promise<number> => {
    const res = await request(url);
    await res.body.dump();
    return res.statusCode;
  };

  /** A namespace of the test's own with an Upstream and a route at /<ns>/<name> for each name. */
  const setUpNamespace = async (ns: string, routes: string[]): Promise<void> => {
    await kube.kubectl(['create', 'namespace', ns]);
    await kube.apply(routeYaml(ns, routes, upstream.url));
  };

  /** A leader-elected operator (its Lease in namespace `name`) and two data planes with state directories. */
  const startFleet = async (name: string): Promise<{ operator: OperatorProc; dataplanes: DataplaneProc[] }> => {
    const operator = await startOperatorProc({ kubeconfig: cp.kubeconfigPath, identity: `${name}-operator`, leaseNamespace: name });
    started.push(operator);
    const dataplanes: DataplaneProc[] = [];
    for (const i of [1, 2]) {
      const dp = await startDataplaneProc({ id: `${name}-dp-${i}`, operatorUrls: [operator.url] });
      started.push(dp);
      dataplanes.push(dp);
    }
    return { operator, dataplanes };
  };

  const servedEverywhere = (dataplanes: DataplaneProc[], path: string, what: string): Promise<true> =>
    eventually(async () => ((await Promise.all(dataplanes.map((d) => status(`${d.url}${path}`)))).every((s) => s === 200) ? true : undefined), RECOVERY_MS, what);

  beforeAll(async () => {
    cp = await startControlPlane();
    kube = kubeFor(cp);
    await installCrds(kube);
    upstream = await startUpstream(echo('svc'));
  });

  afterEach((ctx) => {
    // What the processes of a failed test said last is the first thing to read.
    if (ctx.task.result?.state === 'fail') for (const s of started.slice(startedBefore)) console.log(`--- ${'identity' in s ? s.identity : s.id}:\n${s.proc.logs.slice(-25).join('\n')}`);
    startedBefore = started.length;
  });

  afterAll(async () => {
    for (const s of started.reverse()) await s.stop('SIGKILL');
    for (const p of proxies) await p.close();
    await upstream?.close();
    await cp?.stop();
  });

  it('loses no request while the API server is killed and started again, and serves a route created afterwards', async () => {
    const ns = 'restart-apiserver';
    await setUpNamespace(ns, ['steady']);
    const { operator, dataplanes } = await startFleet(ns);
    await waitCondition(kube, 'gatewayroutes', ns, 'steady', 'Programmed', 'True', undefined, 60_000);
    await servedEverywhere(dataplanes, `/${ns}/steady`, 'the steady route on both data planes');
    const restartsBefore = metricSum(await operator.metrics(), 'switchyard_operator_watch_restarts_total');

    const load = steadyLoad(dataplanes.map((d) => `${d.url}/${ns}/steady`), { rate: 30 });
    await cp.restart('kube-apiserver', { signal: 'KILL', downMs: 3_000 });
    // Back: a change made now reaches every gateway and is reported Programmed.
    await kube.apply(routeYaml(ns, ['after'], upstream.url));
    await servedEverywhere(dataplanes, `/${ns}/after`, 'the route created after the restart, on both data planes');
    await waitCondition(kube, 'gatewayroutes', ns, 'after', 'Programmed', 'True', undefined, RECOVERY_MS);
    const result = await load.stop();
    report('API server killed and restarted', result);
    expect(result.failures).toEqual([]);
    expect(result.sent).toBeGreaterThan(0);
    // The watches broke with the API server and were started again.
    expect(metricSum(await operator.metrics(), 'switchyard_operator_watch_restarts_total', { reason: 'error' })).toBeGreaterThan(restartsBefore);
  });

  it('loses no request while etcd is killed and started again on its data, and serves a route created afterwards', async () => {
    const ns = 'restart-etcd';
    await setUpNamespace(ns, ['steady']);
    const { operator, dataplanes } = await startFleet(ns);
    await waitCondition(kube, 'gatewayroutes', ns, 'steady', 'Programmed', 'True', undefined, 60_000);
    await servedEverywhere(dataplanes, `/${ns}/steady`, 'the steady route on both data planes');

    const load = steadyLoad(dataplanes.map((d) => `${d.url}/${ns}/steady`), { rate: 30 });
    const logsBefore = operator.proc.logs.length;
    // Down for longer than the renew deadline (3 s): the leader cannot renew its Lease
    // through an API server without etcd, and must step down, then lead again.
    await cp.restart('etcd', { signal: 'KILL', downMs: 5_000 });
    // Objects written before the restart are still there: etcd kept its data.
    await eventually(async () => ((await kube.kubectl(['get', 'gwr', 'steady', '-n', ns, '-o', 'name'])).trim() === 'gatewayroute.switchyard.dev/steady' ? true : undefined), RECOVERY_MS, 'the API server serving from etcd again');
    await eventually(async () => (await kube.apply(routeYaml(ns, ['after'], upstream.url))) && true, RECOVERY_MS, 'a route created after etcd is back');
    await servedEverywhere(dataplanes, `/${ns}/after`, 'the route created after the restart, on both data planes');
    await waitCondition(kube, 'gatewayroutes', ns, 'after', 'Programmed', 'True', undefined, RECOVERY_MS);
    const result = await load.stop();
    report('etcd killed and restarted', result);
    expect(result.failures).toEqual([]);
    expect(result.sent).toBeGreaterThan(0);
    const events = operator.proc.logs.slice(logsBefore).map((l) => /"event":"(following|serving)"/.exec(l)?.[1]).filter((e) => e !== undefined);
    expect(events.slice(0, 2)).toEqual(['following', 'serving']);
  });

  it('relists after its watch expired (410 Gone) and ends with the table an operator computes from scratch', async () => {
    const ns = 'expired-watch';
    await setUpNamespace(ns, ['steady', 'removed']);
    // This operator reaches the API server through a relay the test can cut. It runs
    // without leader election: a new leader relists anyway, and here the relist must
    // come from the 410 alone.
    const proxy = await startTcpProxy(apiServerAddress(cp));
    proxies.push(proxy);
    const kubeconfig = tempFile('kubeconfig', readFileSync(cp.kubeconfigPath, 'utf8').replace(/server: https:\/\/[^\s]+/, `server: https://${proxy.address}`));
    const operator = await startOperatorProc({ kubeconfig, identity: 'expired-operator', leaseNamespace: undefined });
    started.push(operator);
    const dp = await startDataplaneProc({ id: 'expired-dp', operatorUrls: [operator.url] });
    started.push(dp);
    await servedEverywhere([dp], `/${ns}/removed`, 'the routes before the cut');
    const load = steadyLoad([`${dp.url}/${ns}/steady`], { rate: 20 });

    proxy.cut();
    // Changes the operator cannot see: a route added (with an Upstream of its own), one removed.
    const other = await startUpstream(echo('moved'));
    try {
      await kube.apply(routeYaml(ns, ['added'], other.url));
      await kube.kubectl(['delete', 'gwr', 'removed', '-n', ns]);
      // etcd forgets the history the operator's watch would resume from, and the API
      // server, restarted, has none cached: the resumed watch gets 410 Gone.
      await compactEtcd(cp.etcd);
      await cp.restart('kube-apiserver', { signal: 'KILL' });
      proxy.heal();

      await eventually(async () => (metricSum(await operator.metrics(), 'switchyard_operator_watch_restarts_total', { reason: 'expired' }) > 0 ? true : undefined), RECOVERY_MS, 'an expired watch counted');
      await servedEverywhere([dp], `/${ns}/added`, 'the route added during the cut');
      await eventually(async () => ((await status(`${dp.url}/${ns}/removed`)) === 404 ? true : undefined), RECOVERY_MS, 'the route removed during the cut gone');
      const result = await load.stop();
      report('watch expired (410) and relisted', result);
      expect(result.failures).toEqual([]);

      // A fresh operator lists everything once: the relisted cache must give the same table.
      const fresh = await startOperatorProc({ kubeconfig: cp.kubeconfigPath, identity: 'from-scratch', leaseNamespace: undefined });
      started.push(fresh);
      const want = await eventually(async () => operatorTableVersion(await fresh.metrics()), RECOVERY_MS, 'the fresh operator’s table');
      await eventually(async () => (operatorTableVersion(await operator.metrics()) === want ? true : undefined), RECOVERY_MS, `the relisted operator at table ${want}`);
      await eventually(async () => ((await dp.version()) === want ? true : undefined), RECOVERY_MS, `the data plane at table ${want}`);
    } finally {
      await other.close();
    }
  });
});

/** An Upstream named after the namespace and one GatewayRoute per name at /<ns>/<name>. */
function routeYaml(ns: string, names: string[], upstreamUrl: string): string {
  const ups = `${ns}-${names.join('-')}`;
  return [
    `apiVersion: switchyard.dev/v1alpha1\nkind: Upstream\nmetadata: { name: ${ups}, namespace: ${ns} }\nspec: { static: { endpoints: ["${upstreamUrl}"] } }\n`,
    ...names.map((n) => `apiVersion: switchyard.dev/v1alpha1\nkind: GatewayRoute\nmetadata: { name: ${n}, namespace: ${ns} }\nspec: { path: { value: /${ns}/${n} }, upstream: ${ups} }\n`),
  ].join('---\n');
}

function apiServerAddress(cp: ControlPlane): { host: string; port: number } {
  const url = new URL(cp.server);
  return { host: url.hostname, port: Number(url.port) };
}

/** Compacts etcd's history up to its current revision, through etcd's JSON gateway. */
async function compactEtcd(etcd: string): Promise<void> {
  const range = await request(`${etcd}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('\0').toString('base64') }) });
  const revision = ((await range.body.json()) as { header: { revision: string } }).header.revision;
  const compact = await request(`${etcd}/v3/kv/compaction`, { method: 'POST', body: JSON.stringify({ revision, physical: true }) });
  const text = await compact.body.text();
  if (compact.statusCode !== 200) throw new Error(`etcd compaction: ${compact.statusCode} ${text}`);
}
