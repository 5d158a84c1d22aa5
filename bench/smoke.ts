/**
 * `npm run bench:smoke`: a short load test of the gateway against a direct
 * connection to the same upstream, same load generator (autocannon), one run.
 * It prints requests per second and the ratio. It is a smoke test of the
 * benchmark path, not a measurement to quote; `npm run bench` is that.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { stringify } from 'yaml';

const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const children: ChildProcess[] = [];

function start(args: string[], ready: (line: string) => string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    let buffer = '';
    child.stdout?.on('data', (d: Buffer) => {
      buffer += d.toString();
      for (const line of buffer.split('\n')) {
        const value = ready(line);
        if (value !== undefined) resolve(value);
      }
    });
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited ${code}`)));
  });
}

async function load(url: string): Promise<{ rps: number; p50: number; p99: number; errors: number; non2xx: number }> {
  const result = await autocannon({ url, connections: CONNECTIONS, duration: DURATION, pipelining: 1 });
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors: result.errors + result.timeouts, non2xx: result.non2xx };
}

try {
  const upstreamPort = await start(['bench/upstream.ts'], (l) => (/^\d+$/.test(l.trim()) ? l.trim() : undefined));
  const dir = mkdtempSync(path.join(tmpdir(), 'switchyard-bench-'));
  const config = path.join(dir, 'gateway.yaml');
  writeFileSync(
    config,
    stringify({
      server: { http_port: 0, admin_port: 0, metrics_port: 0, bind_address: '127.0.0.1' },
      routes: [{ path: '/bench', upstream: 'u' }],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [`http://127.0.0.1:${upstreamPort}`] } } },
      observability: { logging: { level: 'warn', access_log: false } },
    }),
  );
  const gatewayPort = await start(['dataplane/bin/switchyard-dataplane.ts', '--config', config, '--log-level', 'info'], (l) => {
    const m = /"ports":\{"http":(\d+)/.exec(l);
    return m ? m[1] : undefined;
  });
  const direct = `http://127.0.0.1:${upstreamPort}/bench`;
  const viaGateway = `http://127.0.0.1:${gatewayPort}/bench`;
  await load(viaGateway); // warm-up: JIT and connection pools
  const d = await load(direct);
  const g = await load(viaGateway);
  const row = (name: string, r: typeof d): string => `| ${name} | ${Math.round(r.rps)} | ${r.p50} | ${r.p99} | ${r.errors} | ${r.non2xx} |`;
  process.stdout.write(
    [
      `bench:smoke: ${CONNECTIONS} connections, ${DURATION}s each, autocannon, one run on ${process.platform} with ${(await import('node:os')).cpus().length} CPUs`,
      '| target | req/s | p50 ms | p99 ms | errors | non-2xx |',
      '| --- | --- | --- | --- | --- | --- |',
      row('direct', d),
      row('gateway', g),
      `gateway / direct throughput: ${(g.rps / d.rps).toFixed(2)}`,
      '',
    ].join('\n'),
  );
  if (g.errors > 0 || g.non2xx > 0) process.exitCode = 1;
} finally {
  for (const c of children) c.kill('SIGTERM');
}
