/**
 * Rate limits through a Redis failover: a Sentinel group (a primary, two
 * replicas, three sentinels) and a Redis Cluster (three primaries with a
 * replica each) of Debian's redis-server, on 127.0.0.1. Steady load goes
 * through the gateway (in this process) while the primary that holds the
 * clients' counts is killed; the run reports what the tests assert and the
 * timings they do not: requests, 429s expected and seen, overshoot, how long
 * the Redis side took to promote a replica and the gateway to use it.
 *
 * With one gateway nothing should overshoot (docs/security.md, "Failover");
 * the full run adds two gateways, where the overshoot is what the other
 * gateway allowed while neither reached Redis. Every run is bounded: the load
 * stops 1.5 s after the gateways follow, and 25 s after the kill at the latest.
 */
import { runFailover, type FailoverResult } from '../test/support/ratelimit-failover.ts';
import { cpus } from 'node:os';
import { cpuPlan, pinSelf } from './lib/processes.ts';
import { round } from './lib/stats.ts';

/**
 * The gateway's deadline for Redis, as in the failover tests. The default, 50
 * ms, is for a gateway with a core of its own: on a shared 2-core machine the
 * nine Redis processes, the gateway and the load generator stall one another
 * past it, each stall makes the gateway skip Redis for a second, and the run
 * would measure the machine rather than the failover.
 */
const TIMEOUT = '250ms';

/** One run's numbers. */
export interface RedisFailoverRun {
  topology: 'RedisSentinel' | 'RedisCluster';
  gateways: number;
  clients: number;
  limit: number;
  rate: number;
  requests: number;
  statuses: Record<string, number>;
  failed: number;
  expected429: number;
  seen429: number;
  overshoot: number;
  maxClientOvershoot: number;
  undershoot: number;
  failoverMs: number;
  /** Per gateway; null when it had not used the store again when the run ended. */
  followMs: (number | null)[];
  fallbackDecisions: number;
  keysPerPrimary: Record<string, number>;
  seconds: number;
}

/** The section's result. */
export interface RedisFailoverResult {
  /** `middleware.rate_limiting.storage.timeout` in every run. */
  timeout: string;
  runs: RedisFailoverRun[];
}

/** Options of the section. */
export interface RedisFailoverOptions {
  quick: boolean;
  log: (line: string) => void;
}

function summarize(r: FailoverResult): RedisFailoverRun {
  return {
    topology: r.load.topology,
    gateways: r.load.gateways,
    clients: r.load.clients,
    limit: r.load.limit,
    rate: r.load.rate,
    requests: r.requests,
    statuses: r.statuses,
    failed: r.failed,
    expected429: r.expected429,
    seen429: r.seen429,
    overshoot: r.overshoot,
    maxClientOvershoot: r.maxClientOvershoot,
    undershoot: r.undershoot,
    failoverMs: r.failoverMs,
    followMs: r.followMs,
    fallbackDecisions: r.fallbackDecisions,
    keysPerPrimary: r.keysPerPrimary,
    seconds: round(r.seconds, 1),
  };
}

/** Runs the section: each topology with one gateway, and with two in the full run; unpinned, then pinned back. */
export async function runRedisFailover(options: RedisFailoverOptions): Promise<RedisFailoverResult> {
  // The benchmark pins itself to the load generator's CPU, and the Redis processes it starts would inherit that:
  // nine processes, the gateway and the load on one CPU would time out for want of CPU, not for the failover.
  const plan = cpuPlan();
  if (plan.pinned) pinSelf(`0-${cpus().length - 1}`);
  try {
    return { timeout: TIMEOUT, runs: await runShapes(options) };
  } finally {
    if (plan.pinned) pinSelf(plan.load);
  }
}

async function runShapes({ quick, log }: RedisFailoverOptions): Promise<RedisFailoverRun[]> {
  const shapes: { topology: RedisFailoverRun['topology']; gateways: number }[] = [
    { topology: 'RedisSentinel', gateways: 1 },
    { topology: 'RedisCluster', gateways: 1 },
    ...(quick ? [] : [{ topology: 'RedisSentinel' as const, gateways: 2 }, { topology: 'RedisCluster' as const, gateways: 2 }]),
  ];
  const runs: RedisFailoverRun[] = [];
  for (const shape of shapes) {
    log(`redis: ${shape.topology}, ${shape.gateways} gateway(s)`);
    // 30 clients reach their limit of 25 about 3.75 s in; the primary dies at 2 s, so the limit is reached while no primary answers.
    const r = await runFailover({ ...shape, clients: 30, limit: 25, rate: 200, killAfterMs: 2_000, settleMs: 1_500, maxAfterKillMs: 25_000, timeout: TIMEOUT }, (line) => log(`redis: ${line}`));
    runs.push(summarize(r));
  }
  return runs;
}

/** The markdown table of the section. */
export function redisFailoverTable(r: RedisFailoverResult): string[] {
  const out = [
    `Clients × limit per 24 h window, steady load through the gateway(s), primary killed (SIGKILL) after 2 s; storage.timeout ${r.timeout}, failure_policy open.`,
    '',
    '| store | gateways | requests (rate/s) | clients × limit | 429 expected / seen | overshoot (max per client) | refused beyond the limit | 5xx or failed | replica promoted after ms | gateway used it after ms | decisions without Redis |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const x of r.runs) {
    const bad = Object.entries(x.statuses).filter(([s]) => Number(s) >= 500).reduce((n, [, c]) => n + c, 0) + x.failed;
    const follow = x.followMs.map((ms) => (ms === null ? 'never' : String(ms))).join(', ');
    out.push(`| ${x.topology} | ${x.gateways} | ${x.requests} (${x.rate}) | ${x.clients} × ${x.limit} | ${x.expected429} / ${x.seen429} | ${x.overshoot} (${x.maxClientOvershoot}) | ${x.undershoot} | ${bad} | ${x.failoverMs} | ${follow} | ${x.fallbackDecisions} |`);
  }
  out.push('');
  return out;
}
