/**
 * Gateway-wide policy (`middleware.rate_limiting` and `middleware.cors` of a
 * data plane's own config) is not in the table: every data plane lays it under
 * each route's own settings when it builds the table it serves, whichever
 * producer the table came from. The operator never needs to know it, and a
 * file and a cluster with the same config serve the same policies.
 */
import { DEFAULT_CORS_HEADERS, DEFAULT_CORS_METHODS, DEFAULT_RATE_LIMIT_WINDOW_MS } from './defaults.ts';
import type { CorsSettings, RateLimitKey, Route } from './schema.ts';

/** A CORS policy with every field decided. */
export interface CorsPolicy {
  allowedOrigins: string[];
  allowedMethods: string[];
  allowedHeaders: string[];
  exposedHeaders: string[];
  allowCredentials: boolean;
  maxAgeSeconds: number;
}

/** A rate limit with its window and key decided. */
export interface RateLimitPolicy {
  limit: number;
  windowMs: number;
  key: RateLimitKey;
}

/** Who is counted when neither the route nor the gateway says: the verified caller, else the client address. */
const DEFAULT_RATE_LIMIT_KEY: RateLimitKey = { type: 'User' };

/** The gateway-wide policy of one data plane, from its own config. */
export interface GatewayDefaults {
  /** Absent: routes are limited only by their own `rateLimit`, per minute unless they say. */
  rateLimit?: {
    /** false turns rate limiting off for every route, a route's own limit included. */
    enabled: boolean;
    /** For routes with no limit of their own and no `routeLimits` entry. */
    defaultLimit?: number | undefined;
    windowMs: number;
    /** Keyed by route path; `*` stands for the rest of the path (`/api/v1/admin/*`). The most specific key wins. */
    routeLimits: Readonly<Record<string, number>>;
    /** Who each limit counts, for routes that do not say (absent: `User`). */
    key?: RateLimitKey | undefined;
  };
  /** Absent: only routes with CORS settings of their own answer CORS. */
  cors?: CorsSettings;
}

/** Where each effective policy of a route came from, for the admin API and explain output. */
export interface PolicySources {
  rateLimit: string | null;
  cors: string | null;
}

/** A route as a data plane serves it: its own settings with the gateway-wide ones laid under them. */
export type ServedRoute = Omit<Route, 'cors' | 'rateLimit'> & {
  cors?: CorsPolicy;
  rateLimit?: RateLimitPolicy;
  /** Where `rateLimit` and `cors` came from; null when the route has none. */
  policySources: PolicySources;
};

/** A CORS policy with every unset field taken from the built-in defaults. */
function corsPolicy(p: CorsSettings): CorsPolicy {
  return {
    allowedOrigins: p.allowedOrigins ?? [],
    allowedMethods: p.allowedMethods ?? [...DEFAULT_CORS_METHODS],
    allowedHeaders: p.allowedHeaders ?? [...DEFAULT_CORS_HEADERS],
    exposedHeaders: p.exposedHeaders ?? [],
    allowCredentials: p.allowCredentials ?? false,
    maxAgeSeconds: p.maxAgeSeconds ?? 0,
  };
}

/** Whether a `routeLimits` key covers a route path: the same path, or a glob where `*` is the rest (one or more characters). */
function routeLimitMatches(pattern: string, path: string): boolean {
  if (pattern === path) return true;
  if (!pattern.includes('*')) return false;
  const rx = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.+')}$`);
  return rx.test(path);
}

function rateLimitFor(route: Route, defaults: GatewayDefaults): { policy: RateLimitPolicy | undefined; source: string | null } {
  const rl = defaults.rateLimit;
  if (rl && !rl.enabled) return { policy: undefined, source: null };
  const windowMs = rl?.windowMs ?? DEFAULT_RATE_LIMIT_WINDOW_MS;
  const key = rl?.key ?? DEFAULT_RATE_LIMIT_KEY;
  if (route.rateLimit) return { policy: { limit: route.rateLimit.limit, windowMs: route.rateLimit.windowMs ?? windowMs, key: route.rateLimit.key ?? key }, source: 'route' };
  if (!rl) return { policy: undefined, source: null };
  const path = route.path.value;
  // The most specific pattern wins: the exact path before globs, a longer glob before a shorter one.
  const patterns = Object.keys(rl.routeLimits).sort((a, b) => Number(b === path) - Number(a === path) || b.length - a.length || (a < b ? -1 : 1));
  for (const pattern of patterns) {
    if (routeLimitMatches(pattern, path)) return { policy: { limit: rl.routeLimits[pattern] as number, windowMs, key }, source: `middleware.rate_limiting.route_limits[${JSON.stringify(pattern)}]` };
  }
  if (rl.defaultLimit !== undefined) return { policy: { limit: rl.defaultLimit, windowMs, key }, source: 'middleware.rate_limiting.default_limit' };
  return { policy: undefined, source: null };
}

function corsFor(route: Route, defaults: GatewayDefaults): { policy: CorsPolicy | undefined; source: string | null } {
  const base = defaults.cors;
  const own = route.cors;
  if (!base && !own) return { policy: undefined, source: null };
  const merged: CorsSettings = { ...base };
  for (const [k, v] of Object.entries(own ?? {})) if (v !== undefined) (merged as Record<string, unknown>)[k] = v;
  const source = own && base ? 'route over middleware.cors' : own ? 'route' : 'middleware.cors';
  return { policy: corsPolicy(merged), source };
}

/**
 * A route with the gateway-wide policy laid under its own: its own rate limit,
 * else the most specific `route_limits` entry, else `default_limit`; its own
 * CORS fields over `middleware.cors`. Pure.
 */
export function withGatewayDefaults(route: Route, defaults: GatewayDefaults): ServedRoute {
  const { cors: _cors, rateLimit: _rateLimit, ...rest } = route;
  const rateLimit = rateLimitFor(route, defaults);
  const cors = corsFor(route, defaults);
  return {
    ...rest,
    ...(rateLimit.policy ? { rateLimit: rateLimit.policy } : {}),
    ...(cors.policy ? { cors: cors.policy } : {}),
    policySources: { rateLimit: rateLimit.source, cors: cors.source },
  };
}
