/**
 * What the table gained for the Gateway API, on real sockets: header
 * modifiers both ways, redirects, full-path and Host rewrites, backends that
 * answer 500 for their share, methods as conditions, routes scoped to one
 * listener, certificates chosen by SNI, and request mirroring.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../dataplane/src/config/load.ts';
import { RouteTableSchema, type RouteTable, type RouteTableInput } from '../../dataplane/src/contract/schema.ts';
import { tableVersion } from '../../dataplane/src/contract/version.ts';
import { silentLogger } from '../../dataplane/src/observability/logger.ts';
import { Gateway } from '../../dataplane/src/server/gateway.ts';
import { waitFor } from '../support/faults.ts';
import { freePort } from '../support/processes.ts';
import { startUpstream, type TestUpstream } from '../support/upstreams.ts';

type RouteInput = RouteTableInput['routes'][number];

/** A certificate for `name` signed by nobody (the tests read its subject, they do not verify it). */
function certificate(dir: string, name: string): { certificatePem: string; privateKeyPem: string } {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', `/CN=${name}`, '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { certificatePem: readFileSync(cert, 'utf8'), privateKeyPem: readFileSync(key, 'utf8') };
}

/** The subject CN of the certificate the server presents for `servername` (none: no SNI). */
function presented(port: number, servername: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(servername === undefined ? {} : { servername }) }, () => {
      const cn = socket.getPeerCertificate().subject?.CN;
      socket.end();
      resolve(String(cn));
    });
    socket.on('error', reject);
  });
}

/** A table as a producer sends it: defaults filled in, then versioned. */
function versioned(content: Omit<RouteTableInput, 'version'>): RouteTable {
  const table = RouteTableSchema.parse({ ...content, version: 'pending' });
  table.version = tableVersion(table);
  return table;
}

const upstreamEntry = (name: string, url: string) => ({ name, endpoints: [{ url, weight: 1 }], loadBalancer: 'RoundRobin' as const });

describe('Gateway API table features', () => {
  let dir: string;
  let gw: Gateway;
  let main: TestUpstream;
  let mirror: TestUpstream;
  let base: string;
  const certs: Record<string, { certificatePem: string; privateKeyPem: string }> = {};

  async function apply(routes: RouteInput[], extra: Partial<RouteTableInput> = {}): Promise<void> {
    const content = { routes, upstreams: [upstreamEntry('main', main.url), upstreamEntry('mirror', mirror.url)], ...extra };
    const result = gw.holder.apply(versioned(content), 'test');
    expect(result).toMatchObject({ applied: true });
  }

  const get = async (p: string, headers: Record<string, string> = {}, method = 'GET') => {
    const res = await request(`${base}${p}`, { method: method as 'GET', headers });
    const text = await res.body.text();
    return { status: res.statusCode, headers: res.headers, body: text, json: () => JSON.parse(text) as { url: string; headers: Record<string, string> } };
  };

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'switchyard-gwapi-'));
    for (const n of ['a.test', 'wild.test', 'fallback']) certs[n] = certificate(dir, n);
    main = await startUpstream();
    mirror = await startUpstream();
    const { config } = parseConfig('server: { http_port: 0, https_port: 0, admin_port: 0, metrics_port: 0, bind_address: 127.0.0.1 }\n', 'bootstrap.yaml', {});
    gw = await Gateway.start({ config, log: silentLogger(), tableSource: 'external' });
    base = `http://127.0.0.1:${gw.ports.http}`;
  });

  afterAll(async () => {
    await gw.stop(0);
    await main.close();
    await mirror.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('modifies request headers after the gateway\'s own, and refuses to let a route speak for the caller', async () => {
    await apply([
      {
        id: 'mod',
        path: { type: 'Prefix', value: '/' },
        backends: [{ upstream: 'main' }],
        requestHeaders: { set: [{ name: 'X-Set', value: 'new' }, { name: 'X-User-Id', value: 'admin' }], add: [{ name: 'X-Add', value: 'two' }], remove: ['X-Drop', 'X-Forwarded-For'] },
        responseHeaders: { set: [{ name: 'X-Resp', value: 'r' }], add: [{ name: 'X-Upstream', value: 'added' }], remove: ['content-type'] },
      },
    ]);
    const res = await get('/h', { 'x-set': 'old', 'x-add': 'one', 'x-drop': 'gone', 'x-keep': 'k' });
    expect(res.status).toBe(200);
    const seen = main.seen.at(-1);
    expect(seen?.headers['x-set']).toBe('new');
    expect(seen?.headers['x-add']).toBe('one, two');
    expect(seen?.headers['x-drop']).toBeUndefined();
    expect(seen?.headers['x-keep']).toBe('k');
    // Identity and forwarding headers are the gateway's.
    expect(seen?.headers['x-user-id']).toBeUndefined();
    expect(seen?.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(res.headers['x-resp']).toBe('r');
    expect(res.headers['x-upstream']).toEqual(['upstream', 'added']);
    expect(res.headers['content-type']).toBeUndefined();
  });

  it('rewrites the whole path and the Host header', async () => {
    await apply([{ id: 'rw', path: { type: 'Prefix', value: '/full' }, backends: [{ upstream: 'main' }], rewriteFullPath: '/one', rewriteHost: 'inside.test' }]);
    const res = await get('/full/two/three?q=1', { host: 'outside.test' });
    expect(res.json().url).toBe('/one?q=1');
    expect(res.json().headers.host).toBe('inside.test');
    expect(res.json().headers['x-forwarded-host']).toBe('outside.test');
  });

  it('answers redirects with the request\'s parts where the redirect names none', async () => {
    await apply([
      { id: 'host', path: { type: 'Exact', value: '/host' }, backends: [], redirect: { hostname: 'example.org', statusCode: 301 } },
      { id: 'prefix', path: { type: 'Prefix', value: '/old' }, backends: [], redirect: { path: { type: 'Prefix', value: '/new' } } },
      { id: 'full', path: { type: 'Prefix', value: '/full' }, backends: [], redirect: { path: { type: 'Full', value: '/elsewhere' } } },
      { id: 'scheme', path: { type: 'Prefix', value: '/secure' }, backends: [], redirect: { scheme: 'https' } },
      { id: 'port', path: { type: 'Prefix', value: '/port' }, backends: [], redirect: { port: 8443, statusCode: 308 } },
    ]);
    const loc = async (p: string, host: string): Promise<[number, string | undefined]> => {
      const r = await get(p, { host });
      return [r.status, r.headers.location as string | undefined];
    };
    expect(await loc('/host?x=1', 'a.test')).toEqual([301, 'http://example.org/host?x=1']);
    expect(await loc('/old/a/b', 'a.test')).toEqual([302, 'http://a.test/new/a/b']);
    // The port the client addressed stays; a scheme change takes the scheme's default port.
    expect(await loc('/full/x', 'a.test:8080')).toEqual([302, 'http://a.test:8080/elsewhere']);
    expect(await loc('/secure/x', 'a.test:8080')).toEqual([302, 'https://a.test/secure/x']);
    expect(await loc('/port', 'a.test')).toEqual([308, 'http://a.test:8443/port']);
    expect(main.seen.some((s) => s.url.startsWith('/old'))).toBe(false);
  });

  it('gives an unresolved backend\'s share of requests 500 and the rest to the upstream', async () => {
    await apply([{ id: 'split', path: { type: 'Prefix', value: '/' }, backends: [{ upstream: 'main', weight: 1 }, { upstream: 'ns/missing:80', weight: 1, unresolved: 'Service "missing" not found' }] }]);
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await get('/s')).status);
    expect(statuses.filter((s) => s === 500)).toHaveLength(5);
    expect(statuses.filter((s) => s === 200)).toHaveLength(5);
    const failed = await get('/s');
    const other = await get('/s');
    const body = [failed, other].find((r) => r.status === 500)?.body ?? '';
    expect(JSON.parse(body).error).toMatchObject({ code: 'backend_unresolved', message: 'Service "missing" not found' });
  });

  it('treats methods as conditions when the route says so: 404, never 405, and HEAD is not GET', async () => {
    await apply([
      { id: 'gw-get', path: { type: 'Exact', value: '/m' }, methods: ['GET'], backends: [{ upstream: 'main' }], methodsAsCondition: true },
      { id: 'plain-get', path: { type: 'Exact', value: '/p' }, methods: ['GET'], backends: [{ upstream: 'main' }] },
    ]);
    expect((await get('/m')).status).toBe(200);
    expect((await get('/m', {}, 'POST')).status).toBe(404);
    expect((await get('/m', {}, 'HEAD')).status).toBe(404);
    expect((await get('/p', {}, 'POST')).status).toBe(405);
  });

  it('serves a route only on the listeners it names, and presents table certificates by SNI', async () => {
    await apply(
      [
        { id: 'tls-only', path: { type: 'Prefix', value: '/' }, backends: [{ upstream: 'main' }], listeners: ['https'] },
        { id: 'plain-only', path: { type: 'Prefix', value: '/' }, hosts: ['plain.test'], backends: [{ upstream: 'main' }], listeners: ['http'] },
      ],
      {
        certificates: [
          { name: 'ns/a', hosts: ['a.test'], ...(certs['a.test'] as { certificatePem: string; privateKeyPem: string }) },
          { name: 'ns/wild', hosts: ['*.wild.test'], ...(certs['wild.test'] as { certificatePem: string; privateKeyPem: string }) },
          { name: 'ns/fallback', hosts: [], ...(certs.fallback as { certificatePem: string; privateKeyPem: string }) },
        ],
      },
    );
    // The first table with certificates starts the TLS listener.
    await waitFor('the TLS listener is up', () => gw.ports.https !== undefined, 5000);
    const port = gw.ports.https as number;
    expect(await presented(port, 'a.test')).toBe('a.test');
    expect(await presented(port, 'x.y.wild.test')).toBe('wild.test');
    expect(await presented(port, 'other.test')).toBe('fallback');
    expect(await presented(port, undefined)).toBe('fallback');

    expect((await get('/x')).status).toBe(404);
    expect((await get('/x', { host: 'plain.test' })).status).toBe(200);
    const status = await new Promise<number>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port, path: '/x', servername: 'a.test', headers: { host: 'a.test' }, rejectUnauthorized: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject);
    });
    expect(status).toBe(200);
  });

  it('opens the listeners a table declares, serves each its own routes and certificates, and closes those a later table drops', async () => {
    const [plainPort, tlsPort] = [await freePort(), await freePort()];
    const routes: RouteInput[] = [
      { id: 'on-a', path: { type: 'Prefix', value: '/' }, backends: [{ upstream: 'main' }], listeners: ['gw-a'] },
      { id: 'on-b', path: { type: 'Prefix', value: '/' }, hosts: ['a.test'], backends: [{ upstream: 'mirror' }], listeners: ['gw-b'] },
    ];
    await apply(routes, {
      listeners: [
        { name: 'gw-a', port: plainPort, protocol: 'http' },
        { name: 'gw-b', port: tlsPort, protocol: 'https' },
      ],
      certificates: [{ name: 'b', listener: 'gw-b', hosts: [], ...(certs['a.test'] as { certificatePem: string; privateKeyPem: string }) }],
    });
    await waitFor('both listeners are bound', () => gw.listenerPorts.size === 2, 5000);
    const onA = await request(`http://127.0.0.1:${plainPort}/x`);
    expect([onA.statusCode, onA.headers['x-upstream']]).toEqual([200, 'upstream']);
    await onA.body.dump();
    // Neither the data plane's own listener nor another Gateway's serves them.
    expect((await get('/x')).status).toBe(404);
    expect(await presented(tlsPort, 'a.test')).toBe('a.test');
    expect(await presented(tlsPort, undefined)).toBe('a.test');
    const onB = await new Promise<number>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port: tlsPort, path: '/x', servername: 'a.test', headers: { host: 'a.test' }, rejectUnauthorized: false }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject);
    });
    expect(onB).toBe(200);

    await apply([routes[0] as RouteInput], { listeners: [{ name: 'gw-a', port: plainPort, protocol: 'http' }] });
    await waitFor('the dropped listener is closed', () => !gw.listenerPorts.has('gw-b'), 5000);
    await expect(presented(tlsPort, 'a.test')).rejects.toThrow(/ECONNREFUSED/);
    expect((await request(`http://127.0.0.1:${plainPort}/x`)).statusCode).toBe(200);
  });

  it('refuses a table whose routes or certificates name listeners it does not declare', () => {
    const content = { routes: [{ id: 'r', path: { type: 'Prefix' as const, value: '/' }, backends: [{ upstream: 'main' }], listeners: ['nowhere'] }], upstreams: [upstreamEntry('main', main.url)] };
    const result = gw.holder.apply({ ...content, version: 'x' }, 'test');
    expect(!result.applied && result.error).toMatch(/unknown listener "nowhere"/);
    const plain = { routes: [], upstreams: [], listeners: [{ name: 'p', port: 1, protocol: 'http' as const }], certificates: [{ name: 'c', listener: 'p', hosts: [], certificatePem: 'x', privateKeyPem: 'y' }] };
    const refused = gw.holder.apply({ ...plain, version: 'x' }, 'test');
    expect(!refused.applied && refused.error).toMatch(/"p" is no HTTPS listener/);
  });

  it('refuses a table whose certificate does not parse, naming it, and keeps serving the old one', async () => {
    const before = gw.holder.current?.version;
    const content = { routes: [{ id: 'r', path: { type: 'Prefix' as const, value: '/' }, backends: [{ upstream: 'main' }] }], upstreams: [upstreamEntry('main', main.url)], certificates: [{ name: 'ns/broken', hosts: ['b.test'], certificatePem: 'Hello', privateKeyPem: 'world' }] };
    const result = gw.holder.apply({ ...content, version: tableVersion(RouteTableSchema.parse({ ...content, version: 'x' })) }, 'test');
    expect(result.applied).toBe(false);
    expect(!result.applied && result.error).toMatch(/certificate "ns\/broken"/);
    expect(gw.holder.current?.version).toBe(before);
  });

  it('mirrors each request, body included, and answers from the primary alone', async () => {
    await apply([{ id: 'mirrored', path: { type: 'Prefix', value: '/' }, backends: [{ upstream: 'main' }], mirrors: [{ upstream: 'mirror' }] }]);
    const before = mirror.seen.length;
    const res = await request(`${base}/copy?n=1`, { method: 'POST', body: 'payload-'.repeat(1000) });
    expect(res.statusCode).toBe(200);
    expect((await res.body.json()) as { bodyLength: number }).toMatchObject({ bodyLength: 8000 });
    await waitFor('the mirror got its copy', () => mirror.seen.slice(before).some((s) => s.url === '/copy?n=1'), 5000);
    const copy = mirror.seen.slice(before).find((s) => s.url === '/copy?n=1');
    expect(copy?.method).toBe('POST');
    expect(copy?.body.toString()).toBe('payload-'.repeat(1000));
  });

  it('a mirror that is down changes nothing for the client', async () => {
    const content = {
      routes: [{ id: 'mirrored', path: { type: 'Prefix' as const, value: '/' }, backends: [{ upstream: 'main' }], mirrors: [{ upstream: 'dead' }] }],
      upstreams: [upstreamEntry('main', main.url), upstreamEntry('dead', 'http://127.0.0.1:9')],
    };
    expect(gw.holder.apply(versioned(content), 'test')).toMatchObject({ applied: true });
    for (let i = 0; i < 3; i++) expect((await get('/still-fine')).status).toBe(200);
  });
});
