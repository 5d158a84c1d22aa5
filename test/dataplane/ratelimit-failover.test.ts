/**
 * Rate limits through a Redis failover, with real processes: a Sentinel group
 * (a primary, two replicas, three sentinels) and a Redis Cluster (three
 * primaries, each with a replica), all on 127.0.0.1. Steady, bounded load runs
 * through a gateway while the primary holding the clients' counts is killed
 * (SIGKILL). Every answer must be 200 or 429, every client must get exactly
 * its limit (docs/security.md, "Failover": one gateway overshoots by nothing),
 * and the gateway must follow the promoted replica: at the end that node holds
 * every count the gateway allowed, those of the outage included.
 *
 * The numbers are printed; `npm run bench` reports them in
 * docs/performance.md. No timing is asserted.
 */
import { Redis } from 'ioredis';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import { SentinelSwitchWatcher } from '../../dataplane/src/pipeline/ratelimit-store.ts';
import { eventually } from '../support/kube.ts';
import { startGateway } from '../support/gateway.ts';
import { redisCall, startSentinelGroup } from '../support/redis-ha.ts';
import { describeFailover, runFailover, type FailoverLoad, type FailoverResult } from '../support/ratelimit-failover.ts';
import { startUpstream } from '../support/upstreams.ts';

/**
 * 30 clients at 200 requests a second reach the limit of 25 about 3.75 s into
 * the run; the primary dies at 2 s, so the limit is reached while no primary
 * answers, and enforced again by the promoted one. The 250 ms deadline keeps
 * a busy shared machine's pauses from reading as Redis failing (the default,
 * 50 ms, is what `npm run bench` measures).
 */
const LOAD: Omit<FailoverLoad, 'topology'> = { gateways: 1, clients: 30, limit: 25, rate: 200, killAfterMs: 2_000, settleMs: 1_500, maxAfterKillMs: 25_000, timeout: '250ms' };

function expectLimitsHeld(r: FailoverResult): void {
  // No 5xx, no failed request: every answer is the upstream's or the limit's.
  expect(r.failed).toBe(0);
  expect(Object.keys(r.statuses).sort()).toEqual(['200', '429']);
  expect(r.requests).toBe(r.statuses['200']! + r.statuses['429']!);
  // Not vacuous: the store failed under the load, and every client went over its limit.
  expect(r.fallbackDecisions).toBeGreaterThan(0);
  for (const c of r.clients) expect(c.sent, c.client).toBeGreaterThan(r.load.limit);
  // One gateway: no overshoot. A window boundary crossed mid-run frees at most one request per client.
  const slack = r.crossedWindow ? 1 : 0;
  for (const c of r.clients) {
    expect(c.allowed, `${c.client}: ${c.sent} sent`).toBeGreaterThanOrEqual(r.load.limit);
    expect(c.allowed, `${c.client}: ${c.sent} sent`).toBeLessThanOrEqual(r.load.limit + slack);
  }
  expect(r.seen429).toBeGreaterThanOrEqual(r.expected429 - slack * r.clients.length);
  // Followed: the promoted node counts every request the gateway allowed, before, during and after the failover.
  for (const c of r.clients) expect(c.stored, c.client).toBe(c.allowed);
  expect(r.followMs.every((ms) => ms !== null)).toBe(true);
}

describe('rate limits through a Redis failover', () => {
  it('Sentinel: kill the primary under load; no 5xx, exactly the limit, and the gateway follows the new primary', async () => {
    const r = await runFailover({ ...LOAD, topology: 'RedisSentinel' });
    process.stdout.write(`${describeFailover(r)}\n`);
    expect(r.promoted).not.toBe(r.killed);
    expectLimitsHeld(r);
  }, 90_000);

  it('Sentinel, manual failover (SENTINEL FAILOVER): the old primary is still up and still a primary, and the gateway moves to the new one before the sentinels demote it', async () => {
    const group = await startSentinelGroup();
    const up = await startUpstream((_req, res) => res.end('ok'));
    const gw = await startGateway({
      routes: [{ name: 'limited', path: '/limited', upstream: 'u', rate_limit: { requests: 5, window: '24h', key: { type: 'Route' } } }],
      upstreams: { u: { discovery: { type: 'Static', endpoints: [up.url] } } },
      middleware: { rate_limiting: { storage: { type: 'RedisSentinel', sentinels: group.sentinels, name: group.name, timeout: '250ms', key_prefix: 'manual:' } } },
    });
    const get = async (): Promise<number> => {
      const res = await request(`${gw.url}/limited`);
      await res.body.dump();
      return res.statusCode;
    };
    try {
      expect([await get(), await get()]).toEqual([200, 200]);
      const old = await group.primary();
      await redisCall(Number(group.sentinels[0]?.split(':')[1]), ['SENTINEL', 'FAILOVER', group.name]);
      const promoted = await group.waitForPrimaryOtherThan(old);
      const role = async (port: number): Promise<string> => String(((await redisCall(port, ['ROLE'])) as unknown[])[0]);
      const key = 'manual:{limited:86400000:route}';
      const statuses: number[] = [];
      // Until the sentinels demote it, the old primary takes writes the new one never sees: the gateway must not wait for that.
      for (;;) {
        expect(await role(old.port), 'the gateway was still on the old primary when the sentinels demoted it').toBe('master');
        statuses.push(await get());
        if (String(await redisCall(promoted.port, ['HGET', key, 'c'])) === '5') break;
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
      expect(statuses.slice(3).every((s) => s === 429)).toBe(true);
    } finally {
      await gw.stop();
      await up.close();
      await group.stop();
    }
  }, 60_000);

  it('Sentinel: a new primary announced while the client is still asking the sentinels moves it once connected, and never ends it', async () => {
    // The race that left a gateway on the local fallback for good: the sentinels announce the
    // new primary (+switch-master) while the client, reconnecting, waits for their answer.
    const group = await startSentinelGroup();
    const primary = await group.primary();
    const topology = { type: 'RedisSentinel' as const, name: group.name, sentinels: group.sentinels.map((a) => ({ host: '127.0.0.1', port: Number(a.split(':')[1]) })) };
    const retry = (): number => 50;
    const client = new Redis({ sentinels: topology.sentinels, name: group.name, retryStrategy: retry, sentinelRetryStrategy: retry, enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: 2_000 });
    const statuses: string[] = [];
    client.on('error', () => undefined);
    for (const event of ['connecting', 'ready', 'end']) client.on(event, () => statuses.push(event));
    const watcher = new SentinelSwitchWatcher(client, topology, undefined);
    try {
      await eventually(() => (client.status === 'ready' ? true : undefined), 10_000, 'the client on the primary');
      // The sentinels stop answering; the client reconnects and asks them for the primary.
      for (const s of group.sentinelNodes) s.pause();
      client.disconnect(true);
      await eventually(() => (client.status === 'connecting' ? true : undefined), 10_000, 'the client asking the sentinels');
      watcher.switched('127.0.0.1', String(primary.port));
      expect(client.status).toBe('connecting');
      for (const s of group.sentinelNodes) s.resume();
      await eventually(() => (client.status === 'ready' || client.status === 'end' ? true : undefined), 15_000, 'the client connected again, or ended');
      expect(client.status).toBe('ready');
      expect(`${client.stream.remoteAddress}:${client.stream.remotePort}`).toBe(primary.address);
      expect(await client.ping()).toBe('PONG');
      expect(statuses).not.toContain('end');
    } finally {
      watcher.close();
      client.disconnect(false);
      for (const s of group.sentinelNodes) s.resume();
      await group.stop();
    }
  }, 60_000);

  it('Cluster: keys spread over three primaries; kill the one with most of them under load; same expectations', async () => {
    const r = await runFailover({ ...LOAD, topology: 'RedisCluster' });
    process.stdout.write(`${describeFailover(r)}\n`);
    // Hash tags keep each client's script in one slot, and the clients spread over every primary, the promoted one included.
    expect(Object.keys(r.keysPerPrimary)).toHaveLength(3);
    expect(Object.keys(r.keysPerPrimary)).toContain(r.promoted);
    for (const n of Object.values(r.keysPerPrimary)) expect(n).toBeGreaterThan(0);
    expect(Object.values(r.keysPerPrimary).reduce((a, b) => a + b, 0)).toBe(r.load.clients);
    expectLimitsHeld(r);
  }, 90_000);
});
