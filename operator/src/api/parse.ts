/**
 * Parsing objects read from the API server. The CRD makes the API server reject
 * invalid objects, but it may be older than the operator (or missing a rule), so
 * the operator parses every object again and reports what is wrong with it as a
 * status condition instead of compiling it.
 */
import type { z } from 'zod';
import { formatFieldPath } from '../../../dataplane/src/contract/index.ts';
import { GatewayRouteSchema } from './gatewayroute.ts';
import type { GatewayRoute } from './gatewayroute.ts';
import { UpstreamSchema } from './upstream.ts';
import type { Upstream } from './upstream.ts';

/** One problem, on the field it concerns, written the way the API server writes field paths. */
export interface FieldError {
  /** e.g. `spec.backends[0].weight`; `""` for the object itself. */
  readonly field: string;
  readonly message: string;
}

/** A typed object with defaults applied, or every problem found. */
export type ParseResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly errors: readonly FieldError[] };

/** Parses a GatewayRoute (as returned by the API server or read from a manifest). */
export function parseGatewayRoute(obj: unknown): ParseResult<GatewayRoute> {
  return parseWith(GatewayRouteSchema, obj);
}

/** Parses an Upstream (as returned by the API server or read from a manifest). */
export function parseUpstream(obj: unknown): ParseResult<Upstream> {
  return parseWith(UpstreamSchema, obj);
}

function parseWith<S extends z.ZodType>(schema: S, obj: unknown): ParseResult<z.output<S>> {
  const result = schema.safeParse(obj);
  if (result.success) return { ok: true, value: result.data };
  const errors = result.error.issues.map((issue): FieldError => ({
    field: formatFieldPath(issue.path),
    message: issue.code === 'invalid_type' && /received undefined$/.test(issue.message) ? 'Required value' : issue.message,
  }));
  return { ok: false, errors };
}

/** `['spec', 'backends', 0, 'weight']` → `spec.backends[0].weight`. */
export { formatFieldPath };

/** One line per problem: `spec.path.value: must start with "/"`. */
export function formatFieldErrors(errors: readonly FieldError[]): string {
  return errors.map((e) => (e.field === '' ? e.message : `${e.field}: ${e.message}`)).join('; ');
}
