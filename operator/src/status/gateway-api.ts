/**
 * Condition types and reasons of the Gateway API (gateway.networking.k8s.io
 * v1) as the operator writes them on GatewayClasses, Gateways, their
 * listeners and HTTPRoute parents. The names are the API's own; the few
 * Switchyard adds are domain-prefixed types or reasons the API leaves to
 * implementations.
 */

/** Condition types. */
export const GwCondition = {
  Accepted: 'Accepted',
  Programmed: 'Programmed',
  ResolvedRefs: 'ResolvedRefs',
  Conflicted: 'Conflicted',
  SupportedVersion: 'SupportedVersion',
  PartiallyInvalid: 'PartiallyInvalid',
  OverlappingTLSConfig: 'OverlappingTLSConfig',
  /**
   * On an HTTPRoute parent: some of the route's matches never serve some of
   * their hosts, because an older route (a GatewayRoute or an HTTPRoute) has
   * the same host, path, method and conditions. The API resolves such ties by
   * age without a condition; Switchyard says so, as it does for GatewayRoutes.
   */
  Shadowed: 'switchyard.dev/Shadowed',
} as const;

/** Reasons. */
export const GwReason = {
  Accepted: 'Accepted',
  InvalidParameters: 'InvalidParameters',
  SupportedVersion: 'SupportedVersion',
  UnsupportedVersion: 'UnsupportedVersion',
  ListenersNotValid: 'ListenersNotValid',
  UnsupportedAddress: 'UnsupportedAddress',
  Programmed: 'Programmed',
  Invalid: 'Invalid',
  AddressNotAssigned: 'AddressNotAssigned',
  Pending: 'Pending',
  ResolvedRefs: 'ResolvedRefs',
  ListenersNotResolved: 'ListenersNotResolved',
  NoConflicts: 'NoConflicts',
  HostnameConflict: 'HostnameConflict',
  ProtocolConflict: 'ProtocolConflict',
  PortUnavailable: 'PortUnavailable',
  UnsupportedProtocol: 'UnsupportedProtocol',
  UnsupportedValue: 'UnsupportedValue',
  InvalidCertificateRef: 'InvalidCertificateRef',
  InvalidRouteKinds: 'InvalidRouteKinds',
  RefNotPermitted: 'RefNotPermitted',
  OverlappingHostnames: 'OverlappingHostnames',
  NotAllowedByListeners: 'NotAllowedByListeners',
  NoMatchingListenerHostname: 'NoMatchingListenerHostname',
  NoMatchingParent: 'NoMatchingParent',
  InvalidKind: 'InvalidKind',
  BackendNotFound: 'BackendNotFound',
  /** An ExtensionRef names a RoutePolicy that does not exist or is not valid; the rule answers 500. */
  PolicyNotFound: 'PolicyNotFound',
  Shadowed: 'Shadowed',
} as const;
