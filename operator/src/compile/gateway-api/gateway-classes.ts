/**
 * GatewayClasses: those whose controllerName is Switchyard's are accepted
 * (Switchyard takes no parameters), and say which Gateway API features the
 * data planes serve. Other classes belong to other controllers and get no
 * status from Switchyard.
 */
import { condition, type ConditionInput } from '../../status/conditions.ts';
import { GwCondition, GwReason } from '../../status/gateway-api.ts';
import type { GatewayClassSpec } from '../../api/gateway-api.ts';
import type { Parsed } from '../snapshot.ts';

/**
 * The features of the conformance suite's GATEWAY-HTTP profile that
 * Switchyard implements, as GatewayClass status lists them: the core ones,
 * then the extended ones the suite proves (docs/conformance/). The suite reads
 * this list from the GatewayClass to choose its tests.
 */
export const SUPPORTED_FEATURES: readonly string[] = [
  'Gateway',
  'HTTPRoute',
  'ReferenceGrant',
  'GatewayAddressEmpty',
  'GatewayPort8080',
  'HTTPRoute303RedirectStatusCode',
  'HTTPRoute307RedirectStatusCode',
  'HTTPRoute308RedirectStatusCode',
  'HTTPRouteBackendTimeout',
  'HTTPRouteDestinationPortMatching',
  'HTTPRouteNamedRouteRule',
  'HTTPRouteParentRefPort',
  'HTTPRouteRequestTimeout',
  'HTTPRouteHostRewrite',
  'HTTPRouteMethodMatching',
  'HTTPRoutePathRedirect',
  'HTTPRoutePathRewrite',
  'HTTPRoutePortRedirect',
  'HTTPRouteQueryParamMatching',
  'HTTPRouteRequestMirror',
  'HTTPRouteRequestMultipleMirrors',
  'HTTPRouteRequestPercentageMirror',
  'HTTPRouteResponseHeaderModification',
  'HTTPRouteSchemeRedirect',
].sort();

/** Compile's verdict on one of Switchyard's GatewayClasses. */
export interface ClassResult {
  name: string;
  generation: number;
  accepted: boolean;
  conditions: ConditionInput[];
}

/** Switchyard's GatewayClasses, by name. */
export function compileGatewayClasses(classes: readonly Parsed<GatewayClassSpec>[], controllerName: string): Map<string, ClassResult> {
  const out = new Map<string, ClassResult>();
  for (const c of classes) {
    if (c.spec?.controllerName !== controllerName) continue;
    const accepted = c.spec.parametersRef === undefined;
    out.set(c.meta.name, {
      name: c.meta.name,
      generation: c.meta.generation,
      accepted,
      conditions: [
        accepted
          ? condition(GwCondition.Accepted, true, GwReason.Accepted, 'Switchyard serves the Gateways of this class')
          : condition(GwCondition.Accepted, false, GwReason.InvalidParameters, 'Switchyard takes no parameters: remove parametersRef (the data planes are configured by the Helm chart)'),
      ],
    });
  }
  return out;
}
