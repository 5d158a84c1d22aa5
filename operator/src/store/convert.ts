/**
 * From API objects to the snapshot compile reads. Pure: the kube layer feeds
 * it the informers' objects, golden tests feed it YAML.
 */
import type { DataObjectInfo, EndpointSliceInfo, GatewayApiSnapshot, ObjectMeta, Parsed, RouteSpec, ServiceInfo, Snapshot, UpstreamSpec } from '../compile/snapshot.ts';

/** The least an API object has. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { namespace?: string; name?: string; uid?: string; resourceVersion?: string; generation?: number; creationTimestamp?: string | Date; labels?: Record<string, string> };
  spec?: unknown;
  [key: string]: unknown;
}

/** Checks a custom resource's spec; returns the typed spec or a message naming the field. */
export type SpecParser<S> = (spec: unknown) => { ok: true; spec: S } | { ok: false; error: string };

/** Parsers for the two custom resources. */
export interface SpecParsers {
  route: SpecParser<RouteSpec>;
  upstream: SpecParser<UpstreamSpec>;
}

/** Object metadata in the shape compile uses. */
export function metaOf(obj: KubeObject): ObjectMeta {
  const m = obj.metadata ?? {};
  const created = m.creationTimestamp instanceof Date ? m.creationTimestamp.toISOString().replace('.000Z', 'Z') : (m.creationTimestamp ?? '');
  return { namespace: m.namespace ?? '', name: m.name ?? '', generation: m.generation ?? 0, creationTimestamp: created };
}

/**
 * Parsed specs by object and parser. The informers replace an object on every
 * change and keep it as it is otherwise, so a compile parses only what changed
 * since the last one; the result is the same as parsing again (parsers are pure).
 */
const parsedCache = new WeakMap<KubeObject, { parse: SpecParser<unknown>; result: Parsed<unknown> }>();

function parsed<S>(obj: KubeObject, parse: SpecParser<S>): Parsed<S> {
  const hit = parsedCache.get(obj);
  if (hit !== undefined && hit.parse === parse) return hit.result as Parsed<S>;
  const meta = metaOf(obj);
  const result = parse(obj.spec);
  const out: Parsed<S> = result.ok ? { meta, spec: result.spec } : { meta, error: result.error };
  parsedCache.set(obj, { parse: parse as SpecParser<unknown>, result: out });
  return out;
}

/** The parts of a core/v1 Service compile uses. */
function serviceInfo(obj: KubeObject): ServiceInfo {
  const spec = (obj.spec ?? {}) as { type?: string; ports?: { name?: string; port: number; protocol?: string; appProtocol?: string }[] };
  return {
    namespace: obj.metadata?.namespace ?? '',
    name: obj.metadata?.name ?? '',
    ...(spec.type === undefined ? {} : { type: spec.type }),
    ports: (spec.ports ?? []).map((p) => ({ name: p.name, port: p.port, protocol: p.protocol, ...(p.appProtocol === undefined ? {} : { appProtocol: p.appProtocol }) })),
  };
}

/** The parts of a discovery/v1 EndpointSlice compile uses. */
function endpointSliceInfo(obj: KubeObject): EndpointSliceInfo {
  const o = obj as KubeObject & { addressType?: string; ports?: EndpointSliceInfo['ports'] | null; endpoints?: EndpointSliceInfo['endpoints'] | null };
  return {
    namespace: obj.metadata?.namespace ?? '',
    name: obj.metadata?.name ?? '',
    serviceName: obj.metadata?.labels?.['kubernetes.io/service-name'] ?? '',
    addressType: o.addressType ?? 'IPv4',
    ports: (o.ports ?? []).map((p) => ({ name: p.name ?? undefined, port: p.port ?? undefined, protocol: p.protocol ?? undefined })),
    endpoints: (o.endpoints ?? []).map((e) => ({
      addresses: e.addresses ?? [],
      conditions: { ready: e.conditions?.ready ?? null, serving: e.conditions?.serving ?? null, terminating: e.conditions?.terminating ?? null },
      targetRef: e.targetRef ? { name: e.targetRef.name } : undefined,
    })),
  };
}

/** A Secret (its values decoded from base64) or a ConfigMap, for Upstreams' TLS references. */
export function dataObjectInfo(obj: KubeObject, secret: boolean): DataObjectInfo {
  const raw = (obj.data ?? {}) as Record<string, unknown>;
  const data: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) if (typeof v === 'string') data[k] = secret ? Buffer.from(v, 'base64').toString('utf8') : v;
  return { namespace: obj.metadata?.namespace ?? '', name: obj.metadata?.name ?? '', ...(secret ? { type: typeof obj.type === 'string' ? obj.type : 'Opaque' } : {}), data };
}

/** Builds a snapshot from lists of API objects. */
export function toSnapshot(
  objects: {
    routes: readonly KubeObject[];
    upstreams: readonly KubeObject[];
    services: readonly KubeObject[];
    endpointSlices: readonly KubeObject[];
    /** kubernetes.io/tls Secrets; others are left out here. */
    secrets?: readonly KubeObject[];
    configMaps?: readonly KubeObject[];
  },
  parsers: SpecParsers,
  gatewayApi?: GatewayApiSnapshot,
): Snapshot {
  return {
    ...(gatewayApi === undefined ? {} : { gatewayApi }),
    routes: objects.routes.map((o) => parsed(o, parsers.route)),
    upstreams: objects.upstreams.map((o) => parsed(o, parsers.upstream)),
    services: objects.services.map(serviceInfo),
    endpointSlices: objects.endpointSlices.map(endpointSliceInfo),
    ...(objects.secrets === undefined ? {} : { secrets: objects.secrets.filter((o) => o.type === 'kubernetes.io/tls').map((o) => dataObjectInfo(o, true)) }),
    ...(objects.configMaps === undefined ? {} : { configMaps: objects.configMaps.map((o) => dataObjectInfo(o, false)) }),
  };
}
