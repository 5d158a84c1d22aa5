/**
 * gRPC through the gateway with a real @grpc/grpc-js client and server:
 * unary, server-streaming and bidirectional calls over h2c and h2 upstreams,
 * trailers passed through, grpc-timeout honoured, and the gateway's own
 * refusals as gRPC statuses.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import { tmpdir } from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { closedPort } from '../support/upstreams.ts';

const SECRET = 'gateway-grpc-test-secret-of-at-least-32-bytes';

type Msg = Record<string, unknown>;
const json = { serialize: (v: Msg): Buffer => Buffer.from(JSON.stringify(v)), deserialize: (b: Buffer): Msg => JSON.parse(b.toString()) as Msg };
const method = (name: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<Msg, Msg> => ({
  path: `/test.Echo/${name}`,
  requestStream,
  responseStream,
  requestSerialize: json.serialize,
  requestDeserialize: json.deserialize,
  responseSerialize: json.serialize,
  responseDeserialize: json.deserialize,
});
/** A service with JSON messages: no .proto needed, the framing and HTTP/2 are gRPC's own. */
const ECHO = { unary: method('Unary', false, false), serverStream: method('ServerStream', false, true), bidi: method('Bidi', true, true), slow: method('Slow', false, false) };
const EchoClient = grpc.makeGenericClientConstructor(ECHO, 'Echo');
type Client = InstanceType<typeof EchoClient>;

async function token(roles: string[]): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ iss: 'auth', aud: 'api', sub: 'grpc-user', roles }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt(now).setExpirationTime(now + 600).sign(new TextEncoder().encode(SECRET));
}

async function startEchoServer(credentials: grpc.ServerCredentials): Promise<{ server: grpc.Server; port: number; slowCancelled: () => number }> {
  let cancelled = 0;
  const server = new grpc.Server();
  server.addService(ECHO, {
    unary: (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
      if (call.request.fail === true) {
        cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
        return;
      }
      const trailer = new grpc.Metadata();
      trailer.set('x-served-by', 'echo');
      cb(null, { echo: call.request.msg, user: call.metadata.get('x-user-id')[0] ?? null, roles: call.metadata.get('x-user-roles')[0] ?? null }, trailer);
    },
    serverStream: (call: grpc.ServerWritableStream<Msg, Msg>) => {
      const n = call.request.n as number;
      for (let i = 0; i < n; i++) call.write({ i });
      call.end();
    },
    bidi: (call: grpc.ServerDuplexStream<Msg, Msg>) => {
      call.on('data', (m: Msg) => call.write({ echo: m.msg }));
      call.on('end', () => call.end());
    },
    slow: (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
      const timer = setTimeout(() => cb(null, { late: true }), 3000);
      call.on('cancelled', () => {
        cancelled++;
        clearTimeout(timer);
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', credentials, (err, p) => (err ? reject(err) : resolve(p))));
  return { server, port, slowCancelled: () => cancelled };
}

const unary = (client: Client, name: 'unary' | 'slow', req: Msg, metadata = new grpc.Metadata(), options: grpc.CallOptions = {}): Promise<{ res?: Msg; err?: grpc.ServiceError; trailers?: grpc.Metadata }> =>
  new Promise((resolve) => {
    let trailers: grpc.Metadata | undefined;
    const call = (client[name] as (r: Msg, m: grpc.Metadata, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, r?: Msg) => void) => grpc.ClientUnaryCall)(req, metadata, options, (err, res) => {
      // The status (with its trailers) is reported after the callback.
      setImmediate(() => resolve({ res: res ?? undefined, err: err ?? undefined, trailers }));
    });
    call.on('status', (s: grpc.StatusObject) => (trailers = s.metadata));
  });

const auth = async (roles: string[]): Promise<grpc.Metadata> => {
  const m = new grpc.Metadata();
  m.set('authorization', `Bearer ${await token(roles)}`);
  return m;
};

describe('gRPC through the gateway', () => {
  let dir: string;
  let h2c: Awaited<ReturnType<typeof startEchoServer>>;
  let h2: Awaited<ReturnType<typeof startEchoServer>>;
  let gw: TestGateway;
  let client: Client;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'switchyard-grpc-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=echo.internal', '-addext', 'subjectAltName=DNS:echo.internal', '-addext', 'basicConstraints=critical,CA:TRUE', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem')], { stdio: 'ignore' });
    h2c = await startEchoServer(grpc.ServerCredentials.createInsecure());
    h2 = await startEchoServer(grpc.ServerCredentials.createSsl(null, [{ private_key: readFileSync(path.join(dir, 'key.pem')), cert_chain: readFileSync(path.join(dir, 'cert.pem')) }]));
    const dead = await closedPort();
    gw = await startGateway({
      server: { http2: { cleartext: true } },
      routes: [
        { path: '/test.Echo/Unary', methods: ['POST'], upstream: 'echo', auth_required: true, required_roles: ['caller'] },
        { path: '/test.Echo/ServerStream', methods: ['POST'], upstream: 'echo' },
        { path: '/test.Echo/Bidi', methods: ['POST'], upstream: 'echo-tls' },
        { path: '/test.Echo/Slow', methods: ['POST'], upstream: 'echo' },
        { path: '/limited.Echo/Unary', methods: ['POST'], upstream: 'echo', rewrite_path: '/test.Echo/Unary', rate_limit: { requests: 1, window: '1m' } },
        { path: '/dead.Echo/Unary', methods: ['POST'], upstream: 'dead' },
      ],
      upstreams: {
        echo: { discovery: { type: 'Static', endpoints: [`http://127.0.0.1:${h2c.port}`] }, protocol: 'h2c' },
        'echo-tls': { discovery: { type: 'Static', endpoints: [`https://127.0.0.1:${h2.port}`] }, protocol: 'h2', tls: { ca_file: path.join(dir, 'cert.pem'), server_name: 'echo.internal' } },
        dead: { discovery: { type: 'Static', endpoints: [`http://127.0.0.1:${dead}`] }, protocol: 'h2c' },
      },
      auth: { jwt: { secret: SECRET, algorithm: 'HS256', issuer: 'auth', audience: 'api' } },
    });
    client = new EchoClient(`127.0.0.1:${gw.gw.ports.http}`, grpc.credentials.createInsecure());
  });
  afterAll(async () => {
    client?.close();
    await gw?.stop();
    h2c?.server.forceShutdown();
    h2?.server.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  it('proxies a unary call to an h2c upstream with the identity headers, and passes its trailers back', async () => {
    const spoofed = await auth(['caller']);
    spoofed.set('x-user-id', 'admin');
    const r = await unary(client, 'unary', { msg: 'hello' }, spoofed);
    expect(r.err).toBeUndefined();
    expect(r.res).toEqual({ echo: 'hello', user: 'grpc-user', roles: 'caller' });
    expect(r.trailers?.get('x-served-by')).toEqual(['echo']);
  });

  it("passes the upstream's own error status through", async () => {
    const r = await unary(client, 'unary', { fail: true }, await auth(['caller']));
    expect(r.err?.code).toBe(grpc.status.NOT_FOUND);
    expect(r.err?.details).toBe('no such thing');
  });

  it('streams a server-streaming call', async () => {
    const got: Msg[] = [];
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      const call = (client.serverStream as (r: Msg) => grpc.ClientReadableStream<Msg>)({ n: 500 });
      call.on('data', (m: Msg) => got.push(m));
      call.on('error', () => undefined);
      call.on('status', resolve);
    });
    expect(status.code).toBe(grpc.status.OK);
    expect(got).toHaveLength(500);
    expect(got[499]).toEqual({ i: 499 });
  });

  it('carries a bidirectional call to an h2 (TLS) upstream, message for message', async () => {
    const call = (client.bidi as () => grpc.ClientDuplexStream<Msg, Msg>)();
    const got: Msg[] = [];
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => undefined);
    // Each answer comes back before the next message is sent: the call is full duplex through the gateway.
    for (let i = 0; i < 20; i++) {
      const answered = new Promise<Msg>((resolve) => call.once('data', resolve));
      call.write({ msg: `m${i}` });
      got.push(await answered);
    }
    call.end();
    expect((await status).code).toBe(grpc.status.OK);
    expect(got.map((m) => m.echo)).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
  });

  it('answers its own refusals as gRPC statuses: 16 without a token, 7 without the role, 8 when rate limited, 14 without an endpoint', async () => {
    expect((await unary(client, 'unary', { msg: 'x' })).err?.code).toBe(grpc.status.UNAUTHENTICATED);
    const badToken = new grpc.Metadata();
    badToken.set('authorization', 'Bearer not.a.token');
    expect((await unary(client, 'unary', { msg: 'x' }, badToken)).err?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect((await unary(client, 'unary', { msg: 'x' }, await auth(['guest']))).err?.code).toBe(grpc.status.PERMISSION_DENIED);

    const limited = grpc.makeGenericClientConstructor({ unary: { ...ECHO.unary, path: '/limited.Echo/Unary' } }, 'Limited');
    const lc = new limited(`127.0.0.1:${gw.gw.ports.http}`, grpc.credentials.createInsecure());
    const call = (): Promise<grpc.ServiceError | null> => new Promise((r) => (lc.unary as (m: Msg, cb: (e: grpc.ServiceError | null) => void) => void)({ msg: 'x' }, (e) => r(e)));
    expect(await call()).toBeNull();
    const refused = await call();
    expect(refused?.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(refused?.metadata.get('retry-after')).toHaveLength(1);
    lc.close();

    const dead = grpc.makeGenericClientConstructor({ unary: { ...ECHO.unary, path: '/dead.Echo/Unary' } }, 'Dead');
    const dc = new dead(`127.0.0.1:${gw.gw.ports.http}`, grpc.credentials.createInsecure());
    const unavailable = await new Promise<grpc.ServiceError | null>((r) => (dc.unary as (m: Msg, cb: (e: grpc.ServiceError | null) => void) => void)({ msg: 'x' }, (e) => r(e)));
    expect(unavailable?.code).toBe(grpc.status.UNAVAILABLE);
    dc.close();
  });

  it('honours grpc-timeout: the gateway answers DEADLINE_EXCEEDED itself and the upstream call is cancelled', async () => {
    // A raw HTTP/2 client, so the status is the gateway's and not a deadline the client library enforces on its own.
    const session = http2.connect(gw.url);
    const frame = Buffer.alloc(5 + 2);
    frame.writeUInt32BE(2, 1);
    frame.write('{}', 5);
    const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ':path': '/test.Echo/Slow', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '300m' });
      stream.on('response', resolve);
      stream.on('error', reject);
      stream.end(frame);
    });
    session.close();
    expect(headers[':status']).toBe(200);
    expect(headers['grpc-status']).toBe(String(grpc.status.DEADLINE_EXCEEDED));
    await expect.poll(() => h2c.slowCancelled(), { timeout: 2000 }).toBe(1);
  });
});
