/**
 * Failover and static stability with the real CLIs: two operator replicas
 * electing a leader through a Lease, data plane processes with a state
 * directory, and steady traffic that must never fail while the operators die.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { startControlPlane, type ControlPlane } from '../support/control-plane.ts';
import { eventually, kubeFor, waitCondition, type Kube, installCrds } from '../support/kube.ts';
import { freePort, startProcess, tempFile, type Proc } from '../support/processes.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';

const NS = 'ha';
const TOKEN = 'ha-token-abcdefghijklmnop';

describe('failover and static stability', () => {
  let cp: ControlPlane;
  let kube: Kube;
  let up: TestUpstream;
  const ops = new Map<string, { proc: Proc; port: number }>();
  let tokenFile: string;
  let bootstrap: string;

  const startOperator = async (identity: string, port: number): Promise<void> => {
    const proc = startProcess('operator/bin/switchyard-operator.ts', [
      '--kubeconfig', cp.kubeconfigPath, '--listen', `127.0.0.1:${port}`, '--metrics', 'off', '--token-file', tokenFile,
      '--lease-namespace', NS, '--identity', identity, '--lease-duration', '4s', '--renew-deadline', '3s', '--retry-period', '500ms',
    ]);
    ops.set(identity, { proc, port });
    await proc.waitForLog('"event":"listening"');
  };

  const startDataplane = async (id: string, stateDir: string, urls: string): Promise<{ proc: Proc; url: string }> => {
    const port = await freePort();
    const proc = startProcess('dataplane/bin/switchyard-dataplane.ts', ['--config', bootstrap, '--operator', urls, '--token-file', tokenFile, '--dataplane-id', id, '--state-dir', stateDir], {
      GATEWAY_SERVER_HTTP_PORT: String(port),
      GATEWAY_SERVER_ADMIN_PORT: '0',
      GATEWAY_SERVER_METRICS_PORT: '0',
    });
    await proc.waitForLog('"event":"listening"');
    return { proc, url: `http://127.0.0.1:${port}` };
  };

  const leaseHolder = async (): Promise<string> => (JSON.parse(await kube.kubectl(['get', 'lease', 'switchyard-operator', '-n', NS, '-o', 'json'])) as { spec: { holderIdentity: string } }).spec.holderIdentity;

  beforeAll(async () => {
    cp = await startControlPlane();
    kube = kubeFor(cp);
    await installCrds(kube, NS);
    up = await startUpstream(echo('svc'));
    tokenFile = tempFile('token', `${TOKEN}\n`);
    bootstrap = tempFile('bootstrap.yaml', 'server: { bind_address: 127.0.0.1 }\nobservability: { logging: { access_log: false } }\n');
  });

  afterAll(async () => {
    for (const { proc } of ops.values()) await proc.kill('SIGKILL');
    await up?.close();
    await cp?.stop();
  });

  it('keeps traffic flowing while the leader is killed, and the other replica takes over status', async () => {
    const ports = [await freePort(), await freePort()];
    await startOperator('op-a', ports[0] as number);
    await startOperator('op-b', ports[1] as number);
    const urls = ports.map((p) => `http://127.0.0.1:${p}`).join(',');
    const stateDir = mkdtempSync(path.join(tmpdir(), 'switchyard-state-'));
    const dp = await startDataplane('dp-1', stateDir, urls);

    await kube.apply(`
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: svc, namespace: ${NS} }
spec: { static: { endpoints: ["${up.url}"] } }
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: one, namespace: ${NS} }
spec: { path: { value: /one }, upstream: svc }
`);
    await waitCondition(kube, 'gatewayroutes', NS, 'one', 'Programmed', 'True', undefined, 60_000);

    // Steady load for the rest of the test.
    const agent = new Agent({ connections: 4 });
    let ok = 0;
    const failures: string[] = [];
    let running = true;
    const load = (async () => {
      while (running) {
        try {
          const res = await request(`${dp.url}/one`, { dispatcher: agent });
          await res.body.dump();
          if (res.statusCode === 200) ok++;
          else failures.push(String(res.statusCode));
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    })();

    try {
      const leader = await leaseHolder();
      const follower = leader === 'op-a' ? 'op-b' : 'op-a';
      const killedAt = Date.now();
      await ops.get(leader)?.proc.kill('SIGKILL');
      await eventually(async () => ((await leaseHolder()) === follower ? true : undefined), 15_000, `${follower} to take the lease`);
      const takeoverMs = Date.now() - killedAt;
      console.log(`failover: ${follower} holds the lease ${takeoverMs} ms after ${leader} was killed (lease duration 4 s)`);
      expect(takeoverMs).toBeLessThan(4_000 + 3_000);

      // Status keeps updating: a new route gets its conditions from the new leader, and the data plane serves it.
      await kube.apply(`
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: two, namespace: ${NS} }
spec: { path: { value: /two }, upstream: svc }
`);
      await waitCondition(kube, 'gatewayroutes', NS, 'two', 'Programmed', 'True', undefined, 30_000);
      const res = await request(`${dp.url}/two`);
      expect(res.statusCode).toBe(200);
      await res.body.dump();

      // Kill the remaining operator too: the data plane keeps serving what it has.
      await ops.get(follower)?.proc.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 1500));
      const still = await request(`${dp.url}/two`);
      expect(still.statusCode).toBe(200);
      await still.body.dump();
    } finally {
      running = false;
      await load;
      await agent.close();
    }
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(50);

    // Restart the data plane while no operator runs: it boots from its state directory.
    const version = JSON.parse(await (await request(`${dp.url}/ready`)).body.text()) as { version: string };
    await dp.proc.kill('SIGTERM');
    const again = await startDataplane('dp-1', stateDir, urls);
    const ready = await request(`${again.url}/ready`);
    expect(ready.statusCode).toBe(200);
    expect(((await ready.body.json()) as { version: string }).version).toBe(version.version);
    for (const p of ['/one', '/two']) {
      const r = await request(`${again.url}${p}`);
      expect(r.statusCode, p).toBe(200);
      await r.body.dump();
    }

    // An operator comes back: the data plane reconnects and nothing changes.
    await startOperator('op-c', ports[0] as number);
    await again.proc.waitForLog('"event":"operator_connected"', 30_000);
    await eventually(async () => ((await leaseHolder()) === 'op-c' ? true : undefined), 15_000, 'op-c to lead');
    const after = JSON.parse(await (await request(`${again.url}/ready`)).body.text()) as { version: string };
    expect(after.version).toBe(version.version);
    await again.proc.kill('SIGTERM');
  });

  it('a fresh data plane that never had a table is not ready', async () => {
    const stateDir = mkdtempSync(path.join(tmpdir(), 'switchyard-state-'));
    const lonely = await startDataplane('dp-lonely', stateDir, `http://127.0.0.1:${await freePort()}`);
    const ready = await request(`${lonely.url}/ready`);
    expect(ready.statusCode).toBe(503);
    expect(await ready.body.text()).toContain('no route table yet');
    await lonely.proc.kill('SIGTERM');
  });
});
