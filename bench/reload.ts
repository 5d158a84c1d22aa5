/**
 * Reload cost: the gateway under steady load (wrk) while its route table is
 * swapped every 100 ms, against the same load without reloads. Each swap
 * rewrites the config file with the other of two tables of the same size and
 * asks for it with the admin `POST /reload` (the file watcher is off, so every
 * swap is one we timed). Runs alternate: quiet, reloading, quiet, reloading…
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { cpuPlan, sleep, tempDir } from './lib/processes.ts';
import { generateRoutes } from './lib/routes.ts';
import { gatewayConfigText, startGateway, startUpstream, type Server } from './lib/servers.ts';
import { median, percentile, round } from './lib/stats.ts';
import { errorCount, runWrk, type WrkResult } from './lib/wrk.ts';

/** Load numbers of one kind of run, medians over the rounds. */
export interface LoadSummary {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  /** wrk errors (socket errors and non-2xx answers), summed over the rounds. */
  errors: number;
  requests: number;
}

/** The section's result. */
export interface ReloadResult {
  routes: number;
  intervalMs: number;
  durationS: number;
  rounds: number;
  connections: number;
  quiet: LoadSummary;
  reloading: LoadSummary;
  reloads: { requested: number; applied: number; failed: number; p50Ms: number; p99Ms: number; maxMs: number };
}

/** Options of the section. */
export interface ReloadOptions {
  quick: boolean;
  log: (line: string) => void;
}

function configWith(tag: string, routes: number, upstream: string): Record<string, unknown> {
  return {
    routes: [
      { name: 'bench', path: '/bench', upstream: 'u' },
      ...generateRoutes(routes, tag).map((r) => ({ name: r.name, path: r.path, path_type: r.type, methods: r.methods, hosts: r.hosts, upstream: 'u' })),
    ],
    upstreams: { u: { discovery: { type: 'Static', endpoints: [upstream] } } },
    observability: { logging: { level: 'warn', access_log: false }, metrics: { prometheus_enabled: false } },
  };
}

function summarize(runs: WrkResult[]): LoadSummary {
  return {
    rps: round(median(runs.map((r) => r.rps)), 0),
    p50Ms: round(median(runs.map((r) => r.latencyMs.p50)), 3),
    p99Ms: round(median(runs.map((r) => r.latencyMs.p99)), 3),
    p999Ms: round(median(runs.map((r) => r.latencyMs.p999)), 3),
    errors: runs.reduce((n, r) => n + errorCount(r), 0),
    requests: runs.reduce((n, r) => n + r.requests, 0),
  };
}

/** Runs the section. */
export async function runReload(options: ReloadOptions): Promise<ReloadResult> {
  const { quick, log } = options;
  const cpu = cpuPlan();
  // A config of typical size; the compile section shows how the cost of one swap grows with the table.
  const routes = 100;
  const durationS = quick ? 2 : 8;
  const rounds = quick ? 1 : 3;
  const intervalMs = 100;
  const connections = 64;
  const tmp = tempDir('reload');
  const servers: Server[] = [];
  try {
    const upstream = await startUpstream(path.join(tmp.dir, 'upstream'), cpu.load);
    servers.push(upstream);
    const gw = await startGateway({ name: 'gateway (reload)', dir: path.join(tmp.dir, 'gateway'), config: configWith('a', routes, upstream.origin), cpu: cpu.subject, args: ['--no-watch'] });
    servers.push(gw);
    const texts = [gatewayConfigText(gw, configWith('b', routes, upstream.origin)), gatewayConfigText(gw, configWith('a', routes, upstream.origin))];
    const url = `${gw.origin}/bench`;
    await runWrk({ url, connections, durationS: quick ? 1 : 2, cpu: cpu.load });

    const quiet: WrkResult[] = [];
    const reloading: WrkResult[] = [];
    const reloadMs: number[] = [];
    let requested = 0;
    let applied = 0;
    let failed = 0;
    for (let round = 1; round <= rounds; round++) {
      const q = await runWrk({ url, connections, durationS, cpu: cpu.load });
      quiet.push(q);
      log(`reload: round ${round}/${rounds} quiet: ${Math.round(q.rps)} req/s, ${errorCount(q)} errors`);

      let running = true;
      const swapper = (async () => {
        let next = performance.now();
        // Bounded: the wrk run ends the loop, and the count caps it regardless.
        for (let i = 0; running && i < (durationS * 1000) / intervalMs + 10; i++) {
          writeFileSync(gw.configFile, texts[requested % 2] as string);
          const t = performance.now();
          requested++;
          try {
            const res = await fetch(`http://127.0.0.1:${gw.adminPort}/reload`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
            const body = (await res.json()) as { applied?: boolean; unchanged?: boolean };
            if (res.status === 200 && body.applied === true && body.unchanged !== true) applied++;
            else failed++;
          } catch {
            failed++;
          }
          reloadMs.push(performance.now() - t);
          next += intervalMs;
          const wait = next - performance.now();
          if (wait > 0) await sleep(wait);
        }
      })();
      const r = await runWrk({ url, connections, durationS, cpu: cpu.load });
      running = false;
      await swapper;
      reloading.push(r);
      log(`reload: round ${round}/${rounds} reloading: ${Math.round(r.rps)} req/s, ${errorCount(r)} errors, ${applied} tables applied so far`);
    }
    return {
      routes,
      intervalMs,
      durationS,
      rounds,
      connections,
      quiet: summarize(quiet),
      reloading: summarize(reloading),
      reloads: { requested, applied, failed, p50Ms: round(median(reloadMs), 1), p99Ms: round(percentile(reloadMs, 99), 1), maxMs: round(Math.max(...reloadMs), 1) },
    };
  } finally {
    for (const s of servers.reverse()) await s.stop();
    tmp.remove();
  }
}
