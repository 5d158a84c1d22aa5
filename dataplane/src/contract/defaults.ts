/**
 * Defaults, written once: the table schema, the GatewayRoute and Upstream
 * CRDs, gateway.yaml and both table producers take them from here, so that a
 * file and a resource saying the same thing give the same table. Imports
 * nothing, so every part of the contract can use it.
 */

/** Methods and headers a CORS policy allows when neither the route nor the gateway says. */
export const DEFAULT_CORS_METHODS: readonly string[] = ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS'];
export const DEFAULT_CORS_HEADERS: readonly string[] = ['Content-Type', 'Authorization'];

/** Failures retried when a retry policy does not list them. */
export const DEFAULT_RETRY_ON: readonly ('connect-failure' | 'reset' | '502' | '503' | '504')[] = ['connect-failure', 'reset', '503'];
/** Wait before each retry when a retry policy does not say. */
export const DEFAULT_RETRY_BACKOFF_MS = 25;
/** The rate-limit window when neither the route nor the gateway says. */
export const DEFAULT_RATE_LIMIT_WINDOW_MS = 60_000;

/**
 * What an upstream setting is when its section is given without it. The
 * table schema, the Upstream CRD and gateway.yaml all default from here.
 */
export const UPSTREAM_DEFAULTS = {
  healthCheck: { intervalMs: 10_000, timeoutMs: 2_000, healthyThreshold: 2, unhealthyThreshold: 3 },
  circuitBreaker: { openMs: 60_000, successThreshold: 1, halfOpenRequests: 1 },
  outlierDetection: { consecutiveFailures: 5, baseEjectionMs: 30_000, maxEjectionMs: 300_000, maxEjectionPercent: 50 },
  retryBudget: { percent: 20, minConcurrent: 3 },
  pool: { connectionsPerEndpoint: 128, keepAliveTimeoutMs: 60_000, connectTimeoutMs: 5_000 },
} as const;

/** A path with `{param}` or `*` is a template; any other is exact unless a type is given. */
export function inferPathType(value: string): 'Exact' | 'Template' {
  return /[{*]/.test(value) ? 'Template' : 'Exact';
}
