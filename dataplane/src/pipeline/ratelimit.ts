/**
 * Rate limiting: a sliding-window counter per route and client, kept in Redis
 * (shared by every gateway process) or in memory (this process only).
 *
 * The window. Time is cut into windows of `windowMs` aligned to the epoch.
 * Each client has the count of its current window and of the previous one;
 * the previous count is weighted by how much of it still overlaps the
 * sliding window that ends now:
 *
 *     estimate = previous × (windowMs − elapsed) / windowMs + current
 *
 * A request is allowed while `estimate < limit`, and only allowed requests are
 * counted. This is the approximation Cloudflare and Kong use: two integers
 * per client instead of one timestamp per request, no burst of twice the
 * limit across a window boundary as fixed windows allow, and at most one
 * request over the limit in the estimate.
 *
 * The answers. `retryAfterMs` is the exact time until the estimate drops below
 * the limit if no other request arrives; `resetMs` is the time until the
 * current window ends. Both come from the same arithmetic in TypeScript (the
 * memory store) and Lua (Redis), so either store gives the same decisions.
 */
import { isIPv6 } from 'node:net';
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Identity, RequestContext, Stage } from './context.ts';
import { GatewayError } from '../proxy/errors.ts';
import type { ServedRoute } from '../contract/policy.ts';

/** The counts kept for one client of one route. */
export interface WindowCounts {
  /** floor(now / windowMs) of the window `current` belongs to. */
  index: number;
  current: number;
  previous: number;
}

/** The answer for one request. */
export interface RateDecision {
  allowed: boolean;
  limit: number;
  /** Requests still allowed now (0 when refused). */
  remaining: number;
  /** Milliseconds until the current window ends. */
  resetMs: number;
  /** When refused: milliseconds until a request would be allowed. 0 when allowed. */
  retryAfterMs: number;
}

/**
 * One request against the stored counts at time `now`: the decision and the
 * counts to store (undefined when nothing changes). Pure.
 */
export function slidingWindowHit(stored: WindowCounts | undefined, limit: number, windowMs: number, now: number): { decision: RateDecision; next: WindowCounts | undefined } {
  const index = Math.floor(now / windowMs);
  const elapsed = now - index * windowMs;
  let current = 0;
  let previous = 0;
  if (stored?.index === index) {
    current = stored.current;
    previous = stored.previous;
  } else if (stored?.index === index - 1) {
    previous = stored.current;
  }
  const resetMs = windowMs - elapsed;
  const estimate = (previous * (windowMs - elapsed)) / windowMs + current;
  if (estimate < limit) {
    // The 1e-9 keeps 4.000000001 (float noise) from reading as 5 remaining.
    const remaining = Math.max(0, Math.ceil(limit - estimate - 1 - 1e-9));
    return { decision: { allowed: true, limit, remaining, resetMs, retryAfterMs: 0 }, next: { index, current: current + 1, previous } };
  }
  let wait: number;
  if (limit <= 0) wait = resetMs;
  else if (current < limit && previous > 0) wait = resetMs - (windowMs * (limit - current)) / previous;
  else wait = resetMs + windowMs * (1 - limit / current);
  // The estimate equals the limit at `wait` exactly; one millisecond later it is below.
  return { decision: { allowed: false, limit, remaining: 0, resetMs, retryAfterMs: Math.floor(wait) + 1 }, next: undefined };
}

/** Where counts are kept. */
export interface RateLimitStore {
  hit(key: string, limit: number, windowMs: number): Promise<RateDecision>;
  close(): Promise<void>;
}

/** Counts held in this process; `mark` belongs to the caller that put them, and counting here clears it. */
export type HeldCounts = WindowCounts & { mark?: number };

/**
 * Counts in this process. Bounded: past `maxKeys` clients the least recently
 * seen is forgotten (it starts again from zero), so a flood of client
 * addresses costs memory up to the bound and no more.
 */
export class MemoryRateLimitStore implements RateLimitStore {
  private readonly entries = new Map<string, HeldCounts>();
  private readonly maxKeys: number;
  private readonly now: () => number;

  constructor(options: { maxKeys?: number | undefined; now?: () => number } = {}) {
    this.maxKeys = options.maxKeys ?? 100_000;
    this.now = options.now ?? Date.now;
  }

  /** The synchronous form, for callers that need no promise. */
  hitNow(key: string, limit: number, windowMs: number): RateDecision {
    const { decision, next } = slidingWindowHit(this.entries.get(key), limit, windowMs, this.now());
    if (next) this.put(key, next);
    return decision;
  }

  hit(key: string, limit: number, windowMs: number): Promise<RateDecision> {
    return Promise.resolve(this.hitNow(key, limit, windowMs));
  }

  /** What is held for `key`, without counting. */
  peek(key: string): HeldCounts | undefined {
    return this.entries.get(key);
  }

  /** Replaces what is held for `key`; it becomes the most recently seen. */
  put(key: string, counts: HeldCounts): void {
    this.entries.delete(key);
    this.entries.set(key, counts);
    if (this.entries.size > this.maxKeys) this.entries.delete(this.entries.keys().next().value as string);
  }

  get size(): number {
    return this.entries.size;
  }

  close(): Promise<void> {
    this.entries.clear();
    return Promise.resolve();
  }
}

/** What the limiter answers: a decision, or that the shared store is down and the policy is to refuse. */
export type LimiterOutcome = RateDecision | 'unavailable';

/** What the stage needs from a limiter (see ratelimit-store.ts for the Redis-backed one). */
export interface RateLimiter {
  check(key: string, limit: number, windowMs: number): Promise<LimiterOutcome>;
  /** The bucket's count now, read where `check` would count, without counting. */
  peek?(key: string, limit: number, windowMs: number): Promise<RatePeek | 'unavailable'>;
  close(): Promise<void>;
}

/** A bucket's count at one instant, as `explain` shows it. */
export interface RatePeek {
  /** Requests in the sliding window now: the current window's count plus the previous one's, weighted by its overlap. */
  used: number;
  /** Requests still allowed now. */
  remaining: number;
  /** Whether the next request would be allowed. */
  allowed: boolean;
  /** When refused: milliseconds until a request would be allowed. */
  retryAfterMs: number;
  store: 'redis' | 'memory' | 'fallback';
}

/** What the next request would find in `stored` at `now`: `slidingWindowHit`'s decision, its update thrown away. */
export function peekCounts(stored: WindowCounts | undefined, limit: number, windowMs: number, now: number, store: RatePeek['store']): RatePeek {
  const { decision } = slidingWindowHit(stored, limit, windowMs, now);
  const index = Math.floor(now / windowMs);
  const current = stored?.index === index ? stored.current : 0;
  const previous = stored?.index === index ? stored.previous : stored?.index === index - 1 ? stored.current : 0;
  const used = (previous * (windowMs - (now - index * windowMs))) / windowMs + current;
  return { used, remaining: decision.allowed ? decision.remaining + 1 : 0, allowed: decision.allowed, retryAfterMs: decision.retryAfterMs, store };
}

/** The first four hextets of an IPv6 address: one client usually holds a whole /64. */
function ipv6Prefix64(address: string): string {
  const [head = '', tail] = address.toLowerCase().split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/**
 * The client's address for rate limiting: the one the request handler
 * determined (`server.trusted_proxies`, see server/client-address.ts), the
 * same the access log and the forwarding headers show; IPv6 per /64.
 */
export function clientAddress(ctx: Pick<RequestContext, 'clientIp'>): string {
  const address = ctx.clientIp;
  return isIPv6(address) ? ipv6Prefix64(address) : address;
}

/** Braces would be Redis Cluster hash tags, which the Redis store places itself; `%` is escaped so the escape stays unambiguous. */
function escapeKeyPart(text: string): string {
  return text.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** What a rate-limit bucket is made of: the request's verified caller, client address and headers. */
export interface BucketFacts {
  identity: Identity | undefined;
  /** Undefined when not known (an explanation asked without it). */
  clientIp: string | undefined;
  headers: IncomingHttpHeaders;
}

/**
 * The bucket a request is counted in on `route`, by the key of the route's
 * limit: the verified caller, the client address, a header's value, or the
 * route as a whole; undefined when the route has no limit, or the bucket is
 * the client address and it is not known. Header values are hashed: an API
 * key is a credential, and would otherwise sit in the store's key names for
 * anyone who can list them.
 */
export function rateLimitBucket(route: ServedRoute, facts: BucketFacts): string | undefined {
  const rl = route.rateLimit;
  if (!rl) return undefined;
  const { key } = rl;
  const address = facts.clientIp === undefined ? undefined : `ip:${clientAddress({ clientIp: facts.clientIp })}`;
  let part: string | undefined;
  if (key.type === 'Route') part = 'route';
  else if (key.type === 'User' && facts.identity) part = `user:${escapeKeyPart(facts.identity.subject)}`;
  else if (key.type === 'Header') {
    const raw = facts.headers[(key.header as string).toLowerCase()];
    const value = Array.isArray(raw) ? raw.join(', ') : raw;
    part = value ? `hdr:${createHash('sha256').update(value).digest('base64url')}` : address;
  } else part = address;
  if (part === undefined) return undefined;
  if (part.length > 200) part = `sha256:${createHash('sha256').update(part).digest('base64url')}`;
  // The route id is URL-encoded, so neither part holds a brace and the whole bucket decides a Redis Cluster slot.
  return `${encodeURIComponent(route.id)}:${rl.windowMs}:${part}`;
}

/** Sets the RateLimit-* headers (IETF httpapi-ratelimit-headers) on whatever the answer turns out to be. */
function setHeaders(ctx: RequestContext, d: RateDecision, policy: string): void {
  const headers = (ctx.responseHeaders ??= {});
  headers['ratelimit-limit'] = String(d.limit);
  headers['ratelimit-remaining'] = String(d.remaining);
  headers['ratelimit-reset'] = String(Math.max(1, Math.ceil((d.allowed ? d.resetMs : d.retryAfterMs) / 1000)));
  headers['ratelimit-policy'] = policy;
}

/**
 * The rate limit stage of a route, or undefined when the route has no limit.
 * It runs after authentication so that a verified caller is counted by user,
 * whichever address they come from.
 */
export function rateLimitStage(route: ServedRoute, limiter: RateLimiter): Stage | undefined {
  const rl = route.rateLimit;
  if (!rl) return undefined;
  const { limit, windowMs } = rl;
  const policy = `${limit};w=${Math.max(1, Math.round(windowMs / 1000))}`;
  return async (ctx) => {
    const bucket = rateLimitBucket(route, { identity: ctx.identity, clientIp: ctx.clientIp, headers: ctx.req.headers }) as string;
    const outcome = await limiter.check(bucket, limit, windowMs);
    if (outcome === 'unavailable') {
      return new GatewayError('route_unavailable', 'rate limiting is unavailable right now, and this gateway is configured to refuse requests until it is back', { 'retry-after': '1' });
    }
    setHeaders(ctx, outcome, policy);
    if (outcome.allowed) return undefined;
    const seconds = Math.max(1, Math.ceil(outcome.retryAfterMs / 1000));
    return new GatewayError('rate_limited', `too many requests: the limit is ${limit} per ${policy.split('=')[1]} s; retry in ${seconds} s`, { 'retry-after': String(seconds) });
  };
}
