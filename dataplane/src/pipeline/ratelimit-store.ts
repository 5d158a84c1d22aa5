/**
 * The shared rate limit store (Redis) and the limiter that survives it.
 *
 * Every decision is one Lua script run by Redis: read the client's counts,
 * decide, count. Redis runs scripts one at a time, so gateways sharing it
 * never both take the last request of a window. The script uses Redis' own
 * clock, so gateway clocks that disagree do not matter either.
 *
 * Redis being down or slow never makes a request hang or fail with a 500:
 * every call has a deadline (`storage.timeout`), a client that is not
 * connected is not asked at all, and after a timeout the store is skipped for
 * a second so a stalled Redis does not add its timeout to every request. Then
 * `failure_policy` decides: `open` counts in this process (limits hold per
 * gateway instead of in total), `closed` answers 503. When Redis is back the
 * shared counts are used again on the next request.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import { MemoryRateLimitStore, type LimiterOutcome, type RateDecision, type RateLimiter, type RateLimitStore } from './ratelimit.ts';

/** The same arithmetic as `slidingWindowHit`, step for step, so both stores decide alike. */
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
local reset = window - elapsed
local estimate = previous * (window - elapsed) / window + current
if estimate < limit then
  redis.call('HSET', KEYS[1], 'w', index, 'c', current + 1, 'p', previous)
  redis.call('PEXPIRE', KEYS[1], window * 2)
  local remaining = math.ceil(limit - estimate - 1 - 1e-9)
  if remaining < 0 then remaining = 0 end
  return {1, remaining, reset, 0}
end
local wait
if limit <= 0 then
  wait = reset
elseif current < limit and previous > 0 then
  wait = reset - window * (limit - current) / previous
else
  wait = reset + window * (1 - limit / current)
end
return {0, 0, reset, math.floor(wait) + 1}
`;

type ScriptedRedis = Redis & { switchyardSlidingWindow(key: string, limit: number, windowMs: number, now: string): Promise<[number, number, number, number]> };

/** Options of the Redis store. */
export interface RedisStoreOptions {
  url: string;
  /** Deadline of one call, also given to ioredis as its command timeout. */
  timeoutMs: number;
  keyPrefix: string;
  log: Logger;
}

/** Counts in Redis, shared by every gateway that uses the same Redis and prefix. */
export class RedisRateLimitStore implements RateLimitStore {
  readonly client: ScriptedRedis;
  private readonly prefix: string;

  constructor(options: RedisStoreOptions) {
    this.prefix = options.keyPrefix;
    this.client = new Redis(options.url, {
      commandTimeout: options.timeoutMs,
      // Fail at once while disconnected instead of queueing requests behind a reconnect.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 2_000,
      // Reconnect quickly and keep trying forever: shared limits resume soon after Redis does.
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), 1_000),
      lazyConnect: false,
    }) as ScriptedRedis;
    this.client.defineCommand('switchyardSlidingWindow', { numberOfKeys: 1, lua: SLIDING_WINDOW_LUA });
    // Connection errors are reported by the limiter (rate-limited); without a listener ioredis prints each one.
    this.client.on('error', () => undefined);
  }

  /** Whether commands can be sent now. */
  get ready(): boolean {
    return this.client.status === 'ready';
  }

  /** Counts one request; `now` pins the clock (tests), otherwise Redis' clock is used. */
  async hit(key: string, limit: number, windowMs: number, now?: number): Promise<RateDecision> {
    const [allowed, remaining, resetMs, retryAfterMs] = await this.client.switchyardSlidingWindow(this.prefix + key, limit, windowMs, now === undefined ? '' : String(now));
    return { allowed: allowed === 1, limit, remaining, resetMs, retryAfterMs };
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
    this.client.disconnect(false);
    return Promise.resolve();
  }
}

/** After a timeout the shared store is skipped this long, so a stalled Redis does not slow every request. */
const SUSPEND_AFTER_TIMEOUT_MS = 1_000;
/** Warnings about the store repeat at most this often. */
const WARN_EVERY_MS = 30_000;

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
}

/** Decides with the shared store when it answers in time, else by the failure policy. */
export class ResilientRateLimiter implements RateLimiter {
  private readonly shared: RedisRateLimitStore | undefined;
  private readonly local: MemoryRateLimitStore;
  private readonly options: LimiterOptions;
  private suspendedUntil = 0;
  private degraded = false;
  private warnedAt = -Infinity;

  constructor(options: LimiterOptions) {
    this.options = options;
    this.shared = options.shared;
    this.local = new MemoryRateLimitStore({ maxKeys: options.maxLocalKeys });
    this.shared?.client.on('error', (err: Error) => this.warn(`rate limit store connection: ${err.message}`));
    this.shared?.client.on('ready', () => {
      if (!this.degraded) return;
      this.degraded = false;
      this.suspendedUntil = 0;
      this.options.log.info({ event: 'ratelimit_store_recovered' }, 'rate limit store reachable again; limits are shared again');
    });
  }

  async check(key: string, limit: number, windowMs: number): Promise<LimiterOutcome> {
    const { metrics } = this.options;
    const shared = this.shared;
    if (!shared) return this.decide(this.local.hitNow(key, limit, windowMs), 'memory');
    if (!shared.ready) {
      this.failed('unavailable', `the store is ${shared.client.status}`);
    } else if (Date.now() < this.suspendedUntil) {
      this.failed('unavailable', 'the store is skipped for a moment after a timeout');
    } else {
      try {
        return this.decide(await withDeadline(shared.hit(key, limit, windowMs), this.options.timeoutMs), 'redis');
      } catch (err) {
        // ioredis' own command timeout and ours both mean "too slow".
        const timeout = err instanceof StoreTimeout || /timed? ?out/i.test((err as Error).message);
        if (timeout) this.suspendedUntil = Date.now() + SUSPEND_AFTER_TIMEOUT_MS;
        this.failed(timeout ? 'timeout' : 'error', (err as Error).message);
      }
    }
    if (this.options.policy === 'closed') {
      metrics.rateLimitDecisions.inc({ result: 'unavailable', store: 'redis' });
      return 'unavailable';
    }
    return this.decide(this.local.hitNow(key, limit, windowMs), 'fallback');
  }

  private decide(d: RateDecision, store: 'redis' | 'memory' | 'fallback'): RateDecision {
    this.options.metrics.rateLimitDecisions.inc({ result: d.allowed ? 'allowed' : 'limited', store });
    return d;
  }

  private failed(kind: 'timeout' | 'unavailable' | 'error', reason: string): void {
    this.options.metrics.rateLimitStoreErrors.inc({ kind });
    this.degraded = true;
    this.warn(`rate limit store ${kind}: ${reason}`);
  }

  private warn(message: string): void {
    const now = Date.now();
    if (now - this.warnedAt < WARN_EVERY_MS) return;
    this.warnedAt = now;
    const policy = this.options.policy === 'open' ? 'failing open: counting in this process only' : 'failing closed: rate-limited routes answer 503';
    this.options.log.warn({ event: 'ratelimit_store_unavailable', reason: message, policy: this.options.policy }, `${message}; ${policy}`);
  }

  async close(): Promise<void> {
    await this.shared?.close();
    await this.local.close();
  }
}
