/**
 * The status writer's concurrency, against a local HTTP server that answers the
 * two API calls it makes (a status merge patch, an Event) and holds each patch
 * until the test lets it go: keys queued while a write is under way get workers
 * of their own, up to the writer's limit, and every object is written once.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../../dataplane/src/observability/logger.ts';
import type { ObjectStatus } from '../../../operator/src/compile/index.ts';
import { StatusWriter } from '../../../operator/src/kube/status-writer.ts';
import { condition } from '../../../operator/src/status/conditions.ts';
import { Store } from '../../../operator/src/store/store.ts';
import { eventually } from '../../support/kube.ts';

const NS = 'shop';
const ROUTES = 40;
/** WRITERS in status-writer.ts. */
const LIMIT = 32;

interface HeldApi {
  url: string;
  inFlight: () => number;
  most: () => number;
  patched: string[];
  releaseAll: () => void;
  close: () => Promise<void>;
}

async function heldApi(): Promise<HeldApi> {
  const waiting: (() => void)[] = [];
  let holding = true;
  let inFlight = 0;
  let most = 0;
  const patched: string[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const answer = (): void => {
        res.writeHead(req.method === 'POST' ? 201 : 200, { 'content-type': 'application/json' });
        res.end(body || '{}');
      };
      const status = /^\/apis\/switchyard\.dev\/v1alpha1\/namespaces\/[^/]+\/gatewayroutes\/([^/]+)\/status$/.exec(req.url ?? '');
      if (req.method !== 'PATCH' || !status) return answer();
      patched.push(status[1] as string);
      inFlight++;
      most = Math.max(most, inFlight);
      const done = (): void => {
        inFlight--;
        answer();
      };
      if (holding) waiting.push(done);
      else done();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    inFlight: () => inFlight,
    most: () => most,
    patched,
    releaseAll: () => {
      holding = false;
      for (const done of waiting.splice(0)) done();
    },
    close: () =>
      new Promise((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

function kubeConfig(server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({ clusters: [{ name: 'c', server, skipTLSVerify: true }], users: [{ name: 'u', token: 'test' }], contexts: [{ name: 'x', cluster: 'c', user: 'u' }], currentContext: 'x' });
  return kc;
}

const programmed = (name: string): ObjectStatus => ({
  kind: 'GatewayRoute',
  namespace: NS,
  name,
  generation: 1,
  conditions: [condition('Accepted', true, 'Accepted', 'the route is valid'), condition('ResolvedRefs', true, 'ResolvedRefs', 'all references resolved'), condition('Programmed', true, 'Programmed', 'applied by 1 data plane')],
});

describe('status writer', () => {
  const cleanup: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('gives keys queued while a write is under way workers of their own, up to its limit, and writes each object once', async () => {
    const api = await heldApi();
    cleanup.push(() => {
      api.releaseAll();
      return api.close();
    });
    const store = new Store();
    const names = Array.from({ length: ROUTES }, (_, i) => `r${i}`);
    for (const name of names) store.apply('GatewayRoute', 'add', { apiVersion: 'switchyard.dev/v1alpha1', kind: 'GatewayRoute', metadata: { namespace: NS, name, generation: 1, resourceVersion: '1', uid: `uid-${name}` }, spec: {} });
    const writer = new StatusWriter(kubeConfig(api.url), store, silentLogger(), 'test', undefined, { pendingHoldMs: 0 });
    cleanup.push(() => writer.stop());
    writer.setEnabled(true);

    // A burst starts with one change: one write, held by the API server.
    writer.update(new Map([[`GatewayRoute/${NS}/r0`, programmed('r0')]]));
    await eventually(() => (api.inFlight() === 1 ? true : undefined), 10_000, 'the first write');
    // The rest of the burst arrives while that write is still under way.
    writer.update(new Map(names.map((n) => [`GatewayRoute/${NS}/${n}`, programmed(n)])));
    await eventually(() => (api.inFlight() === LIMIT ? true : undefined), 10_000, `${LIMIT} writes in flight (${api.inFlight()} were)`);

    api.releaseAll();
    await writer.drained();
    expect(api.most()).toBe(LIMIT);
    expect([...api.patched].sort()).toEqual([...names].sort());
  }, 30_000);
});
