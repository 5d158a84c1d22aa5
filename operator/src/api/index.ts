/**
 * The Switchyard API (group switchyard.dev, version v1alpha1): zod schemas and
 * types for GatewayRoute, Upstream and RoutePolicy, the parsers the operator uses, and the
 * CRDs generated from the schemas.
 */
export { API_VERSION, GROUP, VERSION, CONDITION_STATUSES, ConditionSchema, ObjectMetaSchema } from './common.ts';
export type { Condition, ObjectMeta } from './common.ts';
export {
  GATEWAY_ROUTE_KIND,
  GATEWAY_ROUTE_PLURAL,
  PATH_TYPES,
  RETRY_ON,
  AuthSchema,
  BackendSchema,
  CorsSchema,
  GatewayRouteSchema,
  GatewayRouteSpecSchema,
  GatewayRouteStatusSchema,
  HeaderMatchSchema,
  PathMatchSchema,
  QueryParamMatchSchema,
  RateLimitSchema,
  RetriesSchema,
  RewriteSchema,
} from './gatewayroute.ts';
export type { GatewayRoute, GatewayRouteInput, GatewayRouteSpec, GatewayRouteStatus } from './gatewayroute.ts';
export {
  UPSTREAM_KIND,
  UPSTREAM_PLURAL,
  LOAD_BALANCERS,
  PROTOCOLS,
  CircuitBreakerSchema,
  ConnectionPoolSchema,
  HealthCheckSchema,
  ServiceRefSchema,
  StaticSchema,
  TlsSchema,
  UpstreamSchema,
  UpstreamSpecSchema,
  UpstreamStatusSchema,
} from './upstream.ts';
export type { Upstream, UpstreamInput, UpstreamSpec, UpstreamStatus } from './upstream.ts';
export { formatFieldErrors, formatFieldPath, parseGatewayRoute, parseUpstream } from './parse.ts';
export type { FieldError, ParseResult } from './parse.ts';
export { durationMs, durationNs } from './common.ts';
export { ROUTE_POLICY_KIND, ROUTE_POLICY_PLURAL, RoutePolicySchema, RoutePolicySpecSchema, RoutePolicyStatusSchema } from './routepolicy.ts';
export type { RoutePolicySpec } from './routepolicy.ts';
export { CATEGORY, crdFiles, gatewayRouteCrd, routePolicyCrd, upstreamCrd } from './crd.ts';
export type { CustomResourceDefinition } from './crd.ts';
