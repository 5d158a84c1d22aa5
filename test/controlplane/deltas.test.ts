/**
 * Table deltas against a real API server, the real operator and real data
 * planes: changes travel as deltas, and whatever happens to the messages
 * (lost, out of order, replayed, the stream cut, the operator restarted, the
 * data plane restarted from its saved table), the data plane ends up with
 * exactly the table the operator would send whole, and never goes back to
 * an older one. A relay between the two (test/support/stream-relay.ts) loses,
 * reorders and replays messages.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../dataplane/src/contract/index.ts';
import type { Operator } from '../../operator/src/operator.ts';
import { startControlPlane, type ControlPlane } from '../support/control-plane.ts';
import { eventually, installCrds, kubeFor, type Kube } from '../support/kube.ts';
import { OPERATOR_TOKEN, startDataplane, startOperator, type TestDataplane } from '../support/operator.ts';
import { startStreamRelay, type StreamRelay } from '../support/stream-relay.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstreams.ts';

const NS = 'deltas';

const status = async (url: string): Promise<number> => {
  const res = await request(url);
  await res.body.dump();
  return res.statusCode;
};

describe('table deltas', () => {
  let cp: ControlPlane;
  let kube: Kube;
  let op: Operator;
  let up: TestUpstream;
  const dataplanes: TestDataplane[] = [];
  const relays: StreamRelay[] = [];

  const route = (name: string, p: string, upstream = 'main'): string => `apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: ${name}, namespace: ${NS} }
spec: { path: { type: Exact, value: ${p} }, upstream: ${upstream} }
---
`;
  const upstreamYaml = (name: string, url: string): string => `apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: ${name}, namespace: ${NS} }
spec: { static: { endpoints: ["${url}"] } }
---
`;
  const del = (kind: string, ...names: string[]): Promise<string> => kube.kubectl(['delete', kind, '-n', NS, '--wait=false', ...names]);

  /** The data plane holds exactly the operator's table: same version, same content. */
  const inSync = (dp: TestDataplane, what: string, operator: () => Operator = () => op): Promise<true> =>
    eventually(
      () => {
        const mine = dp.gw.holder.current?.table;
        const theirs = operator().table;
        return mine !== undefined && theirs !== undefined && mine.version === theirs.version && canonicalJson(mine) === canonicalJson(theirs) ? true : undefined;
      },
      30_000,
      what,
    );

  const relayed = async (id: string, options: { stateDir?: string } = {}): Promise<{ dp: TestDataplane; relay: StreamRelay }> => {
    const relay = await startStreamRelay(`http://127.0.0.1:${op.port}`);
    relays.push(relay);
    const dp = await startDataplane([relay.url], id, options);
    dataplanes.push(dp);
    await inSync(dp, `${id} has the first table`);
    return { dp, relay };
  };

  /** Waits until the operator compiled a table that has (or lacks) the route. */
  const compiled = (name: string, present = true): Promise<true> =>
    eventually(() => ((op.table?.routes.some((r) => r.id === `${NS}/${name}`) ?? false) === present ? true : undefined), 30_000, `${name} ${present ? 'in' : 'out of'} the operator's table`);

  beforeAll(async () => {
    cp = await startControlPlane();
    kube = kubeFor(cp);
    await installCrds(kube, NS);
    up = await startUpstream(echo('main'));
    await kube.apply(upstreamYaml('main', up.url) + route('base', '/base'));
    op = await startOperator(kube, 'operator-deltas');
    await compiled('base');
  });

  afterAll(async () => {
    for (const dp of dataplanes) await dp.stop();
    for (const r of relays) await r.close();
    await op?.stop();
    await up?.close();
    await cp?.stop();
  });

  it('sends changes as deltas after one whole table, and the data plane serves them', async () => {
    const dp = await startDataplane([`http://127.0.0.1:${op.port}`], 'dp-plain');
    dataplanes.push(dp);
    await inSync(dp, 'the first table');
    await kube.apply(route('d1', '/d1') + upstreamYaml('second', up.url));
    await compiled('d1');
    await inSync(dp, 'd1 added');
    expect(await status(`${dp.url}/d1`)).toBe(200);
    await kube.apply(route('d1', '/d1-moved', 'second'));
    await eventually(() => (op.table?.routes.find((r) => r.id === `${NS}/d1`)?.path.value === '/d1-moved' ? true : undefined), 30_000, 'd1 changed');
    await inSync(dp, 'd1 changed');
    expect(await status(`${dp.url}/d1-moved`)).toBe(200);
    expect(await status(`${dp.url}/d1`)).toBe(404);
    await del('gatewayroute', 'd1');
    await compiled('d1', false);
    await inSync(dp, 'd1 removed');
    expect(await status(`${dp.url}/d1-moved`)).toBe(404);
    const mine = op.server.fleet().find((d) => d.id === 'dp-plain');
    expect(mine?.protocol).toBe(2);
    expect(mine?.sent.tables).toBe(1);
    expect(mine?.sent.deltas).toBeGreaterThanOrEqual(3);
    expect(dp.source.counts.deltas).toBe(mine?.sent.deltas);
    expect(dp.source.counts.resyncs).toBe(0);
  });

  it('sends whole tables to a data plane that does not ask for deltas', async () => {
    const res = await request(`http://127.0.0.1:${op.port}/v1/tables/watch?dataplane=dp-protocol-1`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } });
    const lines: { type: string }[] = [];
    let buffer = '';
    const reading = (async () => {
      for await (const chunk of res.body) {
        buffer += (chunk as Buffer).toString('utf8');
        let nl = buffer.indexOf('\n');
        while (nl >= 0) {
          lines.push(JSON.parse(buffer.slice(0, nl)) as { type: string });
          buffer = buffer.slice(nl + 1);
          nl = buffer.indexOf('\n');
        }
      }
    })().catch(() => undefined);
    await eventually(() => (lines.length >= 1 ? true : undefined), 10_000, 'the first line');
    await kube.apply(route('p1', '/p1'));
    await compiled('p1');
    await eventually(() => (lines.filter((l) => l.type === 'table').length >= 2 ? true : undefined), 10_000, 'a second whole table');
    expect(lines.filter((l) => l.type === 'delta')).toEqual([]);
    expect(op.server.fleet().find((d) => d.id === 'dp-protocol-1')?.protocol).toBe(1);
    res.body.destroy();
    await reading;
    await del('gatewayroute', 'p1');
    await compiled('p1', false);
  });

  it('resyncs with the whole table after a lost delta', async () => {
    const { dp, relay } = await relayed('dp-lossy');
    let drop = 1;
    relay.filter = (line) => (line.type === 'delta' && drop-- > 0 ? [] : [line.text]);
    await kube.apply(route('lost-1', '/lost-1'));
    await compiled('lost-1');
    // The heartbeat names a version the data plane does not have, or the next delta does not fit: either way it resyncs.
    await kube.apply(route('lost-2', '/lost-2'));
    await compiled('lost-2');
    await inSync(dp, 'after the lost delta');
    expect(dp.source.counts.resyncs).toBeGreaterThanOrEqual(1);
    expect(await status(`${dp.url}/lost-1`)).toBe(200);
    expect(await status(`${dp.url}/lost-2`)).toBe(200);
  });

  it('resyncs when deltas come out of order, and never applies one that does not fit', async () => {
    const { dp, relay } = await relayed('dp-reorder');
    let held: string | undefined;
    let swapped = false;
    relay.filter = (line) => {
      // While a delta is held back, heartbeats (which would name the newer version) are held back too.
      if (line.type === 'heartbeat' && held !== undefined && !swapped) return [];
      if (line.type !== 'delta' || swapped) return [line.text];
      if (held === undefined) {
        held = line.text;
        return [];
      }
      swapped = true;
      return [line.text, held];
    };
    await kube.apply(route('order-1', '/order-1'));
    await compiled('order-1');
    await eventually(() => (held !== undefined ? true : undefined), 10_000, 'the first delta held back');
    await kube.apply(route('order-2', '/order-2'));
    await compiled('order-2');
    await inSync(dp, 'after the swapped deltas');
    expect(swapped).toBe(true);
    expect(dp.source.counts.resyncs).toBeGreaterThanOrEqual(1);
    expect(await status(`${dp.url}/order-1`)).toBe(200);
    expect(await status(`${dp.url}/order-2`)).toBe(200);
  });

  it('ignores a replayed older message, even one that would fit (a route added, then removed)', async () => {
    const { dp, relay } = await relayed('dp-replay');
    await kube.apply(route('aba', '/aba'));
    await compiled('aba');
    await inSync(dp, 'aba added');
    const added = relay.seen.filter((l) => l.type === 'delta').at(-1)?.text;
    const opening = relay.seen.find((l) => l.type === 'table')?.text;
    expect(added).toBeDefined();
    await del('gatewayroute', 'aba');
    await compiled('aba', false);
    await inSync(dp, 'aba removed');
    // The table is back at the version the first delta applies to: replay that delta, and the opening table, with the next heartbeat.
    const resyncs = dp.source.counts.resyncs;
    let replayed = false;
    relay.filter = (line) => {
      if (line.type !== 'heartbeat' || replayed) return [line.text];
      replayed = true;
      return [added as string, opening as string, line.text];
    };
    await eventually(() => (dp.source.counts.stale >= 2 ? true : undefined), 10_000, 'both replays ignored');
    relay.filter = (line) => [line.text];
    expect(dp.source.counts.resyncs).toBe(resyncs);
    expect(await status(`${dp.url}/aba`)).toBe(404);
    await inSync(dp, 'still the operator table');
  });

  it('resyncs after its stream is cut while changes happen', async () => {
    const { dp, relay } = await relayed('dp-cut');
    relay.filter = () => [];
    await kube.apply(route('cut-1', '/cut-1'));
    await compiled('cut-1');
    relay.filter = (line) => [line.text];
    relay.cutStreams();
    await inSync(dp, 'after the reconnect');
    expect(await status(`${dp.url}/cut-1`)).toBe(200);
  });

  it('restarts from its saved whole table, serves it without the operator, then resyncs', async () => {
    const stateDir = mkdtempSync(path.join(tmpdir(), 'sy-deltas-'));
    const first = await startDataplane([`http://127.0.0.1:${op.port}`], 'dp-saved', { stateDir });
    await inSync(first, 'first boot');
    await kube.apply(route('saved-1', '/saved-1'));
    await compiled('saved-1');
    await inSync(first, 'saved-1 by delta');
    expect(first.source.counts.deltas).toBeGreaterThanOrEqual(1);
    await first.stop();
    // The file holds the whole table the deltas led to, not a delta.
    const saved = JSON.parse(readFileSync(path.join(stateDir, 'table.json'), 'utf8')) as { table: { version: string } };
    expect(canonicalJson(saved.table)).toBe(canonicalJson(op.table));
    const savedVersion = saved.table.version;

    await kube.apply(route('saved-2', '/saved-2'));
    await compiled('saved-2');
    // No operator reachable: it serves the saved table.
    const offline = await startDataplane(['http://127.0.0.1:9'], 'dp-saved', { stateDir });
    try {
      expect(offline.gw.holder.current?.version).toBe(savedVersion);
      expect(await status(`${offline.url}/saved-1`)).toBe(200);
      expect(await status(`${offline.url}/saved-2`)).toBe(404);
    } finally {
      await offline.stop();
    }
    const again = await startDataplane([`http://127.0.0.1:${op.port}`], 'dp-saved', { stateDir });
    dataplanes.push(again);
    await inSync(again, 'resynced after the restart');
    expect(await status(`${again.url}/saved-2`)).toBe(200);
    await kube.apply(route('saved-3', '/saved-3'));
    await compiled('saved-3');
    await inSync(again, 'deltas again after the restart');
    expect(again.source.counts.deltas).toBeGreaterThanOrEqual(1);
  });

  it('takes the whole table from a restarted operator (a new epoch), then its deltas', async () => {
    const { dp, relay } = await relayed('dp-op-restart');
    const before = dp.source.counts.tables;
    await op.stop();
    await kube.apply(route('while-down', '/while-down'));
    op = await startOperator(kube, 'operator-deltas-2');
    relay.target = `http://127.0.0.1:${op.port}`;
    relay.cutStreams();
    await compiled('while-down');
    await inSync(dp, 'the restarted operator table');
    expect(dp.source.counts.tables).toBeGreaterThan(before);
    await kube.apply(route('after-restart', '/after-restart'));
    await compiled('after-restart');
    await inSync(dp, 'a delta from the restarted operator');
    expect(await status(`${dp.url}/after-restart`)).toBe(200);
  });

  it('matches the operator table after a random sequence of changes, all the way through', async () => {
    // A deterministic sequence (seeded), so a failure can be replayed.
    let a = 20261203;
    const rnd = (): number => {
      a = (a * 1103515245 + 12345) % 2147483648;
      return a / 2147483648;
    };
    const dp = await startDataplane([`http://127.0.0.1:${op.port}`], 'dp-random');
    dataplanes.push(dp);
    await inSync(dp, 'the first table');
    const live = new Set<string>();
    const ups = ['main'];
    for (let step = 0; step < 40; step++) {
      const r = rnd();
      const names = [...live];
      if (r < 0.4 || names.length === 0) {
        const name = `rnd-${step}`;
        live.add(name);
        await kube.apply(route(name, `/rnd/${step}`, ups[Math.floor(rnd() * ups.length)]));
      } else if (r < 0.6) {
        const name = names[Math.floor(rnd() * names.length)] as string;
        await kube.apply(route(name, `/rnd/${name}/v${step}`, ups[Math.floor(rnd() * ups.length)]));
      } else if (r < 0.75) {
        const name = names[Math.floor(rnd() * names.length)] as string;
        live.delete(name);
        await del('gatewayroute', name);
      } else if (r < 0.9) {
        const name = `u${step}`;
        ups.push(name);
        await kube.apply(upstreamYaml(name, up.url));
      } else {
        await kube.apply(upstreamYaml(ups[Math.floor(rnd() * ups.length)] as string, `http://127.0.0.1:${40000 + step}`));
      }
      // Now and then wait for the data plane; mostly not, so that changes overlap.
      if (step % 10 === 9) {
        await eventually(() => (op.table?.routes.filter((x) => x.id.startsWith(`${NS}/rnd-`)).length === live.size ? true : undefined), 30_000, `step ${step} compiled`);
        await inSync(dp, `step ${step}`);
      }
    }
    await eventually(() => (op.table?.routes.filter((x) => x.id.startsWith(`${NS}/rnd-`)).length === live.size ? true : undefined), 30_000, 'the last change compiled');
    await inSync(dp, 'the end of the sequence');
    expect(dp.source.counts.deltas).toBeGreaterThanOrEqual(4);
    expect(dp.source.counts.resyncs).toBe(0);
  });
});
