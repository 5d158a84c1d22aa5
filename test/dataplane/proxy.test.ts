import type http from 'node:http';
import net from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { closedPort, echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';

/** What crypto.randomUUID() gives: the ids the gateway makes up. */
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Sends raw bytes and returns the raw response text (for header-level assertions). */
function rawRequest(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(text));
    let out = '';
    socket.on('data', (d) => (out += d.toString('latin1')));
    socket.on('end', () => resolve(out));
    socket.on('error', reject);
  });
}

describe('proxying', () => {
  let up: TestUpstream;
  let gw: TestGateway;

  beforeAll(async () => {
    up = await startUpstream(echo('users'));
    gw = await startGateway({
      routes: [
        { path: '/api/v1/users', methods: ['GET', 'POST'], upstream: 'users' },
        { path: '/api/v1/users/{id}', methods: ['GET', 'PUT', 'DELETE'], upstream: 'users' },
        { path: '/files', path_type: 'Prefix', upstream: 'users' },
        { path: '/old', path_type: 'Prefix', upstream: 'users', rewrite_path: '/new' },
        { path: '/private', upstream: 'users', auth_required: true },
        { path: '/broken', upstream: 'missing-service' },
      ],
      upstreams: { users: { discovery: { type: 'Static', endpoints: [up.url] } } },
    });
  });
  afterAll(async () => {
    await gw.stop();
    await up.close();
  });
  afterEach(() => {
    up.seen.length = 0;
  });

  it('preserves method, path, query and body byte for byte', async () => {
    const body = Buffer.from([0, 1, 2, 255, 254, 13, 10, 0x7b]);
    const res = await request(`${gw.url}/api/v1/users?b=2&a=%20x&a=1`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream', 'x-custom': 'Kept' } });
    expect(res.statusCode).toBe(200);
    await res.body.dump();
    const seen = up.seen[0];
    expect(seen?.method).toBe('POST');
    expect(seen?.url).toBe('/api/v1/users?b=2&a=%20x&a=1');
    expect(seen?.body.equals(body)).toBe(true);
    expect(seen?.headers['x-custom']).toBe('Kept');
    expect(seen?.headers['content-type']).toBe('application/octet-stream');
  });

  it('sets X-Forwarded-For/-Proto/-Host and generates, forwards and echoes X-Request-ID', async () => {
    const res = await request(`${gw.url}/api/v1/users/42`, { headers: { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https', host: 'shop.example' } });
    await res.body.dump();
    const h = up.seen[0]?.headers ?? {};
    // The peer is not a trusted proxy (server.trusted_proxies is empty), so the client's own entry is dropped.
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-real-ip']).toBe('127.0.0.1');
    expect(h['x-forwarded-proto']).toBe('http');
    expect(h['x-forwarded-host']).toBe('shop.example');
    expect(h.host).toBe('shop.example');
    const id = res.headers['x-request-id'];
    expect(id).toMatch(UUID_V4);
    expect(h['x-request-id']).toBe(id);

    const again = await request(`${gw.url}/api/v1/users/42`, { headers: { 'x-request-id': 'abc-123' } });
    await again.body.dump();
    expect(again.headers['x-request-id']).toBe('abc-123');
    expect(up.seen[1]?.headers['x-request-id']).toBe('abc-123');
  });

  it('replaces a request id that is not safe to log or forward', async () => {
    const res = await request(`${gw.url}/api/v1/users/42`, { headers: { 'x-request-id': 'bad id with spaces' } });
    await res.body.dump();
    const id = res.headers['x-request-id'];
    expect(id).toMatch(UUID_V4);
    expect(up.seen.at(-1)?.headers['x-request-id']).toBe(id);
  });

  it('drops hop-by-hop headers, including those named in Connection, both ways', async () => {
    const upstream = await startUpstream((_req, res) => {
      res.writeHead(200, { connection: 'x-internal, keep-alive', 'x-internal': 'secret', 'keep-alive': 'timeout=5', 'x-visible': 'yes', 'proxy-authenticate': 'Basic' });
      res.end('ok');
    });
    const g = await startGateway({ routes: [{ path: '/h', upstream: 'u' }], upstreams: { u: { discovery: { type: 'Static', endpoints: [upstream.url] } } } });
    try {
      const text = await rawRequest(
        g.gw.ports.http,
        'GET /h HTTP/1.1\r\nHost: x\r\nConnection: close, X-Drop-Me\r\nX-Drop-Me: 1\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Authorization: Basic abc\r\nKeep-Alive: 300\r\nX-Keep: 1\r\nX-User-ID: admin\r\nx-user-roles: admin\r\n\r\n',
      );
      const h = upstream.seen[0]?.headers ?? {};
      for (const name of ['x-drop-me', 'te', 'upgrade', 'proxy-authorization', 'keep-alive', 'x-user-id', 'x-user-roles']) expect(h[name], name).toBeUndefined();
      expect(h['x-keep']).toBe('1');
      expect(text).toMatch(/^HTTP\/1.1 200/);
      expect(text.toLowerCase()).toContain('x-visible: yes');
      expect(text.toLowerCase()).not.toContain('x-internal');
      expect(text.toLowerCase()).not.toContain('proxy-authenticate');
    } finally {
      await g.stop();
      await upstream.close();
    }
  });

  it('matches prefixes and rewrites the matched part', async () => {
    const a = await request(`${gw.url}/files/a/b.txt?x=1`);
    await a.body.dump();
    expect(up.seen[0]?.url).toBe('/files/a/b.txt?x=1');
    const b = await request(`${gw.url}/old/thing?q`);
    await b.body.dump();
    expect(up.seen[1]?.url).toBe('/new/thing?q');
  });

  it('forwards the normalized path, never the raw spelling', async () => {
    const text = await rawRequest(gw.gw.ports.http, 'GET /api/v1//users/../users/%37 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(text).toMatch(/^HTTP\/1.1 200/);
    expect(up.seen[0]?.url).toBe('/api/v1/users/7');
  });

  it('answers each gateway error with its status and the stable JSON shape', async () => {
    const cases: [string, string, number, string][] = [
      ['GET', '/nothing-here', 404, 'route_not_found'],
      ['PATCH', '/api/v1/users', 405, 'method_not_allowed'],
      ['GET', '/private', 401, 'unauthorized'],
      ['GET', '/broken', 503, 'route_unavailable'],
    ];
    for (const [method, path, status, code] of cases) {
      const res = await request(`${gw.url}${path}`, { method: method as 'GET' });
      expect(res.statusCode, path).toBe(status);
      expect(res.headers['content-type']).toContain('application/json');
      const body = (await res.body.json()) as { error: { code: string; message: string; requestId: string } };
      expect(body.error.code).toBe(code);
      expect(body.error.message.length).toBeGreaterThan(5);
      expect(body.error.requestId).toBe(res.headers['x-request-id']);
      if (status === 405) expect(res.headers.allow).toBe('GET, HEAD, POST');
      if (status === 401) expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
    }
    expect(up.seen).toHaveLength(0);
  });

  it('refuses request targets it cannot route safely with 400', async () => {
    for (const target of ['/api/v1/users%2F..%2Fadmin', 'http://evil.example/api/v1/users', '/%2e%2e/etc/passwd']) {
      const text = await rawRequest(gw.gw.ports.http, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(text, target).toMatch(/^HTTP\/1.1 400/);
      expect(text).toContain('"code":"bad_request"');
    }
    expect(up.seen).toHaveLength(0);
  });

  it('answers /health and /ready on the traffic port', async () => {
    const health = await request(`${gw.url}/health`);
    expect(health.statusCode).toBe(200);
    await health.body.dump();
    const ready = await request(`${gw.url}/ready`);
    expect(ready.statusCode).toBe(200);
    expect(((await ready.body.json()) as { version: string }).version).toBe(gw.gw.holder.current?.version);
  });

  it('answers HEAD for GET routes without a body', async () => {
    const res = await request(`${gw.url}/api/v1/users/1`, { method: 'HEAD' });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('');
    expect(up.seen[0]?.method).toBe('HEAD');
  });
});

describe('upstream failures', () => {
  it('maps connection refused to 502, a reset to 502, no endpoints to 503', async () => {
    const dead = await closedPort();
    const resetter = await startUpstream((req) => req.socket.destroy());
    const gw = await startGateway({
      routes: [
        { path: '/refused', upstream: 'refused' },
        { path: '/reset', upstream: 'reset' },
      ],
      upstreams: {
        refused: { discovery: { type: 'Static', endpoints: [`http://127.0.0.1:${dead}`] } },
        reset: { discovery: { type: 'Static', endpoints: [resetter.url] } },
      },
    });
    try {
      const refused = await request(`${gw.url}/refused`);
      expect(refused.statusCode).toBe(502);
      expect(((await refused.body.json()) as { error: { code: string } }).error.code).toBe('bad_gateway');
      const reset = await request(`${gw.url}/reset`);
      expect(reset.statusCode).toBe(502);
      await reset.body.dump();

      // An upstream whose endpoints all went away (a reload with none) answers 503.
      const table = structuredClone(gw.gw.holder.current!.table);
      table.upstreams[0]!.endpoints = [];
      const { tableVersion } = await import('../../dataplane/src/contract/version.ts');
      table.version = tableVersion(table);
      expect(gw.gw.holder.apply(table, 'test').applied).toBe(true);
      const none = await request(`${gw.url}/refused`);
      expect(none.statusCode).toBe(503);
      expect(((await none.body.json()) as { error: { code: string } }).error.code).toBe('no_healthy_upstream');
    } finally {
      await gw.stop();
      await resetter.close();
    }
  });

  it('answers 504 when the upstream is slower than upstream_timeout or the route timeout', async () => {
    // The upstream answers only when the test lets it: a 504 that arrives before then is the timeout's.
    const held: http.ServerResponse[] = [];
    const slow = await startUpstream((_req, res) => {
      held.push(res);
    });
    const gw = await startGateway({
      server: { timeouts: { upstream_timeout: '300ms' } },
      routes: [
        { path: '/slow', upstream: 'slow' },
        { path: '/slow-route', upstream: 'slow-long', timeout: '200ms' },
      ],
      upstreams: {
        slow: { discovery: { type: 'Static', endpoints: [slow.url] } },
        'slow-long': { discovery: { type: 'Static', endpoints: [slow.url] }, timeout: '5s' },
      },
    });
    try {
      const a = await request(`${gw.url}/slow`);
      expect(a.statusCode).toBe(504);
      expect(((await a.body.json()) as { error: { code: string } }).error.code).toBe('upstream_timeout');
      const b = await request(`${gw.url}/slow-route`);
      expect(b.statusCode).toBe(504);
      expect(((await b.body.json()) as { error: { code: string } }).error.code).toBe('upstream_timeout');
      // Both reached the upstream, which has not answered either.
      expect(held).toHaveLength(2);
      expect(held.every((r) => !r.writableEnded)).toBe(true);
    } finally {
      for (const r of held) r.end('late');
      await gw.stop();
      await slow.close();
    }
  });

  it('applies the config file timeouts to tables that set none (as the operator sends them)', async () => {
    const held: http.ServerResponse[] = [];
    const slow = await startUpstream((_req, res) => {
      held.push(res);
    });
    const { parseConfig } = await import('../../dataplane/src/config/load.ts');
    const { silentLogger } = await import('../../dataplane/src/observability/logger.ts');
    const { Gateway } = await import('../../dataplane/src/server/gateway.ts');
    const { tableVersion } = await import('../../dataplane/src/contract/version.ts');
    const { config } = parseConfig('server: { http_port: 0, admin_port: 0, metrics_port: 0, bind_address: 127.0.0.1, timeouts: { upstream_timeout: 200ms } }\n', 'bootstrap.yaml', {});
    const gw = await Gateway.start({ config, log: silentLogger(), tableSource: 'external' });
    try {
      const content = {
        routes: [{ id: 'ns/slow', hosts: [], path: { type: 'Exact' as const, value: '/slow' }, methods: [], backends: [{ upstream: 'ns/slow', weight: 1 }], auth: { required: false, roles: [], permissions: [] } }],
        upstreams: [{ name: 'ns/slow', endpoints: [{ url: slow.url, weight: 1 }], loadBalancer: 'RoundRobin' as const, pool: { connectionsPerEndpoint: 8, keepAliveTimeoutMs: 60_000, connectTimeoutMs: 5_000 } }],
      };
      expect(gw.holder.apply({ ...content, version: tableVersion(content) }, 'test').applied).toBe(true);
      // Without the file's upstream_timeout the table has none, and this would wait for an upstream that never answers.
      const res = await request(`http://127.0.0.1:${gw.ports.http}/slow`);
      expect(res.statusCode).toBe(504);
      expect(((await res.body.json()) as { error: { code: string } }).error.code).toBe('upstream_timeout');
      expect(held).toHaveLength(1);
      expect(held[0]?.writableEnded).toBe(false);
    } finally {
      for (const r of held) r.end('late');
      await gw.stop(0);
      await slow.close();
    }
  });

  it('cuts the client connection when the upstream dies mid-response', async () => {
    const dying = await startUpstream((_req, res) => {
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(1000));
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const gw = await startGateway({ routes: [{ path: '/die', upstream: 'd' }], upstreams: { d: { discovery: { type: 'Static', endpoints: [dying.url] } } } });
    try {
      const res = await request(`${gw.url}/die`);
      expect(res.statusCode).toBe(200);
      await expect(res.body.arrayBuffer()).rejects.toThrow();
      // The gateway stays healthy.
      const ok = await request(`${gw.url}/health`);
      expect(ok.statusCode).toBe(200);
      await ok.body.dump();
    } finally {
      await gw.stop();
      await dying.close();
    }
  });
});
