/**
 * The control plane at scale, with real processes: a kube-apiserver, etcd and
 * kube-controller-manager (test/support/control-plane.ts), the operator CLI and
 * one data plane CLI subscribed to it.
 *
 * At each size (10, 1,000 and 5,000 background routes, created through the API
 * in parallel batches) it measures:
 * - route change → traffic: the time from an API create of a new GatewayRoute
 *   to the first request it serves through the data plane (polled every 5 ms),
 *   over 100 changes one after another;
 * - pod ready → endpoint: the time from a Pod's status patch (Ready, with an
 *   address) through the EndpointSlice controller, the operator and the
 *   table, to the data plane listing the endpoint on its admin /upstreams.
 *   Pod addresses are in 192.0.2.0/24 (TEST-NET-1): API data only; no route
 *   sends to that Upstream and it has no health check, so nothing connects;
 * - the operator's CPU time and memory (from /proc), and its compile times
 *   (its `compiled` log lines, which also feed
 *   switchyard_operator_compile_duration_seconds).
 *
 * The processes are not pinned: the API server, etcd, the controller manager,
 * the operator and the data plane share both CPUs, as on a small node.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { PatchStrategy, setHeaderOptions, Watch } from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../test/support/control-plane.ts';
import { metricSum } from '../test/support/fleet.ts';
import { kubeFor, type Kube } from '../test/support/kube.ts';
import { startProcess, type Proc } from '../test/support/processes.ts';
import { freePort, procUsage, sleep, tempDir } from './lib/processes.ts';
import { generateRoutes } from './lib/routes.ts';
import { startUpstream, type Server } from './lib/servers.ts';
import { median, percentile, round } from './lib/stats.ts';

const NS = 'bench';
const GROUP = 'switchyard.dev';
const VERSION = 'v1alpha1';
const TOKEN = 'bench-operator-token-0123456789abcdef';
/** The operator image's NODE_OPTIONS (Dockerfile). */
export const OPERATOR_NODE_OPTIONS = '--max-semi-space-size=8';
/** With BENCH_CPU_PROF_DIR set, the operator and the data plane write CPU profiles there when they stop. */
function profileFlags(name: string): string {
  const dir = process.env.BENCH_CPU_PROF_DIR;
  return dir ? `--cpu-prof --cpu-prof-dir=${dir} --cpu-prof-name=${name}.cpuprofile` : '';
}

/** Concurrent API creates for the background routes. */
const CREATE_CONCURRENCY = 32;

/** Latency samples summarized. */
export interface Latency {
  samples: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** Everything measured at one size. */
export interface SizeResult {
  backgroundRoutes: number;
  /** Routes in the data plane's table while measuring (background, earlier probes, this size's probes). */
  tableRoutes: number;
  /** Creating this size's new background routes through the API, and until the data plane served a table with all of them. */
  ingest: { created: number; createSeconds: number; inTableSeconds: number; operatorCpuSeconds: number; programmedAfterLastCreateSeconds: number };
  routeToTraffic: Latency;
  podReadyToEndpoint: Latency;
  /** Compiles the operator logged while the changes ran. */
  operatorCompileMs: { count: number; p50: number; max: number };
  operator: { rssMiB: number; cpuMsPerChange: number };
  dataplane: { rssMiB: number; cpuMsPerChange: number };
}

/** The section's result. */
export interface ControlPlaneResult {
  kubernetes: string;
  sizes: SizeResult[];
  /** From switchyard_operator_compile_duration_seconds at the end: count and mean. */
  compileMetric: { count: number; meanMs: number };
}

/** Options of the section. */
export interface ControlPlaneOptions {
  quick: boolean;
  log: (line: string) => void;
}

function summarize(values: number[]): Latency {
  return { samples: values.length, p50Ms: round(median(values), 1), p90Ms: round(percentile(values, 90), 1), p99Ms: round(percentile(values, 99), 1), maxMs: round(Math.max(...values), 1) };
}

/** Polls `check` every `everyMs` until it is true; returns the elapsed milliseconds since `since`. Bounded by `timeoutMs`. */
async function until(check: () => Promise<boolean>, since: number, what: string, everyMs = 5, timeoutMs = 60_000): Promise<number> {
  const deadline = since + timeoutMs;
  while (performance.now() < deadline) {
    if (await check()) return performance.now() - since;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

async function status(url: string): Promise<number> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

async function inParallel<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await work(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

function routeBody(name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: `${GROUP}/${VERSION}`, kind: 'GatewayRoute', metadata: { name, namespace: NS }, spec };
}

async function createRoute(kube: Kube, name: string, spec: Record<string, unknown>): Promise<void> {
  await kube.custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: 'gatewayroutes', body: routeBody(name, spec) });
}

/**
 * Waits, as `kubectl wait` does, on a watch (not by listing every route over and
 * over, which would load the API server the operator writes through), until
 * `expected` GatewayRoutes of the namespace say Programmed=True for their current
 * generation. Returns the milliseconds from `since`. A watch the API server
 * closes (it drops watchers that fall behind a burst of events) is opened again,
 * as an informer would: a new watch starts with every route as it is.
 */
async function programmedRoutes(kube: Kube, expected: number, since: number, timeoutMs: number): Promise<number> {
  type Item = { metadata: { name: string; generation?: number }; status?: { conditions?: { type: string; status: string; observedGeneration?: number }[] } };
  const deadline = since + timeoutMs;
  let reopened = 0;
  for (;;) {
    const programmed = new Set<string>();
    let request: AbortController | undefined;
    let timer: NodeJS.Timeout | undefined;
    try {
      const done = await new Promise<number | 'closed'>((resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${expected} routes Programmed (${programmed.size} are; the watch was opened again ${reopened} times)`)), deadline - performance.now());
        const onEvent = (type: string, item: Item): void => {
          const c = item.status?.conditions?.find((x) => x.type === 'Programmed');
          const ok = type !== 'DELETED' && c?.status === 'True' && (c.observedGeneration === undefined || c.observedGeneration === item.metadata.generation);
          if (ok) programmed.add(item.metadata.name);
          else programmed.delete(item.metadata.name);
          if (programmed.size >= expected) resolve(performance.now() - since);
        };
        // Without a resourceVersion the watch starts with every existing route (ADDED), then follows changes.
        new Watch(kube.kc)
          .watch(`/apis/${GROUP}/${VERSION}/namespaces/${NS}/gatewayroutes`, {}, onEvent, () => resolve('closed'))
          .then((c) => (request = c), reject);
      });
      if (done !== 'closed') return done;
      reopened++;
    } finally {
      clearTimeout(timer);
      request?.abort();
    }
    await sleep(100);
  }
}

/** Runs the section. */
export async function runControlPlane(options: ControlPlaneOptions): Promise<ControlPlaneResult> {
  const { quick, log } = options;
  // BENCH_CONTROLPLANE_SIZES=1000 measures chosen sizes only (for profiling one of them).
  const sizes = process.env.BENCH_CONTROLPLANE_SIZES?.split(',').map(Number) ?? (quick ? [10, 300] : [10, 1_000, 5_000]);
  const changes = quick ? 20 : 100;
  const podSamples = quick ? 5 : 20;
  const tmp = tempDir('controlplane');
  let cp: ControlPlane | undefined;
  let operator: Proc | undefined;
  let dataplane: Proc | undefined;
  let upstream: Server | undefined;
  try {
    log('control plane: starting the API server, etcd and the controller manager');
    cp = await startControlPlane();
    const kube = kubeFor(cp);
    await kube.kubectl(['apply', '-f', 'crds/']);
    await kube.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/gatewayroutes.switchyard.dev', 'crd/upstreams.switchyard.dev']);
    await kube.apply(`apiVersion: v1\nkind: Namespace\nmetadata: { name: ${NS} }\n---\napiVersion: v1\nkind: Node\nmetadata: { name: bench-node }\n`);
    // Pods need the namespace's default service account.
    await until(async () => (await kube.kubectl(['get', 'serviceaccount', 'default', '-n', NS, '--ignore-not-found', '-o', 'name'])).trim() !== '', performance.now(), 'the default service account', 100, 30_000);

    upstream = await startUpstream(path.join(tmp.dir, 'upstream'), undefined);
    await kube.apply(`apiVersion: ${GROUP}/${VERSION}
kind: Upstream
metadata: { name: svc, namespace: ${NS} }
spec: { static: { endpoints: ["${upstream.origin}"] } }
---
apiVersion: v1
kind: Service
metadata: { name: pods, namespace: ${NS} }
spec: { selector: { app: bench-pod }, ports: [{ name: http, port: 8080, targetPort: 8080 }] }
---
apiVersion: ${GROUP}/${VERSION}
kind: Upstream
metadata: { name: pods, namespace: ${NS} }
spec: { service: { name: pods, port: 8080 } }
`);

    const tokenFile = path.join(tmp.dir, 'token');
    writeFileSync(tokenFile, TOKEN);
    const opPort = await freePort();
    const opMetrics = await freePort();
    // With the Node.js flags the operator's image sets (Dockerfile), so that its RSS is the one that ships.
    operator = startProcess('operator/bin/switchyard-operator.ts', ['--kubeconfig', cp.kubeconfigPath, '--listen', `127.0.0.1:${opPort}`, '--metrics', `127.0.0.1:${opMetrics}`, '--token-file', tokenFile, '--lease-namespace', NS, '--identity', 'bench-operator'], { NODE_OPTIONS: `${OPERATOR_NODE_OPTIONS} ${profileFlags('operator')}` });
    await operator.waitForLog('"event":"listening"');
    const bootstrap = path.join(tmp.dir, 'bootstrap.yaml');
    writeFileSync(bootstrap, 'server: { bind_address: 127.0.0.1 }\nobservability: { logging: { access_log: false }, metrics: { prometheus_enabled: false } }\n');
    const [dpPort, dpAdmin] = [await freePort(), await freePort()];
    dataplane = startProcess('dataplane/bin/switchyard-dataplane.ts', ['--config', bootstrap, '--operator', `http://127.0.0.1:${opPort}`, '--token-file', tokenFile, '--dataplane-id', 'bench-dp'], {
      GATEWAY_SERVER_HTTP_PORT: String(dpPort),
      GATEWAY_SERVER_ADMIN_PORT: String(dpAdmin),
      NODE_OPTIONS: profileFlags('dataplane'),
    });
    await dataplane.waitForLog('"event":"listening"');
    const dp = `http://127.0.0.1:${dpPort}`;
    const admin = `http://127.0.0.1:${dpAdmin}`;
    const tableRoutes = async (): Promise<number> => {
      try {
        return ((await (await fetch(`${admin}/version`)).json()) as { routes: number }).routes;
      } catch {
        return -1;
      }
    };
    const podEndpoints = async (): Promise<string[]> => {
      const list = (await (await fetch(`${admin}/upstreams`)).json()) as { name: string; endpoints: { origin: string }[] }[];
      return list.find((u) => u.name === `${NS}/pods`)?.endpoints.map((e) => e.origin) ?? [];
    };

    const results: SizeResult[] = [];
    let background = 0;
    let probes = 0;
    let podIndex = 0;
    const operatorPid = operator.child.pid as number;
    const dataplanePid = dataplane.child.pid as number;
    for (const size of sizes) {
      // Background routes up to this size, created through the API in parallel batches.
      const specs = generateRoutes(size, 'bg').slice(background);
      const cpuBefore = procUsage(operatorPid)?.cpuSeconds ?? 0;
      const t0 = performance.now();
      await inParallel(specs, CREATE_CONCURRENCY, (r) => createRoute(kube, r.name, { path: { type: r.type, value: r.path }, methods: r.methods, hosts: r.hosts, upstream: 'svc' }));
      const lastCreate = performance.now();
      const createSeconds = (lastCreate - t0) / 1000;
      background = size;
      const expected = background + probes;
      const [inTable, programmed] = await Promise.all([
        until(async () => (await tableRoutes()) >= expected, t0, `${expected} routes in the data plane's table`, 50, 600_000),
        // Every route's status says Programmed for its current generation: what a user waits for after a burst.
        programmedRoutes(kube, expected, lastCreate, 600_000),
      ]);
      // Let the status writes of the burst finish before measuring.
      await settle(operatorPid);
      const ingest = { created: specs.length, createSeconds: round(createSeconds, 1), inTableSeconds: round(inTable / 1000, 1), operatorCpuSeconds: round((procUsage(operatorPid)?.cpuSeconds ?? 0) - cpuBefore, 1), programmedAfterLastCreateSeconds: round(programmed / 1000, 2) };
      log(`control plane: ${size} background routes: created in ${ingest.createSeconds} s, all in the data plane's table after ${ingest.inTableSeconds} s, all Programmed ${ingest.programmedAfterLastCreateSeconds} s after the last create (operator CPU ${ingest.operatorCpuSeconds} s)`);
      log(`control plane: ${size} background routes: operator API requests so far: ${await operatorWrites(opMetrics)}; warnings logged: ${operator.logs.filter((l) => l.includes('"level":40')).length}`);
      const firstWarning = operator.logs.find((l) => l.includes('"level":40'));
      if (firstWarning) log(`control plane: the operator's first warning: ${firstWarning.slice(0, 400)}`);

      const compilesBefore = operator.logs.length;
      const opCpu0 = procUsage(operatorPid)?.cpuSeconds ?? 0;
      const dpCpu0 = procUsage(dataplanePid)?.cpuSeconds ?? 0;
      const changeMs: number[] = [];
      for (let i = 0; i < changes; i++) {
        const name = `probe-${size}-${i}`;
        const url = `${dp}/probe/${size}/${i}`;
        const start = performance.now();
        await createRoute(kube, name, { path: { type: 'Exact', value: `/probe/${size}/${i}` }, methods: ['GET'], upstream: 'svc' });
        changeMs.push(await until(async () => (await status(url)) === 200, start, `${url} to serve`));
        probes++;
      }
      const opCpu1 = procUsage(operatorPid)?.cpuSeconds ?? 0;
      const dpCpu1 = procUsage(dataplanePid)?.cpuSeconds ?? 0;
      const compileMs = operator.logs
        .slice(compilesBefore)
        .filter((l) => l.includes('"event":"compiled"'))
        .map((l) => (JSON.parse(l) as { ms: number }).ms);
      const routeToTraffic = summarize(changeMs);
      log(`control plane: ${size} routes: route create → first served request p50 ${routeToTraffic.p50Ms} ms, p99 ${routeToTraffic.p99Ms} ms over ${changes} changes`);

      const podMs: number[] = [];
      for (let j = 0; j < podSamples; j++) {
        const name = `bench-pod-${podIndex}`;
        const address = `192.0.2.${(podIndex % 250) + 1}`;
        podIndex++;
        await kube.core.createNamespacedPod({ namespace: NS, body: { metadata: { name, labels: { app: 'bench-pod' } }, spec: { nodeName: 'bench-node', containers: [{ name: 'app', image: 'example.invalid/bench', ports: [{ containerPort: 8080 }] }] } } });
        const start = performance.now();
        const now = new Date().toISOString();
        await kube.core.patchNamespacedPodStatus(
          { name, namespace: NS, body: { status: { phase: 'Running', podIP: address, podIPs: [{ ip: address }], conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }] } } },
          setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
        );
        podMs.push(await until(async () => (await podEndpoints()).includes(`http://${address}:8080`), start, `${address} in the data plane's upstream`));
      }
      const podReadyToEndpoint = summarize(podMs);
      log(`control plane: ${size} routes: pod ready → endpoint in the data plane p50 ${podReadyToEndpoint.p50Ms} ms, p99 ${podReadyToEndpoint.p99Ms} ms over ${podSamples} pods`);

      results.push({
        backgroundRoutes: size,
        tableRoutes: await tableRoutes(),
        ingest,
        routeToTraffic,
        podReadyToEndpoint,
        operatorCompileMs: { count: compileMs.length, p50: round(median(compileMs), 0), max: compileMs.length > 0 ? Math.max(...compileMs) : NaN },
        operator: { rssMiB: round((procUsage(operatorPid)?.rssBytes ?? 0) / 1048576, 1), cpuMsPerChange: round(((opCpu1 - opCpu0) * 1000) / changes, 1) },
        dataplane: { rssMiB: round((procUsage(dataplanePid)?.rssBytes ?? 0) / 1048576, 1), cpuMsPerChange: round(((dpCpu1 - dpCpu0) * 1000) / changes, 1) },
      });
    }
    const metrics = await (await fetch(`http://127.0.0.1:${opMetrics}/metrics`)).text();
    const value = (name: string): number => Number(/^(\S+) (\S+)$/m.exec(metrics.split('\n').find((l) => l.startsWith(`${name} `)) ?? '')?.[2] ?? NaN);
    const count = value('switchyard_operator_compile_duration_seconds_count');
    const sum = value('switchyard_operator_compile_duration_seconds_sum');
    return { kubernetes: cp.version, sizes: results, compileMetric: { count, meanMs: round((sum / count) * 1000, 1) } };
  } finally {
    await dataplane?.kill('SIGTERM');
    await operator?.kill('SIGTERM');
    await upstream?.stop();
    await cp?.stop();
    tmp.remove();
  }
}

/** The operator's status writes by result and its Events, from its metrics. */
async function operatorWrites(port: number): Promise<string> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const counts = [
    ...['ok', 'conflict', 'error'].map((result) => [`status writes ${result}`, metricSum(text, 'switchyard_operator_status_writes_total', { result })] as const),
    ...['Normal', 'Warning'].map((type) => [`Events ${type}`, metricSum(text, 'switchyard_operator_events_total', { type })] as const),
  ];
  return counts.map(([what, n]) => `${what} ${n}`).join(', ');
}

/** Waits (bounded) until the operator's CPU use stays below 20 % for half a second: its status writes are done. */
async function settle(pid: number): Promise<void> {
  const deadline = performance.now() + 120_000;
  let last = procUsage(pid)?.cpuSeconds ?? 0;
  while (performance.now() < deadline) {
    await sleep(500);
    const now = procUsage(pid)?.cpuSeconds ?? 0;
    if (now - last < 0.1) return;
    last = now;
  }
}
