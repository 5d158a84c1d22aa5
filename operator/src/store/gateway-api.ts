/**
 * From Gateway API objects (and the Secrets, Namespaces and data plane
 * Service they depend on) to the snapshot compile reads. Pure, like
 * convert.ts: the kube layer feeds it the informers' objects, golden tests
 * feed it YAML.
 */
import type { z } from 'zod';
import { formatFieldPath } from '../../../dataplane/src/contract/index.ts';
import { GatewayClassSpecSchema, GatewaySpecSchema, HTTPRouteSpecSchema, ReferenceGrantSpecSchema } from '../api/gateway-api.ts';
import { RoutePolicySpecSchema } from '../api/routepolicy.ts';
import type { GatewayAddress, GatewayApiSnapshot, NamespaceInfo, Parsed, SecretInfo, ServiceTemplate } from '../compile/snapshot.ts';
import { metaOf, type KubeObject } from './convert.ts';

/** The objects a Gateway API snapshot is built from. */
export interface GatewayApiObjects {
  gatewayClasses: readonly KubeObject[];
  gateways: readonly KubeObject[];
  httpRoutes: readonly KubeObject[];
  referenceGrants: readonly KubeObject[];
  routePolicies: readonly KubeObject[];
  /** `kubernetes.io/tls` Secrets (others may be passed; compile reports their type). */
  secrets: readonly KubeObject[];
  namespaces: readonly KubeObject[];
  /** The data plane Service every Gateway is reached at; undefined while it does not exist. */
  addressService: KubeObject | undefined;
  /** `namespace/name` of that Service, for messages; undefined when none is configured. */
  addressServiceKey: string | undefined;
  /** The controllerName of the GatewayClasses to serve. */
  controllerName: string;
  /** The Services in the data plane Service's namespace (each Gateway's own Service is one). */
  releaseServices: readonly KubeObject[];
}

function parse<S extends z.ZodType>(obj: KubeObject, schema: S): Parsed<z.output<S>> {
  const meta = metaOf(obj);
  const r = schema.safeParse(obj.spec ?? {});
  if (r.success) return { meta, spec: r.data };
  return { meta, error: r.error.issues.map((i) => (i.path.length === 0 ? `spec: ${i.message}` : `spec.${formatFieldPath(i.path)}: ${i.message}`)).join('; ') };
}

const decode = (value: unknown): string | undefined => (typeof value === 'string' ? Buffer.from(value, 'base64').toString('utf8') : undefined);

function secretInfo(obj: KubeObject): SecretInfo {
  const data = (obj.data ?? {}) as Record<string, unknown>;
  const info: SecretInfo = { namespace: obj.metadata?.namespace ?? '', name: obj.metadata?.name ?? '', type: typeof obj.type === 'string' ? obj.type : 'Opaque' };
  const cert = decode(data['tls.crt']);
  const key = decode(data['tls.key']);
  if (cert !== undefined) info.certificatePem = cert;
  if (key !== undefined) info.privateKeyPem = key;
  return info;
}

function namespaceInfo(obj: KubeObject): NamespaceInfo {
  return { name: obj.metadata?.name ?? '', labels: { ...(obj.metadata?.labels ?? {}) } };
}

/**
 * Where clients reach a Service: a LoadBalancer's ingress addresses once the
 * cloud assigned them (its cluster IP is not reachable from outside, so none
 * until then), else the cluster IPs.
 */
export function serviceAddresses(obj: KubeObject | undefined): GatewayAddress[] {
  if (obj === undefined) return [];
  const spec = (obj.spec ?? {}) as { type?: string; clusterIP?: string; clusterIPs?: string[] };
  if (spec.type === 'LoadBalancer') {
    const ingress = ((obj.status as { loadBalancer?: { ingress?: { ip?: string; hostname?: string }[] } } | undefined)?.loadBalancer?.ingress ?? []);
    return ingress.flatMap((i): GatewayAddress[] => (i.ip ? [{ type: 'IPAddress', value: i.ip }] : i.hostname ? [{ type: 'Hostname', value: i.hostname }] : []));
  }
  const ips = spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : []);
  return ips.filter((ip) => ip !== '' && ip !== 'None').map((value) => ({ type: 'IPAddress' as const, value }));
}

/**
 * The data plane Service's ports that reach the data planes' `http` and
 * `https` listeners: the chart names them so. Without the Service, the
 * chart's defaults, so listeners are judged the same before it exists.
 */
export function servicePorts(obj: KubeObject | undefined): { http?: number; https?: number } {
  if (obj === undefined) return { http: 80, https: 443 };
  const ports = ((obj.spec ?? {}) as { ports?: { name?: string; port: number }[] }).ports ?? [];
  const of = (name: string): number | undefined => ports.find((p) => p.name === name)?.port;
  const http = of('http');
  const https = of('https');
  return { ...(http === undefined ? {} : { http }), ...(https === undefined ? {} : { https }) };
}

/** What a Gateway's own Service copies from the data plane Service. */
function template(obj: KubeObject | undefined): ServiceTemplate | undefined {
  if (obj === undefined) return undefined;
  const spec = (obj.spec ?? {}) as { type?: string; selector?: Record<string, string>; externalTrafficPolicy?: string; loadBalancerClass?: string; loadBalancerSourceRanges?: string[] };
  return {
    namespace: obj.metadata?.namespace ?? '',
    name: obj.metadata?.name ?? '',
    type: spec.type ?? 'ClusterIP',
    selector: { ...(spec.selector ?? {}) },
    ...(spec.externalTrafficPolicy ? { externalTrafficPolicy: spec.externalTrafficPolicy } : {}),
    ...(spec.loadBalancerClass ? { loadBalancerClass: spec.loadBalancerClass } : {}),
    ...(spec.loadBalancerSourceRanges?.length ? { loadBalancerSourceRanges: [...spec.loadBalancerSourceRanges] } : {}),
    // Load balancer settings live in annotations (cloud providers read them); Helm's own do not belong on another object.
    annotations: Object.fromEntries(Object.entries(((obj.metadata as { annotations?: Record<string, string> } | undefined)?.annotations ?? {})).filter(([k]) => !k.startsWith('meta.helm.sh/') && k !== 'kubectl.kubernetes.io/last-applied-configuration')),
  };
}

/** The Gateway API part of a snapshot. */
export function gatewayApiSnapshot(objects: GatewayApiObjects): GatewayApiSnapshot {
  return {
    gatewayClasses: objects.gatewayClasses.map((o) => parse(o, GatewayClassSpecSchema)),
    gateways: objects.gateways.map((o) => parse(o, GatewaySpecSchema)),
    httpRoutes: objects.httpRoutes.map((o) => parse(o, HTTPRouteSpecSchema)),
    referenceGrants: objects.referenceGrants.map((o) => parse(o, ReferenceGrantSpecSchema)),
    routePolicies: objects.routePolicies.map((o) => parse(o, RoutePolicySpecSchema)),
    secrets: objects.secrets.map(secretInfo),
    namespaces: objects.namespaces.map(namespaceInfo),
    addresses: serviceAddresses(objects.addressService),
    addressSource: objects.addressServiceKey === undefined ? 'the data plane Service (none is configured: --gateway-service)' : `Service "${objects.addressServiceKey}"`,
    ports: servicePorts(objects.addressService),
    controllerName: objects.controllerName,
    ...(objects.addressService === undefined ? {} : { template: template(objects.addressService) as ServiceTemplate }),
    serviceAddresses: Object.fromEntries(objects.releaseServices.map((o) => [o.metadata?.name ?? '', serviceAddresses(o)])),
  };
}
