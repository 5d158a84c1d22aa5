import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';

describe('metrics and admin', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  beforeAll(async () => {
    up = await startUpstream(echo('u'));
    gw = await startGateway({
      routes: [{ path: '/api/v1/users/{id}', upstream: 'u' }],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
      auth: { jwt: { secret: 'do-not-show-me-a-secret-of-32-bytes-or-more' } },
    });
    for (const p of ['/api/v1/users/1', '/api/v1/users/2', '/missing']) await (await request(`${gw.url}${p}`)).body.dump();
  });
  afterAll(async () => {
    await gw.stop();
    await up.close();
  });

  it('exposes request, latency, in-flight, table and reload metrics that pass promtool', async () => {
    const res = await request(gw.metricsUrl);
    expect(res.statusCode).toBe(200);
    const text = await res.body.text();
    expect(text).toContain('switchyard_requests_total{route="/api/v1/users/{id}",method="GET",status_class="2xx"} 2');
    expect(text).toContain('switchyard_requests_total{route="",method="GET",status_class="4xx"} 1');
    expect(text).toMatch(/switchyard_request_duration_seconds_bucket\{le="0.005",route="\/api\/v1\/users\/\{id\}"\}/);
    expect(text).toMatch(/switchyard_upstream_duration_seconds_count\{upstream="u",status_class="2xx"\} 2/);
    expect(text).toContain('switchyard_requests_in_flight 0');
    expect(text).toContain(`switchyard_table_info{version="${gw.gw.holder.current?.version}",source="${gw.configFile}"} 1`);
    expect(text).toContain('switchyard_table_reloads_total{result="applied"} 1');
    expect(text).toContain('switchyard_rejected_requests_total{code="route_not_found"} 1');
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.stderr + check.stdout).toBe('');
    expect(check.status).toBe(0);
  });

  it('serves the config (secrets redacted), table, routes, upstreams and version on the admin port only', async () => {
    const config = await (await request(`${gw.adminUrl}/config`)).body.text();
    expect(config).not.toContain('do-not-show-me');
    expect(config).toContain('[redacted]');
    const table = (await (await request(`${gw.adminUrl}/table`)).body.json()) as { version: string; routes: unknown[] };
    expect(table.version).toBe(gw.gw.holder.current?.version);
    expect(table.routes).toHaveLength(1);
    const version = (await (await request(`${gw.adminUrl}/version`)).body.json()) as { version: string };
    expect(version.version).toBe(table.version);
    const routes = await (await request(`${gw.adminUrl}/routes`)).body.text();
    expect(routes).toContain('{id}');
    const ups = (await (await request(`${gw.adminUrl}/upstreams`)).body.json()) as { name: string; endpoints: { origin: string; healthy: boolean }[] }[];
    expect(ups[0]?.endpoints[0]).toMatchObject({ origin: up.url, healthy: true });
    const reload = await request(`${gw.adminUrl}/reload`, { method: 'POST' });
    expect(reload.statusCode).toBe(200);
    await reload.body.dump();
    // Not on the public port.
    const pub = await request(`${gw.url}/table`);
    expect(pub.statusCode).toBe(404);
    await pub.body.dump();
    expect(gw.gw.config.server.admin_bind_address).toBe('127.0.0.1');
  });
});

describe('response bytes', () => {
  it('counts the body bytes each client received, by route, and the gateway\'s own answers under route ""', async () => {
    const up = await startUpstream((_req, res) => res.end('x'.repeat(1000)));
    const gw = await startGateway({ routes: [{ path: '/api/{id}', upstream: 'u' }], upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } } });
    try {
      let routed = 0;
      for (const p of ['/api/1', '/api/2']) routed += (await (await request(`${gw.url}${p}`)).body.arrayBuffer()).byteLength;
      const own = (await (await request(`${gw.url}/missing`)).body.arrayBuffer()).byteLength + (await (await request(`${gw.url}/health`)).body.arrayBuffer()).byteLength;
      const head = await request(`${gw.url}/api/3`, { method: 'HEAD' });
      await head.body.dump();
      expect(routed).toBe(2000);
      const text = await (await request(gw.metricsUrl)).body.text();
      expect(text).toContain(`switchyard_response_bytes_total{route="/api/{id}"} ${routed}`);
      expect(text).toContain(`switchyard_response_bytes_total{route=""} ${own}`);
      const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(check.stderr + check.stdout).toBe('');
      expect(check.status).toBe(0);
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});

describe('access log', () => {
  it('writes one JSON line per request with id, route, upstream endpoint, status, duration and bytes, and no token', async () => {
    const up = await startUpstream(echo('u'));
    const script = `
      import { startGateway } from './test/support/gateway.ts';
      const gw = await startGateway({ routes: [{ path: '/x', upstream: 'u' }], upstreams: { u: { discovery: { type: 'Static', endpoints: ['${up.url}'] } } } }, { logLevel: 'info' });
      const res = await fetch(gw.url + '/x?token=abc', { headers: { authorization: 'Bearer super.secret.token', 'x-request-id': 'log-test-1' } });
      await res.text();
      await gw.stop();
    `;
    // Asynchronous: the upstream lives in this process and must keep answering.
    const { stdout: out } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    await up.close();
    const lines = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const access = lines.filter((l) => l.event === 'access');
    expect(access).toHaveLength(1);
    expect(access[0]).toMatchObject({ requestId: 'log-test-1', method: 'GET', path: '/x', route: '/x', upstream: 'u', endpoint: up.url, status: 200, completed: true });
    expect(access[0]?.durationMs).toBeTypeOf('number');
    expect(access[0]?.bytesOut).toBeGreaterThan(10);
    expect(out).not.toContain('super.secret.token');
  });
});

describe('TLS listener', () => {
  it('serves https_port when server.tls names a certificate and key', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'switchyard-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', `${dir}/key.pem`, '-out', `${dir}/cert.pem`], { stdio: 'ignore' });
    const up = await startUpstream(echo('u'));
    const gw = await startGateway({
      server: { https_port: 0, tls: { cert_file: `${dir}/cert.pem`, key_file: `${dir}/key.pem` } },
      routes: [{ path: '/x', upstream: 'u' }],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
    });
    const agent = new Agent({ connect: { ca: readFileSync(`${dir}/cert.pem`) } });
    try {
      const res = await request(`https://127.0.0.1:${gw.gw.ports.https}/x`, { dispatcher: agent });
      expect(res.statusCode).toBe(200);
      await res.body.dump();
      expect(up.seen[0]?.headers['x-forwarded-proto']).toBe('https');
    } finally {
      await agent.close();
      await gw.stop();
      await up.close();
    }
  });
});
