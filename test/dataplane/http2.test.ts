/**
 * HTTP/2 downstream: h2 by ALPN on the TLS listener beside HTTP/1.1, h2c with
 * prior knowledge on the cleartext listener, the same request path as
 * HTTP/1.1 (authentication, identity headers, rate limits, CORS, metrics),
 * and the limits against the known HTTP/2 attacks, sent for real with
 * node:http2 sessions, raw frames and curl.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';

const run = promisify(execFile);
const SECRET = 'gateway-http2-test-secret-of-32-bytes-plus';

async function token(roles: string[]): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: 'auth', aud: 'api', sub: 'user-7', roles }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt(now).setExpirationTime(now + 600).sign(new TextEncoder().encode(SECRET));
}

/** A self-signed certificate for 127.0.0.1 and localhost, made with openssl. */
function certificate(dir: string): { cert: string; key: string } {
  const cert = path.join(dir, 'tls.crt');
  const key = path.join(dir, 'tls.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

interface H2Answer {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: string;
}

/** One request on a session. */
function h2request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: string): Promise<H2Answer> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': body === undefined ? 'GET' : 'POST', ...headers }, { endStream: body === undefined });
    let response: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on('response', (h) => (response = h));
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve({ status: Number(response[':status']), headers: response, body: Buffer.concat(chunks).toString() }));
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  });
}

const closed = (session: http2.ClientHttp2Session): Promise<void> => new Promise((r) => (session.closed || session.destroyed ? r() : session.once('close', () => r())));

describe('HTTP/2 downstream', () => {
  let dir: string;
  let up: TestUpstream;
  let slow: TestUpstream;
  let gw: TestGateway;
  let tlsUrl: string;
  let ca: string;
  const sessions: http2.ClientHttp2Session[] = [];
  const connect = (url: string): http2.ClientHttp2Session => {
    const s = http2.connect(url, url.startsWith('https') ? { ca, servername: 'localhost' } : {});
    s.on('error', () => undefined);
    sessions.push(s);
    return s;
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'switchyard-h2-'));
    const pair = certificate(dir);
    ca = execFileSync('cat', [pair.cert], { encoding: 'utf8' });
    up = await startUpstream(echo('users'));
    // Answers after a second: requests pile up at the gateway while it waits.
    slow = await startUpstream((_req, res) => setTimeout(() => res.end('late'), 1000));
    gw = await startGateway({
      server: { https_port: 0, tls: { cert_file: pair.cert, key_file: pair.key }, http2: { cleartext: true, max_concurrent_streams: 20, max_resets: 50, reset_window: '10s' } },
      routes: [
        { path: '/public', upstream: 'u', methods: ['GET', 'POST'], cors: { allowed_origins: ['https://app.example'] } },
        { path: '/private', upstream: 'u', auth_required: true, required_roles: ['user'] },
        { path: '/limited', upstream: 'u', rate_limit: { requests: 2, window: '1m' } },
        { path: '/slow', upstream: 's' },
      ],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } }, s: { discovery: { type: 'Static', endpoints: [slow.url] } } },
      auth: { jwt: { secret: SECRET, algorithm: 'HS256', issuer: 'auth', audience: 'api' } },
    });
    tlsUrl = `https://localhost:${gw.gw.ports.https}`;
  });
  afterEach(() => {
    for (const s of sessions.splice(0)) s.destroy();
    up.seen.length = 0;
  });
  afterAll(async () => {
    await gw?.stop();
    await up?.close();
    await slow?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('offers h2 and HTTP/1.1 by ALPN on the TLS listener (curl --http2 and --http1.1)', async () => {
    const h2 = await run('curl', ['-s', '--http2', '--cacert', path.join(dir, 'tls.crt'), '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `${tlsUrl}/public`]);
    expect(h2.stdout).toBe('2 200');
    const h1 = await run('curl', ['-s', '--http1.1', '--cacert', path.join(dir, 'tls.crt'), '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `${tlsUrl}/public`]);
    expect(h1.stdout).toBe('1.1 200');
    // The upstream gets a Host and the forwarding headers, no pseudo-header.
    const seen = up.seen[0];
    expect(seen?.headers.host).toBe(`localhost:${gw.gw.ports.https}`);
    expect(seen?.headers['x-forwarded-proto']).toBe('https');
    expect(Object.keys(seen?.headers ?? {}).filter((k) => k.startsWith(':'))).toEqual([]);
  });

  it('takes h2c with prior knowledge on the cleartext listener, beside HTTP/1.1 (curl --http2-prior-knowledge)', async () => {
    const h2c = await run('curl', ['-s', '--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `${gw.url}/public`]);
    expect(h2c.stdout).toBe('2 200');
    const h1 = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `${gw.url}/public`]);
    expect(h1.stdout).toBe('1.1 200');
    // The client's address is the TCP peer's, also through the h2c relay.
    expect(up.seen.map((s) => s.headers['x-real-ip'])).toEqual(['127.0.0.1', '127.0.0.1']);
  });

  it('runs the same stages as HTTP/1.1: token, roles, identity headers, a client-sent identity dropped', async () => {
    const s = connect(tlsUrl);
    const none = await h2request(s, { ':path': '/private' });
    expect(none.status).toBe(401);
    expect(JSON.parse(none.body).error.code).toBe('unauthorized');
    expect((await h2request(s, { ':path': '/private', authorization: `Bearer ${await token(['guest'])}` })).status).toBe(403);
    const ok = await h2request(s, { ':path': '/private', authorization: `Bearer ${await token(['user'])}`, 'x-user-id': 'admin' });
    expect(ok.status).toBe(200);
    expect(up.seen).toHaveLength(1);
    expect(up.seen[0]?.headers['x-user-id']).toBe('user-7');
    expect(up.seen[0]?.headers['x-user-roles']).toBe('user');
  });

  it('applies rate limits and CORS, and streams request bodies', async () => {
    const s = connect(gw.url);
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await h2request(s, { ':path': '/limited' })).status);
    expect(statuses).toEqual([200, 200, 429]);
    const preflight = await h2request(s, { ':path': '/public', ':method': 'OPTIONS', origin: 'https://app.example', 'access-control-request-method': 'POST' });
    expect(preflight.status).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('https://app.example');
    const post = await h2request(s, { ':path': '/public', origin: 'https://app.example' }, 'x'.repeat(100_000));
    expect(post.status).toBe(200);
    expect(JSON.parse(post.body).bodyLength).toBe(100_000);
    expect(post.headers['access-control-allow-origin']).toBe('https://app.example');
  });

  it('counts HTTP/2 requests in the metrics like any other', async () => {
    const s = connect(gw.url);
    await h2request(s, { ':path': '/public' });
    const text = await (await fetch(gw.metricsUrl)).text();
    expect(text).toMatch(/switchyard_requests_total\{route="[^"]*public[^"]*",method="GET",status_class="2xx"\} [1-9]/);
  });

  it('limits concurrent streams per connection to max_concurrent_streams', async () => {
    const s = connect(gw.url);
    await new Promise<void>((r) => s.once('remoteSettings', () => r()));
    expect(s.remoteSettings.maxConcurrentStreams).toBe(20);
    // 30 streams that each wait a second upstream: the client may have only 20 open at once, so the upstream never sees more.
    let peak = 0;
    const counter = setInterval(() => (peak = Math.max(peak, slow.sockets.size)), 20);
    const answers = await Promise.all(Array.from({ length: 30 }, () => h2request(s, { ':path': '/slow' })));
    clearInterval(counter);
    expect(answers.every((a) => a.status === 200 && a.body === 'late')).toBe(true);
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(20);
  });

  it('refuses a header list over the limit on that stream only', async () => {
    const s = connect(gw.url);
    const big = 'v'.repeat(8_000);
    const headers: http2.OutgoingHttpHeaders = { ':path': '/public' };
    for (let i = 0; i < 4; i++) headers[`x-big-${i}`] = big;
    const error = await h2request(s, headers).then(
      (a) => a.status,
      (err: Error & { code?: string }) => err.code,
    );
    // Node resets the stream (ENHANCE_YOUR_CALM) or the answer is 431; the request never reaches the upstream.
    expect([431, 'ERR_HTTP2_STREAM_ERROR']).toContain(error);
    expect(up.seen).toHaveLength(0);
    expect((await h2request(connect(gw.url), { ':path': '/public' })).status).toBe(200);
  });

  it('closes a connection that keeps resetting streams (rapid reset, CVE-2023-44487) and keeps serving others', async () => {
    const before = process.memoryUsage().rss;
    const cpuBefore = process.cpuUsage();
    const s = connect(gw.url);
    await new Promise<void>((r) => s.once('remoteSettings', () => r()));
    const goaway = new Promise<number>((r) => s.once('goaway', (code: number) => r(code)));
    let sent = 0;
    // Open and cancel at once, as the attack does, far past max_resets (50): each stream is reset as soon as its HEADERS went out.
    for (; sent < 5000 && !s.destroyed && !s.closed; sent++) {
      const stream = s.request({ ':path': '/slow' });
      stream.on('error', () => undefined);
      const reset = (): void => stream.close(http2.constants.NGHTTP2_CANCEL);
      if (stream.pending) stream.once('ready', reset);
      else reset();
      if (sent % 10 === 9) await new Promise((r) => setImmediate(r));
    }
    expect(await goaway).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    await closed(s);
    // The connection was cut long before the attack could run its course, and the gateway still answers.
    expect(sent).toBeLessThan(5000);
    const cpu = process.cpuUsage(cpuBefore);
    console.log(`rapid reset: cut off after ${sent} of 5000 streams; CPU of this process (attacker and gateway) ${Math.round((cpu.user + cpu.system) / 1000)} ms, RSS ${Math.round((process.memoryUsage().rss - before) / 1048576)} MiB more`);
    expect((await h2request(connect(gw.url), { ':path': '/public' })).status).toBe(200);
    expect(process.memoryUsage().rss - before).toBeLessThan(200 * 1024 * 1024);
    const text = await (await fetch(gw.metricsUrl)).text();
    expect(text).toMatch(/switchyard_rejected_requests_total\{code="http2_rapid_reset"\} [1-9]/);
  });

  it('ends a CONTINUATION flood: an endless header block closes the connection, memory stays bounded', async () => {
    const frame = (type: number, flags: number, stream: number, payload: Buffer): Buffer => {
      const head = Buffer.alloc(9);
      head.writeUIntBE(payload.length, 0, 3);
      head[3] = type;
      head[4] = flags;
      head.writeUInt32BE(stream, 5);
      return Buffer.concat([head, payload]);
    };
    // HPACK: literal header field without indexing, new name, lengths under 2^7+127.
    const field = (name: string, value: string): Buffer => Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([0x7f, value.length - 127]), Buffer.from(value)]);
    // GET / with :scheme http (static table 2, 6, 4) and an :authority.
    const start = Buffer.concat([Buffer.from([0x82, 0x86, 0x84]), field(':authority', 'x'.repeat(130))]);
    const chunk = field('x-flood', 'y'.repeat(250));
    /** Sends the preface, SETTINGS and a header block of `continuations` frames (the last with END_HEADERS when `end`); the frame types the server sent back, its GOAWAY code, and how many frames went out before it closed. */
    const send = async (continuations: number, end: boolean): Promise<{ types: number[]; goaway: number | undefined; sent: number; closed: boolean }> => {
      const socket = net.connect(gw.gw.ports.http, '127.0.0.1');
      await new Promise<void>((r) => socket.once('connect', () => r()));
      const received: Buffer[] = [];
      let closed = false;
      socket.on('data', (d: Buffer) => received.push(d));
      socket.on('error', () => undefined);
      const gone = new Promise<void>((r) => socket.once('close', () => r()));
      socket.once('close', () => (closed = true));
      socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0)), frame(1, 0, 1, start)]));
      let sent = 0;
      for (; sent < continuations && !closed; sent++) {
        const last = end && sent === continuations - 1;
        if (!socket.write(frame(9, last ? 4 : 0, 1, chunk))) await new Promise((r) => socket.once('drain', r).once('close', r));
      }
      await Promise.race([gone, new Promise((r) => setTimeout(r, 1000))]);
      socket.destroy();
      const bytes = Buffer.concat(received);
      const types: number[] = [];
      let goaway: number | undefined;
      for (let at = 0; at + 9 <= bytes.length; at += 9 + bytes.readUIntBE(at, 3)) {
        types.push(bytes[at + 3] as number);
        if (bytes[at + 3] === 7) goaway = bytes.readUInt32BE(at + 9 + 4);
      }
      return { types, goaway, sent, closed };
    };
    // The frames are well-formed: a block of two CONTINUATIONs ending properly is answered (404: no route for /).
    const honest = await send(2, true);
    expect(honest.types).toContain(1);
    expect(honest.goaway).toBeUndefined();

    const before = process.memoryUsage().rss;
    const cpuBefore = process.cpuUsage();
    // 100,000 CONTINUATION frames (25 MB) without END_HEADERS: the server gives up long before.
    const flood = await send(100_000, false);
    const cpu = process.cpuUsage(cpuBefore);
    console.log(`CONTINUATION flood: closed after ${flood.sent} of 100000 frames; CPU of this process (attacker and gateway) ${Math.round((cpu.user + cpu.system) / 1000)} ms, RSS ${Math.round((process.memoryUsage().rss - before) / 1048576)} MiB more`);
    expect(flood.closed).toBe(true);
    expect(flood.goaway).toBeDefined();
    expect(flood.goaway).not.toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect(flood.sent).toBeLessThan(100_000);
    expect((await h2request(connect(gw.url), { ':path': '/public' })).status).toBe(200);
    expect(process.memoryUsage().rss - before).toBeLessThan(200 * 1024 * 1024);
  });

  it('drains HTTP/2 clients with GOAWAY on stop: a stream in flight finishes', async () => {
    const own = await startGateway({
      server: { http2: { cleartext: true }, shutdown: { grace_period: '5s' } },
      routes: [{ path: '/slow', upstream: 's' }],
      upstreams: { s: { discovery: { type: 'Static', endpoints: [slow.url] } } },
    });
    const s = connect(own.url);
    const pending = h2request(s, { ':path': '/slow' });
    await new Promise((r) => setTimeout(r, 200));
    const goaway = new Promise<number>((r) => s.once('goaway', (code: number) => r(code)));
    const stopped = own.gw.stop();
    expect(await goaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
    expect((await pending).body).toBe('late');
    await stopped;
  });
});

describe('HTTP/2 settings', () => {
  it('keeps the HTTP/1.1 header timeout on the TLS listener that also offers h2: a client that stalls mid-headers gets 408', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'switchyard-h2-slow-'));
    const pair = certificate(dir);
    const up = await startUpstream(echo('u'));
    const gw = await startGateway({
      server: { https_port: 0, tls: { cert_file: pair.cert, key_file: pair.key }, timeouts: { client_header_timeout: '1s' } },
      routes: [{ path: '/x', upstream: 'u' }],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
    });
    try {
      const socket = tls.connect({ port: gw.gw.ports.https as number, host: '127.0.0.1', servername: 'localhost', ca: readFileSync(pair.cert), ALPNProtocols: ['http/1.1'] });
      await new Promise<void>((r) => socket.once('secureConnect', () => r()));
      expect(socket.alpnProtocol).toBe('http/1.1');
      const received: Buffer[] = [];
      socket.on('data', (d: Buffer) => received.push(d));
      socket.write('GET /x HTTP/1.1\r\nHost: localhost\r\n');
      // Node's own checking interval is 30 s; the gateway's follows the header timeout, so the answer comes long before.
      const closed = await Promise.race([new Promise<boolean>((r) => socket.once('close', () => r(true))), new Promise<boolean>((r) => setTimeout(() => r(false), 15_000))]);
      socket.destroy();
      expect(closed).toBe(true);
      expect(Buffer.concat(received).toString()).toMatch(/^HTTP\/1\.1 408 /);
      expect(up.seen).toHaveLength(0);
    } finally {
      await gw.stop();
      await up.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('closes an idle HTTP/2 connection after keepalive_timeout with GOAWAY, not one with a stream open', async () => {
    const up = await startUpstream((_req, res) => setTimeout(() => res.end('late'), 2500));
    const gw = await startGateway({
      server: { http2: { cleartext: true }, timeouts: { keepalive_timeout: '1s' } },
      routes: [{ path: '/slow', upstream: 'u' }],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] }, timeout: '10s' } },
    });
    try {
      const idle = http2.connect(gw.url);
      idle.on('error', () => undefined);
      const busy = http2.connect(gw.url);
      busy.on('error', () => undefined);
      const idleGoaway = new Promise<number>((r) => idle.once('goaway', (code: number) => r(code)));
      // The busy connection's one stream stays quiet for 2.5 s, longer than the idle time, and still gets its answer.
      const answer = await h2request(busy, { ':path': '/slow' });
      expect(answer.body).toBe('late');
      expect(await idleGoaway).toBe(http2.constants.NGHTTP2_NO_ERROR);
      await closed(idle);
      busy.destroy();
    } finally {
      await gw.stop();
      await up.close();
    }
  });

  it('offers only HTTP/1.1 on the TLS listener with http2.enabled: false', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'switchyard-h2-off-'));
    const pair = certificate(dir);
    const up = await startUpstream(echo('u'));
    const gw = await startGateway({
      server: { https_port: 0, tls: { cert_file: pair.cert, key_file: pair.key }, http2: { enabled: false } },
      routes: [{ path: '/x', upstream: 'u' }],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
    });
    try {
      const r = await run('curl', ['-s', '--http2', '--cacert', pair.cert, '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `https://localhost:${gw.gw.ports.https}/x`]);
      expect(r.stdout).toBe('1.1 200');
    } finally {
      await gw.stop();
      await up.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('serves no h2c on the cleartext listener unless enabled', async () => {
    const up = await startUpstream(echo('u'));
    const gw = await startGateway({ routes: [{ path: '/x', upstream: 'u' }], upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } } });
    try {
      const h2c = await run('curl', ['-s', '--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_code}', `${gw.url}/x`]).then(
        (r) => r.stdout,
        (err: { stdout: string }) => err.stdout,
      );
      expect(h2c).not.toBe('200');
      expect((await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `${gw.url}/x`])).stdout).toBe('200');
    } finally {
      await gw.stop();
      await up.close();
    }
  });
});
