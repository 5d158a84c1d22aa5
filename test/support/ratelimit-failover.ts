/**
 * A rate limit under a Redis failover, measured: real gateways (in this
 * process) count clients in a Sentinel group or a Redis Cluster while steady,
 * bounded load runs through them; a primary is killed with SIGKILL; the load
 * goes on until the gateways use the promoted replica again and a while
 * after. Shared by the failover tests (which assert on it) and `npm run
 * bench` (which reports it).
 *
 * Each client is an API key (`X-API-Key`, a rate-limit key of type Header)
 * with a budget of `limit` requests in a 24-hour window, so that nothing but a
 * window boundary (checked) frees budget during a run: every client should
 * get exactly `limit` answers 200, and the rest 429.
 */
import { Cluster } from 'ioredis';
import pino from 'pino';
import { request, Agent } from 'undici';
import type { ServedRoute } from '../../dataplane/src/contract/policy.ts';
import { rateLimitBucket } from '../../dataplane/src/pipeline/ratelimit.ts';
import { startGateway, type TestGateway } from './gateway.ts';
import { redisCall, startRedisCluster, startSentinelGroup, type RedisProcess, type SentinelGroup, type TestRedisCluster } from './redis-ha.ts';
import { startUpstream, type TestUpstream } from './upstreams.ts';

/** How a run is shaped. */
export interface FailoverLoad {
  topology: 'RedisSentinel' | 'RedisCluster';
  /** Gateways sharing the store; requests go to them in turn. */
  gateways: number;
  /** Distinct clients (API keys). */
  clients: number;
  /** Requests each client may make in the window. */
  limit: number;
  /** Requests per second, over all clients. */
  rate: number;
  /** The primary is killed this long after the load starts. */
  killAfterMs: number;
  /** Load goes on this long after every gateway uses the store again. */
  settleMs: number;
  /** The run ends by this time after the kill whatever happened (bounded). */
  maxAfterKillMs: number;
  /** `middleware.rate_limiting.storage.timeout`. */
  timeout?: string;
}

/** One client's outcome. */
export interface ClientOutcome {
  client: string;
  sent: number;
  allowed: number;
  limited: number;
  /** What Redis holds for the client at the end (its `c` count). */
  stored: number;
}

/** What a run measured. */
export interface FailoverResult {
  load: FailoverLoad;
  requests: number;
  /** Answers by status. */
  statuses: Record<string, number>;
  /** Requests that failed without an answer (connection errors, timeouts of the load generator). */
  failed: number;
  /** Sum over clients of max(0, sent - limit): what an exact limiter refuses. */
  expected429: number;
  seen429: number;
  /** Sum over clients of max(0, allowed - limit). */
  overshoot: number;
  /** The largest overshoot of one client. */
  maxClientOvershoot: number;
  /** Sum over clients of max(0, limit - allowed) among clients that sent more than the limit: refused beyond the limit. */
  undershoot: number;
  /** The killed primary, the node that took over, and how long the Redis side took (sentinels or cluster agreeing). */
  killed: string;
  promoted: string;
  failoverMs: number;
  /** Per gateway: kill → the first request decided by the store again (from its `ratelimit_store_recovered` log line). */
  followMs: (number | null)[];
  /** Decisions made without the store (the fallback), over all gateways. */
  fallbackDecisions: number;
  /** Keys of this run held by each primary at the end (Cluster), or by the new primary (Sentinel). */
  keysPerPrimary: Record<string, number>;
  /** Whether the run crossed a window boundary (which frees one request per client at most). */
  crossedWindow: boolean;
  clients: ClientOutcome[];
  seconds: number;
}

const WINDOW_MS = 86_400_000;
const ROUTE = 'limited';
const KEY = { type: 'Header' as const, header: 'X-API-Key' };

type LogLine = { event?: string; unavailableSince?: string; unavailableMs?: number; time?: number };

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs one failover under load; everything started is stopped, whatever happens. */
export async function runFailover(load: FailoverLoad, log: (line: string) => void = () => undefined): Promise<FailoverResult> {
  const started = Date.now();
  let group: SentinelGroup | undefined;
  let cluster: TestRedisCluster | undefined;
  let upstream: TestUpstream | undefined;
  const gateways: TestGateway[] = [];
  const agent = new Agent({ connections: 64, keepAliveTimeout: 10_000 });
  let seeds: Cluster | undefined;
  try {
    upstream = await startUpstream((_req, res) => res.end('ok'));
    let storage: Record<string, unknown>;
    if (load.topology === 'RedisSentinel') {
      group = await startSentinelGroup();
      storage = { type: 'RedisSentinel', sentinels: group.sentinels, name: group.name };
    } else {
      cluster = await startRedisCluster();
      storage = { type: 'RedisCluster', nodes: cluster.seeds };
    }
    log(`${load.topology} up after ${Date.now() - started} ms`);
    const logs: LogLine[][] = [];
    for (let i = 0; i < load.gateways; i++) {
      const lines: LogLine[] = [];
      logs.push(lines);
      gateways.push(
        await startGateway(
          {
            routes: [{ name: ROUTE, path: '/limited', upstream: 'u', rate_limit: { requests: load.limit, window: '24h', key: KEY } }],
            upstreams: { u: { discovery: { type: 'Static', endpoints: [upstream.url] } } },
            middleware: { rate_limiting: { storage: { ...storage, timeout: load.timeout ?? '50ms', failure_policy: 'open', key_prefix: 'failover:' } } },
            observability: { logging: { access_log: false } },
          },
          { log: pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) }) },
        ),
      );
    }

    const clients = Array.from({ length: load.clients }, (_, i) => `client-${String(i).padStart(3, '0')}`);
    const outcome = new Map(clients.map((c) => [c, { client: c, sent: 0, allowed: 0, limited: 0, stored: 0 }]));
    const statuses: Record<string, number> = {};
    let failed = 0;
    let requests = 0;
    const inFlight = new Set<Promise<void>>();
    const fire = (n: number): void => {
      const client = clients[n % clients.length] as string;
      const gw = gateways[Math.floor(n / clients.length) % gateways.length] as TestGateway;
      const o = outcome.get(client) as ClientOutcome;
      o.sent++;
      requests++;
      const p = request(`${gw.url}/limited`, { headers: { 'x-api-key': client }, dispatcher: agent, headersTimeout: 5_000, bodyTimeout: 5_000 })
        .then(async (res) => {
          await res.body.dump();
          statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
          if (res.statusCode === 200) o.allowed++;
          else if (res.statusCode === 429) o.limited++;
        })
        .catch(() => {
          failed++;
        })
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
    };

    // Steady load: one request every 1000/rate ms, never more than 64 in flight (then the schedule waits).
    const t0 = Date.now();
    const interval = 1000 / load.rate;
    let n = 0;
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        const due = t0 + n * interval;
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait);
        while (inFlight.size >= 64) await Promise.race(inFlight);
        fire(n++);
      }
    })();

    await sleep(load.killAfterMs);
    let old: RedisProcess;
    if (group) old = await group.primary();
    else {
      // The primary holding most of the run's keys: the failover has to matter.
      const counts = await (cluster as TestRedisCluster).keysPerPrimary();
      const primaries = await (cluster as TestRedisCluster).primaries();
      old = primaries.map((p) => p.node).sort((a, b) => (counts[b.address] ?? 0) - (counts[a.address] ?? 0))[0] as RedisProcess;
    }
    const killAt = Date.now();
    await old.kill();
    log(`killed primary ${old.address} after ${killAt - t0} ms of load`);
    const promoted = group ? await group.waitForPrimaryOtherThan(old, load.maxAfterKillMs) : await (cluster as TestRedisCluster).waitForFailover(old, load.maxAfterKillMs);
    const failoverMs = Date.now() - killAt;
    log(`${promoted.address} promoted ${failoverMs} ms after the kill`);
    const recovered = (lines: LogLine[]): LogLine | undefined => lines.find((l) => l.event === 'ratelimit_store_recovered' && Date.parse(l.unavailableSince ?? '') >= killAt - 50);
    const deadline = killAt + load.maxAfterKillMs;
    while (Date.now() < deadline && !logs.every((l) => recovered(l))) await sleep(50);
    await sleep(Math.max(0, Math.min(load.settleMs, deadline - Date.now())));
    stop = true;
    await loop;
    await Promise.all(inFlight);
    const ended = Date.now();

    const followMs = logs.map((lines) => {
      const line = recovered(lines);
      return line ? Date.parse(line.unavailableSince as string) + (line.unavailableMs as number) - killAt : null;
    });
    let fallbackDecisions = 0;
    for (const gw of gateways) {
      const text = await (await request(gw.metricsUrl, { dispatcher: agent })).body.text();
      for (const m of text.matchAll(/switchyard_ratelimit_decisions_total\{result="\w+",store="fallback"\} (\d+)/g)) fallbackDecisions += Number(m[1]);
    }

    // What Redis holds now, read from the node that serves each key.
    const route = { id: ROUTE, rateLimit: { limit: load.limit, windowMs: WINDOW_MS, key: KEY } } as unknown as ServedRoute;
    const redisKey = (client: string): string => `failover:{${rateLimitBucket(route, { identity: undefined, clientIp: undefined, headers: { 'x-api-key': client } }) as string}}`;
    let keysPerPrimary: Record<string, number>;
    if (cluster) {
      seeds = new Cluster(cluster.nodes.filter((n) => n.alive).map((n) => ({ host: '127.0.0.1', port: n.port })), { redisOptions: { commandTimeout: 2_000 } });
      seeds.on('error', () => undefined);
      for (const c of clients) (outcome.get(c) as ClientOutcome).stored = Number((await seeds.hget(redisKey(c), 'c')) ?? 0);
      keysPerPrimary = await cluster.keysPerPrimary();
    } else {
      for (const c of clients) (outcome.get(c) as ClientOutcome).stored = Number((await redisCall(promoted.port, ['HGET', redisKey(c), 'c'])) ?? 0);
      keysPerPrimary = { [promoted.address]: Number(await redisCall(promoted.port, ['DBSIZE'])) };
    }

    const list = [...outcome.values()];
    return {
      load,
      requests,
      statuses,
      failed,
      expected429: list.reduce((s, o) => s + Math.max(0, o.sent - load.limit), 0),
      seen429: list.reduce((s, o) => s + o.limited, 0),
      overshoot: list.reduce((s, o) => s + Math.max(0, o.allowed - load.limit), 0),
      maxClientOvershoot: Math.max(...list.map((o) => o.allowed - load.limit), 0),
      undershoot: list.reduce((s, o) => s + (o.sent > load.limit ? Math.max(0, load.limit - o.allowed) : 0), 0),
      killed: old.address,
      promoted: promoted.address,
      failoverMs,
      followMs,
      fallbackDecisions,
      keysPerPrimary,
      crossedWindow: Math.floor(t0 / WINDOW_MS) !== Math.floor(ended / WINDOW_MS),
      clients: list,
      seconds: Math.round((Date.now() - started) / 100) / 10,
    };
  } finally {
    seeds?.disconnect();
    await Promise.all(gateways.map((g) => g.stop()));
    await agent.close();
    await upstream?.close();
    await group?.stop();
    await cluster?.stop();
  }
}

/** The numbers of a run on one line each, as the tests print them. */
export function describeFailover(r: FailoverResult): string {
  const follow = r.followMs.map((ms) => (ms === null ? 'never' : `${ms} ms`)).join(', ');
  return [
    `${r.load.topology}: ${r.requests} requests at ${r.load.rate}/s from ${r.load.clients} clients (limit ${r.load.limit} each) through ${r.load.gateways} gateway(s), ${r.seconds} s`,
    `answers: ${Object.entries(r.statuses).map(([s, n]) => `${n} × ${s}`).join(', ')}${r.failed ? `, ${r.failed} failed` : ''}`,
    `429: expected ${r.expected429}, seen ${r.seen429}; overshoot ${r.overshoot} (at most ${r.maxClientOvershoot} for one client), refused beyond the limit ${r.undershoot}`,
    `failover: killed ${r.killed}, ${r.promoted} promoted after ${r.failoverMs} ms; the gateway(s) used the store again ${follow} after the kill; ${r.fallbackDecisions} decisions made without it`,
    `keys per primary at the end: ${Object.entries(r.keysPerPrimary).map(([a, n]) => `${a} ${n}`).join(', ')}`,
  ].join('\n');
}
