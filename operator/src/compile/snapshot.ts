/**
 * What compile reads: plain data taken from the API objects, already parsed.
 * The kube layer builds it; tests write it by hand or load it from golden files.
 */

/** The identity and age of an object. */
export interface ObjectMeta {
  namespace: string;
  name: string;
  generation: number;
  /** RFC 3339, as the API server writes it; orders routes for conflicts. */
  creationTimestamp: string;
}

/** GatewayRoute.spec as the operator uses it (the CRD's schema is the full definition). */
export interface RouteSpec {
  hosts?: string[];
  path: { type?: 'Exact' | 'Prefix' | 'Template'; value: string };
  methods?: string[];
  upstream?: string;
  backends?: { upstream: string; weight?: number }[];
  auth?: { required?: boolean; roles?: string[]; permissions?: string[] };
  rateLimit?: { requests: number; window?: string };
  timeout?: string;
  retries?: { attempts: number; retryOn?: string[]; nonIdempotent?: boolean; backoff?: string };
  cors?: {
    allowedOrigins?: string[];
    allowedMethods?: string[];
    allowedHeaders?: string[];
    exposedHeaders?: string[];
    allowCredentials?: boolean;
    maxAge?: number;
  };
  rewrite?: { path?: string };
}

/** Upstream.spec as the operator uses it. */
export interface UpstreamSpec {
  service?: { name: string; port: number | string };
  static?: { endpoints: string[] };
  protocol?: 'http' | 'https';
  loadBalancer?: 'RoundRobin' | 'LeastRequest' | 'Random';
  healthCheck?: { path: string; interval?: string; timeout?: string; healthyThreshold?: number; unhealthyThreshold?: number };
  circuitBreaker?: { failureThreshold: number; timeout?: string; successThreshold?: number; halfOpenRequests?: number };
  outlierDetection?: { consecutiveFailures?: number; baseEjectionTime?: string; maxEjectionTime?: string; maxEjectionPercent?: number };
  whenAllUnhealthy?: 'panic' | 'fail';
  retryBudget?: { percent?: number; minConcurrent?: number };
  timeout?: string;
  connectionPool?: { maxConnections?: number; connectTimeout?: string; idleTimeout?: string };
  tls?: { serverName?: string; insecureSkipVerify?: boolean };
}

/** A custom resource: its spec, or why it could not be parsed. */
export type Parsed<S> = { meta: ObjectMeta; spec: S; error?: undefined } | { meta: ObjectMeta; spec?: undefined; error: string };

/** The parts of a Service compile needs. */
export interface ServiceInfo {
  namespace: string;
  name: string;
  ports: { name?: string; port: number; protocol?: string }[];
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
}

/** `namespace/name`, the key used everywhere. */
export const keyOf = (meta: { namespace: string; name: string }): string => `${meta.namespace}/${meta.name}`;
