/**
 * TLS to upstreams with a private CA, a server name and a client certificate
 * (mutual TLS), against real TLS servers whose certificates openssl made,
 * including a CA rotation by reload.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { issue, makeCa, type Pair } from '../support/pki.ts';

describe('TLS to upstreams', () => {
  let dir: string;
  let caA: Pair;
  let caB: Pair;
  let clients: Pair;
  let serverA: Pair;
  let serverB: Pair;
  let gatewayClient: Pair;
  let upstream: https.Server;
  let url: string;
  const seen: { authorized: boolean; subject: string | undefined }[] = [];
  let gw: TestGateway | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'switchyard-upstream-tls-'));
    caA = makeCa(dir, 'ca-a');
    caB = makeCa(dir, 'ca-b');
    clients = makeCa(dir, 'client-ca');
    const serverExt = 'subjectAltName=DNS:orders.internal\nextendedKeyUsage=serverAuth\n';
    serverA = issue(dir, caA, 'orders-a', serverExt);
    serverB = issue(dir, caB, 'orders-b', serverExt);
    gatewayClient = issue(dir, clients, 'gateway', 'extendedKeyUsage=clientAuth\n');
    // Requires a client certificate from the client CA, as a mesh-less mTLS service would.
    upstream = https.createServer({ cert: readFileSync(serverA.cert), key: readFileSync(serverA.key), ca: readFileSync(clients.cert), requestCert: true, rejectUnauthorized: true }, (req, res) => {
      const socket = req.socket as TLSSocket;
      seen.push({ authorized: socket.authorized, subject: String(socket.getPeerCertificate().subject?.CN) });
      res.end('secret orders');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
    url = `https://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await gw?.stop();
    upstream.closeAllConnections();
    await new Promise<void>((r) => upstream.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  const config = (tls: Record<string, unknown>): Record<string, unknown> => ({
    routes: [{ path: '/orders', upstream: 'orders' }],
    upstreams: { orders: { discovery: { type: 'Static', endpoints: [url] }, tls } },
  });
  const get = async (): Promise<{ status: number; body: string }> => {
    const res = await request(`${gw?.url}/orders`);
    return { status: res.statusCode, body: await res.body.text() };
  };

  it('calls an mTLS upstream with its client certificate, verifying the upstream against the private CA and server name', async () => {
    const caFile = path.join(dir, 'trusted.pem');
    writeFileSync(caFile, readFileSync(caA.cert));
    gw = await startGateway(config({ ca_file: caFile, server_name: 'orders.internal', cert_file: gatewayClient.cert, key_file: gatewayClient.key }));
    expect(await get()).toEqual({ status: 200, body: 'secret orders' });
    expect(seen.at(-1)).toEqual({ authorized: true, subject: 'gateway' });
  });

  it('gets no answer without the client certificate, or with the wrong server name, or an untrusted CA (502)', async () => {
    const caFile = path.join(dir, 'trusted.pem');
    const count = seen.length;
    for (const tls of [
      { ca_file: caFile, server_name: 'orders.internal' },
      { ca_file: caFile, server_name: 'billing.internal', cert_file: gatewayClient.cert, key_file: gatewayClient.key },
      { ca_file: caB.cert, server_name: 'orders.internal', cert_file: gatewayClient.cert, key_file: gatewayClient.key },
    ]) {
      gw?.writeConfig(config(tls));
      expect((await gw?.gw.reload('test'))?.applied).toBe(true);
      expect((await get()).status).toBe(502);
    }
    expect(seen.length).toBe(count);
  });

  it('follows a CA rotation: the upstream moves to a certificate of the new CA, the CA file is rewritten, a reload takes it', async () => {
    const caFile = path.join(dir, 'trusted.pem');
    const tls = { ca_file: caFile, server_name: 'orders.internal', cert_file: gatewayClient.cert, key_file: gatewayClient.key };
    gw?.writeConfig(config(tls));
    expect((await gw?.gw.reload('test'))?.applied).toBe(true);
    expect((await get()).status).toBe(200);
    // Step 1 of a rotation: trust both CAs; the upstream still serves the old one's certificate.
    writeFileSync(caFile, readFileSync(caA.cert, 'utf8') + readFileSync(caB.cert, 'utf8'));
    expect((await gw?.gw.reload('test'))?.applied).toBe(true);
    expect((await get()).status).toBe(200);
    // Step 2: the upstream switches to the new CA's certificate; both are trusted, so traffic never stops.
    upstream.setSecureContext({ cert: readFileSync(serverB.cert), key: readFileSync(serverB.key), ca: readFileSync(clients.cert) });
    upstream.closeAllConnections();
    expect((await get()).status).toBe(200);
    // Step 3: the old CA leaves the file; the upstream's new certificate is still trusted.
    writeFileSync(caFile, readFileSync(caB.cert));
    expect((await gw?.gw.reload('test'))?.applied).toBe(true);
    expect((await get()).status).toBe(200);
    // And the old CA alone would no longer do: the rotation really changed what the gateway trusts.
    writeFileSync(caFile, readFileSync(caA.cert));
    expect((await gw?.gw.reload('test'))?.applied).toBe(true);
    expect((await get()).status).toBe(502);
  });
});
