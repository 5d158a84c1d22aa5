/**
 * Active health checks of https:// endpoints use the upstream's TLS settings,
 * and follow them when a reload changes them.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { waitFor } from '../support/faults.ts';

const HEALTH = { path: '/health', interval: '200ms', timeout: '150ms', healthy_threshold: 1, unhealthy_threshold: 1 };

/**
 * A self-signed certificate for 127.0.0.1 that is its own CA. RSA (its
 * signature has a fixed size), a fixed serial and a subject of the same
 * length for every name: certificates made here differ in content, not length.
 */
function selfSignedCa(dir: string, name: string, serial: number): { cert: string; key: string } {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-set_serial', String(serial), '-subj', `/CN=upstream-${name}`, '-addext', 'subjectAltName=IP:127.0.0.1', '-addext', 'basicConstraints=critical,CA:TRUE', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') };
}

describe('health checks over TLS', () => {
  let dir: string;
  let oldCa: { cert: string; key: string };
  let newCa: { cert: string; key: string };
  let upstream: https.Server;
  let url: string;
  let gw: TestGateway | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'switchyard-health-tls-'));
    oldCa = selfSignedCa(dir, 'a', 1);
    newCa = selfSignedCa(dir, 'b', 2);
    // The upstream already serves a certificate from the new CA.
    upstream = https.createServer({ cert: newCa.cert, key: newCa.key }, (_req, res) => res.end('ok'));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
    url = `https://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await gw?.stop();
    upstream.closeAllConnections();
    await new Promise<void>((r) => upstream.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('a rotated CA of the same length takes effect for health probes', async () => {
    expect(newCa.cert.length).toBe(oldCa.cert.length);
    const caFile = path.join(dir, 'ca.pem');
    writeFileSync(caFile, oldCa.cert);
    const config = { routes: [{ path: '/x', upstream: 'u' }], upstreams: { u: { discovery: { type: 'Static', endpoints: [url] }, health_check: HEALTH, tls: { ca_file: caFile } } } };
    gw = await startGateway(config);
    const endpoint = (): { checkPassing: boolean; lastProbeError?: string } | undefined => gw?.gw.holder.current?.upstreams.get('u')?.endpoints[0]?.health;
    // Trusting only the old CA, the probe refuses the upstream's certificate.
    await waitFor('the probe fails against the old CA', () => endpoint()?.checkPassing === false);
    expect(endpoint()?.lastProbeError).toMatch(/CERT|SIGNATURE|SELF_SIGNED|VERIFY/i);

    writeFileSync(caFile, newCa.cert);
    expect((await gw.gw.reload('test')).applied).toBe(true);
    await waitFor('the probe passes with the new CA', () => endpoint()?.checkPassing === true);
  });
});
