/**
 * What compile reads: plain data taken from the API objects, already parsed.
 * The kube layer builds it; tests write it by hand or load it from golden files.
 */
import type { GatewayClassSpec, GatewaySpec, HTTPRouteSpec, ReferenceGrantSpec } from '../api/gateway-api.ts';
import type { GatewayRouteSpec } from '../api/gatewayroute.ts';
import type { RoutePolicySpec } from '../api/routepolicy.ts';
import type { UpstreamSpec as UpstreamResourceSpec } from '../api/upstream.ts';

/** The identity and age of an object. */
export interface ObjectMeta {
  namespace: string;
  name: string;
  generation: number;
  /** RFC 3339, as the API server writes it; orders routes for conflicts. */
  creationTimestamp: string;
}

/** GatewayRoute.spec, defaults applied: the type inferred from the resource's own schema. */
export type RouteSpec = GatewayRouteSpec;
/** Upstream.spec, defaults applied: the type inferred from the resource's own schema. */
export type UpstreamSpec = UpstreamResourceSpec;

/** A custom resource: its spec, or why it could not be parsed. */
export type Parsed<S> = { meta: ObjectMeta; spec: S; error?: undefined } | { meta: ObjectMeta; spec?: undefined; error: string };

/** The parts of a Service compile needs. */
export interface ServiceInfo {
  namespace: string;
  name: string;
  /** ClusterIP (the default), NodePort, LoadBalancer or ExternalName. */
  type?: string;
  ports: { name?: string; port: number; protocol?: string; appProtocol?: string }[];
}

/** A `kubernetes.io/tls` Secret that a Gateway listener may name, its data decoded. */
export interface SecretInfo {
  namespace: string;
  name: string;
  type: string;
  certificatePem?: string;
  privateKeyPem?: string;
}

/**
 * A Secret or ConfigMap an Upstream names for its TLS (a CA bundle, a client
 * certificate), its data decoded. Only kubernetes.io/tls Secrets are read.
 */
export interface DataObjectInfo {
  namespace: string;
  name: string;
  /** A Secret's type; absent for a ConfigMap. */
  type?: string;
  data: Record<string, string>;
}

/** A namespace and its labels, for `allowedRoutes` selectors. */
export interface NamespaceInfo {
  name: string;
  labels: Record<string, string>;
}

/** An address clients reach the data planes at, as Gateway status writes it. */
export interface GatewayAddress {
  type: 'IPAddress' | 'Hostname';
  value: string;
}

/** The Gateway API objects, when the cluster has the CRDs. */
export interface GatewayApiSnapshot {
  /** Cluster-scoped: `meta.namespace` is empty. */
  gatewayClasses: Parsed<GatewayClassSpec>[];
  gateways: Parsed<GatewaySpec>[];
  httpRoutes: Parsed<HTTPRouteSpec>[];
  referenceGrants: Parsed<ReferenceGrantSpec>[];
  routePolicies: Parsed<RoutePolicySpec>[];
  secrets: SecretInfo[];
  namespaces: NamespaceInfo[];
  /** The data plane Service's addresses; every Gateway of Switchyard's classes is reached there. Empty while none is assigned. */
  addresses: GatewayAddress[];
  /** Where the addresses come from, for messages, e.g. `Service "switchyard/switchyard-dataplane"`. */
  addressSource: string;
  /**
   * The ports of that Service that reach the data planes' `http` and `https`
   * listeners (its ports named so): the only ports Gateway listeners can use.
   * Absent: the Service has no such port.
   */
  ports: { http?: number; https?: number };
  /** The controllerName of the GatewayClasses this operator serves. */
  controllerName: string;
  /**
   * The data plane Service as the model of each Gateway's own Service (its
   * namespace, type, selector and load balancer settings); undefined when
   * none is configured or it does not exist yet.
   */
  template?: ServiceTemplate;
  /** Where the Services in the template's namespace are reached, by name: each Gateway's own Service among them. */
  serviceAddresses: Record<string, GatewayAddress[]>;
}

/** What a Gateway's own Service takes from the data plane Service. */
export interface ServiceTemplate {
  namespace: string;
  name: string;
  type: string;
  selector: Record<string, string>;
  externalTrafficPolicy?: string;
  loadBalancerClass?: string;
  loadBalancerSourceRanges?: string[];
  annotations: Record<string, string>;
}

/** The parts of an EndpointSlice compile needs. */
export interface EndpointSliceInfo {
  namespace: string;
  name: string;
  /** The `kubernetes.io/service-name` label. */
  serviceName: string;
  addressType: string;
  ports: { name?: string; port?: number; protocol?: string }[];
  endpoints: {
    addresses: string[];
    conditions?: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null };
    targetRef?: { name?: string };
  }[];
}

/** Everything one compile run sees. */
export interface Snapshot {
  routes: Parsed<RouteSpec>[];
  upstreams: Parsed<UpstreamSpec>[];
  services: ServiceInfo[];
  endpointSlices: EndpointSliceInfo[];
  /** kubernetes.io/tls Secrets and ConfigMaps, for Upstreams' `spec.tls` references. Absent: none. */
  secrets?: DataObjectInfo[];
  configMaps?: DataObjectInfo[];
  /** Absent when the Gateway API CRDs are not installed: then only GatewayRoutes and Upstreams compile. */
  gatewayApi?: GatewayApiSnapshot;
}

/** `namespace/name`, the key used everywhere. */
export const keyOf = (meta: { namespace: string; name: string }): string => `${meta.namespace}/${meta.name}`;
