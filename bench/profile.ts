/**
 * Profiles one gateway mode under one load case with `node --cpu-prof`, and
 * prints where the time went: self time by function, and by package.
 *
 *     node bench/profile.ts [mode] [case] [seconds]
 *     node bench/profile.ts gateway-full small 10
 *     node bench/profile.ts gateway-plain large
 *
 * Modes are those of bench/lib/gateway-modes.ts, or fastify-http-proxy and
 * http-proxy to profile a Node.js peer the same way; cases: small (64
 * connections, 12-byte body), large (16 connections, 1 MiB), many (1,000
 * connections). The .cpuprofile is kept (its path is printed) for Chrome
 * DevTools or speedscope.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gatewayModes } from './lib/gateway-modes.ts';
import { cpuPlan, freePort, launch, pinSelf, ROOT, tempDir, waitForPort } from './lib/processes.ts';
import { startGateway, startUpstream, type Server } from './lib/servers.ts';
import { runWrk } from './lib/wrk.ts';

const PEERS: Record<string, string> = { 'fastify-http-proxy': 'bench/peers/fastify-proxy.ts', 'http-proxy': 'bench/peers/node-http-proxy.ts' };

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

function location(f: ProfileNode['callFrame']): { file: string; name: string } {
  const file = f.url.replace(/^file:\/\//, '').replace(`${ROOT}/`, '');
  const where = file === '' ? '(native)' : `${file}:${f.lineNumber + 1}`;
  return { file, name: `${f.functionName || '(anonymous)'} ${where}` };
}

/**
 * Self time per package and per function, and inclusive time (the function or
 * anything it called) of the project's own functions, as shares of all samples.
 */
export function summarizeProfile(profile: CpuProfile, top = 25): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const fn = new Map<string, number>();
  const pkg = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const f = byId.get(id)?.callFrame;
    if (!f) continue;
    const { file, name } = location(f);
    fn.set(name, (fn.get(name) ?? 0) + us);
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file);
    const group = m ? (m[1] as string) : file.startsWith('node:') ? 'node core' : file === '' ? (f.functionName.startsWith('(') ? f.functionName : '(native)') : file.split('/').slice(0, 3).join('/');
    pkg.set(group, (pkg.get(group) ?? 0) + us);
    // Each project function on the stack counts once for this sample.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur)?.callFrame;
      if (!frame) break;
      const loc = location(frame);
      if (!/^(dataplane|operator)\//.test(loc.file) || seen.has(loc.name)) continue;
      seen.add(loc.name);
      inclusive.set(loc.name, (inclusive.get(loc.name) ?? 0) + us);
    }
  }
  const lines = (m: Map<string, number>, n: number): string[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `${((us / total) * 100).toFixed(1).padStart(5)} %  ${k}`);
  return [
    `self time by package or folder (${(total / 1e6).toFixed(1)} s sampled):`,
    ...lines(pkg, 15),
    '',
    'self time by function:',
    ...lines(fn, top),
    '',
    "inclusive time of the project's functions:",
    ...lines(inclusive, top),
  ].join('\n');
}

if (import.meta.main) {
  const [modeId = 'gateway-plain', caseId = 'small', seconds = '10'] = process.argv.slice(2);
  const cases: Record<string, { path: string; connections: number }> = { small: { path: '/bench', connections: 64 }, large: { path: '/large', connections: 16 }, many: { path: '/bench', connections: 1000 } };
  const load = cases[caseId];
  if (!load) throw new Error(`unknown case ${caseId}; cases: ${Object.keys(cases).join(', ')}`);
  const cpu = cpuPlan();
  pinSelf(cpu.load);
  const tmp = tempDir('profile');
  const profDir = path.join(ROOT, '.cache', 'profiles');
  const upstream = await startUpstream(path.join(tmp.dir, 'upstream'), cpu.load);
  try {
    const before = new Set(safeList(profDir));
    const profArgs = ['--cpu-prof', `--cpu-prof-dir=${profDir}`];
    let server: Server;
    let bearer: string | undefined;
    const peer = PEERS[modeId];
    if (peer) {
      // A Node.js peer, profiled the same way, for comparison.
      const port = await freePort();
      const child = launch(modeId, process.execPath, [...profArgs, path.join(ROOT, peer), String(port), upstream.origin], { cpu: cpu.subject });
      await waitForPort(port, child);
      server = { name: modeId, origin: `http://127.0.0.1:${port}`, port, child, stop: () => child.stop() };
    } else {
      const mode = (await gatewayModes(upstream.origin)).find((m) => m.id === modeId);
      if (!mode) throw new Error(`unknown mode ${modeId}; modes: ${(await gatewayModes(upstream.origin)).map((m) => m.id).join(', ')}, ${Object.keys(PEERS).join(', ')}`);
      bearer = mode.bearer;
      server = await startGateway({
        name: mode.id,
        dir: path.join(tmp.dir, 'gateway'),
        config: mode.config,
        cpu: cpu.subject,
        logFile: mode.logToFile ? path.join(tmp.dir, 'stdout.log') : undefined,
        nodeArgs: profArgs,
        args: ['--no-watch'],
      });
    }
    // Warm up first, so that the profile shows the steady state rather than the JIT.
    await runWrk({ url: server.origin + load.path, connections: load.connections, durationS: 2, cpu: cpu.load, bearer });
    const r = await runWrk({ url: server.origin + load.path, connections: load.connections, durationS: Number(seconds), cpu: cpu.load, bearer });
    await server.stop();
    const file = safeList(profDir).find((f) => !before.has(f));
    if (!file) throw new Error(`no profile written to ${profDir}`);
    process.stdout.write(`${modeId}, ${caseId}: ${Math.round(r.rps)} req/s under the profiler, p99 ${r.latencyMs.p99} ms\nprofile: ${path.join(profDir, file)}\n\n`);
    process.stdout.write(`${summarizeProfile(JSON.parse(readFileSync(path.join(profDir, file), 'utf8')) as CpuProfile)}\n`);
  } finally {
    await upstream.stop();
    tmp.remove();
  }
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  } catch {
    return [];
  }
}
