/**
 * The contract between the operator and the data plane: the route table's
 * schema and defaults, durations and field paths as both write them, and the
 * rules that decide which routes are valid and which one wins a request (the
 * matcher's own rules, not a copy of them).
 *
 * The operator imports this module and nothing else of the data plane
 * (eslint.config.js enforces it); this module imports nothing of the
 * gateway.yaml loader or of the request path.
 */
export * from './schema.ts';
export * from './defaults.ts';
export * from './policy.ts';
export { canonicalJson, tableVersion } from './version.ts';
export { applyTableDelta, DELTA_PROTOCOL, DeltaMismatchError, diffTables, type ListDelta, type TableDelta } from './delta.ts';
export { formatDuration, parseDuration } from './duration.ts';
export { describeIssues, formatFieldPath } from './field-path.ts';
export { describeClaim, resolveRoutes } from './routes.ts';
export { requestHeaderModifiable, responseHeaderModifiable } from './headers.ts';
export { routeProblem } from '../routing/matcher.ts';
export type { Claim, ResolvableRoute, ResolveOptions, RouteRejection, RouteResolution } from './routes.ts';
