/**
 * The parts of the Gateway API (gateway.networking.k8s.io/v1, standard
 * channel) the operator reads: GatewayClass, Gateway, HTTPRoute and
 * ReferenceGrant. The CRDs themselves are the upstream release's
 * (crds/gateway-api/), whose OpenAPI schemas and CEL rules the API server
 * enforces; these schemas give compile typed specs and apply the same
 * defaults, so golden files written without them compile as the API server
 * would store them. Fields Switchyard does not implement are read too, so that
 * compile can say so in status instead of silently ignoring them.
 */
import { z } from 'zod';

/** The API group of the Gateway API. */
export const GATEWAY_API_GROUP = 'gateway.networking.k8s.io';
/** The version the operator reads and writes. */
export const GATEWAY_API_VERSION = 'v1';
/** The release whose standard-channel CRDs crds/gateway-api/ holds. */
export const GATEWAY_API_BUNDLE_VERSION = 'v1.6.3';
/** The controllerName a GatewayClass names for Switchyard to manage it. */
export const CONTROLLER_NAME = 'switchyard.dev/gateway-controller';

/** A reference to a Kubernetes object of any kind, as Gateway API references are written. */
const objectRef = {
  group: z.string().max(253).default(''),
  kind: z.string().min(1).max(63),
  name: z.string().min(1).max(253),
  namespace: z.string().min(1).max(63).optional(),
};

const LabelSelectorSchema = z.object({
  matchLabels: z.record(z.string(), z.string()).optional(),
  matchExpressions: z
    .array(z.object({ key: z.string(), operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']), values: z.array(z.string()).optional() }))
    .optional(),
});
export type LabelSelector = z.infer<typeof LabelSelectorSchema>;

/** `GatewayClass.spec`. */
export const GatewayClassSpecSchema = z.object({
  controllerName: z.string().min(1),
  parametersRef: z.object({ group: z.string(), kind: z.string(), name: z.string(), namespace: z.string().optional() }).optional(),
  description: z.string().optional(),
});
export type GatewayClassSpec = z.infer<typeof GatewayClassSpecSchema>;

/** `Gateway.spec.listeners[]`. */
export const ListenerSchema = z.object({
  name: z.string().min(1),
  hostname: z.string().min(1).optional(),
  port: z.number().int(),
  protocol: z.string().min(1),
  tls: z
    .object({
      mode: z.string().default('Terminate'),
      certificateRefs: z.array(z.object({ ...objectRef, kind: objectRef.kind.default('Secret') })).default([]),
      options: z.record(z.string(), z.string()).optional(),
    })
    .optional(),
  allowedRoutes: z
    .object({
      namespaces: z.object({ from: z.enum(['All', 'Same', 'Selector']).default('Same'), selector: LabelSelectorSchema.optional() }).default({ from: 'Same' }),
      kinds: z.array(z.object({ group: z.string().default(GATEWAY_API_GROUP), kind: z.string() })).optional(),
    })
    .default({ namespaces: { from: 'Same' } }),
});
export type Listener = z.infer<typeof ListenerSchema>;

/** `Gateway.spec`. */
export const GatewaySpecSchema = z.object({
  gatewayClassName: z.string().min(1),
  listeners: z.array(ListenerSchema).default([]),
  addresses: z.array(z.object({ type: z.string().default('IPAddress'), value: z.string().optional() })).optional(),
  infrastructure: z.unknown().optional(),
  tls: z.unknown().optional(),
});
export type GatewaySpec = z.infer<typeof GatewaySpecSchema>;

/** `HTTPRoute.spec.parentRefs[]`. */
export const ParentRefSchema = z.object({
  group: z.string().default(GATEWAY_API_GROUP),
  kind: z.string().default('Gateway'),
  namespace: z.string().optional(),
  name: z.string().min(1),
  sectionName: z.string().optional(),
  port: z.number().int().optional(),
});
export type ParentRef = z.infer<typeof ParentRefSchema>;

const HeaderModifierFilterSchema = z.object({
  set: z.array(z.object({ name: z.string(), value: z.string() })).optional(),
  add: z.array(z.object({ name: z.string(), value: z.string() })).optional(),
  remove: z.array(z.string()).optional(),
});

const PathModifierSchema = z.object({
  type: z.enum(['ReplaceFullPath', 'ReplacePrefixMatch']),
  replaceFullPath: z.string().optional(),
  replacePrefixMatch: z.string().optional(),
});

const BackendObjectRefSchema = z.object({ ...objectRef, kind: objectRef.kind.default('Service'), port: z.number().int().optional() });

/** `HTTPRoute.spec.rules[].filters[]`. */
export const HTTPRouteFilterSchema = z.object({
  type: z.string(),
  requestHeaderModifier: HeaderModifierFilterSchema.optional(),
  responseHeaderModifier: HeaderModifierFilterSchema.optional(),
  requestRedirect: z
    .object({
      scheme: z.string().optional(),
      hostname: z.string().optional(),
      path: PathModifierSchema.optional(),
      port: z.number().int().optional(),
      statusCode: z.number().int().default(302),
    })
    .optional(),
  urlRewrite: z.object({ hostname: z.string().optional(), path: PathModifierSchema.optional() }).optional(),
  requestMirror: z
    .object({
      backendRef: BackendObjectRefSchema,
      percent: z.number().int().optional(),
      fraction: z.object({ numerator: z.number().int(), denominator: z.number().int().default(100) }).optional(),
    })
    .optional(),
  extensionRef: z.object({ group: z.string(), kind: z.string(), name: z.string() }).optional(),
  cors: z.unknown().optional(),
  externalAuth: z.unknown().optional(),
});
export type HTTPRouteFilter = z.infer<typeof HTTPRouteFilterSchema>;

const StringMatchSchema = z.object({ type: z.string().default('Exact'), name: z.string().min(1), value: z.string() });

/** `HTTPRoute.spec.rules[].matches[]`. */
export const HTTPRouteMatchSchema = z.object({
  path: z.object({ type: z.string().default('PathPrefix'), value: z.string().default('/') }).default({ type: 'PathPrefix', value: '/' }),
  headers: z.array(StringMatchSchema).optional(),
  queryParams: z.array(StringMatchSchema).optional(),
  method: z.string().optional(),
});
export type HTTPRouteMatch = z.infer<typeof HTTPRouteMatchSchema>;

/** `HTTPRoute.spec.rules[]`. */
export const HTTPRouteRuleSchema = z.object({
  name: z.string().optional(),
  matches: z.array(HTTPRouteMatchSchema).default([{ path: { type: 'PathPrefix', value: '/' } }]),
  filters: z.array(HTTPRouteFilterSchema).default([]),
  backendRefs: z.array(BackendObjectRefSchema.extend({ weight: z.number().int().default(1), filters: z.array(z.unknown()).optional() })).default([]),
  timeouts: z.object({ request: z.string().optional(), backendRequest: z.string().optional() }).optional(),
  retry: z.unknown().optional(),
  sessionPersistence: z.unknown().optional(),
});
export type HTTPRouteRule = z.infer<typeof HTTPRouteRuleSchema>;

/** `HTTPRoute.spec`. */
export const HTTPRouteSpecSchema = z.object({
  parentRefs: z.array(ParentRefSchema).default([]),
  hostnames: z.array(z.string()).default([]),
  rules: z.array(HTTPRouteRuleSchema).default([{ matches: [{ path: { type: 'PathPrefix', value: '/' } }], filters: [], backendRefs: [] }]),
});
export type HTTPRouteSpec = z.infer<typeof HTTPRouteSpecSchema>;

/** `ReferenceGrant.spec`. */
export const ReferenceGrantSpecSchema = z.object({
  from: z.array(z.object({ group: z.string(), kind: z.string(), namespace: z.string() })),
  to: z.array(z.object({ group: z.string(), kind: z.string(), name: z.string().optional() })),
});
export type ReferenceGrantSpec = z.infer<typeof ReferenceGrantSpecSchema>;

/** Whether `labels` satisfy a label selector (an empty selector selects everything). */
export function selects(selector: LabelSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(selector?.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of selector?.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const value = labels[e.key];
    const values = e.values ?? [];
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
    if (e.operator === 'In' && (!has || !values.includes(value as string))) return false;
    if (e.operator === 'NotIn' && has && values.includes(value as string)) return false;
  }
  return true;
}
