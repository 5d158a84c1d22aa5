/**
 * The TLS listener's own certificates (`server.tls`) with openssl-made
 * certificates and real TLS clients (node:tls, node:https, curl): chosen by
 * SNI with a default, read again when the files change while connections
 * stay open, TLS 1.2 at least, and client certificates when asked for.
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../dataplane/src/config/load.ts';
import { RouteTableSchema } from '../../dataplane/src/contract/schema.ts';
import { tableVersion } from '../../dataplane/src/contract/version.ts';
import { silentLogger } from '../../dataplane/src/observability/logger.ts';
import { Gateway } from '../../dataplane/src/server/gateway.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'switchyard-tls-'));
const file = (name: string): string => path.join(dir, name);

/** A CA: `<name>.crt`, `<name>.key`. */
function makeCa(name: string): void {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-keyout', file(`${name}.key`), '-out', file(`${name}.crt`)], { stdio: 'ignore' });
}

/** A leaf signed by `ca`, written to `<out>.crt`/`<out>.key` (by rename, as a volume update does). */
function makeLeaf(ca: string, out: string, cn: string, serial: number, san: string | undefined, usage: 'serverAuth' | 'clientAuth' = 'serverAuth'): void {
  const tmp = `${out}.${serial}.tmp`;
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${cn}`, '-keyout', file(`${tmp}.key`), '-out', file(`${tmp}.csr`)], { stdio: 'ignore' });
  writeFileSync(file(`${tmp}.ext`), `${san ? `subjectAltName=${san}\n` : ''}extendedKeyUsage=${usage}\n`);
  execFileSync('openssl', ['x509', '-req', '-in', file(`${tmp}.csr`), '-CA', file(`${ca}.crt`), '-CAkey', file(`${ca}.key`), '-set_serial', String(serial), '-days', '1', '-extfile', file(`${tmp}.ext`), '-out', file(`${tmp}.crt`)], { stdio: 'ignore' });
  renameSync(file(`${tmp}.key`), file(`${out}.key`));
  renameSync(file(`${tmp}.crt`), file(`${out}.crt`));
}

/** Handshakes and returns the certificate the listener presented (CN and serial), or the error. */
function handshake(port: number, options: tls.ConnectionOptions = {}): Promise<{ cn: string; serial: number; protocol: string | null } | { error: string }> {
  return new Promise((resolve) => {
    const socket = tls.connect({ port, host: '127.0.0.1', ca: [readCa()], ...options }, () => {
      const peer = socket.getPeerCertificate();
      const out = { cn: String(peer.subject?.CN), serial: Number.parseInt(peer.serialNumber, 16), protocol: socket.getProtocol() };
      socket.end();
      resolve(out);
    });
    socket.on('error', (err: Error & { code?: string }) => resolve({ error: err.code ?? err.message }));
  });
}

let caPem = '';
const readCa = (): string => caPem;

/** One HTTPS request with a client certificate or none; the status, or the error code. */
function get(port: number, servername: string, extra: https.RequestOptions = {}): Promise<number | string> {
  return new Promise((resolve) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/x', servername, headers: { host: servername }, ca: readCa(), agent: false, ...extra }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', (err: Error & { code?: string }) => resolve(err.code ?? err.message));
    req.end();
  });
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('the TLS listener', () => {
  let up: TestUpstream;
  let gw: TestGateway;
  const lines: Record<string, unknown>[] = [];
  const port = (): number => gw.gw.ports.https as number;

  beforeAll(async () => {
    makeCa('ca');
    caPem = readFileSync(file('ca.crt'), 'utf8');
    makeLeaf('ca', 'a', 'a.test', 1001, 'DNS:a.test');
    makeLeaf('ca', 'wild', 'wild.b.test', 1002, 'DNS:*.b.test');
    makeLeaf('ca', 'default', 'default.test', 1003, 'DNS:default.test');
    makeLeaf('ca', 'named', 'named-by-config', 1004, 'DNS:other.test');
    up = await startUpstream(echo('u'));
    gw = await startGateway(
      {
        server: {
          https_port: 0,
          tls: {
            cert_file: file('default.crt'),
            key_file: file('default.key'),
            certificates: [
              { cert_file: file('a.crt'), key_file: file('a.key') },
              { cert_file: file('wild.crt'), key_file: file('wild.key') },
              { cert_file: file('named.crt'), key_file: file('named.key'), hosts: ['c.test'] },
            ],
          },
        },
        routes: [{ path: '/x', upstream: 'u' }],
        upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
      },
      { log: pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }) },
    );
  });
  afterAll(async () => {
    await gw.stop();
    await up.close();
  });

  it('chooses the certificate by SNI: exact, wildcard, the hosts given in the config, else the default', async () => {
    expect(await handshake(port(), { servername: 'a.test' })).toMatchObject({ cn: 'a.test', serial: 1001 });
    expect(await handshake(port(), { servername: 'x.b.test' })).toMatchObject({ cn: 'wild.b.test', serial: 1002 });
    expect(await handshake(port(), { servername: 'c.test', checkServerIdentity: () => undefined })).toMatchObject({ cn: 'named-by-config' });
    // A name the certificate's own SAN has, but the config's hosts replace: not chosen for it.
    expect(await handshake(port(), { servername: 'other.test', checkServerIdentity: () => undefined })).toMatchObject({ cn: 'default.test' });
    expect(await handshake(port(), { servername: 'unknown.test', checkServerIdentity: () => undefined })).toMatchObject({ cn: 'default.test' });
    // No SNI at all (an IP address as the host): the default.
    expect(await handshake(port(), { checkServerIdentity: () => undefined })).toMatchObject({ cn: 'default.test' });
  });

  it('serves curl by SNI, with the certificate verified against the CA', async () => {
    // Not execFileSync: the gateway runs in this process and must answer meanwhile.
    const { stdout } = await promisify(execFile)('curl', ['-sS', '--max-time', '10', '--cacert', file('ca.crt'), '--resolve', `x.b.test:${port()}:127.0.0.1`, '-o', '/dev/null', '-w', '%{http_code} %{ssl_verify_result}', `https://x.b.test:${port()}/x`]);
    expect(stdout).toBe('200 0');
  });

  it('refuses clients below TLS 1.2', async () => {
    const old = await handshake(port(), { servername: 'a.test', minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
    // The alert comes from the listener: the client offered TLS 1.0 and 1.1 and was refused.
    expect(old).toEqual({ error: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
    expect(await handshake(port(), { servername: 'a.test', maxVersion: 'TLSv1.2' })).toMatchObject({ protocol: 'TLSv1.2' });
  });

  it('reads changed files for new handshakes while open connections keep going, and keeps serving through a broken file', async () => {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const open = (): Promise<{ status: number; socket: tls.TLSSocket }> =>
      new Promise((resolve, reject) => {
        const req = https.request({ host: '127.0.0.1', port: port(), path: '/x', servername: 'a.test', headers: { host: 'a.test' }, ca: caPem, agent }, (res) => {
          const socket = res.socket as tls.TLSSocket;
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, socket }));
        });
        req.on('error', reject);
        req.end();
      });
    const first = await open();
    expect(first.status).toBe(200);
    expect(Number.parseInt(first.socket.getPeerCertificate().serialNumber, 16)).toBe(1001);

    makeLeaf('ca', 'a', 'a.test', 2001, 'DNS:a.test');
    await until(async () => ((await handshake(port(), { servername: 'a.test' })) as { serial?: number }).serial === 2001, 'the renewed certificate');
    expect(lines.some((l) => l.event === 'tls_reloaded')).toBe(true);

    // The connection opened before the renewal is the same one, still serving.
    const second = await open();
    expect(second.status).toBe(200);
    expect(second.socket).toBe(first.socket);
    expect(Number.parseInt(second.socket.getPeerCertificate().serialNumber, 16)).toBe(1001);
    agent.destroy();

    // A half-written file is refused; the renewed certificate keeps serving.
    writeFileSync(file('a.crt'), '-----BEGIN CERTIFICATE-----\nMIIB\n');
    await until(async () => lines.some((l) => l.event === 'tls_reload_failed'), 'the failed reload');
    expect(await handshake(port(), { servername: 'a.test' })).toMatchObject({ serial: 2001 });
    makeLeaf('ca', 'a', 'a.test', 3001, 'DNS:a.test');
    await until(async () => ((await handshake(port(), { servername: 'a.test' })) as { serial?: number }).serial === 3001, 'the repaired certificate');
  });
});

describe('client certificates', () => {
  let up: TestUpstream;
  const gateways: TestGateway[] = [];

  beforeAll(async () => {
    makeCa('ca');
    caPem = readFileSync(file('ca.crt'), 'utf8');
    makeCa('clients');
    makeCa('strangers');
    makeLeaf('ca', 'server', 'api.test', 5001, 'DNS:api.test');
    makeLeaf('clients', 'alice', 'alice', 5002, undefined, 'clientAuth');
    makeLeaf('strangers', 'mallory', 'mallory', 5003, undefined, 'clientAuth');
    up = await startUpstream(echo('u'));
  });
  afterAll(async () => {
    for (const g of gateways) await g.stop();
    await up.close();
  });

  const start = async (required: boolean, minVersion = 'TLSv1.2'): Promise<number> => {
    const gw = await startGateway({
      server: { https_port: 0, tls: { cert_file: file('server.crt'), key_file: file('server.key'), min_version: minVersion, client_auth: { ca_file: file('clients.crt'), required } } },
      routes: [{ path: '/x', upstream: 'u' }],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
    });
    gateways.push(gw);
    return gw.gw.ports.https as number;
  };
  const pair = (name: string): { cert: Buffer; key: Buffer } => ({ cert: readFileSync(file(`${name}.crt`)), key: readFileSync(file(`${name}.key`)) });

  it('with required: true, lets in only clients with a certificate the CA signed', async () => {
    const port = await start(true);
    expect(await get(port, 'api.test', pair('alice'))).toBe(200);
    expect(await get(port, 'api.test')).not.toBe(200);
    expect(await get(port, 'api.test', pair('mallory'))).not.toBe(200);
    // Over TLS 1.2 too, where the refusal happens inside the handshake.
    expect(await get(port, 'api.test', { ...pair('alice'), maxVersion: 'TLSv1.2' })).toBe(200);
    expect(await get(port, 'api.test', { ...pair('mallory'), maxVersion: 'TLSv1.2' })).not.toBe(200);
  });

  it('with required: false, lets in clients without one, but not with one the CA did not sign', async () => {
    const port = await start(false);
    expect(await get(port, 'api.test')).toBe(200);
    expect(await get(port, 'api.test', pair('alice'))).toBe(200);
    expect(await get(port, 'api.test', pair('mallory'))).not.toBe(200);
  });

  it('with min_version TLSv1.3, refuses TLS 1.2 clients', async () => {
    const port = await start(true, 'TLSv1.3');
    expect(await get(port, 'api.test', { ...pair('alice'), maxVersion: 'TLSv1.2' })).not.toBe(200);
    expect(await get(port, 'api.test', pair('alice'))).toBe(200);
  });

  it('refuses a start whose files do not load, naming the field', async () => {
    await expect(
      startGateway({
        server: { https_port: 0, tls: { certificates: [{ cert_file: file('missing.crt'), key_file: file('server.key') }] } },
        routes: [{ path: '/x', upstream: 'u' }],
        upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
      }),
    ).rejects.toThrow(/server\.tls\.certificates\[0\]\.cert_file: cannot read .*missing\.crt: ENOENT/);
  });
});

describe('certificates from the route table (a cluster: Secrets named by Gateway listeners)', () => {
  it('serves a renewed table certificate to new handshakes while a connection opened before keeps going', async () => {
    makeCa('ca');
    caPem = readFileSync(file('ca.crt'), 'utf8');
    makeLeaf('ca', 'shop', 'shop.test', 7001, 'DNS:shop.test');
    const up = await startUpstream(echo('u'));
    const { config } = parseConfig('server: { http_port: 0, https_port: 0, admin_port: 0, metrics_port: 0, bind_address: 127.0.0.1 }\n', 'bootstrap.yaml', {});
    const gw = await Gateway.start({ config, log: silentLogger(), tableSource: 'external' });
    const table = (serial: number): Record<string, unknown> => {
      const content = {
        routes: [{ id: 'r', path: { type: 'Prefix' as const, value: '/' }, backends: [{ upstream: 'u' }] }],
        upstreams: [{ name: 'u', endpoints: [{ url: up.url }] }],
        certificates: [{ name: `shop/storefront-tls#${serial}`, hosts: ['shop.test'], certificatePem: readFileSync(file('shop.crt'), 'utf8'), privateKeyPem: readFileSync(file('shop.key'), 'utf8') }],
      };
      return { ...content, version: tableVersion(RouteTableSchema.parse({ ...content, version: 'x' })) };
    };
    try {
      expect(gw.holder.apply(table(7001), 'test').applied).toBe(true);
      await until(async () => gw.ports.https !== undefined, 'the TLS listener');
      const port = gw.ports.https as number;
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
      const open = (): Promise<{ status: number; socket: tls.TLSSocket }> =>
        new Promise((resolve, reject) => {
          const req = https.request({ host: '127.0.0.1', port, path: '/x', servername: 'shop.test', headers: { host: 'shop.test' }, ca: caPem, agent }, (res) => {
            const socket = res.socket as tls.TLSSocket;
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0, socket }));
          });
          req.on('error', reject);
          req.end();
        });
      const first = await open();
      expect(first.status).toBe(200);
      expect(Number.parseInt(first.socket.getPeerCertificate().serialNumber, 16)).toBe(7001);

      // cert-manager renews the Secret: the operator sends a table with the new certificate.
      makeLeaf('ca', 'shop', 'shop.test', 7002, 'DNS:shop.test');
      expect(gw.holder.apply(table(7002), 'test').applied).toBe(true);
      expect(await handshake(port, { servername: 'shop.test' })).toMatchObject({ serial: 7002 });
      const second = await open();
      expect(second.status).toBe(200);
      expect(second.socket).toBe(first.socket);
      expect(Number.parseInt(second.socket.getPeerCertificate().serialNumber, 16)).toBe(7001);
      agent.destroy();
    } finally {
      await gw.stop(0);
      await up.close();
    }
  });
});
