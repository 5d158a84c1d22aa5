/**
 * The operator → data plane channel over TLS, with the real CLIs: the
 * operator serves its config stream with an openssl-made certificate
 * (--listen-cert-file, --listen-key-file), data planes verify it against the
 * CA they are given (--operator-ca), a data plane with another CA gets
 * nothing, and a renewed certificate serves new connections while the open
 * streams go on.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../support/control-plane.ts';
import { eventually, installCrds, kubeFor } from '../support/kube.ts';
import { freePort, startProcess, tempFile, type Proc } from '../support/processes.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'switchyard-channel-tls-'));
const file = (name: string): string => path.join(dir, name);
const TOKEN = 'channel-tls-token-0123456789';

function makeCa(name: string): void {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign', '-keyout', file(`${name}.key`), '-out', file(`${name}.crt`)], { stdio: 'ignore' });
}

/** The operator's serving certificate, for 127.0.0.1 and localhost, written by rename into `serving/` as a Secret volume update would. */
function makeServing(serial: number): void {
  const tmp = file(`serving-${serial}`);
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=switchyard-operator', '-keyout', `${tmp}.key`, '-out', `${tmp}.csr`], { stdio: 'ignore' });
  writeFileSync(`${tmp}.ext`, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  execFileSync('openssl', ['x509', '-req', '-in', `${tmp}.csr`, '-CA', file('ca.crt'), '-CAkey', file('ca.key'), '-set_serial', String(serial), '-days', '1', '-extfile', `${tmp}.ext`, '-out', `${tmp}.crt`], { stdio: 'ignore' });
  renameSync(`${tmp}.key`, file('serving/tls.key'));
  renameSync(`${tmp}.crt`, file('serving/tls.crt'));
}

/** The serial number of the certificate the operator presents to a new connection. */
function servingSerial(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: readFileSync(file('ca.crt')) }, () => {
      const serial = Number.parseInt(socket.getPeerCertificate().serialNumber, 16);
      socket.end();
      resolve(serial);
    });
    socket.on('error', reject);
  });
}

describe('the operator → data plane channel over TLS', () => {
  let cp: ControlPlane;
  let operator: Proc;
  let port: number;
  const dataplanes: Proc[] = [];

  const startDataplane = async (id: string, ca: string | undefined, extra: string[] = []): Promise<{ proc: Proc; url: string }> => {
    const http = await freePort();
    const bootstrap = tempFile('bootstrap.yaml', 'server: { bind_address: 127.0.0.1 }\nobservability: { logging: { access_log: false } }\n');
    const args = ['--config', bootstrap, '--operator', `https://127.0.0.1:${port}`, '--token-file', tempFile('token', `${TOKEN}\n`), '--dataplane-id', id];
    if (ca !== undefined) args.push('--operator-ca', ca);
    args.push(...extra);
    const proc = startProcess('dataplane/bin/switchyard-dataplane.ts', args, { GATEWAY_SERVER_HTTP_PORT: String(http), GATEWAY_SERVER_ADMIN_PORT: '0', GATEWAY_SERVER_METRICS_PORT: '0' });
    dataplanes.push(proc);
    await proc.waitForLog('"event":"listening"');
    return { proc, url: `http://127.0.0.1:${http}` };
  };
  const ready = async (url: string): Promise<{ status: number; version: string | null }> => {
    const res = await request(`${url}/ready`);
    const body = (await res.body.json()) as { version?: string | null };
    return { status: res.statusCode, version: body.version ?? null };
  };

  beforeAll(async () => {
    makeCa('ca');
    makeCa('stranger');
    execFileSync('mkdir', ['-p', file('serving')]);
    makeServing(1001);
    cp = await startControlPlane();
    await installCrds(kubeFor(cp), 'shop');
    port = await freePort();
    const metrics = await freePort();
    operator = startProcess('operator/bin/switchyard-operator.ts', [
      '--kubeconfig', cp.kubeconfigPath,
      '--listen', `127.0.0.1:${port}`,
      '--listen-cert-file', file('serving/tls.crt'),
      '--listen-key-file', file('serving/tls.key'),
      '--metrics', `127.0.0.1:${metrics}`,
      '--token-file', tempFile('token', `${TOKEN}\n`),
      '--no-leader-elect',
      '--no-gateway-api',
      '--identity', 'op-tls',
    ]);
    await operator.waitForLog('"event":"listening"');
  });
  afterAll(async () => {
    for (const d of dataplanes) await d.kill();
    await operator?.kill();
    await cp?.stop();
  });

  it('serves tables to a data plane that trusts its CA, and only over TLS', async () => {
    const dp = await startDataplane('dp-tls', file('ca.crt'));
    await eventually(async () => ((await ready(dp.url)).version ?? undefined), 30_000, 'a table');
    expect(dp.proc.logs.some((l) => l.includes('"event":"operator_plaintext"'))).toBe(false);
    // Plain HTTP to the same port gets no table.
    await expect(request(`http://127.0.0.1:${port}/v1/tables/watch?dataplane=plain`, { headers: { authorization: `Bearer ${TOKEN}` }, headersTimeout: 5_000 }).then((r) => r.statusCode)).rejects.toThrow();
  });

  it('verifies the name given with --operator-server-name instead of the URL\'s address', async () => {
    const good = await startDataplane('dp-named', file('ca.crt'), ['--operator-server-name', 'localhost']);
    await eventually(async () => ((await ready(good.url)).version ?? undefined), 30_000, 'a table');
    const wrong = await startDataplane('dp-misnamed', file('ca.crt'), ['--operator-server-name', 'operator.example.com']);
    const line = await wrong.proc.waitForLog('"event":"operator_unreachable"');
    expect(line).toContain('operator.example.com');
    expect((await ready(wrong.url)).version).toBeNull();
  });

  it('gives a data plane with another CA nothing: it stays not ready and says why', async () => {
    const dp = await startDataplane('dp-stranger', file('stranger.crt'));
    const line = await dp.proc.waitForLog('"event":"operator_unreachable"');
    expect(line).toMatch(/certificate/i);
    expect(await ready(dp.url)).toEqual({ status: 503, version: null });
  });

  it('serves a renewed certificate to new connections while open streams go on', async () => {
    const dp = await startDataplane('dp-renewal', file('ca.crt'));
    await eventually(async () => ((await ready(dp.url)).version ?? undefined), 30_000, 'a table');
    await dp.proc.waitForLog('"event":"operator_connected"');
    const connectedBefore = dp.proc.logs.filter((l) => l.includes('"event":"operator_connected"')).length;
    expect(connectedBefore).toBe(1);
    expect(await servingSerial(port)).toBe(1001);
    makeServing(2002);
    await operator.waitForLog('"event":"listen_tls_reloaded"');
    await eventually(async () => ((await servingSerial(port)) === 2002 ? true : undefined), 10_000, 'the renewed certificate');
    // The stream opened before the renewal is still the one the data plane uses (its log lines are written within 10 ms).
    await new Promise((r) => setTimeout(r, 500));
    expect(dp.proc.logs.filter((l) => l.includes('"event":"operator_connected"')).length).toBe(connectedBefore);
    expect(dp.proc.logs.some((l) => l.includes('"event":"operator_unreachable"'))).toBe(false);
    expect((await ready(dp.url)).status).toBe(200);
  });
});
