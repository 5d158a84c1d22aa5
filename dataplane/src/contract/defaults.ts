/**
 * Defaults that both table producers (the config compiler and the operator)
 * fill in, so that a file and a GatewayRoute saying the same thing give the
 * same table.
 */
import type { PathMatch, Route } from './schema.ts';

/** Methods and headers a CORS policy allows when it does not say. */
export const DEFAULT_CORS_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'OPTIONS'];
export const DEFAULT_CORS_HEADERS = ['Content-Type', 'Authorization'];

/** Failures retried when a retry policy does not list them. */
export const DEFAULT_RETRY_ON: NonNullable<Route['retries']>['on'] = ['connect-failure', 'reset', '503'];

/** A path with `{param}` or `*` is a template; any other is exact unless a type is given. */
export function inferPathType(value: string): PathMatch['type'] {
  return /[{*]/.test(value) ? 'Template' : 'Exact';
}

/** A CORS policy with every unset field defaulted. */
export function corsPolicy(p: {
  allowedOrigins?: string[] | undefined;
  allowedMethods?: string[] | undefined;
  allowedHeaders?: string[] | undefined;
  exposedHeaders?: string[] | undefined;
  allowCredentials?: boolean | undefined;
  maxAgeSeconds?: number | undefined;
}): NonNullable<Route['cors']> {
  return {
    allowedOrigins: p.allowedOrigins ?? [],
    allowedMethods: p.allowedMethods ?? DEFAULT_CORS_METHODS,
    allowedHeaders: p.allowedHeaders ?? DEFAULT_CORS_HEADERS,
    exposedHeaders: p.exposedHeaders ?? [],
    allowCredentials: p.allowCredentials ?? false,
    maxAgeSeconds: p.maxAgeSeconds ?? 0,
  };
}
