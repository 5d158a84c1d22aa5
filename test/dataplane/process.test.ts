import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { stringify } from 'yaml';
import { closedPort, echo, startUpstream } from '../support/upstreams.ts';

const BIN = path.resolve('dataplane/bin/switchyard-dataplane.ts');
const run = promisify(execFile);
const children: ChildProcess[] = [];

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

function writeConfig(config: unknown): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'switchyard-cli-')), 'gateway.yaml');
  writeFileSync(file, typeof config === 'string' ? config : stringify(config));
  return file;
}

async function freePorts(n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await closedPort());
  return out;
}

/** Starts the CLI and resolves once it logs that it listens (`ready` is how that line reads). */
async function startCli(file: string, env: NodeJS.ProcessEnv = {}, ready = '"event":"listening"'): Promise<{ child: ChildProcess; logs: string[] }> {
  const child = spawn(process.execPath, [BIN, '--config', file], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const logs: string[] = [];
  let buffer = '';
  child.stdout?.on('data', (d: Buffer) => {
    buffer += d.toString();
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    logs.push(...lines);
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  for (let i = 0; i < 500; i++) {
    if (logs.some((l) => l.includes(ready))) return { child, logs };
    if (child.exitCode !== null) throw new Error(`gateway exited ${child.exitCode}: ${stderr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`gateway did not start: ${stderr}`);
}

const exited = (child: ChildProcess): Promise<number | null> => new Promise((r) => (child.exitCode !== null ? r(child.exitCode) : child.once('exit', (code) => r(code))));

describe('command line', () => {
  it('--help lists every flag', async () => {
    const { stdout } = await run(process.execPath, [BIN, '--help']);
    for (const flag of ['--config', '--no-watch', '--check', '--log-level', '--help', '--version']) expect(stdout).toContain(flag);
  });

  it('accepts the seed gateway.yaml as written', async () => {
    const { stdout, stderr } = await run(process.execPath, [BIN, '--check', '--config', 'test/fixtures/seed-gateway.yaml'], { env: { ...process.env, JWT_SECRET: 'a-seed-secret-of-at-least-32-bytes-for-hs256' } });
    expect(stdout).toMatch(/ok, 10 routes, 3 upstreams, table version [0-9a-f]{16}/);
    // The seed's /health route names an upstream it never defines: served as 503, and said so.
    expect(stderr).toContain('routes[9].upstream: upstream "health-service" is not defined');
  });

  it('exits non-zero naming the file, line, field and what was expected', async () => {
    const file = writeConfig('routes:\n  - path: "/a"\n    upstream: "u"\n    methods: ["GET", "FETCH"]\n    auth_requried: true\nupstreams:\n  u:\n    discovery: { type: Static, endpoints: ["http://127.0.0.1:1"] }\n');
    const err = await run(process.execPath, [BIN, '--config', file]).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).toBe(1);
    const stderr = (err as { stderr: string }).stderr;
    expect(stderr).toContain(`${file}:4: routes[0].methods[1]: expected one of GET`);
    expect(stderr).toContain(`${file}:2: routes[0]: unknown key "auth_requried"`);
  });

  it('--check names a route the matcher would shadow, and the route that wins', async () => {
    const file = writeConfig('routes:\n  - { path: /pfx, path_type: Prefix, upstream: u }\n  - { path: /pfx/, path_type: Prefix, upstream: u }\nupstreams:\n  u:\n    discovery: { type: Static, endpoints: ["http://127.0.0.1:1"] }\n');
    const { stdout, stderr } = await run(process.execPath, [BIN, '--check', '--config', file], { env: { PATH: process.env.PATH } });
    expect(stdout).toContain('ok, 1 routes, 1 upstreams');
    expect(stderr).toContain(`warning: ${file}: routes[1]: shadowed by routes[0] ("/pfx") on any method /pfx/: both match the same requests, and the earlier route wins, so this one never serves`);
  });

  it('names a missing environment variable', async () => {
    const file = writeConfig('auth:\n  jwt:\n    secret: "${NOT_SET_ANYWHERE}"\n');
    const err = await run(process.execPath, [BIN, '--check', '--config', file], { env: { PATH: process.env.PATH } }).catch((e: { stderr: string }) => e);
    expect((err as { stderr: string }).stderr).toContain('auth.jwt.secret: environment variable NOT_SET_ANYWHERE is not set');
  });

  it('--check refuses a JWT secret shorter than the hash, naming the line, the field and the length needed', async () => {
    const err = await run(process.execPath, [BIN, '--check', '--config', 'test/fixtures/seed-gateway.yaml'], { env: { PATH: process.env.PATH, JWT_SECRET: 'only-24-bytes-of-secret!' } }).catch((e: { code: number; stderr: string }) => e);
    expect((err as { code: number }).code).toBe(1);
    const stderr = (err as { stderr: string }).stderr;
    expect(stderr).toMatch(/test\/fixtures\/seed-gateway\.yaml:\d+: auth\.jwt\.secret: the secret is 24 bytes; HS256 needs at least 32 bytes/);
    expect(stderr).not.toContain('only-24-bytes-of-secret!');
  });

  it('takes GATEWAY_* overrides from the environment', async () => {
    const up = await startUpstream(echo('u'));
    const [port, admin, metrics] = await freePorts(3);
    const file = writeConfig({ server: { bind_address: '127.0.0.1' }, routes: [{ path: '/x', upstream: 'u' }], upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } } });
    try {
      const { logs } = await startCli(file, { GATEWAY_SERVER_HTTP_PORT: String(port), GATEWAY_SERVER_ADMIN_PORT: String(admin), GATEWAY_SERVER_METRICS_PORT: String(metrics), GATEWAY_LOG_LEVEL: 'info' });
      const res = await request(`http://127.0.0.1:${port}/x`);
      expect(res.statusCode).toBe(200);
      await res.body.dump();
      expect(logs.join('\n')).toContain('GATEWAY_SERVER_HTTP_PORT -> server.http_port');
    } finally {
      await up.close();
    }
  });
});

describe('process lifecycle', () => {
  it('drains on SIGTERM: /ready turns 503, requests in flight finish, exit 0', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const up = await startUpstream((req, res) => {
      if (req.url === '/slow') void gate.then(() => res.end('finished'));
      else res.end('fast');
    });
    const [port, admin, metrics] = await freePorts(3);
    const file = writeConfig({
      server: { http_port: port, admin_port: admin, metrics_port: metrics, bind_address: '127.0.0.1', shutdown: { drain_delay: '300ms', grace_period: '10s' } },
      routes: [{ path: '/slow', upstream: 'u' }],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
    });
    try {
      const { child, logs } = await startCli(file);
      const base = `http://127.0.0.1:${port}`;
      const inflight = request(`${base}/slow`).then(async (r) => ({ status: r.statusCode, body: await r.body.text() }));
      await new Promise((r) => setTimeout(r, 100));
      child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 100));
      const ready = await request(`${base}/ready`, { reset: true });
      expect(ready.statusCode).toBe(503);
      await ready.body.dump();
      expect(child.exitCode).toBe(null);
      release();
      expect(await inflight).toEqual({ status: 200, body: 'finished' });
      expect(await exited(child)).toBe(0);
      expect(logs.join('\n')).toContain('"event":"shutdown_complete","cutRequests":0');
    } finally {
      release();
      await up.close();
    }
  });

  it('reloads on SIGHUP', async () => {
    const a = await startUpstream(echo('a'));
    const [port, admin, metrics] = await freePorts(3);
    const server = { http_port: port, admin_port: admin, metrics_port: metrics, bind_address: '127.0.0.1' };
    const file = writeConfig({ server, routes: [{ path: '/one', upstream: 'u' }], upstreams: { u: { discovery: { type: 'Static', endpoints: [a.url] } } } });
    try {
      const { child } = await startCli(file);
      writeFileSync(file, stringify({ server, routes: [{ path: '/two', upstream: 'u' }], upstreams: { u: { discovery: { type: 'Static', endpoints: [a.url] } } } }));
      child.kill('SIGHUP');
      let status = 0;
      for (let i = 0; i < 100 && status !== 200; i++) {
        const r = await request(`http://127.0.0.1:${port}/two`);
        status = r.statusCode;
        await r.body.dump();
        if (status !== 200) await new Promise((r2) => setTimeout(r2, 20));
      }
      expect(status).toBe(200);
    } finally {
      await a.close();
    }
  });
});

describe('logging', () => {
  it('writes an access line at low traffic without waiting for more, and loses none under load when stopped', async () => {
    const a = await startUpstream(echo('a'));
    const [port, admin, metrics] = await freePorts(3);
    const server = { http_port: port, admin_port: admin, metrics_port: metrics, bind_address: '127.0.0.1' };
    const file = writeConfig({ server, routes: [{ path: '/x', upstream: 'u' }], upstreams: { u: { discovery: { type: 'Static', endpoints: [a.url] } } } });
    try {
      const { child, logs } = await startCli(file);
      const base = `http://127.0.0.1:${port}`;
      const res = await request(`${base}/x`, { headers: { 'x-request-id': 'alone-1' } });
      await res.body.dump();
      // One request and then nothing: its line must still reach stdout while the gateway keeps running.
      for (let i = 0; i < 250 && !logs.some((l) => l.includes('"requestId":"alone-1"')); i++) await new Promise((r) => setTimeout(r, 20));
      expect(child.exitCode).toBe(null);
      const alone = logs.filter((l) => l.includes('"event":"access"'));
      expect(alone).toHaveLength(1);
      const record = JSON.parse(alone[0] as string) as Record<string, unknown>;
      // The same fields, in the same order, as every access line has had.
      expect(Object.keys(record)).toEqual(['level', 'time', 'service', 'event', 'requestId', 'method', 'path', 'host', 'client', 'route', 'upstream', 'endpoint', 'attempts', 'status', 'completed', 'durationMs', 'bytesOut', 'error', 'msg']);
      expect(record).toMatchObject({ level: 'info', service: 'switchyard-dataplane', event: 'access', requestId: 'alone-1', method: 'GET', path: '/x', host: `127.0.0.1:${port}`, client: '127.0.0.1', route: '/x', upstream: 'u', endpoint: a.url, attempts: 1, status: 200, completed: true, error: null, msg: 'request' });
      expect(record.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(typeof record.durationMs).toBe('number');
      expect(record.bytesOut).toBeGreaterThan(0);

      // A burst, then SIGTERM at once: every line gathered for a batched write is written before exit.
      const ids = Array.from({ length: 300 }, (_, i) => `burst-${i}`);
      for (let i = 0; i < ids.length; i += 50) {
        await Promise.all(ids.slice(i, i + 50).map(async (id) => (await request(`${base}/x`, { headers: { 'x-request-id': id } })).body.dump()));
      }
      child.kill('SIGTERM');
      expect(await exited(child)).toBe(0);
      await new Promise((r) => (child.stdout?.readableEnded ? r(undefined) : child.stdout?.once('end', r)));
      const seen = new Set(logs.filter((l) => l.includes('"event":"access"')).map((l) => (JSON.parse(l) as { requestId: string }).requestId));
      expect(ids.filter((id) => !seen.has(id))).toEqual([]);
      expect(logs.at(-1) === '' ? logs.at(-2) : logs.at(-1)).toContain('"event":"shutdown_complete"');
    } finally {
      await a.close();
    }
  });

  it('writes one readable line per record with observability.logging.format: pretty', async () => {
    const a = await startUpstream(echo('a'));
    const [port, admin, metrics] = await freePorts(3);
    const server = { http_port: port, admin_port: admin, metrics_port: metrics, bind_address: '127.0.0.1' };
    const file = writeConfig({ server, routes: [{ path: '/x', upstream: 'u' }], upstreams: { u: { discovery: { type: 'Static', endpoints: [a.url] } } }, observability: { logging: { format: 'pretty' } } });
    try {
      const { child, logs } = await startCli(file, {}, ' event=listening ');
      const res = await request(`http://127.0.0.1:${port}/x`, { headers: { 'x-request-id': 'pretty-1' } });
      await res.body.dump();
      const closed = new Promise((r) => child.once('close', r));
      child.kill('SIGTERM');
      await closed;
      expect(child.exitCode).toBe(0);
      expect(logs.length).toBeGreaterThan(2);
      for (const line of logs.filter((l) => l !== '')) {
        expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (TRACE|DEBUG|INFO |WARN |ERROR|FATAL) \S/);
        expect(() => JSON.parse(line)).toThrow();
      }
      const access = logs.filter((l) => l.includes(' event=access '));
      expect(access).toHaveLength(1);
      expect(access[0]).toMatch(/ INFO  request event=access requestId=pretty-1 method=GET path=\/x host=127\.0\.0\.1:\d+ client=127\.0\.0\.1 route=\/x upstream=u endpoint=http:\/\/127\.0\.0\.1:\d+ attempts=1 status=200 completed=true /);
      expect(logs.some((l) => / INFO  gateway listening event=listening ports=\{"http":\d+,/.test(l))).toBe(true);
    } finally {
      await a.close();
    }
  });
});
