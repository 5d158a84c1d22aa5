/**
 * Tables never go back in time. Every table an operator sends carries the term
 * of the leadership that sent it (the Lease's UID and transition count); a data
 * plane refuses a table from an earlier term than the one it serves, remembers
 * its term across restarts, and tells the operator its term, which sends it on
 * (503) when it was deposed. Real HTTP on 127.0.0.1: the data plane's own
 * operator client against small operators that speak the protocol, and the
 * operator's own config server.
 */
import { mkdtempSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { request } from 'undici';
import type { RouteTable } from '../../dataplane/src/contract/index.ts';
import { ConfigServer } from '../../operator/src/distribute/server.ts';
import { startGateway } from '../support/gateway.ts';
import { eventually } from '../support/kube.ts';
import { OPERATOR_TOKEN, startDataplane, type TestDataplane } from '../support/operator.ts';

const LEASE = '9d3c2f4e-0000-4000-8000-000000000001';

/** An operator replica reduced to the protocol: it sends `table` under `term` to whoever subscribes. */
interface FakeOperator {
  url: string;
  /** The query of each subscription it got. */
  subscriptions: URLSearchParams[];
  acks: { version: string; applied: boolean }[];
  /** Ends every open stream, as a leader that steps down does. */
  endStreams(): void;
  close(): Promise<void>;
}

async function fakeOperator(table: RouteTable, term: number, identity: string): Promise<FakeOperator> {
  const subscriptions: URLSearchParams[] = [];
  const acks: { version: string; applied: boolean }[] = [];
  const streams = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://operator');
    if (req.method === 'GET' && url.pathname === '/v1/tables/watch') {
      subscriptions.push(url.searchParams);
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write(`${JSON.stringify({ type: 'table', table, leader: { lease: LEASE, term, identity } })}\n`);
      streams.add(res);
      res.on('close', () => streams.delete(res));
      return;
    }
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      if (url.pathname === '/v1/acks') acks.push(JSON.parse(body) as { version: string; applied: boolean });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    subscriptions,
    acks,
    endStreams: () => {
      for (const s of streams) s.end();
    },
    close: async () => {
      for (const s of streams) s.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Two tables from the gateway's own compiler: `before` has /a, `after` has /a and /b. */
async function tables(upstream: string): Promise<{ before: RouteTable; after: RouteTable }> {
  const compileTable = async (paths: string[]): Promise<RouteTable> => {
    const gw = await startGateway({ upstreams: { u: { discovery: { type: 'Static', endpoints: [upstream] } } }, routes: paths.map((p) => ({ path: p, upstream: 'u' })) });
    try {
      return structuredClone(gw.gw.holder.current?.table) as RouteTable;
    } finally {
      await gw.stop();
    }
  };
  return { before: await compileTable(['/a']), after: await compileTable(['/a', '/b']) };
}

describe('leadership terms', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  it('a data plane refuses a table from a deposed leader, before and after a restart, and tells operators its term', async () => {
    const { before, after } = await tables('http://127.0.0.1:9');
    // The current leader (term 5) has the newer table; a deposed one (term 4), still up, the older.
    const leader = await fakeOperator(after, 5, 'op-b');
    const deposed = await fakeOperator(before, 4, 'op-a');
    cleanup.push(() => leader.close(), () => deposed.close());
    const stateDir = mkdtempSync(path.join(tmpdir(), 'switchyard-state-'));
    const applied: string[] = [];
    const track = (dp: TestDataplane): void => dp.gw.holder.onApplied((rt) => applied.push(rt.version));

    const dp = await startDataplane([leader.url, deposed.url], 'dp-1', { stateDir });
    cleanup.push(() => dp.stop());
    track(dp);
    await eventually(() => (dp.gw.holder.current?.version === after.version ? true : undefined), 10_000, 'the leader’s table');
    // The leader's stream ends: the data plane tries the next operator, the deposed one, which
    // hears the term the data plane has, and whose older table is refused.
    leader.endStreams();
    await eventually(() => (deposed.subscriptions.length > 0 ? true : undefined), 10_000, 'a subscription to the deposed replica');
    expect(deposed.subscriptions[0]?.get('lease')).toBe(LEASE);
    expect(deposed.subscriptions[0]?.get('term')).toBe('5');
    await eventually(() => (leader.subscriptions.length > 1 ? true : undefined), 10_000, 'back to the leader');
    expect(dp.gw.holder.current?.version).toBe(after.version);
    expect(deposed.acks).toEqual([]);
    await dp.stop();
    cleanup.pop();

    // Restarted from its state directory, the data plane still knows its term.
    const again = await startDataplane([deposed.url, leader.url], 'dp-1', { stateDir });
    cleanup.push(() => again.stop());
    track(again);
    expect(again.gw.holder.current?.version).toBe(after.version);
    await eventually(() => (deposed.subscriptions.length > 1 && leader.subscriptions.length > 2 ? true : undefined), 10_000, 'the deposed replica, then the leader');
    expect(deposed.subscriptions[1]?.get('term')).toBe('5');
    expect(again.gw.holder.current?.version).toBe(after.version);
    expect(deposed.acks).toEqual([]);
    // Never the older table, in either life.
    expect(applied).not.toContain(before.version);
    expect(applied).toEqual([after.version]);
  });

  it('a data plane takes a table from a later term, and any table without a term', async () => {
    const { before, after } = await tables('http://127.0.0.1:9');
    const first = await fakeOperator(before, 3, 'op-a');
    const later = await fakeOperator(after, 4, 'op-b');
    cleanup.push(() => first.close(), () => later.close());
    const dp = await startDataplane([first.url, later.url], 'dp-1');
    cleanup.push(() => dp.stop());
    await eventually(() => (dp.gw.holder.current?.version === before.version ? true : undefined), 10_000, 'term 3’s table');
    first.endStreams();
    await eventually(() => (dp.gw.holder.current?.version === after.version ? true : undefined), 10_000, 'term 4’s table');
    expect(later.acks.at(-1)).toMatchObject({ version: after.version, applied: true });
  });

  it('the operator’s config server sends its term with each table and turns away a data plane from a later term', async () => {
    const { before } = await tables('http://127.0.0.1:9');
    const server = new ConfigServer({ token: OPERATOR_TOKEN, isLeader: () => true, events: { onFleetChange: () => undefined }, log: { info: () => undefined, warn: () => undefined } });
    const port = await server.listen(0, '127.0.0.1');
    cleanup.push(() => server.close());
    server.setTerm({ lease: LEASE, term: 7, identity: 'op-c' });
    server.publish(before);
    const subscribe = (query: string) => request(`http://127.0.0.1:${port}/v1/tables/watch?dataplane=dp-1&${query}`, { headers: { authorization: `Bearer ${OPERATOR_TOKEN}` } });

    const ahead = await subscribe(`lease=${LEASE}&term=8`);
    expect(ahead.statusCode).toBe(503);
    expect(ahead.headers['retry-after']).toBe('1');
    expect(await ahead.body.json()).toEqual({ error: 'a later leader exists; try another replica' });

    for (const query of [`lease=${LEASE}&term=7`, `lease=${LEASE}&term=6`, 'lease=another-lease&term=99', '']) {
      const res = await subscribe(query);
      expect(res.statusCode, query).toBe(200);
      const first = await new Promise<string>((resolve) => {
        let text = '';
        res.body.on('data', (c: Buffer) => {
          text += c.toString();
          if (text.includes('\n')) resolve(text.slice(0, text.indexOf('\n')));
        });
      });
      res.body.on('error', () => undefined);
      res.body.destroy();
      // seq and epoch number the server's messages (stream protocol 2); the rest is the table and its term.
      expect(JSON.parse(first), query).toEqual({ type: 'table', table: before, leader: { lease: LEASE, term: 7, identity: 'op-c' }, seq: expect.any(Number), epoch: expect.any(String) });
    }
  });
});
