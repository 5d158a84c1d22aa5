/**
 * What holds the memory of the operator and the data plane at a given number
 * of routes: RSS and V8 heap from each process, then a heap snapshot of each,
 * summarized by what the objects are (constructor or kind, self size) and by
 * the loaded source (script source bytes by package).
 *
 *     node bench/memory.ts [routes] [--keep]
 *     node bench/memory.ts 1000
 *     MEMORY_NODE_ARGS=--max-semi-space-size=8 node bench/memory.ts 1000   # with V8 flags for every process
 *
 * Real processes, as in the control-plane section of `npm run bench`: a
 * kube-apiserver, etcd and controller manager (test/support/control-plane.ts),
 * the operator CLI and one data plane CLI subscribed to it; then, for
 * comparison, a standalone data plane serving the same routes from a file.
 * The snapshots are written under .cache/heap/ (kept with --keep, for Chrome
 * DevTools). Traffic stays on 127.0.0.1.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { startControlPlane, type ControlPlane } from '../test/support/control-plane.ts';
import { kubeFor } from '../test/support/kube.ts';
import { startProcess, type Proc } from '../test/support/processes.ts';
import { freePort, procUsage, ROOT, sleep, tempDir } from './lib/processes.ts';
import { generateRoutes } from './lib/routes.ts';
import { startUpstream, type Server } from './lib/servers.ts';
import { OPERATOR_NODE_OPTIONS } from './controlplane.ts';

const NS = 'bench';
const GROUP = 'switchyard.dev';
const VERSION = 'v1alpha1';
const TOKEN = 'bench-operator-token-0123456789abcdef';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

/** Self size by kind of object (constructor name for objects, the node type otherwise), largest first. */
export function summarizeSnapshot(file: string, top = 20): { totalMiB: number; rows: { what: string; count: number; mib: number }[] } {
  const snap = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const fields = snap.snapshot.meta.node_fields;
  const types = snap.snapshot.meta.node_types[0];
  const width = fields.length;
  const [fType, fName, fSize] = [fields.indexOf('type'), fields.indexOf('name'), fields.indexOf('self_size')];
  const by = new Map<string, { count: number; bytes: number }>();
  let total = 0;
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = types[snap.nodes[i + fType] as number] as string;
    const size = snap.nodes[i + fSize] as number;
    total += size;
    let what = type;
    if (type === 'object' || type === 'closure') what = `${type} ${snap.strings[snap.nodes[i + fName] as number]}`;
    else if (type === 'code') what = 'code (compiled functions, bytecode)';
    else if (type === 'hidden' || type === 'object shape') what = `${type} (${snap.strings[snap.nodes[i + fName] as number]?.slice(0, 40)})`;
    const e = by.get(what) ?? { count: 0, bytes: 0 };
    e.count++;
    e.bytes += size;
    by.set(what, e);
  }
  const rows = [...by.entries()]
    .sort((a, b) => b[1].bytes - a[1].bytes)
    .slice(0, top)
    .map(([what, e]) => ({ what, count: e.count, mib: Math.round((e.bytes / 1048576) * 10) / 10 }));
  return { totalMiB: Math.round((total / 1048576) * 10) / 10, rows };
}

/** Asks a process started with --heapsnapshot-signal=SIGUSR2 for a snapshot and waits for the file. */
async function snapshot(pid: number, dir: string): Promise<string> {
  const before = new Set(readdirSync(dir));
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 1200; i++) {
    await sleep(250);
    const file = readdirSync(dir).find((f) => !before.has(f) && f.endsWith('.heapsnapshot'));
    // The file is complete when its size stops changing.
    if (file) {
      const p = path.join(dir, file);
      let last = -1;
      for (;;) {
        const size = readFileSync(p).length;
        if (size === last && size > 0) return p;
        last = size;
        await sleep(500);
      }
    }
  }
  throw new Error(`no heap snapshot from pid ${pid} in ${dir}`);
}

/** RSS is read before the snapshot, which itself grows the process. */
async function report(name: string, pid: number, dir: string): Promise<string> {
  const usage = procUsage(pid);
  const s = summarizeSnapshot(await snapshot(pid, dir));
  const lines = [`### ${name}: RSS ${((usage?.rssBytes ?? 0) / 1048576).toFixed(1)} MiB, live heap in the snapshot ${s.totalMiB} MiB`, '', '| what | count | MiB |', '| --- | --- | --- |'];
  for (const r of s.rows) lines.push(`| ${r.what.replace(/\|/g, '\\|')} | ${r.count} | ${r.mib} |`);
  return `${lines.join('\n')}\n`;
}

async function settle(pid: number): Promise<void> {
  let last = procUsage(pid)?.cpuSeconds ?? 0;
  for (let i = 0; i < 240; i++) {
    await sleep(500);
    const now = procUsage(pid)?.cpuSeconds ?? 0;
    if (now - last < 0.05) return;
    last = now;
  }
}

if (import.meta.main) {
  const routes = Number(process.argv.slice(2).find((a) => /^\d+$/.test(a)) ?? 1000);
  const keep = process.argv.includes('--keep');
  const heapDir = path.join(ROOT, '.cache', 'heap', String(Date.now()));
  mkdirSync(heapDir, { recursive: true });
  const env = { NODE_OPTIONS: `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${heapDir} ${process.env.MEMORY_NODE_ARGS ?? ''}`.trim() };
  const tmp = tempDir('memory');
  let cp: ControlPlane | undefined;
  const procs: Proc[] = [];
  let upstream: Server | undefined;
  const out: string[] = [`Memory at ${routes} routes (node bench/memory.ts ${routes}${process.env.MEMORY_NODE_ARGS ? `, Node.js flags ${process.env.MEMORY_NODE_ARGS}` : ''})`, ''];
  try {
    upstream = await startUpstream(path.join(tmp.dir, 'upstream'), undefined);
    cp = await startControlPlane();
    const kube = kubeFor(cp);
    await kube.kubectl(['apply', '-f', 'crds/']);
    await kube.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/gatewayroutes.switchyard.dev', 'crd/upstreams.switchyard.dev']);
    await kube.apply(`apiVersion: v1\nkind: Namespace\nmetadata: { name: ${NS} }\n---\napiVersion: ${GROUP}/${VERSION}\nkind: Upstream\nmetadata: { name: svc, namespace: ${NS} }\nspec: { static: { endpoints: ["${upstream.origin}"] } }\n`);
    const tokenFile = path.join(tmp.dir, 'token');
    writeFileSync(tokenFile, TOKEN);
    const opPort = await freePort();
    // The operator as its image runs it (OPERATOR_NODE_OPTIONS), unless MEMORY_NODE_ARGS says otherwise.
    const operatorEnv = { NODE_OPTIONS: `${env.NODE_OPTIONS} ${process.env.MEMORY_NODE_ARGS === undefined ? OPERATOR_NODE_OPTIONS : ''}`.trim() };
    const operator = startProcess('operator/bin/switchyard-operator.ts', ['--kubeconfig', cp.kubeconfigPath, '--listen', `127.0.0.1:${opPort}`, '--metrics', `127.0.0.1:${await freePort()}`, '--token-file', tokenFile, '--lease-namespace', NS, '--identity', 'bench-operator'], operatorEnv);
    procs.push(operator);
    await operator.waitForLog('"event":"listening"');
    const bootstrap = path.join(tmp.dir, 'bootstrap.yaml');
    writeFileSync(bootstrap, 'server: { bind_address: 127.0.0.1 }\nobservability: { logging: { access_log: false }, metrics: { prometheus_enabled: false } }\n');
    const dpAdmin = await freePort();
    const dataplane = startProcess('dataplane/bin/switchyard-dataplane.ts', ['--config', bootstrap, '--operator', `http://127.0.0.1:${opPort}`, '--token-file', tokenFile, '--dataplane-id', 'bench-dp'], { ...env, GATEWAY_SERVER_HTTP_PORT: String(await freePort()), GATEWAY_SERVER_ADMIN_PORT: String(dpAdmin), GATEWAY_SERVER_METRICS_PORT: String(await freePort()) });
    procs.push(dataplane);
    await dataplane.waitForLog('"event":"listening"');

    const specs = generateRoutes(routes, 'mem');
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < specs.length) {
          const r = specs[next++] as (typeof specs)[number];
          await kube.custom.createNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: NS, plural: 'gatewayroutes', body: { apiVersion: `${GROUP}/${VERSION}`, kind: 'GatewayRoute', metadata: { name: r.name, namespace: NS }, spec: { path: { type: r.type, value: r.path }, methods: r.methods, hosts: r.hosts, upstream: 'svc' } } });
        }
      }),
    );
    for (let i = 0; i < 2400; i++) {
      const v = (await (await fetch(`http://127.0.0.1:${dpAdmin}/version`)).json().catch(() => ({ routes: 0 }))) as { routes: number };
      if (v.routes >= routes) break;
      await sleep(250);
    }
    await settle(operator.child.pid as number);
    await settle(dataplane.child.pid as number);
    out.push(await report('operator', operator.child.pid as number, heapDir));
    out.push(await report('data plane, fed by the operator', dataplane.child.pid as number, heapDir));
    for (const p of procs.splice(0)) await p.kill('SIGTERM');
    await cp.stop();
    cp = undefined;

    // The same routes from a file.
    const file = path.join(tmp.dir, 'gateway.yaml');
    const [port, admin, metrics] = [await freePort(), await freePort(), await freePort()];
    writeFileSync(
      file,
      stringify({
        server: { http_port: port, admin_port: admin, metrics_port: metrics, bind_address: '127.0.0.1' },
        routes: specs.map((r) => ({ name: r.name, path: r.path, path_type: r.type, methods: r.methods, hosts: r.hosts, upstream: 'u' })),
        upstreams: { u: { discovery: { type: 'Static', endpoints: [upstream.origin] } } },
        observability: { logging: { access_log: false }, metrics: { prometheus_enabled: false } },
      }),
    );
    const standalone = startProcess('dataplane/bin/switchyard-dataplane.ts', ['--config', file, '--no-watch'], env);
    procs.push(standalone);
    await standalone.waitForLog('"event":"listening"');
    await settle(standalone.child.pid as number);
    out.push(await report('data plane, standalone (routes from a file)', standalone.child.pid as number, heapDir));
    process.stdout.write(`${out.join('\n')}\n${keep ? `snapshots: ${heapDir}\n` : ''}`);
  } finally {
    for (const p of procs) await p.kill('SIGTERM');
    await upstream?.stop();
    await cp?.stop();
    tmp.remove();
    if (!keep) rmSync(heapDir, { recursive: true, force: true });
  }
}
