/**
 * The shared rate limit store (Redis: one server, a Sentinel group or a Redis
 * Cluster) and the limiter that survives it.
 *
 * Every decision is one Lua script run by Redis: read the client's counts,
 * decide, count. Redis runs scripts one at a time, so gateways sharing it
 * never both take the last request of a window. The script uses Redis' own
 * clock, so gateway clocks that disagree do not matter either. It touches one
 * key, and the key's client part is a hash tag (`prefix{route:window:client}`),
 * so in a Redis Cluster a script never spans two slots and keys spread over
 * every primary.
 *
 * Redis being down or slow never makes a request hang or fail with a 500:
 * every call has a deadline (`storage.timeout`), a client that is not
 * connected is not asked at all, and after a timeout the store is skipped for
 * a second so a stalled Redis does not add its timeout to every request. Then
 * `failure_policy` decides: `open` counts in this process, `closed` answers
 * 503.
 *
 * Failover. Replication is asynchronous, so a promoted replica may lack the
 * last writes of the primary it replaces, and while no primary answers the
 * gateway counts alone. So each gateway keeps a copy of the counts Redis
 * returned for the clients it saw (bounded, like the memory store): the local
 * fallback continues from them instead of from zero, and after each outage
 * the first call for a client hands Redis what this gateway counted, which
 * Redis takes where it is higher than its own. A failover then costs one
 * gateway nothing beyond a lost write it never saw answered; several gateways
 * can each spend what is left of a budget while none of them reaches Redis
 * (docs/security.md, "Failover").
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { Logger } from '../observability/logger.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import { MemoryRateLimitStore, peekCounts, type LimiterOutcome, type RateDecision, type RateLimiter, type RatePeek, type RateLimitStore, type WindowCounts } from './ratelimit.ts';

/**
 * The same arithmetic as `slidingWindowHit`, step for step, so both stores
 * decide alike. ARGV[4..6], when given, are counts another copy holds for the
 * same client (window index, current, previous): each is taken where it is
 * higher, and written back even when the request is refused.
 */
const SLIDING_WINDOW_LUA = `
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local index = math.floor(now / window)
local elapsed = now - index * window
local stored = redis.call('HMGET', KEYS[1], 'w', 'c', 'p')
local w = tonumber(stored[1])
local current, previous = 0, 0
if w == index then
  current = tonumber(stored[2]) or 0
  previous = tonumber(stored[3]) or 0
elseif w == index - 1 then
  previous = tonumber(stored[2]) or 0
end
local raised = false
local fi = tonumber(ARGV[4])
if fi then
  local fc = tonumber(ARGV[5]) or 0
  local fp = tonumber(ARGV[6]) or 0
  if fi == index then
    if fc > current then current = fc; raised = true end
    if fp > previous then previous = fp; raised = true end
  elseif fi == index - 1 and fc > previous then
    previous = fc
    raised = true
  end
end
local reset = window - elapsed
local estimate = previous * (window - elapsed) / window + current
if estimate < limit then
  redis.call('HSET', KEYS[1], 'w', index, 'c', current + 1, 'p', previous)
  redis.call('PEXPIRE', KEYS[1], window * 2)
  local remaining = math.ceil(limit - estimate - 1 - 1e-9)
  if remaining < 0 then remaining = 0 end
  return {1, remaining, reset, 0, index, current + 1, previous}
end
if raised then
  redis.call('HSET', KEYS[1], 'w', index, 'c', current, 'p', previous)
  redis.call('PEXPIRE', KEYS[1], window * 2)
end
local wait
if limit <= 0 then
  wait = reset
elseif current < limit and previous > 0 then
  wait = reset - window * (limit - current) / previous
else
  wait = reset + window * (1 - limit / current)
end
return {0, 0, reset, math.floor(wait) + 1, index, current, previous}
`;

type ScriptReply = [number, number, number, number, number, number, number];
type Scripted = { switchyardSlidingWindow(key: string, limit: number, windowMs: number, now: string, ...floor: string[]): Promise<ScriptReply> };

/** A server's address. */
export interface HostPort {
  host: string;
  port: number;
}

/** How to reach Redis. */
export type RedisTopology =
  | { type: 'Redis'; url: string }
  | { type: 'RedisSentinel'; sentinels: HostPort[]; name: string; sentinelUsername?: string | undefined; sentinelPassword?: string | undefined }
  | { type: 'RedisCluster'; nodes: HostPort[] };

/** Options of the Redis store. */
export interface RedisStoreOptions {
  topology: RedisTopology;
  /** Of the Redis nodes (not the sentinels). */
  username?: string | undefined;
  password?: string | undefined;
  /** TLS to every node and sentinel; absent: plain TCP (unless a rediss:// URL says otherwise). */
  tls?: ConnectionOptions | undefined;
  /** Deadline of one call, also given to ioredis as its command timeout. */
  timeoutMs: number;
  keyPrefix: string;
}

/** One request counted by Redis: the decision and the counts Redis now holds for the client. */
export interface SharedCount {
  decision: RateDecision;
  counts: WindowCounts;
}

// Reconnect quickly and keep trying forever: shared limits resume soon after Redis (or a new primary) does.
const retryStrategy = (times: number): number => Math.min(25 * 2 ** Math.min(times, 10), 250);

/** Counts in Redis, shared by every gateway that uses the same Redis and prefix. */
export class RedisRateLimitStore implements RateLimitStore {
  readonly client: Redis | Cluster;
  readonly type: RedisTopology['type'];
  private readonly prefix: string;
  private readonly watcher: SentinelSwitchWatcher | undefined;

  constructor(options: RedisStoreOptions) {
    this.prefix = options.keyPrefix;
    const { topology, timeoutMs } = options;
    this.type = topology.type;
    const scripts = { switchyardSlidingWindow: { numberOfKeys: 1, lua: SLIDING_WINDOW_LUA } };
    const auth = { ...(options.username !== undefined && { username: options.username }), ...(options.password !== undefined && { password: options.password }) };
    const node: RedisOptions = {
      ...auth,
      ...(options.tls && { tls: options.tls }),
      commandTimeout: timeoutMs,
      // Fail at once while disconnected instead of queueing requests behind a reconnect.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 2_000,
      lazyConnect: false,
    };
    if (topology.type === 'RedisCluster') {
      const cluster: ClusterOptions = {
        redisOptions: node,
        scripts,
        enableOfflineQueue: false,
        clusterRetryStrategy: retryStrategy,
        // No retries inside the client: a request that missed its deadline is decided locally, and a
        // retry landing later would count it twice. A redirect (MOVED, ASK) is followed, and refreshes the slots.
        retryDelayOnFailover: 0,
        retryDelayOnClusterDown: 0,
        retryDelayOnTryAgain: 0,
        slotsRefreshTimeout: 1_000,
        // Certificates name hosts: keep the names the nodes were given instead of resolving them to addresses.
        ...(options.tls && { dnsLookup: (address, callback) => callback(null, address) }),
      };
      this.client = new Cluster(topology.nodes, cluster);
    } else if (topology.type === 'RedisSentinel') {
      this.client = new Redis({
        ...node,
        scripts,
        sentinels: topology.sentinels,
        name: topology.name,
        ...(topology.sentinelUsername !== undefined && { sentinelUsername: topology.sentinelUsername }),
        ...(topology.sentinelPassword !== undefined && { sentinelPassword: topology.sentinelPassword }),
        ...(options.tls && { enableTLSForSentinelMode: true, sentinelTLS: options.tls }),
        retryStrategy,
        sentinelRetryStrategy: retryStrategy,
        // Should a write reach a primary the sentinels demoted, reconnect: they name the new one.
        reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 1 : false),
      });
      this.watcher = new SentinelSwitchWatcher(this.client, topology, options.tls);
    } else {
      this.client = new Redis(topology.url, { ...node, scripts, retryStrategy, reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 1 : false) });
    }
    // The limiter reports what requests find; without a listener ioredis prints each connection error.
    this.client.on('error', () => undefined);
  }

  /** Whether commands can be sent now. */
  get ready(): boolean {
    return this.client.status === 'ready';
  }

  /**
   * Counts one request. `now` pins the clock (tests), otherwise Redis' clock
   * is used; `floor` is counts this gateway holds for the client, which Redis
   * takes where they are higher than its own.
   */
  async count(key: string, limit: number, windowMs: number, options: { now?: number; floor?: WindowCounts } = {}): Promise<SharedCount> {
    const { floor } = options;
    const args = floor ? [String(floor.index), String(floor.current), String(floor.previous)] : [];
    const reply = await (this.client as unknown as Scripted).switchyardSlidingWindow(`${this.prefix}{${key}}`, limit, windowMs, options.now === undefined ? '' : String(options.now), ...args);
    const [allowed, remaining, resetMs, retryAfterMs, index, current, previous] = reply;
    return { decision: { allowed: allowed === 1, limit, remaining, resetMs, retryAfterMs }, counts: { index, current, previous } };
  }

  async hit(key: string, limit: number, windowMs: number, now?: number): Promise<RateDecision> {
    return (await this.count(key, limit, windowMs, now === undefined ? {} : { now })).decision;
  }

  /** The counts Redis holds for `key` and Redis' clock, read without counting. */
  async read(key: string): Promise<{ counts: WindowCounts | undefined; now: number }> {
    const [time, stored] = await Promise.all([this.client.time(), this.client.hmget(`${this.prefix}{${key}}`, 'w', 'c', 'p')]);
    const now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
    const [w, c, p] = stored.map((v) => (v === null ? undefined : Number(v)));
    return { counts: w === undefined ? undefined : { index: w, current: c ?? 0, previous: p ?? 0 }, now };
  }

  /** Resolves once connected, or after `ms` either way. */
  waitReady(ms: number): Promise<boolean> {
    if (this.ready) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.client.off('ready', done);
        resolve(this.ready);
      };
      const timer = setTimeout(done, ms);
      this.client.once('ready', done);
    });
  }

  close(): Promise<void> {
    this.watcher?.close();
    this.client.disconnect(false);
    return Promise.resolve();
  }
}

/**
 * Moves a Sentinel-mode client to the new primary as soon as the sentinels
 * announce one (`+switch-master`) and it is not the one the client is on.
 * A primary that is still up (a manual failover, a partition) keeps taking
 * writes until the sentinels demote it, seconds later, and the new primary
 * never sees them. ioredis' own detector reconnects on every announcement,
 * also when the client already reconnected to the new primary, and can leave
 * the client ended for good when that races a reconnect.
 *
 * The client is only disconnected while it has a connection. While it is
 * still asking the sentinels for the primary (status `connecting`), a
 * disconnect makes ioredis abandon the attempt and end the client for good,
 * with no reconnect: the move waits for its connection instead, and is made
 * then if that connection is not to the announced primary.
 */
export class SentinelSwitchWatcher {
  private readonly subscribers: Redis[];
  private readonly client: Redis;
  /** The primary the sentinels announced last, host:port. */
  private announced: string | undefined;
  private waiting = false;
  private closed = false;

  constructor(client: Redis, topology: Extract<RedisTopology, { type: 'RedisSentinel' }>, tls: ConnectionOptions | undefined) {
    this.client = client;
    this.subscribers = topology.sentinels.map((sentinel) => {
      const sub = new Redis({
        host: sentinel.host,
        port: sentinel.port,
        ...(topology.sentinelUsername !== undefined && { username: topology.sentinelUsername }),
        ...(topology.sentinelPassword !== undefined && { password: topology.sentinelPassword }),
        ...(tls && { tls }),
        connectTimeout: 2_000,
        retryStrategy,
        // The subscription waits for the sentinel, however long it takes, and is renewed on every reconnect.
        maxRetriesPerRequest: null,
      });
      sub.on('error', () => undefined);
      sub.on('message', (_channel: string, message: string) => {
        const [name, , , host, port] = message.split(' ');
        if (name !== topology.name || host === undefined || port === undefined) return;
        this.switched(host, port);
      });
      sub.subscribe('+switch-master').catch(() => undefined);
      return sub;
    });
  }

  /** The sentinels announced `host:port` as the primary: move the client there unless it is there already. */
  switched(host: string, port: string): void {
    this.announced = `${host}:${port}`;
    this.follow();
  }

  private follow(): void {
    const client = this.client;
    if (this.closed || this.announced === undefined || client.status === 'end') return;
    if (client.status !== 'ready' && client.status !== 'connect') {
      // Connecting (asking the sentinels, who name the new primary) or waiting to reconnect:
      // check again once connected.
      if (!this.waiting) {
        this.waiting = true;
        client.once('ready', () => {
          this.waiting = false;
          this.follow();
        });
      }
      return;
    }
    const stream = client.stream as { remoteAddress?: string; remotePort?: number } | undefined;
    if (stream !== undefined && `${stream.remoteAddress}:${stream.remotePort}` === this.announced) return;
    client.disconnect(true);
  }

  close(): void {
    this.closed = true;
    for (const sub of this.subscribers) sub.disconnect(false);
  }
}

/** Reads a secret from a file (a mounted Secret): its content without the trailing newline editors and `echo` add. */
export function readSecretFile(file: string): string {
  return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
}

/** After a timeout the shared store is skipped this long, so a stalled Redis does not slow every request. */
const SUSPEND_AFTER_TIMEOUT_MS = 1_000;
/**
 * The store counts as available again after this long without a failure: in a
 * Redis Cluster with one shard down, requests to the other shards succeed
 * between failures, and the state must not flap with them.
 */
const RECOVER_AFTER_MS = 1_000;

class StoreTimeout extends Error {
  override readonly name = 'StoreTimeout';
}

function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new StoreTimeout(`no answer within ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

/** Options of the limiter. */
export interface LimiterOptions {
  /** The shared store; without one, counts stay in this process. */
  shared?: RedisRateLimitStore | undefined;
  policy: 'open' | 'closed';
  timeoutMs: number;
  metrics: GatewayMetrics;
  log: Logger;
  /** Bound of the in-process store (clients remembered). */
  maxLocalKeys?: number;
  now?: () => number;
}

/**
 * Decides with the shared store when it answers in time, else by the failure
 * policy. Its state (the store available or not) changes on what requests
 * find, with one log line and one metric update per change.
 */
export class ResilientRateLimiter implements RateLimiter {
  private readonly shared: RedisRateLimitStore | undefined;
  private readonly local: MemoryRateLimitStore;
  private readonly options: LimiterOptions;
  private readonly now: () => number;
  private suspendedUntil = 0;
  private available = true;
  /** Counts outages; a client's counts confirmed in an earlier one are handed to Redis once more. */
  private outage = 0;
  private unavailableSince = 0;
  private lastFailureAt = -Infinity;
  /** The first success since the last failure, while unavailable. */
  private recoveringSince: number | undefined;
  private recoverTimer: NodeJS.Timeout | undefined;

  constructor(options: LimiterOptions) {
    this.options = options;
    this.shared = options.shared;
    this.now = options.now ?? Date.now;
    this.local = new MemoryRateLimitStore({ maxKeys: options.maxLocalKeys, now: this.now });
    if (this.shared) options.metrics.rateLimitStoreAvailable.set({ type: this.shared.type }, 1);
  }

  /** Whether the shared store is in use (true without one). */
  get storeAvailable(): boolean {
    return this.available;
  }

  /** Records that the store could not be reached at start, as a state change. */
  unreachableAtStart(): void {
    this.failed('unavailable', 'not reachable at start');
  }

  async check(key: string, limit: number, windowMs: number): Promise<LimiterOutcome> {
    const { metrics } = this.options;
    const shared = this.shared;
    if (!shared) return this.decide(this.local.hitNow(key, limit, windowMs), 'memory');
    if (!shared.ready) {
      this.failed('unavailable', `the connection is ${shared.client.status}`);
    } else if (this.now() < this.suspendedUntil) {
      this.failed('unavailable', 'skipped for a moment after a timeout');
    } else {
      try {
        // Counts Redis confirmed before the latest outage, or counted here since, are handed to it once.
        const held = this.local.peek(key);
        const floor = held && held.mark !== this.outage ? held : undefined;
        const { decision, counts } = await withDeadline(shared.count(key, limit, windowMs, floor ? { floor } : {}), this.options.timeoutMs);
        this.local.put(key, { ...counts, mark: this.outage });
        this.succeeded();
        return this.decide(decision, 'redis');
      } catch (err) {
        // ioredis' own command timeout and ours both mean "too slow".
        const timeout = err instanceof StoreTimeout || /timed? ?out/i.test((err as Error).message);
        if (timeout) this.suspendedUntil = this.now() + SUSPEND_AFTER_TIMEOUT_MS;
        this.failed(timeout ? 'timeout' : 'error', (err as Error).message);
      }
    }
    if (this.options.policy === 'closed') {
      metrics.rateLimitDecisions.inc({ result: 'unavailable', store: 'redis' });
      return 'unavailable';
    }
    return this.decide(this.local.hitNow(key, limit, windowMs), 'fallback');
  }

  /**
   * The bucket's count where `check` would count it now (Redis, or this
   * process while Redis is out), without counting and without touching the
   * store's state or metrics: for `explain`.
   */
  async peek(key: string, limit: number, windowMs: number): Promise<RatePeek | 'unavailable'> {
    const shared = this.shared;
    if (!shared) return peekCounts(this.local.peek(key), limit, windowMs, this.now(), 'memory');
    if (shared.ready && this.now() >= this.suspendedUntil) {
      try {
        const { counts, now } = await withDeadline(shared.read(key), this.options.timeoutMs);
        return peekCounts(counts, limit, windowMs, now, 'redis');
      } catch {
        // As for a request: what counts while Redis does not answer is the failure policy.
      }
    }
    if (this.options.policy === 'closed') return 'unavailable';
    return peekCounts(this.local.peek(key), limit, windowMs, this.now(), 'fallback');
  }

  private decide(d: RateDecision, store: 'redis' | 'memory' | 'fallback'): RateDecision {
    this.options.metrics.rateLimitDecisions.inc({ result: d.allowed ? 'allowed' : 'limited', store });
    return d;
  }

  private failed(kind: 'timeout' | 'unavailable' | 'error', reason: string): void {
    const { metrics, log, policy } = this.options;
    metrics.rateLimitStoreErrors.inc({ kind });
    const now = this.now();
    this.lastFailureAt = now;
    this.recoveringSince = undefined;
    if (!this.available || !this.shared) return;
    this.available = false;
    this.outage++;
    this.unavailableSince = now;
    metrics.rateLimitStoreAvailable.set({ type: this.shared.type }, 0);
    metrics.rateLimitStoreTransitions.inc({ state: 'unavailable' });
    const then = policy === 'open' ? 'counting in this process, from the last shared counts' : 'rate-limited routes answer 503';
    log.warn({ event: 'ratelimit_store_unavailable', store: this.shared.type, kind, reason, policy }, `rate limit store (${this.shared.type}) unavailable: ${reason}; ${then} until it answers again`);
  }

  private succeeded(): void {
    if (this.available || !this.shared) return;
    const now = this.now();
    this.recoveringSince ??= now;
    const wait = this.lastFailureAt + RECOVER_AFTER_MS - now;
    if (wait > 0) {
      // Without further traffic the change is still made, once the quiet second has passed.
      this.recoverTimer ??= setTimeout(() => {
        this.recoverTimer = undefined;
        if (this.recoveringSince !== undefined) this.succeeded();
      }, wait).unref();
      return;
    }
    this.available = true;
    const unavailableMs = this.recoveringSince - this.unavailableSince;
    this.options.metrics.rateLimitStoreAvailable.set({ type: this.shared.type }, 1);
    this.options.metrics.rateLimitStoreTransitions.inc({ state: 'available' });
    this.options.log.info(
      { event: 'ratelimit_store_recovered', store: this.shared.type, unavailableSince: new Date(this.unavailableSince).toISOString(), unavailableMs },
      `rate limit store (${this.shared.type}) available again after ${unavailableMs} ms; limits are shared again`,
    );
  }

  async close(): Promise<void> {
    clearTimeout(this.recoverTimer);
    await this.shared?.close();
    await this.local.close();
  }
}
