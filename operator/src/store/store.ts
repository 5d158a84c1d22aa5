/**
 * The operator's view of the cluster: typed maps keyed `namespace/name`.
 * `apply()` says whether a change can affect the table or any status, so that
 * unrelated churn (a Service nobody routes to, our own status writes) does not
 * trigger a compile.
 */
import { isDeepStrictEqual } from 'node:util';
import type { WatchedKind } from '../kube/informers.ts';
import type { KubeObject } from './convert.ts';

const keyOf = (o: KubeObject): string => `${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`;

/** What compile cares about in each kind; a change elsewhere is not relevant. */
function essence(kind: WatchedKind, o: KubeObject): unknown {
  switch (kind) {
    case 'GatewayRoute':
    case 'Upstream':
      // Status is ours; only spec, generation and age matter.
      return [o.metadata?.generation, o.metadata?.creationTimestamp, o.spec];
    case 'Service':
      return (o.spec as { ports?: unknown } | undefined)?.ports;
    case 'EndpointSlice':
      return [o.metadata?.labels?.['kubernetes.io/service-name'], (o as { addressType?: unknown }).addressType, (o as { ports?: unknown }).ports, (o as { endpoints?: unknown }).endpoints];
  }
}

/** Objects by kind. */
export class Store {
  readonly routes = new Map<string, KubeObject>();
  readonly upstreams = new Map<string, KubeObject>();
  readonly services = new Map<string, KubeObject>();
  readonly endpointSlices = new Map<string, KubeObject>();

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
    }
  }

  /** Services that some Upstream names, as `namespace/name`. */
  referencedServices(): Set<string> {
    const out = new Set<string>();
    for (const u of this.upstreams.values()) {
      const name = (u.spec as { service?: { name?: unknown } } | undefined)?.service?.name;
      if (typeof name === 'string') out.add(`${u.metadata?.namespace ?? ''}/${name}`);
    }
    return out;
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
    if (kind === 'Service') return this.referencedServices().has(key);
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
