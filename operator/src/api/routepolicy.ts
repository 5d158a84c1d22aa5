/**
 * RoutePolicy: Switchyard's per-route policies (authentication with roles and
 * permissions, rate limit, CORS, retries, timeout) as an object of its own, so
 * that HTTPRoutes can carry them: a rule names one with an `ExtensionRef`
 * filter. The fields are GatewayRoute's, with the same meaning and checks.
 *
 * This file is the source of truth for the resource: hack/gen-crds.ts
 * generates the CRD from it, and the operator parses objects with it.
 */
import { z } from 'zod';
import { API_VERSION, ObjectMetaSchema, conditions, duration, observedGeneration } from './common.ts';
import { AuthSchema, CorsSchema, RateLimitSchema, RetriesSchema } from './gatewayroute.ts';

/** Kind of the policy resource. */
export const ROUTE_POLICY_KIND = 'RoutePolicy';
/** Resource (plural) name of RoutePolicies. */
export const ROUTE_POLICY_PLURAL = 'routepolicies';

/** `spec` of a RoutePolicy. */
export const RoutePolicySpecSchema = z
  .object({
    auth: AuthSchema.optional(),
    rateLimit: RateLimitSchema.optional(),
    cors: CorsSchema.optional(),
    retries: RetriesSchema.optional(),
    timeout: duration({
      description: 'Total time the upstream has to start answering, retries included. Unset: the HTTPRoute rule\'s timeouts.request, else the gateway default.',
      min: '1ms',
      max: '1h',
    }).optional(),
  })
  .describe('The policies applied to every request an HTTPRoute rule serves when the rule names this object in an ExtensionRef filter (group switchyard.dev, kind RoutePolicy).');

/** `status` of a RoutePolicy, written by the operator. */
export const RoutePolicyStatusSchema = z
  .object({
    conditions: conditions('Accepted (the spec is valid; a rule naming an invalid policy answers 500).'),
    observedGeneration: observedGeneration(),
  })
  .describe('What the operator observed about this policy.');

/** A whole RoutePolicy object as the API server returns it. */
export const RoutePolicySchema = z.object({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(ROUTE_POLICY_KIND),
  metadata: ObjectMetaSchema,
  spec: RoutePolicySpecSchema,
  status: RoutePolicyStatusSchema.optional(),
});

/** `spec` of a RoutePolicy, defaults applied. */
export type RoutePolicySpec = z.infer<typeof RoutePolicySpecSchema>;
