/**
 * HTTP/2 and gRPC through the gateway, one run, ratios:
 *
 * - h2 over TLS (ALPN) with h2load (Debian nghttp2-client): the gateway beside
 *   nginx (1 worker, `http2 on`, keep-alive pool to the upstream), both in
 *   front of the same nginx upstream answering `return 200`, same load;
 * - gRPC unary calls per second from a @grpc/grpc-js client with a fixed
 *   number of calls outstanding: through the gateway (h2c both sides) and
 *   straight to the same grpc-js server (bench/peers/grpc-echo.ts).
 *
 * Traffic to 127.0.0.1 only; each round is bounded in time (h2load -D, the
 * gRPC loop by its clock), the number of connections and streams fixed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { stringify } from 'yaml';
import { ECHO_SERVICE } from './peers/grpc-echo.ts';
import { cpuPlan, freePort, launch, ROOT, sleep, waitForPort, type Child } from './lib/processes.ts';
import { startUpstream } from './lib/servers.ts';
import { int, median, ms, percentile, ratio, round } from './lib/stats.ts';

/** One h2load subject, medians over the rounds. */
export interface H2Subject {
  id: 'nginx' | 'switchyard';
  requestsPerSecond: number;
  meanMs: number;
  /** Requests h2load counted as failed or errored (none should). */
  failed: number;
}

/** One gRPC subject, medians over the rounds. */
export interface GrpcSubject {
  id: 'direct' | 'switchyard';
  callsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

/** The section's result. */
export interface Http2Result {
  h2load: string;
  connections: number;
  streamsPerConnection: number;
  durationS: number;
  rounds: number;
  pinned: boolean;
  h2: H2Subject[];
  /** switchyard ÷ nginx, requests per second. */
  h2Ratio: number;
  grpcOutstanding: number;
  grpc: GrpcSubject[];
  /** switchyard ÷ direct, calls per second. */
  grpcRatio: number;
}

/** Options of the section. */
export interface Http2Options {
  quick: boolean;
  log: (line: string) => void;
}

/** Fails with what to install when h2load is missing: a benchmark never skips silently. */
function h2loadVersion(): string {
  const r = spawnSync('h2load', ['--version'], { encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) throw new Error('h2load is not installed: apt-get install nghttp2-client (hack/install-test-deps.sh does)');
  return (/nghttp2\/(\S+)/.exec(r.stdout)?.[1] ?? r.stdout.trim()).trim();
}

/** Runs h2load against `url` for `durationS` seconds; its requests/s, mean time per request and failures. */
function h2load(url: string, connections: number, streams: number, durationS: number, cpu: string | undefined): { rps: number; meanMs: number; failed: number } {
  const args = ['-D', String(durationS), '--warm-up-time', '1', '-c', String(connections), '-m', String(streams), '-t', '1', url];
  const cmd = cpu === undefined ? 'h2load' : 'taskset';
  const r = spawnSync(cmd, cpu === undefined ? args : ['-c', cpu, 'h2load', ...args], { encoding: 'utf8', timeout: (durationS + 30) * 1000 });
  if (r.status !== 0) throw new Error(`h2load failed (${r.status}): ${r.stderr || r.stdout}`);
  const out = r.stdout;
  const rps = Number(/finished in [^,]+, ([\d.]+) req\/s/.exec(out)?.[1]);
  const failed = Number(/(\d+) failed, (\d+) errored/.exec(out)?.slice(1, 3).reduce((a, b) => String(Number(a) + Number(b))) ?? NaN);
  // "time for request:   min   max   mean   sd   +/- sd", in us or ms.
  const line = /time for request:\s+(\S+)\s+(\S+)\s+(\S+)/.exec(out);
  const meanMs = line ? toMs(line[3] as string) : NaN;
  if (!Number.isFinite(rps)) throw new Error(`cannot read h2load's output:\n${out}`);
  return { rps, meanMs, failed };
}

function toMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text);
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

/** nginx as an h2 (TLS, ALPN) reverse proxy with one worker and a keep-alive pool to the upstream. */
function nginxH2Conf(dir: string, port: number, upstreamPort: number, cert: string, key: string): string {
  const user = process.getuid?.() === 0 ? `user ${os.userInfo().username};\n` : '';
  return `${user}worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  http2_max_concurrent_streams 128;
  upstream backend { server 127.0.0.1:${upstreamPort}; keepalive 128; keepalive_requests 1000000; keepalive_timeout 60s; }
  server {
    listen 127.0.0.1:${port} ssl http2 backlog=4096;
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`;
}

/** `outstanding` unary calls in flight at all times for `durationMs`; calls per second and latencies. */
async function grpcRound(target: string, outstanding: number, durationMs: number): Promise<{ calls: number; latencies: number[]; errors: number }> {
  const Client = grpc.makeGenericClientConstructor(ECHO_SERVICE, 'Echo');
  const client = new Client(target, grpc.credentials.createInsecure());
  const unary = client.unary as (m: unknown, cb: (e: grpc.ServiceError | null) => void) => void;
  const latencies: number[] = [];
  let calls = 0;
  let errors = 0;
  const end = performance.now() + durationMs;
  const message = { id: 1, name: 'bench', tags: ['a', 'b'] };
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const start = performance.now();
      const err = await new Promise<grpc.ServiceError | null>((resolve) => unary.call(client, message, resolve));
      if (err) errors++;
      else calls++;
      if (calls % 8 === 0) latencies.push(performance.now() - start);
    }
  };
  await Promise.all(Array.from({ length: outstanding }, worker));
  client.close();
  return { calls, latencies, errors };
}

/** Runs the section: the upstreams and the gateway as processes; h2load and the gRPC client on the load CPU. */
export async function runHttp2(options: Http2Options): Promise<Http2Result> {
  const { quick, log } = options;
  const version = h2loadVersion();
  const connections = quick ? 4 : 16;
  const streams = 8;
  const durationS = quick ? 2 : 5;
  const rounds = quick ? 1 : 3;
  const outstanding = quick ? 8 : 32;
  const plan = cpuPlan();
  const children: Child[] = [];
  const dir = mkdtempSync(path.join(tmpdir(), 'switchyard-bench-h2-'));
  try {
    const cert = path.join(dir, 'tls.crt');
    const key = path.join(dir, 'tls.key');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });

    const upstream = await startUpstream(path.join(dir, 'upstream'), plan.load);
    children.push(upstream.child);
    const grpcPort = await freePort();
    const grpcServer = launch('grpc-echo', process.execPath, [path.join(ROOT, 'bench/peers/grpc-echo.ts'), String(grpcPort)], { cpu: plan.load });
    children.push(grpcServer);
    await waitForPort(grpcPort, grpcServer);

    const nginxDir = path.join(dir, 'nginx');
    mkdirSync(path.join(nginxDir, 'logs'), { recursive: true });
    mkdirSync(path.join(nginxDir, 'tmp'), { recursive: true });
    const nginxPort = await freePort();
    writeFileSync(path.join(nginxDir, 'nginx.conf'), nginxH2Conf(nginxDir, nginxPort, upstream.port, cert, key));
    const nginx = launch('nginx-h2', process.env.NGINX ?? '/usr/sbin/nginx', ['-p', nginxDir, '-c', path.join(nginxDir, 'nginx.conf'), '-e', path.join(nginxDir, 'logs/error.log'), '-g', 'daemon off;'], { cpu: plan.subject });
    children.push(nginx);
    await waitForPort(nginxPort, nginx);

    const [httpPort, httpsPort] = [await freePort(), await freePort()];
    const config = path.join(dir, 'gateway.yaml');
    writeFileSync(
      config,
      stringify({
        server: { http_port: httpPort, https_port: httpsPort, admin_port: await freePort(), metrics_port: await freePort(), bind_address: '127.0.0.1', tls: { cert_file: cert, key_file: key }, http2: { cleartext: true, max_concurrent_streams: 128 } },
        observability: { logging: { level: 'warn', access_log: false } },
        routes: [
          { path: '/bench.Echo/Unary', methods: ['POST'], upstream: 'grpc' },
          { path: '/', path_type: 'Prefix', upstream: 'nginx' },
        ],
        upstreams: {
          nginx: { discovery: { type: 'Static', endpoints: [`http://127.0.0.1:${upstream.port}`] } },
          grpc: { discovery: { type: 'Static', endpoints: [`http://127.0.0.1:${grpcPort}`] }, protocol: 'h2c' },
        },
      }),
    );
    const gateway = launch('switchyard', process.execPath, [path.join(ROOT, 'dataplane/bin/switchyard-dataplane.ts'), '--config', config, '--no-watch'], { cpu: plan.subject, stdout: 'ignore' });
    children.push(gateway);
    await waitForPort(httpsPort, gateway);

    const h2Targets = { nginx: `https://127.0.0.1:${nginxPort}/`, switchyard: `https://127.0.0.1:${httpsPort}/` } as const;
    const h2Samples: Record<'nginx' | 'switchyard', { rps: number[]; mean: number[]; failed: number }> = { nginx: { rps: [], mean: [], failed: 0 }, switchyard: { rps: [], mean: [], failed: 0 } };
    for (let r = 0; r < rounds; r++) {
      // Alternating which goes first spreads any drift of the machine over both.
      for (const id of r % 2 === 0 ? (['nginx', 'switchyard'] as const) : (['switchyard', 'nginx'] as const)) {
        const out = h2load(h2Targets[id], connections, streams, durationS, plan.load);
        h2Samples[id].rps.push(out.rps);
        h2Samples[id].mean.push(out.meanMs);
        h2Samples[id].failed += out.failed;
        log(`http2: ${id} round ${r + 1}/${rounds}: ${int(out.rps)} req/s`);
        await sleep(200);
      }
    }
    const h2: H2Subject[] = (['nginx', 'switchyard'] as const).map((id) => ({ id, requestsPerSecond: round(median(h2Samples[id].rps), 0), meanMs: round(median(h2Samples[id].mean), 3), failed: h2Samples[id].failed }));

    const grpcTargets = { direct: `127.0.0.1:${grpcPort}`, switchyard: `127.0.0.1:${httpPort}` } as const;
    const grpcSamples: Record<'direct' | 'switchyard', { rate: number[]; latencies: number[]; errors: number }> = { direct: { rate: [], latencies: [], errors: 0 }, switchyard: { rate: [], latencies: [], errors: 0 } };
    for (const id of ['direct', 'switchyard'] as const) await grpcRound(grpcTargets[id], outstanding, 500);
    for (let r = 0; r < rounds; r++) {
      for (const id of r % 2 === 0 ? (['direct', 'switchyard'] as const) : (['switchyard', 'direct'] as const)) {
        const out = await grpcRound(grpcTargets[id], outstanding, durationS * 1000);
        grpcSamples[id].rate.push(out.calls / durationS);
        grpcSamples[id].latencies.push(...out.latencies);
        grpcSamples[id].errors += out.errors;
        log(`grpc: ${id} round ${r + 1}/${rounds}: ${int(out.calls / durationS)} calls/s`);
        await sleep(200);
      }
    }
    const grpcSubjects: GrpcSubject[] = (['direct', 'switchyard'] as const).map((id) => ({
      id,
      callsPerSecond: round(median(grpcSamples[id].rate), 0),
      p50Ms: round(percentile(grpcSamples[id].latencies, 50), 3),
      p99Ms: round(percentile(grpcSamples[id].latencies, 99), 3),
      errors: grpcSamples[id].errors,
    }));
    const [nginxH2, gwH2] = h2 as [H2Subject, H2Subject];
    const [direct, gwGrpc] = grpcSubjects as [GrpcSubject, GrpcSubject];
    return {
      h2load: version,
      connections,
      streamsPerConnection: streams,
      durationS,
      rounds,
      pinned: plan.pinned,
      h2,
      h2Ratio: round(gwH2.requestsPerSecond / nginxH2.requestsPerSecond, 3),
      grpcOutstanding: outstanding,
      grpc: grpcSubjects,
      grpcRatio: round(gwGrpc.callsPerSecond / direct.callsPerSecond, 3),
    };
  } finally {
    for (const c of children.reverse()) await c.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The section in the report. */
export function http2Tables(r: Http2Result): string[] {
  const out: string[] = [];
  out.push(
    `h2load ${r.h2load}: ${r.connections} connections × ${r.streamsPerConnection} streams over TLS (ALPN h2), ${r.rounds} × ${r.durationS} s after a 1 s warm-up, medians over the rounds; upstream nginx \`return 200\`${r.pinned ? '; the proxies pinned to their own CPU' : ''}.`,
    '',
    '| subject | req/s | mean ms | failed | ÷ nginx |',
    '| --- | --- | --- | --- | --- |',
  );
  const nginx = r.h2.find((s) => s.id === 'nginx');
  for (const s of r.h2) out.push(`| ${s.id === 'nginx' ? 'nginx (1 worker, http2)' : 'switchyard'} | ${int(s.requestsPerSecond)} | ${ms(s.meanMs)} | ${s.failed} | ${nginx ? ratio(s.requestsPerSecond / nginx.requestsPerSecond) : ''} |`);
  out.push(
    '',
    `gRPC unary calls (@grpc/grpc-js, ${r.grpcOutstanding} calls outstanding on one channel, a small JSON message each way), h2c to the gateway and from it to the same grpc-js server (bench/peers/grpc-echo.ts):`,
    '',
    '| subject | calls/s | p50 ms | p99 ms | errors | ÷ direct |',
    '| --- | --- | --- | --- | --- | --- |',
  );
  const direct = r.grpc.find((s) => s.id === 'direct');
  for (const s of r.grpc) out.push(`| ${s.id} | ${int(s.callsPerSecond)} | ${ms(s.p50Ms)} | ${ms(s.p99Ms)} | ${s.errors} | ${direct ? ratio(s.callsPerSecond / direct.callsPerSecond) : ''} |`);
  out.push('');
  return out;
}
