/**
 * The operator's view of the cluster: typed maps keyed `namespace/name`.
 * `apply()` says whether a change can affect the table or any status, so that
 * unrelated churn (a Service nobody routes to, our own status writes) does not
 * trigger a compile.
 */
import { isDeepStrictEqual } from 'node:util';
import type { WatchedKind } from '../kube/informers.ts';
import type { KubeObject } from './convert.ts';
import { GATEWAY_SERVICE_LABEL } from '../compile/index.ts';

const keyOf = (o: KubeObject): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/** What compile cares about in each kind; a change elsewhere is not relevant. */
function essence(kind: WatchedKind, o: KubeObject): unknown {
  switch (kind) {
    case 'GatewayRoute':
    case 'Upstream':
    case 'GatewayClass':
    case 'Gateway':
    case 'HTTPRoute':
    case 'ReferenceGrant':
    case 'RoutePolicy':
      // Status is ours (or another controller's); only spec, generation and age matter.
      return [o.metadata?.generation, o.metadata?.creationTimestamp, o.spec];
    case 'Service': {
      // The ports for backends; the type, cluster IPs and load balancer for Gateway addresses.
      const spec = (o.spec ?? {}) as { ports?: unknown; type?: unknown; clusterIPs?: unknown };
      return [spec.ports, spec.type, spec.clusterIPs, (o.status as { loadBalancer?: unknown } | undefined)?.loadBalancer];
    }
    case 'EndpointSlice':
      return [o.metadata?.labels?.['kubernetes.io/service-name'], (o as { addressType?: unknown }).addressType, (o as { ports?: unknown }).ports, (o as { endpoints?: unknown }).endpoints];
    case 'Secret':
      return [(o as { type?: unknown }).type, (o as { data?: unknown }).data];
    case 'ConfigMap':
      return (o as { data?: unknown }).data;
    case 'Namespace':
      return o.metadata?.labels;
  }
}

type Ref = { group?: string; kind?: string; name?: string; namespace?: string };

/** Objects by kind. */
export class Store {
  readonly routes = new Map<string, KubeObject>();
  readonly upstreams = new Map<string, KubeObject>();
  readonly services = new Map<string, KubeObject>();
  readonly endpointSlices = new Map<string, KubeObject>();
  readonly gatewayClasses = new Map<string, KubeObject>();
  readonly gateways = new Map<string, KubeObject>();
  readonly httpRoutes = new Map<string, KubeObject>();
  readonly referenceGrants = new Map<string, KubeObject>();
  readonly routePolicies = new Map<string, KubeObject>();
  readonly secrets = new Map<string, KubeObject>();
  readonly configMaps = new Map<string, KubeObject>();
  readonly namespaces = new Map<string, KubeObject>();
  /** `namespace/name` of the data plane Service whose address Gateways get; it always matters. */
  addressService: string | undefined;

  private mapOf(kind: WatchedKind): Map<string, KubeObject> {
    switch (kind) {
      case 'GatewayRoute':
        return this.routes;
      case 'Upstream':
        return this.upstreams;
      case 'Service':
        return this.services;
      case 'EndpointSlice':
        return this.endpointSlices;
      case 'GatewayClass':
        return this.gatewayClasses;
      case 'Gateway':
        return this.gateways;
      case 'HTTPRoute':
        return this.httpRoutes;
      case 'ReferenceGrant':
        return this.referenceGrants;
      case 'RoutePolicy':
        return this.routePolicies;
      case 'Secret':
        return this.secrets;
      case 'ConfigMap':
        return this.configMaps;
      case 'Namespace':
        return this.namespaces;
    }
  }

  /** Services that some Upstream or HTTPRoute names (backends and mirrors), and the data plane Service, as `namespace/name`. */
  referencedServices(): Set<string> {
    const out = new Set<string>();
    for (const u of this.upstreams.values()) {
      const name = (u.spec as { service?: { name?: unknown } } | undefined)?.service?.name;
      if (typeof name === 'string') out.add(`${u.metadata?.namespace ?? ''}/${name}`);
    }
    for (const r of this.httpRoutes.values()) {
      const ns = r.metadata?.namespace ?? '';
      const rules = ((r.spec as { rules?: { backendRefs?: Ref[]; filters?: { requestMirror?: { backendRef?: Ref } }[] }[] } | undefined)?.rules ?? []);
      for (const rule of rules) {
        const refs = [...(rule.backendRefs ?? []), ...(rule.filters ?? []).flatMap((f) => (f.requestMirror?.backendRef ? [f.requestMirror.backendRef] : []))];
        for (const ref of refs) if ((ref.group ?? '') === '' && (ref.kind ?? 'Service') === 'Service' && ref.name) out.add(`${ref.namespace ?? ns}/${ref.name}`);
      }
    }
    if (this.addressService !== undefined) out.add(this.addressService);
    return out;
  }

  /** Secrets or ConfigMaps (by `kind`) that some Upstream's `spec.tls` names, as `namespace/name`. */
  private upstreamTlsRefs(kind: 'Secret' | 'ConfigMap'): Set<string> {
    const out = new Set<string>();
    for (const u of this.upstreams.values()) {
      const tls = (u.spec as { tls?: { caCertificateRef?: { kind?: unknown; name?: unknown }; clientCertificateRef?: { name?: unknown } } } | undefined)?.tls;
      const ns = u.metadata?.namespace ?? '';
      if (tls?.caCertificateRef?.kind === kind && typeof tls.caCertificateRef.name === 'string') out.add(`${ns}/${tls.caCertificateRef.name}`);
      if (kind === 'Secret' && typeof tls?.clientCertificateRef?.name === 'string') out.add(`${ns}/${tls.clientCertificateRef.name}`);
    }
    return out;
  }

  /** The Secrets or ConfigMaps that some Upstream names in `spec.tls`: only they are handed to compile (and decoded). */
  upstreamTlsObjects(kind: 'Secret' | 'ConfigMap'): KubeObject[] {
    const map = kind === 'Secret' ? this.secrets : this.configMaps;
    return [...this.upstreamTlsRefs(kind)].flatMap((k): KubeObject[] => {
      const o = map.get(k);
      return o === undefined ? [] : [o];
    });
  }

  /** Secrets that some Gateway listener names as its certificate, or some Upstream as its CA or client certificate, as `namespace/name`. */
  private referencedSecrets(): Set<string> {
    const out = this.upstreamTlsRefs('Secret');
    for (const g of this.gateways.values()) {
      const listeners = ((g.spec as { listeners?: { tls?: { certificateRefs?: Ref[] } }[] } | undefined)?.listeners ?? []);
      for (const l of listeners) for (const ref of l.tls?.certificateRefs ?? []) if (ref.name) out.add(`${ref.namespace ?? g.metadata?.namespace ?? ''}/${ref.name}`);
    }
    return out;
  }

  /** Whether some Gateway listener picks namespaces by label: only then do Namespace labels matter. */
  private selectsNamespaces(): boolean {
    for (const g of this.gateways.values()) {
      const listeners = ((g.spec as { listeners?: { allowedRoutes?: { namespaces?: { from?: string } } }[] } | undefined)?.listeners ?? []);
      if (listeners.some((l) => l.allowedRoutes?.namespaces?.from === 'Selector')) return true;
    }
    return false;
  }

  /** Records an add, update or delete; returns whether it can change the compile output. */
  apply(kind: WatchedKind, verb: 'add' | 'update' | 'delete', obj: KubeObject): boolean {
    const map = this.mapOf(kind);
    const key = keyOf(obj);
    const before = map.get(key);
    if (verb === 'delete') map.delete(key);
    else map.set(key, obj);
    const changed = verb === 'delete' ? before !== undefined : before === undefined || !isDeepStrictEqual(essence(kind, before), essence(kind, obj));
    if (!changed) return false;
    // A Gateway's own Service (its address) matters like the data plane Service does.
    if (kind === 'Service') return this.referencedServices().has(key) || (obj.metadata?.labels?.[GATEWAY_SERVICE_LABEL] !== undefined && key.startsWith(`${this.addressService?.split('/')[0]}/`));
    if (kind === 'Secret') return this.referencedSecrets().has(key);
    if (kind === 'ConfigMap') return this.upstreamTlsRefs('ConfigMap').has(key);
    if (kind === 'Namespace') return this.selectsNamespaces();
    if (kind === 'EndpointSlice') {
      const service = obj.metadata?.labels?.['kubernetes.io/service-name'];
      return service !== undefined && this.referencedServices().has(`${obj.metadata?.namespace ?? ''}/${service}`);
    }
    return true;
  }

  /** The object with this kind and key, if known (for its uid and current status). */
  get(kind: WatchedKind, key: string): KubeObject | undefined {
    return this.mapOf(kind).get(key);
  }
}
