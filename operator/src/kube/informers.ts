/**
 * Informers on the four kinds compile reads. The client's ListWatch relists on
 * `410 Gone` by itself; on any other error (API server restart, network) it
 * stops, so each informer is restarted here with exponential backoff and full
 * jitter. A relist diffs against the cache, so nothing is lost or duplicated.
 */
import type { KubeConfig} from '@kubernetes/client-node';
import { CoreV1Api, CustomObjectsApi, DiscoveryV1Api, makeInformer, type Informer, type KubernetesListObject, type KubernetesObject, type ObjectCache } from '@kubernetes/client-node';
import { GROUP, VERSION } from './resources.ts';
import type { KubeObject } from '../store/convert.ts';

/** The kinds the operator watches. */
export type WatchedKind = 'GatewayRoute' | 'Upstream' | 'Service' | 'EndpointSlice';

/** Called on every add, update and delete, and after every (re)list. */
export interface InformerEvents {
  onEvent(kind: WatchedKind, verb: 'add' | 'update' | 'delete', obj: KubeObject): void;
  onError(kind: WatchedKind, error: unknown, retryInMs: number): void;
  onSynced(kind: WatchedKind): void;
}

type Cached = Informer<KubernetesObject> & ObjectCache<KubernetesObject>;

/** One informer per kind and namespace scope. */
export class Informers {
  private readonly informers: { kind: WatchedKind; informer: Cached }[] = [];
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  private readonly events: InformerEvents;

  constructor(kc: KubeConfig, namespaces: readonly string[], events: InformerEvents) {
    this.events = events;
    const custom = kc.makeApiClient(CustomObjectsApi);
    const core = kc.makeApiClient(CoreV1Api);
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    const scopes = namespaces.length > 0 ? namespaces : [undefined];
    const list = <T>(p: Promise<T>): Promise<KubernetesListObject<KubernetesObject>> => p as unknown as Promise<KubernetesListObject<KubernetesObject>>;
    for (const ns of scopes) {
      const prefix = ns ? `/namespaces/${ns}` : '';
      const specs: { kind: WatchedKind; path: string; listFn: () => Promise<KubernetesListObject<KubernetesObject>>; selector?: string }[] = [
        {
          kind: 'GatewayRoute',
          path: `/apis/${GROUP}/${VERSION}${prefix}/gatewayroutes`,
          listFn: () => list(ns ? custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: 'gatewayroutes' }) : custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: 'gatewayroutes' })),
        },
        {
          kind: 'Upstream',
          path: `/apis/${GROUP}/${VERSION}${prefix}/upstreams`,
          listFn: () => list(ns ? custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: 'upstreams' }) : custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: 'upstreams' })),
        },
        {
          kind: 'Service',
          path: `/api/v1${prefix}/services`,
          listFn: () => list(ns ? core.listNamespacedService({ namespace: ns }) : core.listServiceForAllNamespaces()),
        },
        {
          kind: 'EndpointSlice',
          path: `/apis/discovery.k8s.io/v1${prefix}/endpointslices`,
          selector: 'kubernetes.io/service-name',
          listFn: () =>
            list(ns ? discovery.listNamespacedEndpointSlice({ namespace: ns, labelSelector: 'kubernetes.io/service-name' }) : discovery.listEndpointSliceForAllNamespaces({ labelSelector: 'kubernetes.io/service-name' })),
        },
      ];
      for (const spec of specs) {
        const informer = makeInformer(kc, spec.path, spec.listFn, spec.selector) as Cached;
        const forward = (verb: 'add' | 'update' | 'delete') => (obj: KubernetesObject) => events.onEvent(spec.kind, verb, obj as KubeObject);
        informer.on('add', forward('add'));
        informer.on('update', forward('update'));
        informer.on('delete', forward('delete'));
        let failures = 0;
        informer.on('connect', () => {
          failures = 0;
        });
        informer.on('error', (err: unknown) => {
          if (this.stopped) return;
          failures++;
          const delay = Math.random() * Math.min(30_000, 250 * 2 ** Math.min(failures, 10));
          events.onError(spec.kind, err, Math.round(delay));
          const t = setTimeout(() => {
            this.timers.delete(t);
            if (!this.stopped) void this.startOne(spec.kind, informer);
          }, delay);
          this.timers.add(t);
        });
        this.informers.push({ kind: spec.kind, informer });
      }
    }
  }

  private startOne(kind: WatchedKind, informer: Cached): Promise<void> {
    // A failed start reports through the 'error' callback, which schedules the next try.
    return informer.start().then(
      () => this.events.onSynced(kind),
      () => undefined,
    );
  }

  /** Starts every informer; resolves once each has listed once (or failed and is retrying). */
  async start(): Promise<void> {
    await Promise.all(this.informers.map(({ kind, informer }) => this.startOne(kind, informer)));
  }

  /** Stops watching. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    await Promise.all(this.informers.map(({ informer }) => informer.stop()));
  }
}
