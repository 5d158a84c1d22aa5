import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';
import { startGateway } from '../support/gateway.ts';

async function hit(url: string, dispatcher?: Agent): Promise<{ status: number; upstream: string | undefined }> {
  const res = await request(url, dispatcher ? { dispatcher } : {});
  await res.body.dump();
  const name = res.headers['x-upstream'];
  return { status: res.statusCode, upstream: typeof name === 'string' ? name : undefined };
}

const upstreamsFor = (defs: Record<string, { urls: string[]; lb?: string }>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(defs).map(([name, d]) => [name, { discovery: { type: 'Static', endpoints: d.urls }, load_balancer: { type: d.lb ?? 'RoundRobin' } }]));

describe('load balancing', () => {
  const ups: TestUpstream[] = [];
  beforeAll(async () => {
    for (const name of ['a', 'b', 'c']) ups.push(await startUpstream(echo(name)));
  });
  afterAll(async () => {
    await Promise.all(ups.map((u) => u.close()));
  });

  it('RoundRobin rotates evenly over endpoints', async () => {
    const gw = await startGateway({ routes: [{ path: '/x', upstream: 'svc' }], upstreams: upstreamsFor({ svc: { urls: ups.map((u) => u.url) } }) });
    try {
      const counts: Record<string, number> = {};
      for (let i = 0; i < 30; i++) {
        const r = await hit(`${gw.url}/x`);
        counts[r.upstream ?? '?'] = (counts[r.upstream ?? '?'] ?? 0) + 1;
      }
      expect(counts).toEqual({ a: 10, b: 10, c: 10 });
    } finally {
      await gw.stop();
    }
  });

  it('LeastRequest sends new requests away from a busy endpoint', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const busy = await startUpstream((_req, res) => {
      void gate.then(() => {
        res.writeHead(200, { 'x-upstream': 'busy' });
        res.end();
      });
    });
    const gw = await startGateway({ routes: [{ path: '/x', upstream: 'svc' }], upstreams: upstreamsFor({ svc: { urls: [busy.url, ups[0]!.url], lb: 'LeastRequest' } }) });
    try {
      const slow = [hit(`${gw.url}/x`), hit(`${gw.url}/x`)];
      await new Promise((r) => setTimeout(r, 100));
      // One request is parked on "busy" (the other went to "a" and finished); every new one goes to "a".
      const next = [];
      for (let i = 0; i < 10; i++) next.push(await hit(`${gw.url}/x`));
      expect(next.every((r) => r.upstream === 'a')).toBe(true);
      release();
      const first = await Promise.all(slow);
      expect(first.map((r) => r.upstream).sort()).toEqual(['a', 'busy']);
    } finally {
      release();
      await gw.stop();
      await busy.close();
    }
  });

  it('Random uses every endpoint', async () => {
    const gw = await startGateway({ routes: [{ path: '/x', upstream: 'svc' }], upstreams: upstreamsFor({ svc: { urls: ups.map((u) => u.url), lb: 'Random' } }) });
    try {
      const seen = new Set<string>();
      for (let i = 0; i < 60; i++) seen.add((await hit(`${gw.url}/x`)).upstream ?? '?');
      expect(seen).toEqual(new Set(['a', 'b', 'c']));
    } finally {
      await gw.stop();
    }
  });

  it('splits a route across weighted upstreams exactly (90/10 canary)', async () => {
    const gw = await startGateway({
      routes: [{ path: '/x', backends: [{ upstream: 'stable', weight: 90 }, { upstream: 'canary', weight: 10 }] }],
      upstreams: upstreamsFor({ stable: { urls: [ups[0]!.url] }, canary: { urls: [ups[1]!.url] } }),
    });
    try {
      const counts: Record<string, number> = {};
      for (let i = 0; i < 200; i++) {
        const r = await hit(`${gw.url}/x`);
        counts[r.upstream ?? '?'] = (counts[r.upstream ?? '?'] ?? 0) + 1;
      }
      expect(counts).toEqual({ a: 180, b: 20 });
    } finally {
      await gw.stop();
    }
  });
});

describe('hot reload', () => {
  it('applies a changed file and keeps serving the old table when the new one is invalid', async () => {
    const a = await startUpstream(echo('a'));
    const b = await startUpstream(echo('b'));
    const config = (url: string): Record<string, unknown> => ({ routes: [{ path: '/x', upstream: 'svc' }], upstreams: upstreamsFor({ svc: { urls: [url] } }) });
    const gw = await startGateway(config(a.url), { watch: true });
    try {
      expect((await hit(`${gw.url}/x`)).upstream).toBe('a');
      const before = gw.gw.holder.current?.version;
      gw.writeConfig(config(b.url));
      // The file watcher picks the change up on its own.
      for (let i = 0; i < 200 && gw.gw.holder.current?.version === before; i++) await new Promise((r) => setTimeout(r, 10));
      expect(gw.gw.holder.current?.version).not.toBe(before);
      expect((await hit(`${gw.url}/x`)).upstream).toBe('b');

      const serving = gw.gw.holder.current?.version;
      gw.writeConfig({ routes: [{ path: 'no-slash', upstream: 'svc' }], upstreams: upstreamsFor({ svc: { urls: [a.url] } }) });
      const result = await gw.gw.reload('test');
      expect(result.applied).toBe(false);
      if (!result.applied) expect(result.error).toMatch(/routes\[0\]\.path.*must start with "\/"/);
      expect(gw.gw.holder.current?.version).toBe(serving);
      expect((await hit(`${gw.url}/x`)).upstream).toBe('b');
      const metrics = await (await request(gw.metricsUrl)).body.text();
      expect(metrics).toMatch(/switchyard_table_reloads_total\{result="rejected"\} [1-9]/);
    } finally {
      await gw.stop();
      await a.close();
      await b.close();
    }
  });

  it('reloads many times under steady load with zero failed requests', async () => {
    const a = await startUpstream(echo('a'));
    const b = await startUpstream(echo('b'));
    const tables = [
      { routes: [{ path: '/x', upstream: 'svc' }, { path: '/y/{id}', upstream: 'svc' }], upstreams: upstreamsFor({ svc: { urls: [a.url] } }) },
      { routes: [{ path: '/x', upstream: 'svc' }, { path: '/y/{id}', upstream: 'svc' }, { path: '/z', upstream: 'svc' }], upstreams: upstreamsFor({ svc: { urls: [a.url, b.url] } }) },
      { routes: [{ path: '/y/{id}', upstream: 'svc' }, { path: '/x', upstream: 'svc' }], upstreams: upstreamsFor({ svc: { urls: [b.url], lb: 'LeastRequest' } }) },
    ];
    const gw = await startGateway(tables[0]!);
    const agent = new Agent({ connections: 16 });
    let ok = 0;
    const failures: string[] = [];
    let running = true;
    const worker = async (n: number): Promise<void> => {
      while (running) {
        try {
          const r = await hit(`${gw.url}/${n % 2 === 0 ? 'x' : `y/${n}`}`, agent);
          if (r.status === 200) ok++;
          else failures.push(String(r.status));
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    };
    const workers = Array.from({ length: 16 }, (_, i) => worker(i));
    let reloads = 0;
    try {
      for (let i = 0; i < 60; i++) {
        gw.writeConfig(tables[i % tables.length]!);
        const result = await gw.gw.reload('test');
        expect(result.applied).toBe(true);
        reloads++;
        await new Promise((r) => setTimeout(r, 25));
      }
    } finally {
      running = false;
      await Promise.all(workers);
      await agent.close();
      await gw.stop();
      await a.close();
      await b.close();
    }
    expect(reloads).toBe(60);
    expect(failures).toEqual([]);
    expect(ok).toBeGreaterThan(200);
  });

  it('lets a request in flight finish on an endpoint that a reload removed', async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => (release = r));
    const old = await startUpstream((_req, res) => void gate.then(() => res.writeHead(200, { 'x-upstream': 'old' }).end('done')));
    const fresh = await startUpstream(echo('fresh'));
    const gw = await startGateway({ routes: [{ path: '/x', upstream: 'svc' }], upstreams: upstreamsFor({ svc: { urls: [old.url] } }) });
    try {
      const inflight = hit(`${gw.url}/x`);
      await new Promise((r) => setTimeout(r, 50));
      gw.writeConfig({ routes: [{ path: '/x', upstream: 'svc' }], upstreams: upstreamsFor({ svc: { urls: [fresh.url] } }) });
      expect((await gw.gw.reload('test')).applied).toBe(true);
      expect((await hit(`${gw.url}/x`)).upstream).toBe('fresh');
      release();
      expect(await inflight).toEqual({ status: 200, upstream: 'old' });
    } finally {
      release();
      await gw.stop();
      await old.close();
      await fresh.close();
    }
  });
});
