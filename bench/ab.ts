/**
 * Before and after, side by side: the same gateway modes from an earlier
 * checkout and from this one, under the same load, in interleaved rounds
 * (before, after, before, after…), so that the machine's load falls on both
 * alike. Prints the median requests/s of each, the gateway's own CPU time per
 * request (from /proc: what a busy machine disturbs least), and the ratios
 * after ÷ before.
 *
 *     git archive <commit> dataplane package.json | tar -x -C /tmp/before && ln -s "$PWD/node_modules" /tmp/before/
 *     node bench/ab.ts /tmp/before [modes] [case] [rounds] [seconds]
 *     node bench/ab.ts /tmp/before gateway-full,gateway-plain small 5 5
 *
 * Modes are those of bench/lib/gateway-modes.ts; cases as in bench/profile.ts
 * (small, large, many). AB_BEFORE_NODE_ARGS and AB_AFTER_NODE_ARGS give each
 * side Node.js flags (space-separated), e.g. to compare V8 heap settings with
 * `.` as the earlier checkout. Both gateways run pinned to the proxy's CPU, one
 * loaded at a time; wrk and the upstream share the other CPU.
 */
import path from 'node:path';
import { gatewayModes } from './lib/gateway-modes.ts';
import { cpuPlan, pinSelf, procUsage, tempDir } from './lib/processes.ts';
import { startGateway, startUpstream, type Server } from './lib/servers.ts';
import { median, round } from './lib/stats.ts';
import { errorCount, runWrk } from './lib/wrk.ts';

const CASES: Record<string, { path: string; connections: number }> = { small: { path: '/bench', connections: 64 }, large: { path: '/large', connections: 16 }, many: { path: '/bench', connections: 1000 } };

const [beforeRoot, modeList = 'gateway-full,gateway-plain', caseId = 'small', roundsText = '5', secondsText = '5'] = process.argv.slice(2);
if (!beforeRoot) throw new Error('usage: node bench/ab.ts <earlier checkout> [modes] [case] [rounds] [seconds]');
const load = CASES[caseId];
if (!load) throw new Error(`unknown case ${caseId}; cases: ${Object.keys(CASES).join(', ')}`);
const rounds = Number(roundsText);
const seconds = Number(secondsText);

const cpu = cpuPlan();
pinSelf(cpu.load);
const tmp = tempDir('ab');
const servers: Server[] = [];
try {
  const upstream = await startUpstream(path.join(tmp.dir, 'upstream'), cpu.load);
  servers.push(upstream);
  const modes = await gatewayModes(upstream.origin);
  const subjects: { label: string; origin: string; pid: number; rss?: number; bearer: string | undefined; rps: number[]; cpuUs: number[]; errors: number }[] = [];
  for (const id of modeList.split(',')) {
    const mode = modes.find((m) => m.id === id);
    if (!mode) throw new Error(`unknown mode ${id}; modes: ${modes.map((m) => m.id).join(', ')}`);
    for (const [side, root, flags] of [
      ['before', path.resolve(beforeRoot), process.env.AB_BEFORE_NODE_ARGS],
      ['after', undefined, process.env.AB_AFTER_NODE_ARGS],
    ] as const) {
      const dir = path.join(tmp.dir, `${id}-${side}`);
      const nodeArgs = (flags ?? '').split(' ').filter((a) => a !== '');
      const gw = await startGateway({ name: `${id}-${side}`, dir, config: mode.config, cpu: cpu.subject, logFile: mode.logToFile ? path.join(dir, 'stdout.log') : undefined, args: ['--no-watch'], root, nodeArgs });
      servers.push(gw);
      subjects.push({ label: `${id} ${side}`, origin: gw.origin, pid: gw.child.pid, bearer: mode.bearer, rps: [], cpuUs: [], errors: 0 });
    }
  }
  for (const s of subjects) await runWrk({ url: s.origin + load.path, connections: load.connections, durationS: 2, cpu: cpu.load, bearer: s.bearer });
  for (let r = 0; r < rounds; r++) {
    for (const s of subjects) {
      const cpuBefore = procUsage(s.pid)?.cpuSeconds ?? NaN;
      const result = await runWrk({ url: s.origin + load.path, connections: load.connections, durationS: seconds, cpu: cpu.load, bearer: s.bearer });
      const cpuAfter = procUsage(s.pid)?.cpuSeconds ?? NaN;
      s.rps.push(result.rps);
      // The gateway's own CPU time per request: what a busy machine disturbs least.
      s.cpuUs.push(((cpuAfter - cpuBefore) * 1e6) / Math.max(1, result.requests));
      s.errors += errorCount(result);
    }
    process.stderr.write(`round ${r + 1}/${rounds}: ${subjects.map((s) => `${s.label} ${Math.round(s.rps.at(-1) ?? 0)}`).join(', ')}\n`);
  }
  process.stdout.write(`${caseId}, ${load.connections} connections, ${rounds} × ${seconds} s interleaved\n\n| mode | before req/s | after req/s | after ÷ before | before CPU µs per request | after CPU µs per request | after ÷ before (CPU) | rounds before | rounds after | errors |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n`);
  for (let i = 0; i < subjects.length; i += 2) {
    const [b, a] = [subjects[i], subjects[i + 1]] as [(typeof subjects)[number], (typeof subjects)[number]];
    const mb = median(b.rps);
    const ma = median(a.rps);
    const cb = median(b.cpuUs);
    const ca = median(a.cpuUs);
    process.stdout.write(`| ${b.label.replace(/ before$/, '')} | ${Math.round(mb)} | ${Math.round(ma)} | ${round(ma / mb, 2)}× | ${round(cb, 1)} | ${round(ca, 1)} | ${round(ca / cb, 2)}× | ${b.rps.map(Math.round).join(', ')} | ${a.rps.map(Math.round).join(', ')} | ${b.errors + a.errors} |\n`);
  }
} finally {
  for (const s of servers.reverse()) await s.stop();
  tmp.remove();
}
