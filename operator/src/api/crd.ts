/**
 * The CustomResourceDefinitions, built from the zod schemas. hack/gen-crds.ts
 * writes them to crds/; a unit test rebuilds them and fails when the committed
 * files differ, so the YAML can never drift from the schemas.
 */
import { stringify } from 'yaml';
import { GROUP, VERSION } from './common.ts';
import { GATEWAY_ROUTE_KIND, GATEWAY_ROUTE_PLURAL, GatewayRouteSpecSchema, GatewayRouteStatusSchema } from './gatewayroute.ts';
import { toStructuralSchema } from './openapi.ts';
import type { JSONSchemaProps } from './openapi.ts';
import { ROUTE_POLICY_KIND, ROUTE_POLICY_PLURAL, RoutePolicySpecSchema, RoutePolicyStatusSchema } from './routepolicy.ts';
import { UPSTREAM_KIND, UPSTREAM_PLURAL, UpstreamSpecSchema, UpstreamStatusSchema } from './upstream.ts';

/** A printer column of `kubectl get`. */
export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

/** The apiextensions.k8s.io/v1 CustomResourceDefinition fields these CRDs use. */
export interface CustomResourceDefinition {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels: Record<string, string> };
  spec: {
    group: string;
    names: { kind: string; listKind: string; plural: string; singular: string; shortNames: string[]; categories: string[] };
    scope: 'Namespaced';
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      subresources: { status: Record<string, never> };
      additionalPrinterColumns: PrinterColumn[];
      schema: { openAPIV3Schema: JSONSchemaProps };
    }[];
  };
}

/** `kubectl get switchyard` lists every kind in this category. */
export const CATEGORY = 'switchyard';

interface Definition {
  kind: string;
  plural: string;
  shortName: string;
  description: string;
  spec: JSONSchemaProps;
  status: JSONSchemaProps;
  columns: PrinterColumn[];
}

function conditionColumn(type: string, description: string): PrinterColumn {
  return { name: type, type: 'string', jsonPath: `.status.conditions[?(@.type=="${type}")].status`, description };
}

const AGE: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

function build(def: Definition): CustomResourceDefinition {
  const singular = def.kind.toLowerCase();
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${def.plural}.${GROUP}`, labels: { 'app.kubernetes.io/name': 'switchyard', 'app.kubernetes.io/part-of': 'switchyard' } },
    spec: {
      group: GROUP,
      names: { kind: def.kind, listKind: `${def.kind}List`, plural: def.plural, singular, shortNames: [def.shortName], categories: [CATEGORY] },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: def.columns,
          schema: {
            openAPIV3Schema: {
              description: def.description,
              type: 'object',
              required: ['spec'],
              properties: {
                apiVersion: {
                  description: 'Versioned schema of this representation of an object; here switchyard.dev/v1alpha1.',
                  type: 'string',
                },
                kind: { description: `Type of the object; here ${def.kind}.`, type: 'string' },
                metadata: { type: 'object' },
                spec: def.spec,
                status: def.status,
              },
            },
          },
        },
      ],
    },
  };
}

/** The GatewayRoute CRD. */
export function gatewayRouteCrd(): CustomResourceDefinition {
  return build({
    kind: GATEWAY_ROUTE_KIND,
    plural: GATEWAY_ROUTE_PLURAL,
    shortName: 'gwr',
    description:
      'GatewayRoute sends requests that match hosts, a path and methods to an Upstream in the same namespace (or to several, by weight), with optional authentication, rate limit, timeout, retries, CORS and path rewrite.',
    spec: toStructuralSchema(GatewayRouteSpecSchema),
    status: toStructuralSchema(GatewayRouteStatusSchema),
    columns: [
      { name: 'Path', type: 'string', jsonPath: '.spec.path.value', description: 'The path the route matches.' },
      { name: 'Type', type: 'string', jsonPath: '.spec.path.type', description: 'Exact, Prefix or Template.', priority: 1 },
      { name: 'Upstream', type: 'string', jsonPath: '.spec.upstream', description: 'The Upstream that receives the requests (empty with weighted backends).' },
      conditionColumn('Accepted', 'Whether the route is valid and wins its host, method and path.'),
      conditionColumn('Programmed', 'Whether every connected gateway serves the current generation.'),
      AGE,
    ],
  });
}

/** The Upstream CRD. */
export function upstreamCrd(): CustomResourceDefinition {
  return build({
    kind: UPSTREAM_KIND,
    plural: UPSTREAM_PLURAL,
    shortName: 'ups',
    description:
      'Upstream is a set of endpoints that GatewayRoutes send requests to: the ready pods behind a Service (from its EndpointSlices) or fixed URLs, with load balancing, health checks, a circuit breaker, connection pool and TLS settings.',
    spec: toStructuralSchema(UpstreamSpecSchema),
    status: toStructuralSchema(UpstreamStatusSchema),
    columns: [
      { name: 'Service', type: 'string', jsonPath: '.spec.service.name', description: 'The Service whose endpoints are used.' },
      { name: 'Ready', type: 'integer', jsonPath: '.status.readyEndpoints', description: 'Endpoints ready to receive traffic.' },
      { name: 'Total', type: 'integer', jsonPath: '.status.totalEndpoints', description: 'All known endpoints.' },
      conditionColumn('Accepted', 'Whether the spec is valid.'),
      AGE,
    ],
  });
}

/** The RoutePolicy CRD. */
export function routePolicyCrd(): CustomResourceDefinition {
  return build({
    kind: ROUTE_POLICY_KIND,
    plural: ROUTE_POLICY_PLURAL,
    shortName: 'rpol',
    description:
      'RoutePolicy holds the authentication, rate limit, CORS, retry and timeout settings of a GatewayRoute for HTTPRoutes: an HTTPRoute rule applies it by naming it in an ExtensionRef filter.',
    spec: toStructuralSchema(RoutePolicySpecSchema),
    status: toStructuralSchema(RoutePolicyStatusSchema),
    columns: [
      { name: 'Auth', type: 'boolean', jsonPath: '.spec.auth.required', description: 'Whether a valid token is required.' },
      { name: 'Limit', type: 'integer', jsonPath: '.spec.rateLimit.requests', description: 'Requests per window and client.' },
      conditionColumn('Accepted', 'Whether the spec is valid.'),
      AGE,
    ],
  });
}

/** Every CRD with the path (relative to the repository) it is written to. */
export function crdFiles(): { path: string; content: string }[] {
  return [gatewayRouteCrd(), upstreamCrd(), routePolicyCrd()].map((crd) => ({ path: `crds/${crd.metadata.name}.yaml`, content: renderCrd(crd) }));
}

/**
 * The YAML text of a CRD file, with a header saying where it comes from. Written
 * as YAML 1.1, which is what kubectl reads: words such as `on`, `yes` and `no`
 * get quoted, where YAML 1.2 would leave them bare and kubectl would read booleans.
 */
function renderCrd(crd: CustomResourceDefinition): string {
  const sources: Record<string, string> = { [GATEWAY_ROUTE_KIND]: 'operator/src/api/gatewayroute.ts', [UPSTREAM_KIND]: 'operator/src/api/upstream.ts', [ROUTE_POLICY_KIND]: 'operator/src/api/routepolicy.ts' };
  const source = sources[crd.spec.names.kind] as string;
  return `# Generated from ${source} by hack/gen-crds.ts. Do not edit: run \`npm run gen:crds\`.\n${stringify(crd, { lineWidth: 0, version: '1.1' })}`;
}
