/**
 * WebSocket (HTTP/1.1 Upgrade) through the real gateway to a real WebSocket
 * server (`ws` on 127.0.0.1), with Node's own WebSocket client and `ws`'s:
 * the handshake passes the route's stages first (token, roles, rate limit),
 * carries the identity headers, and the tunnel is counted, logged, closed when
 * idle and told to go away on drain.
 */
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { startGateway, type TestGateway } from '../support/gateway.ts';

const SECRET = 'gateway-websocket-test-secret-32-bytes-plus';

function sign(claims: Record<string, unknown>): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ sub: 'user-7', iat: now, roles: ['user'], ...claims }).setProtectedHeader({ alg: 'HS256' }).setExpirationTime(now + 600).sign(new TextEncoder().encode(SECRET));
}

/** A WebSocket echo server that records every handshake it accepted and every close it saw. */
interface EchoServer {
  url: string;
  handshakes: http.IncomingHttpHeaders[];
  closes: { code: number; reason: string }[];
  sockets: Set<WebSocket>;
  close(): Promise<void>;
}

async function startEchoServer(): Promise<EchoServer> {
  const server = http.createServer((_req, res) => res.writeHead(426, { 'content-type': 'text/plain' }).end('websocket only\n'));
  // Only /ws takes upgrades; elsewhere `ws` answers the handshake with 400.
  const wss = new WebSocketServer({ server, path: '/ws', handleProtocols: (offered) => (offered.has('chat.v2') ? 'chat.v2' : false) });
  const handshakes: http.IncomingHttpHeaders[] = [];
  const closes: { code: number; reason: string }[] = [];
  const sockets = new Set<WebSocket>();
  wss.on('connection', (ws, req) => {
    handshakes.push(req.headers);
    sockets.add(ws);
    ws.on('message', (data, binary) => ws.send(data, { binary }));
    ws.on('close', (code, reason) => {
      sockets.delete(ws);
      closes.push({ code, reason: reason.toString() });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    handshakes,
    closes,
    sockets,
    close: async () => {
      for (const s of sockets) s.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** The status and JSON body of a refused handshake, from the `ws` client. */
function refusedHandshake(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: { error?: { code: string; message: string } } }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('open', () => {
      ws.terminate();
      reject(new Error('the handshake was accepted'));
    });
    ws.on('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text.startsWith('{') ? (JSON.parse(text) as { error?: { code: string; message: string } }) : {} }));
    });
    ws.on('error', (err) => {
      if (!/Unexpected server response/.test(err.message)) reject(err);
    });
  });
}

/** Opens a `ws` client and resolves once it is open. */
function open(url: string, headers: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

async function metric(gw: TestGateway, name: string, route: string): Promise<number | undefined> {
  const text = await (await fetch(gw.metricsUrl)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{route="${route}"}`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** Sends raw bytes to the gateway and returns what it answers until it closes the connection. */
function rawExchange(gw: TestGateway, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(gw.gw.ports.http, '127.0.0.1', () => socket.write(text));
    let out = '';
    socket.on('data', (d: Buffer) => (out += d.toString('latin1')));
    socket.on('close', () => resolve(out));
    socket.on('error', reject);
  });
}

async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('WebSocket through the gateway', () => {
  let up: EchoServer;
  let gw: TestGateway;
  const lines: Record<string, unknown>[] = [];
  const ws = (path: string): string => `${gw.url.replace('http:', 'ws:')}${path}`;

  beforeAll(async () => {
    up = await startEchoServer();
    gw = await startGateway(
      {
        routes: [
          { name: 'chat', path: '/ws', upstream: 'chat', auth_required: true },
          { name: 'admin-chat', path: '/admin/ws', upstream: 'chat', auth_required: true, required_roles: ['admin'], rewrite_path: '/ws' },
          { name: 'limited', path: '/limited/ws', upstream: 'chat', rate_limit: { requests: 1, window: '1h', key: { type: 'ClientIP' } }, rewrite_path: '/ws' },
          { name: 'no-upgrade', path: '/plain/ws', upstream: 'chat', upgrade: { enabled: false }, rewrite_path: '/ws' },
          { name: 'post-only', path: '/post/ws', methods: ['POST'], upstream: 'chat', rewrite_path: '/ws' },
          { name: 'elsewhere', path: '/elsewhere', upstream: 'chat' },
          { name: 'quiet', path: '/quiet/ws', upstream: 'chat', upgrade: { idle_timeout: '300ms' }, rewrite_path: '/ws' },
        ],
        upstreams: { chat: { discovery: { type: 'Static', endpoints: [up.url] } } },
        auth: { jwt: { secret: SECRET, algorithm: 'HS256' } },
      },
      { log: pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }) },
    );
  });
  afterAll(async () => {
    await gw.stop();
    await up.close();
  });
  afterEach(() => {
    up.handshakes.length = 0;
    up.closes.length = 0;
  });

  it("carries messages both ways for Node's WebSocket client, with the caller's identity on the handshake", async () => {
    const token = await sign({ roles: ['user', 'editor'] });
    // Node's client (undici) takes headers as an extension of the browser API.
    const client = new globalThis.WebSocket(ws('/ws'), { protocols: ['chat.v2'], headers: { authorization: `Bearer ${token}`, 'x-user-id': 'forged-admin' } } as unknown as string[]);
    client.binaryType = 'arraybuffer';
    const received: (string | ArrayBuffer)[] = [];
    client.addEventListener('message', (e) => received.push(e.data as string | ArrayBuffer));
    await new Promise<void>((resolve, reject) => {
      client.addEventListener('open', () => resolve());
      client.addEventListener('error', () => reject(new Error('the WebSocket did not open')));
    });
    expect(client.protocol).toBe('chat.v2');
    const big = new Uint8Array(200_000).map((_, i) => (i * 7) & 0xff);
    client.send('hello');
    client.send(big);
    for (let i = 0; i < 50; i++) client.send(`m${i}`);
    await until(() => received.length === 52, 'the echoes');
    expect(received[0]).toBe('hello');
    expect(Buffer.from(received[1] as ArrayBuffer).equals(Buffer.from(big))).toBe(true);
    expect(received.slice(2)).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`));

    const h = up.handshakes[0] ?? {};
    expect(h['x-user-id']).toBe('user-7');
    expect(h['x-user-roles']).toBe('user,editor');
    expect(h['x-forwarded-for']).toBe('127.0.0.1');
    expect(h['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    // The token reached the gateway, which checked it; the forged identity header did not pass.
    expect(h['sec-websocket-protocol']).toBe('chat.v2');

    expect(await metric(gw, 'switchyard_upgraded_connections', 'chat')).toBe(1);
    client.close(1000, 'done');
    await until(() => up.closes.length === 1, 'the upstream to see the close');
    expect(up.closes[0]).toEqual({ code: 1000, reason: 'done' });
    await until(async () => (await metric(gw, 'switchyard_upgraded_connections', 'chat')) === 0, 'the gauge to drop');
    expect(await metric(gw, 'switchyard_upgraded_connections_total', 'chat')).toBe(1);
    await until(() => lines.some((l) => l.event === 'access' && l.route === 'chat'), 'the access log line');
    const access = lines.find((l) => l.event === 'access' && l.route === 'chat') as Record<string, unknown>;
    expect(access).toMatchObject({ status: 101, upstream: 'chat', completed: true, path: '/ws' });
    expect(access.bytesOut as number).toBeGreaterThan(200_000);
  });

  it('answers a handshake without a valid token with 401 before anything reaches the upstream', async () => {
    const none = await refusedHandshake(ws('/ws'));
    expect(none.status).toBe(401);
    expect(none.body.error?.code).toBe('unauthorized');
    const bad = await refusedHandshake(ws('/ws'), { authorization: 'Bearer not.a.token' });
    expect(bad.status).toBe(401);
    expect(up.handshakes).toHaveLength(0);
  });

  it('checks roles on the handshake (403) and lets the right role through', async () => {
    const user = await refusedHandshake(ws('/admin/ws'), { authorization: `Bearer ${await sign({})}` });
    expect(user.status).toBe(403);
    expect(user.body.error?.code).toBe('forbidden');
    expect(up.handshakes).toHaveLength(0);
    const admin = await open(ws('/admin/ws'), { authorization: `Bearer ${await sign({ roles: ['admin'] })}` });
    const echoed = new Promise<string>((r) => admin.once('message', (d) => r(d.toString())));
    admin.send('ping');
    expect(await echoed).toBe('ping');
    admin.close();
    await closed(admin);
  });

  it('counts handshakes against the route rate limit (429)', async () => {
    const first = await open(ws('/limited/ws'));
    const second = await refusedHandshake(ws('/limited/ws'));
    expect(second.status).toBe(429);
    expect(second.body.error?.code).toBe('rate_limited');
    first.close();
    await closed(first);
    expect(up.handshakes).toHaveLength(1);
  });

  it('refuses upgrades on routes that turn them off or do not take GET, and serves their plain requests', async () => {
    const off = await refusedHandshake(ws('/plain/ws'));
    expect(off.status).toBe(403);
    expect(off.body.error?.code).toBe('upgrade_not_allowed');
    expect(off.body.error?.message).toBe('route "no-upgrade" does not allow protocol upgrades (Upgrade: websocket)');
    // A WebSocket handshake is a GET, which a POST-only route does not take at all.
    expect((await refusedHandshake(ws('/post/ws'))).status).toBe(405);
    // Another protocol's upgrade on a method the route takes: refused all the same.
    const post = await rawExchange(gw, 'POST /post/ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\nContent-Length: 0\r\n\r\n');
    expect(post).toMatch(/^HTTP\/1\.1 403 /);
    expect(post).toContain('"code":"upgrade_not_allowed"');
    expect(up.handshakes).toHaveLength(0);
    const plain = await fetch(`${gw.url}/plain/ws`);
    expect(plain.status).toBe(426);
    await plain.body?.cancel();
  });

  it("relays the upstream's refusal of a handshake as it is", async () => {
    const r = await refusedHandshake(ws('/elsewhere'));
    expect(r.status).toBe(400);
  });

  it('closes a connection that stays idle past the route idle timeout, with a Close frame each way', async () => {
    const client = await open(ws('/quiet/ws'));
    const { code } = await closed(client);
    expect(code).toBe(1001);
    await until(() => up.closes.length === 1, 'the upstream to see the close');
    expect(up.closes[0]?.code).toBe(1001);
  });
});

describe('WebSocket over the TLS listener (wss)', () => {
  it('upgrades an HTTP/1.1 connection on the listener that also offers h2', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'switchyard-wss-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=chat.test', '-addext', 'subjectAltName=DNS:chat.test', '-keyout', path.join(dir, 'tls.key'), '-out', path.join(dir, 'tls.crt')], { stdio: 'ignore' });
    const up = await startEchoServer();
    const gw = await startGateway({
      routes: [{ name: 'chat', path: '/ws', upstream: 'chat' }],
      upstreams: { chat: { discovery: { type: 'Static', endpoints: [up.url] } } },
      server: { https_port: 0, tls: { cert_file: path.join(dir, 'tls.crt'), key_file: path.join(dir, 'tls.key') } },
    });
    try {
      const client = await new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(`wss://127.0.0.1:${gw.gw.ports.https}/ws`, { servername: 'chat.test', ca: readFileSync(path.join(dir, 'tls.crt')) } as WebSocket.ClientOptions);
        ws.once('open', () => resolve(ws));
        ws.once('error', reject);
      });
      const echoed = new Promise<string>((r) => client.once('message', (d) => r(d.toString())));
      client.send('over tls');
      expect(await echoed).toBe('over tls');
      expect(up.handshakes[0]?.['x-forwarded-proto']).toBe('https');
      client.close();
      await closed(client);
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});

/** A WebSocket handshake by hand, from a client that then reads and never answers: returns the socket and what it received. */
function silentClient(port: number): Promise<{ socket: net.Socket; received: () => Buffer; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    });
    let data = Buffer.alloc(0);
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.on('data', (d: Buffer) => {
      data = Buffer.concat([data, d]);
      if (data.includes('\r\n\r\n') && data.toString('latin1').startsWith('HTTP/1.1 101')) resolve({ socket, received: () => data, closed });
    });
    socket.on('error', reject);
  });
}

describe('WebSocket connections when the gateway drains', () => {
  it('cuts a client that never answers the Close frame when the grace period ends', async () => {
    const up = await startEchoServer();
    const lines: Record<string, unknown>[] = [];
    const gw = await startGateway(
      {
        routes: [{ name: 'chat', path: '/ws', upstream: 'chat' }],
        upstreams: { chat: { discovery: { type: 'Static', endpoints: [up.url] } } },
        server: { shutdown: { grace_period: '700ms', drain_delay: '0s' } },
      },
      { log: pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }) },
    );
    try {
      const client = await silentClient(gw.gw.ports.http);
      await gw.gw.stop();
      await client.closed;
      // The client was told (a Close frame, 1001); the upstream answered its own Close and left, the client never did.
      const frames = client.received().subarray(client.received().indexOf('\r\n\r\n') + 4);
      expect(frames[0]).toBe(0x88);
      expect(frames.readUInt16BE(2)).toBe(1001);
      await until(() => up.closes.length === 1, 'the upstream to see the close');
      expect(up.closes[0]?.code).toBe(1001);
      // So the drain waited for it as for a request in flight, and cut it when the grace period ended.
      expect(lines.find((l) => l.event === 'shutdown_complete')).toMatchObject({ cutRequests: 1 });
    } finally {
      await gw.gw.stop();
      await up.close();
    }
  });

  it('tells every connection it is going away and waits for them to leave, up to the grace period', async () => {
    const up = await startEchoServer();
    const gw = await startGateway({
      routes: [{ name: 'chat', path: '/ws', upstream: 'chat' }],
      upstreams: { chat: { discovery: { type: 'Static', endpoints: [up.url] } } },
      server: { shutdown: { grace_period: '20s', drain_delay: '0s' } },
    });
    try {
      const url = `${gw.url.replace('http:', 'ws:')}/ws`;
      const clients = await Promise.all([open(url), open(url), open(url)]);
      // Mid-conversation: messages in flight both ways when the drain starts.
      for (const c of clients) for (let i = 0; i < 20; i++) c.send(Buffer.alloc(10_000, i));
      const closes = clients.map(closed);
      const started = Date.now();
      await gw.gw.stop();
      const took = Date.now() - started;
      for (const c of await Promise.all(closes)) expect(c.code).toBe(1001);
      await until(() => up.closes.length === 3, 'the upstream to see three closes');
      for (const c of up.closes) expect(c.code).toBe(1001);
      // Every client answered the Close, so the stop did not wait out the 20 s grace period.
      expect(took).toBeLessThan(20_000);
      expect(gw.gw.tunnels.size).toBe(0);
    } finally {
      await gw.gw.stop();
      await up.close();
    }
  });
});
