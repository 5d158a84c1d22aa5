/**
 * Leader election and static stability with the real CLIs: operator replicas
 * electing a leader through a Lease, data plane processes with a state
 * directory, and steady traffic that must never fail while leaders die, hand
 * over, lose the API server or are cut off from it.
 *
 * Each test has a namespace of its own (its Lease lives there), its own
 * replicas and data planes; they share only the control plane.
 */
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { startControlPlane, type ControlPlane } from '../support/control-plane.ts';
import {
  exactlyOneLeader,
  loggedAt,
  metric,
  metricSum,
  operatorTableVersion,
  startDataplaneProc,
  startOperatorProc,
  subscribeAnswer,
  TEST_LEASE,
  watchLease,
  type DataplaneProc,
  type OperatorProc,
} from '../support/fleet.ts';
import { eventually, installCrds, kubeFor, waitCondition, type Kube } from '../support/kube.ts';
import { report, steadyLoad } from '../support/load.ts';
import { freePort, tempFile } from '../support/processes.ts';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';

// Generous bounds for things that take a lease duration (4 s) or two on a shared machine.
const WITHIN = 30_000;
const LEASE_MS = Number.parseInt(TEST_LEASE.duration, 10) * 1000;

describe('failover and static stability', () => {
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

  const operator = async (ns: string, identity: string, options: { kubeconfig?: string; port?: number; leader?: boolean } = {}): Promise<OperatorProc> => {
    const op = await startOperatorProc({ kubeconfig: options.kubeconfig ?? cp.kubeconfigPath, identity, leaseNamespace: options.leader === false ? undefined : ns, port: options.port });
    started.push(op);
    return op;
  };

  const dataplane = async (id: string, operators: OperatorProc[], stateDir?: string): Promise<DataplaneProc> => {
    const dp = await startDataplaneProc({ id, operatorUrls: operators.map((o) => o.url), stateDir });
    started.push(dp);
    return dp;
  };

  /** A namespace with an Upstream and one route per name, at /<ns>/<name>. */
  const routes = async (ns: string, names: string[], create = true): Promise<void> => {
    if (create) await kube.kubectl(['create', 'namespace', ns]);
    await kube.apply(
      [
        `apiVersion: switchyard.dev/v1alpha1\nkind: Upstream\nmetadata: { name: svc, namespace: ${ns} }\nspec: { static: { endpoints: ["${upstream.url}"] } }\n`,
        ...names.map((n) => `apiVersion: switchyard.dev/v1alpha1\nkind: GatewayRoute\nmetadata: { name: ${n}, namespace: ${ns} }\nspec: { path: { value: /${ns}/${n} }, upstream: svc }\n`),
      ].join('---\n'),
    );
  };

  const served = (dps: DataplaneProc[], p: string): Promise<true> =>
    eventually(async () => ((await Promise.all(dps.map((d) => status(`${d.url}${p}`)))).every((s) => s === 200) ? true : undefined), WITHIN, `${p} served by ${dps.map((d) => d.id).join(', ')}`);

  const connectedTo = (op: OperatorProc, n: number): Promise<true> =>
    eventually(async () => (metric(await op.metrics(), 'switchyard_operator_dataplanes_connected') === n ? true : undefined), WITHIN, `${n} data planes on ${op.identity}`);

  /** Versions each table_applied line of a data plane names, from log line `from` on. */
  const appliedVersions = (dp: DataplaneProc, from = 0): string[] =>
    dp.proc.logs
      .slice(from)
      .filter((l) => l.includes('"event":"table_applied"'))
      .map((l) => (JSON.parse(l) as { version: string }).version);

  beforeAll(async () => {
    cp = await startControlPlane();
    kube = kubeFor(cp);
    await installCrds(kube);
    upstream = await startUpstream(echo('svc'));
  });

  afterEach((ctx) => {
    if (ctx.task.result?.state === 'fail') for (const s of started.slice(startedBefore)) console.log(`--- ${'identity' in s ? s.identity : s.id}:\n${s.proc.logs.slice(-30).join('\n')}`);
    startedBefore = started.length;
  });

  afterAll(async () => {
    for (const s of started.reverse()) await s.stop('SIGKILL');
    for (const p of proxies) await p.close();
    await upstream?.close();
    await cp?.stop();
  });

  it('keeps traffic flowing while the leader is killed, and the other replica takes over status after the lease expires', async () => {
    const ns = 'failover';
    await routes(ns, ['one']);
    const a = await operator(ns, 'op-a');
    await a.proc.waitForLog('"event":"serving"');
    const b = await operator(ns, 'op-b');
    const dp = await dataplane('dp-1', [a, b]);
    await waitCondition(kube, 'gatewayroutes', ns, 'one', 'Programmed', 'True', undefined, WITHIN);
    const lease = await watchLease(kube.kc, ns);
    const load = steadyLoad([`${dp.url}/${ns}/one`], { rate: 30 });
    try {
      const killedAt = Date.now();
      await a.stop('SIGKILL');
      await b.proc.waitForLog('"event":"serving"', WITHIN);
      // For the log only: a killed leader releases nothing, so this is the lease duration and a retry period or so.
      console.log(`failover: op-b serves ${Date.now() - killedAt} ms after op-a was killed (lease ${TEST_LEASE.duration})`);
      // Nobody released the Lease: op-b took it over once it expired, in the next term.
      await eventually(() => (lease.records.at(-1)?.holder === 'op-b' ? true : undefined), WITHIN, 'op-b in the Lease');
      expect(lease.records.map((r) => r.holder)).toEqual(['op-a', 'op-b']);
      expect(lease.records[1]?.transitions).toBe((lease.records[0]?.transitions ?? 0) + 1);

      // Status keeps updating: a new route gets its conditions from the new leader, and the data plane serves it.
      await routes(ns, ['two'], false);
      await waitCondition(kube, 'gatewayroutes', ns, 'two', 'Programmed', 'True', undefined, WITHIN);
      await served([dp], `/${ns}/two`);
    } finally {
      lease.stop();
      const result = await load.stop();
      report('leader killed (SIGKILL)', result);
      expect(result.failures).toEqual([]);
    }
  });

  it('hands over on SIGTERM: the leader releases the Lease, the other replica takes it at once, data planes follow', async () => {
    const ns = 'handover';
    await routes(ns, ['one']);
    const a = await operator(ns, 'op-a');
    await a.proc.waitForLog('"event":"serving"');
    const b = await operator(ns, 'op-b');
    const dps = [await dataplane('dp-1', [a, b]), await dataplane('dp-2', [a, b])];
    await connectedTo(a, 2);
    await served(dps, `/${ns}/one`);
    // A follower sends data planes on, as documented: 503 with Retry-After.
    expect(await subscribeAnswer(b)).toEqual({ status: 503, retryAfter: '1' });

    const lease = await watchLease(kube.kc, ns);
    const load = steadyLoad(dps.map((d) => `${d.url}/${ns}/one`), { rate: 30 });
    const stoppedAt = Date.now();
    expect(await a.stop('SIGTERM')).toBe(0);
    await b.proc.waitForLog('"event":"serving"', WITHIN);
    console.log(`hand-over: op-b serves ${Date.now() - stoppedAt} ms after op-a got SIGTERM (lease ${TEST_LEASE.duration})`);
    // The Lease went from op-a to nobody (released, so nobody waits for it to expire) to op-b.
    await eventually(() => (lease.records.at(-1)?.holder === 'op-b' ? true : undefined), WITHIN, 'op-b in the Lease');
    lease.stop();
    expect(lease.records.map((r) => r.holder)).toEqual(['op-a', '', 'op-b']);
    await connectedTo(b, 2);
    // The data planes take the new leader's table (the same one) and a new route from it.
    await routes(ns, ['two'], false);
    await served(dps, `/${ns}/two`);
    await waitCondition(kube, 'gatewayroutes', ns, 'two', 'Programmed', 'True', undefined, WITHIN);
    const result = await load.stop();
    report('leader stopped (SIGTERM)', result);
    expect(result.failures).toEqual([]);
  });

  it('steps down when the API server stops answering for longer than the lease, and one replica leads once it is back', async () => {
    const ns = 'paused';
    await routes(ns, ['one']);
    const a = await operator(ns, 'op-a');
    await a.proc.waitForLog('"event":"serving"');
    const b = await operator(ns, 'op-b');
    const dps = [await dataplane('dp-1', [a, b]), await dataplane('dp-2', [a, b])];
    await connectedTo(a, 2);
    await waitCondition(kube, 'gatewayroutes', ns, 'one', 'Programmed', 'True', undefined, WITHIN);
    await served(dps, `/${ns}/one`);
    const versions = await Promise.all(dps.map((d) => d.version()));
    const logsFrom = dps.map((d) => d.proc.logs.length);
    const load = steadyLoad(dps.map((d) => `${d.url}/${ns}/one`), { rate: 30 });

    await cp.pause('kube-apiserver');
    try {
      // op-a cannot renew: it steps down, and with it stop its streams and its status writes.
      await eventually(async () => (metric(await a.metrics(), 'switchyard_operator_leader') === 0 ? true : undefined), WITHIN, 'op-a to step down');
      const writes = metricSum(await a.metrics(), 'switchyard_operator_status_writes_total');
      expect(await subscribeAnswer(a)).toEqual({ status: 503, retryAfter: '1' });
      await connectedTo(a, 0);
      // Paused for longer than a lease: nobody can lead without the API server.
      await new Promise((r) => setTimeout(r, LEASE_MS + 1_000));
      for (const op of [a, b]) expect(metric(await op.metrics(), 'switchyard_operator_leader'), op.identity).toBe(0);
      expect(metricSum(await a.metrics(), 'switchyard_operator_status_writes_total')).toBe(writes);
      // The data planes kept their table all along.
      expect(await Promise.all(dps.map((d) => d.version()))).toEqual(versions);
    } finally {
      await cp.resume('kube-apiserver');
    }
    const leader = await eventually(async () => {
      const leading = [];
      for (const op of [a, b]) if (metric(await op.metrics(), 'switchyard_operator_leader') === 1) leading.push(op);
      return leading.length === 1 ? leading[0] : undefined;
    }, WITHIN, 'a leader once the API server answers again');
    expect(await exactlyOneLeader([a, b])).toBe(leader);
    await connectedTo(leader as OperatorProc, 2);
    await routes(ns, ['two'], false);
    await served(dps, `/${ns}/two`);
    await waitCondition(kube, 'gatewayroutes', ns, 'two', 'Programmed', 'True', undefined, WITHIN);
    const result = await load.stop();
    report('API server paused for longer than the lease', result);
    expect(result.failures).toEqual([]);
    // No data plane went back to an older table: the only new one is the one with /two.
    for (const [i, d] of dps.entries()) expect(appliedVersions(d, logsFrom[i])).toEqual([await d.version()]);
  });

  /** A kubeconfig for service account `name`: everything an operator needs, except watching GatewayRoutes and Upstreams. */
  const listOnlyKubeconfig = async (ns: string, name: string): Promise<string> => {
    await kube.apply(`
apiVersion: v1
kind: ServiceAccount
metadata: { name: ${name}, namespace: ${ns} }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: ${ns}-${name} }
rules:
  - { apiGroups: [switchyard.dev], resources: [gatewayroutes, upstreams], verbs: [get, list] }
  - { apiGroups: [switchyard.dev], resources: [gatewayroutes/status, upstreams/status], verbs: [get, patch] }
  - { apiGroups: [""], resources: [services], verbs: [list, watch] }
  - { apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch] }
  - { apiGroups: [""], resources: [secrets, configmaps], verbs: [list, watch] }
  - { apiGroups: [""], resources: [events], verbs: [create] }
  - { apiGroups: [coordination.k8s.io], resources: [leases], verbs: [get, create, update] }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: { name: ${ns}-${name} }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ${ns}-${name} }
subjects: [{ kind: ServiceAccount, name: ${name}, namespace: ${ns} }]
`);
    const token = (await kube.kubectl(['create', 'token', name, '-n', ns, '--duration=1h'])).trim();
    const ca = /certificate-authority-data: (\S+)/.exec(cp.kubeconfig)?.[1] ?? '';
    return tempFile('kubeconfig', `apiVersion: v1
kind: Config
clusters: [{ name: test, cluster: { server: "${cp.server}", certificate-authority-data: ${ca} } }]
users: [{ name: ${name}, user: { token: ${token} } }]
contexts: [{ name: test, context: { cluster: test, user: ${name} } }]
current-context: test
`);
  };

  /** op-a reaches the API server through a relay the test controls (a partition, not a crash). */
  const behindProxy = async (): Promise<{ proxy: TcpProxy; kubeconfig: string }> => {
    const proxy = await startTcpProxy({ host: new URL(cp.server).hostname, port: Number(new URL(cp.server).port) });
    proxies.push(proxy);
    const kubeconfig = tempFile('kubeconfig', readFileSync(cp.kubeconfigPath, 'utf8').replace(/server: https:\/\/\S+/, `server: https://${proxy.address}`));
    return { proxy, kubeconfig };
  };

  it('a leader cut off from the API server steps down before another replica leads, and stops serving and writing status', async () => {
    const ns = 'partition';
    await routes(ns, ['one']);
    const { proxy, kubeconfig } = await behindProxy();
    const a = await operator(ns, 'op-a', { kubeconfig });
    await a.proc.waitForLog('"event":"serving"');
    const b = await operator(ns, 'op-b');
    const dps = [await dataplane('dp-1', [a, b]), await dataplane('dp-2', [a, b])];
    await connectedTo(a, 2);
    await waitCondition(kube, 'gatewayroutes', ns, 'one', 'Programmed', 'True', undefined, WITHIN);
    await served(dps, `/${ns}/one`);
    const load = steadyLoad(dps.map((d) => `${d.url}/${ns}/one`), { rate: 30 });
    const aLogs = a.proc.logs.length;
    const bLogs = b.proc.logs.length;
    proxy.cut();
    // Status writes run several at once, and on a busy API server one can take more than a
    // second: count op-a's writes once cut off, when no answer can reach it any more, and once
    // the count has held still (an answer already relayed may still be on its way in).
    const okWrites = async (): Promise<number> => metricSum(await a.metrics(), 'switchyard_operator_status_writes_total', { result: 'ok' });
    let writesBeforeCut = await okWrites();
    for (;;) {
      await new Promise((r) => setTimeout(r, 1_000));
      const now = await okWrites();
      if (now === writesBeforeCut) break;
      writesBeforeCut = now;
    }
    await b.proc.waitForLog('"event":"serving"', WITHIN);
    // op-a stepped down on its own clock before op-b could take over: never two leaders.
    // (An order of two events, read from the replicas' own log times on one machine.)
    const aStepped = loggedAt(a.proc, 'following', aLogs);
    const bLeads = loggedAt(b.proc, 'leading', bLogs);
    expect(aStepped, 'op-a stepped down').toBeDefined();
    expect(aStepped as number, 'op-a stepped down before op-b led').toBeLessThan(bLeads as number);
    expect(await subscribeAnswer(a)).toEqual({ status: 503, retryAfter: '1' });
    await connectedTo(b, 2);

    // A change op-a cannot see: op-b serves it and reports it; op-a writes nothing.
    await routes(ns, ['two'], false);
    await waitCondition(kube, 'gatewayroutes', ns, 'two', 'Programmed', 'True', undefined, WITHIN);
    await served(dps, `/${ns}/two`);
    expect(metricSum(await a.metrics(), 'switchyard_operator_status_writes_total', { result: 'ok' })).toBe(writesBeforeCut);

    proxy.heal();
    expect(await exactlyOneLeader([a, b])).toBe(b);
    const result = await load.stop();
    report('leader cut off from the API server', result);
    expect(result.failures).toEqual([]);
  });

  it('a replica whose cache fell behind relists before it leads, so data planes never get an older table', async () => {
    const ns = 'stale-follower';
    await routes(ns, ['one']);
    // op-a may list GatewayRoutes and Upstreams but not watch them: its cache is as old as
    // its last list, as with watches that keep failing, while it can still lead.
    const kubeconfig = await listOnlyKubeconfig(ns, 'op-a');
    const b = await operator(ns, 'op-b');
    await b.proc.waitForLog('"event":"serving"');
    const a = await operator(ns, 'op-a', { kubeconfig });
    const dps = [await dataplane('dp-1', [b, a]), await dataplane('dp-2', [b, a])];
    await connectedTo(b, 2);
    await served(dps, `/${ns}/one`);
    const before = await dps[0]?.version();
    await eventually(async () => (operatorTableVersion(await a.metrics()) === before ? true : undefined), WITHIN, 'op-a in step');
    await a.proc.waitForLog('"event":"watch_failed"');

    await routes(ns, ['two'], false);
    await served(dps, `/${ns}/two`);
    await waitCondition(kube, 'gatewayroutes', ns, 'two', 'Programmed', 'True', undefined, WITHIN);
    const withTwo = await Promise.all(dps.map((d) => d.version()));
    // The precondition: op-a's cache does not have /two.
    expect(operatorTableVersion(await a.metrics())).toBe(before);
    const logsFrom = dps.map((d) => d.proc.logs.length);
    const load = steadyLoad(dps.map((d) => `${d.url}/${ns}/two`), { rate: 30 });

    // op-b hands over: op-a leads, and must relist before it serves a table.
    await b.stop('SIGTERM');
    await a.proc.waitForLog('"event":"serving"', WITHIN);
    await connectedTo(a, 2);
    // Both data planes acknowledged op-a's table, and kept /two.
    await eventually(async () => (metricSum(await a.metrics(), 'switchyard_operator_acks_total', { result: 'applied' }) >= 2 ? true : undefined), WITHIN, 'acks to op-a');
    expect(await Promise.all(dps.map((d) => d.version()))).toEqual(withTwo);
    await eventually(() => (load.sent >= 90 ? true : undefined), WITHIN, 'three seconds of traffic');
    for (const [i, d] of dps.entries()) expect(appliedVersions(d, logsFrom[i]), d.id).toEqual([]);
    const result = await load.stop();
    report('a stale follower leading', result);
    expect(result.failures).toEqual([]);
  });

  it('a data plane restarted while no operator is reachable serves its saved table, and says how old it is', async () => {
    const ns = 'stateful';
    await routes(ns, ['one', 'two']);
    const op = await operator(ns, 'op-a');
    const stateDir = mkdtempSync(path.join(tmpdir(), 'switchyard-state-'));
    const dp = await dataplane('dp-1', [op], stateDir);
    await served([dp], `/${ns}/two`);
    const version = await dp.version();
    const saved = mkdtempSync(path.join(tmpdir(), 'switchyard-state-'));

    await op.stop('SIGTERM');
    const operatorGone = Date.now();
    await dp.stop('SIGTERM');
    cpSync(stateDir, saved, { recursive: true });
    const again = await dataplane('dp-1', [op], stateDir);
    expect(await again.version()).toBe(version);
    const load = steadyLoad([`${again.url}/${ns}/one`, `${again.url}/${ns}/two`], { rate: 30 });
    await again.proc.waitForLog('"event":"operator_unreachable"');
    await eventually(() => (load.sent >= 90 ? true : undefined), WITHIN, 'three seconds of traffic');
    // The age counts from the operator's last word on the table, before it stopped, not from this boot.
    const scrapedAfter = Date.now();
    const age = metric(await again.metrics(), 'switchyard_table_age_seconds') as number;
    expect(age).toBeGreaterThanOrEqual((scrapedAfter - operatorGone) / 1000);
    const result = await load.stop();
    report('data plane restarted without an operator', result);
    expect(result.failures).toEqual([]);

    // A state file that cannot be read gives a data plane that is not ready, never an empty table.
    writeFileSync(path.join(saved, 'table.json'), '{"version": "0000", "routes": [');
    const broken = await dataplane('dp-2', [op], saved);
    const ready = await request(`${broken.url}/ready`);
    expect(ready.statusCode).toBe(503);
    expect(((await ready.body.json()) as { reason: string }).reason).toBe('no route table yet');
    const res = await request(`${broken.url}/${ns}/one`);
    expect(res.statusCode).toBe(503);
    expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('route_unavailable');
    await broken.stop('SIGTERM');

    // The operator is back: the data plane reconnects, keeps its table, and the age starts over.
    const back = await operator(ns, 'op-b', { port: Number(new URL(op.url).port) });
    await connectedTo(back, 1);
    expect(await again.version()).toBe(version);
    await eventually(async () => ((metric(await again.metrics(), 'switchyard_table_age_seconds') as number) < age ? true : undefined), WITHIN, 'the table confirmed again');
  });

  it('an operator started while the API server does not answer hands data planes no table until it has listed', async () => {
    const ns = 'cold-start';
    await routes(ns, ['one']);
    const first = await operator(ns, 'op-a', { leader: false });
    const dp = await dataplane('dp-1', [first]);
    await served([dp], `/${ns}/one`);
    const version = await dp.version();
    const load = steadyLoad([`${dp.url}/${ns}/one`], { rate: 30 });
    await first.stop('SIGTERM');

    await cp.pause('kube-apiserver');
    let second: OperatorProc | undefined;
    const logsFrom = dp.proc.logs.length;
    try {
      second = await operator(ns, 'op-b', { leader: false, port: Number(new URL(first.url).port) });
      // The data plane reaches it and is sent on: nothing to serve before every kind has listed.
      await eventually(() => (dp.proc.logs.slice(logsFrom).some((l) => l.includes('operator answered 503')) ? true : undefined), WITHIN, 'the data plane turned away');
      expect(await dp.version()).toBe(version);
      const readyz = await request(`${second.metricsUrl}/readyz`);
      expect(readyz.statusCode).toBe(503);
      await readyz.body.dump();
    } finally {
      await cp.resume('kube-apiserver');
    }
    await connectedTo(second as OperatorProc, 1);
    expect(await dp.version()).toBe(version);
    expect(appliedVersions(dp, logsFrom)).toEqual([]);
    const result = await load.stop();
    report('operator started while the API server was paused', result);
    expect(result.failures).toEqual([]);
  });

  it('a fresh data plane that never had a table is not ready', async () => {
    const lonely = await startDataplaneProc({ id: 'dp-lonely', operatorUrls: [`http://127.0.0.1:${await freePort()}`] });
    started.push(lonely);
    const ready = await request(`${lonely.url}/ready`);
    expect(ready.statusCode).toBe(503);
    expect(((await ready.body.json()) as { reason: string }).reason).toBe('no route table yet');
  });
});
