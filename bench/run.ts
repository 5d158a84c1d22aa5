/**
 * `npm run bench [-- --quick] [-- --only dataplane,routes,reload,seed,redis,controlplane,websocket,http2]`
 *
 * Runs every benchmark, one section after another, and writes the results to
 * bench/results/latest.{json,md} (quick.{json,md} with --quick, partial.* with
 * --only), then prints the markdown. docs/performance.md explains each number and what
 * limits it. Traffic goes to 127.0.0.1 only; every load run is bounded in time.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runControlPlane } from './controlplane.ts';
import { runDataPlane } from './dataplane.ts';
import { runRedisFailover } from './redis-failover.ts';
import { cpuPlan, pinSelf, ROOT } from './lib/processes.ts';
import { renderReport, type BenchResults } from './lib/report.ts';
import { cpuTicks, machineInfo, round, stolenSince } from './lib/stats.ts';
import { runReload } from './reload.ts';
import { runRouteScale } from './route-scale.ts';
import { runSeedScenario } from './seed-scenario.ts';
import { runWebSocket } from './websocket.ts';
import { runHttp2 } from './http2.ts';

const SECTIONS = ['dataplane', 'routes', 'reload', 'seed', 'redis', 'controlplane', 'websocket', 'http2'] as const;
type Section = (typeof SECTIONS)[number];
/** The many-connections case needs 1,000 sockets in wrk and twice that in a proxy. */
const MIN_OPEN_FILES = 4096;

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, only: { type: 'string' } }, strict: true });
const quick = values.quick ?? false;
const only = (values.only ?? SECTIONS.join(',')).split(',').map((s) => s.trim());
for (const s of only) if (!(SECTIONS as readonly string[]).includes(s)) throw new Error(`--only: unknown section "${s}"; sections: ${SECTIONS.join(', ')}`);
const wanted = (s: Section): boolean => only.includes(s);

// Children are stopped by the exit handlers (bench/lib/processes.ts); make signals run them.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130));

const limits = readFileSync('/proc/self/limits', 'utf8');
const openFiles = Number(/Max open files\s+(\d+)/.exec(limits)?.[1] ?? 0);
if (openFiles < MIN_OPEN_FILES) {
  throw new Error(`open files limit is ${openFiles}; the 1,000-connection case needs ${MIN_OPEN_FILES}. Run through \`npm run bench\` (it raises ulimit -n) or raise ulimit -n first.`);
}

// This process runs the load of the seed scenario and the reload loop: it belongs with the load generator.
pinSelf(cpuPlan().load);
const started = performance.now();
const log = (line: string): void => {
  process.stderr.write(`[${Math.round((performance.now() - started) / 1000)}s] ${line}\n`);
};
const ticksAtStart = cpuTicks();
const results: BenchResults = { mode: quick ? 'quick' : 'full', startedAt: new Date().toISOString(), seconds: 0, machine: machineInfo(), failures: [] };
log(`npm run bench${quick ? ' --quick' : ''}: ${results.machine.cpus} CPUs, load average ${results.machine.loadStart}, sections: ${only.join(', ')}`);

async function section(name: Section, run: () => Promise<void>): Promise<void> {
  if (!wanted(name)) return;
  try {
    await run();
  } catch (err) {
    const message = (err as Error).stack ?? String(err);
    log(`${name} failed: ${message}`);
    results.failures.push(`${name}: ${(err as Error).message.split('\n')[0]}`);
  }
}

await section('dataplane', async () => {
  results.dataplane = await runDataPlane({ quick, log });
});
await section('routes', async () => {
  results.routeScale = await runRouteScale({ quick, log });
});
await section('reload', async () => {
  results.reload = await runReload({ quick, log });
});
await section('seed', async () => {
  results.seed = await runSeedScenario({ quick, log });
});
await section('redis', async () => {
  results.redis = await runRedisFailover({ quick, log });
});
await section('controlplane', async () => {
  results.controlPlane = await runControlPlane({ quick, log });
});
await section('websocket', async () => {
  results.websocket = await runWebSocket({ quick, log });
});
await section('http2', async () => {
  results.http2 = await runHttp2({ quick, log });
});

// No timing is judged, but a failed request through a proxy or during reloads is a bug, not a number.
for (const c of results.dataplane?.cases ?? []) {
  for (const s of c.subjects) if (s.errors > 0) results.failures.push(`dataplane: ${s.id} had ${s.errors} failed requests in the ${c.id} case`);
}
if (results.reload && results.reload.quiet.errors + results.reload.reloading.errors + results.reload.reloads.failed > 0) {
  results.failures.push(`reload: ${results.reload.quiet.errors + results.reload.reloading.errors} failed requests, ${results.reload.reloads.failed} failed reloads`);
}

// Nor is a request answered 5xx or lost while Redis fails over: the limiter falls back instead.
for (const r of results.redis?.runs ?? []) {
  const bad = Object.entries(r.statuses).filter(([status]) => Number(status) >= 500).reduce((n, [, count]) => n + count, 0) + r.failed;
  if (bad > 0) results.failures.push(`redis: ${bad} requests failed or answered 5xx through the ${r.topology} failover (${r.gateways} gateway(s))`);
}

for (const s of results.http2?.h2 ?? []) if (s.failed > 0) results.failures.push(`http2: ${s.failed} requests through ${s.id} failed`);
for (const s of results.http2?.grpc ?? []) if (s.errors > 0) results.failures.push(`grpc: ${s.errors} calls through ${s.id} failed`);
for (const s of results.websocket?.subjects ?? []) if (s.closedEarly > 0) results.failures.push(`websocket: ${s.closedEarly} connections through ${s.id} closed before their round ended`);

results.seconds = round((performance.now() - started) / 1000, 1);
results.machine.loadEnd = round(os.loadavg()[0] as number);
results.machine.stolenPercent = stolenSince(ticksAtStart);
const dir = path.join(ROOT, 'bench/results');
mkdirSync(dir, { recursive: true });
// Only a full run of every section replaces the committed results.
const base = path.join(dir, quick ? 'quick' : only.length < SECTIONS.length ? 'partial' : 'latest');
const markdown = renderReport(results);
writeFileSync(`${base}.json`, `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(`${base}.md`, markdown);
process.stdout.write(`\n${markdown}\nwritten: ${path.relative(ROOT, base)}.json, ${path.relative(ROOT, base)}.md (${results.seconds} s)\n`);
if (results.failures.length > 0) process.exitCode = 1;
