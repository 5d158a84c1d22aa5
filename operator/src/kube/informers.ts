/**
 * Informers on the kinds compile reads, one per kind and namespace scope (one
 * for a cluster-scoped kind).
 *
 * The client's ListWatch relists by itself when the API server answers
 * `410 Gone` (the resourceVersion it resumes from was compacted away). On any
 * other error (the API server restarting, the network) it stops, so each
 * informer is restarted here with exponential backoff and full jitter; it then
 * resumes its watch where it left off, or relists if that is gone. A relist
 * diffs against the cache, so nothing is lost or duplicated.
 *
 * A wrapper around the client's Watch sees what the ListWatch does not report:
 * a 410 (counted as an expired watch), and each completed list (an informer is
 * synced once it has listed, not merely once it has tried). It can also make an
 * informer relist on purpose, through the same 410 path the client takes.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { CoreV1Api, CustomObjectsApi, DiscoveryV1Api, ListWatch, Watch, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { GATEWAY_API_GROUP, GATEWAY_API_VERSION } from '../api/gateway-api.ts';
import { GROUP, VERSION } from './resources.ts';
import type { KubeObject } from '../store/convert.ts';

/** The kinds every operator watches (Secrets: kubernetes.io/tls only, for Gateway listeners and Upstreams' client certificates and CAs). */
export const BASE_KINDS = ['GatewayRoute', 'Upstream', 'Service', 'EndpointSlice', 'Secret', 'ConfigMap'] as const;
/** The kinds watched when the cluster serves the Gateway API (kube/gateway-api.ts). */
export const GATEWAY_API_KINDS = ['GatewayClass', 'Gateway', 'HTTPRoute', 'ReferenceGrant', 'RoutePolicy', 'Namespace'] as const;
/** The kinds the operator watches. */
export type WatchedKind = (typeof BASE_KINDS)[number] | (typeof GATEWAY_API_KINDS)[number];

/** Why a watch started over: the API server said its resourceVersion expired (410), or it failed. */
export type RestartReason = 'expired' | 'error';

/** Called on every add, update and delete, and after every (re)list. */
export interface InformerEvents {
  onEvent(kind: WatchedKind, verb: 'add' | 'update' | 'delete', obj: KubeObject): void;
  /** A watch restarts: after `retryInMs` for an error, at once (with a relist) for an expired one. */
  onRestart(kind: WatchedKind, reason: RestartReason, error: unknown, retryInMs: number): void;
  /** A list completed and its objects are in the cache. */
  onSynced(kind: WatchedKind): void;
}

// Quick enough that the operator sees changes seconds after the API server is back,
// slow enough that a handful of replicas times a few kinds cannot flood one that is
// struggling; the jitter spreads them.
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 5_000;

type WatchCallback = Parameters<Watch['watch']>[2];
type WatchDone = Parameters<Watch['watch']>[3];

/** What the client takes for a 410, asked for on purpose. */
const gone = (): Error => Object.assign(new Error('relist requested'), { statusCode: 410 });

const isGone = (err: unknown): boolean => {
  const e = err as { statusCode?: unknown; code?: unknown } | null | undefined;
  return e?.statusCode === 410 || e?.code === 410;
};

interface WatchEntry {
  /** Known once the API server answered the watch request. */
  controller: AbortController | undefined;
  done: WatchDone;
  ended: boolean;
}

/**
 * The client's Watch, observed: it reports each 410 and each list that
 * completed (the ListWatch calls watch() right after a list is in its cache),
 * and can end the current watch as a 410 would, which makes the ListWatch relist.
 */
class ObservedWatch extends Watch {
  /** A list succeeded and watch() has not been called since. */
  listed = false;
  /** The next watch() should relist first. */
  relistRequested = false;
  private current: WatchEntry | undefined;
  private readonly hooks: { onExpired(err: unknown): void; onListed(): void; onEvent(): void };

  constructor(kc: KubeConfig, hooks: ObservedWatch['hooks']) {
    super(kc);
    this.hooks = hooks;
  }

  override async watch(path: string, queryParams: Record<string, string | number | boolean | undefined>, callback: WatchCallback, done: WatchDone): Promise<AbortController> {
    if (this.listed) {
      this.listed = false;
      this.hooks.onListed();
    }
    const entry: WatchEntry = { controller: undefined, done, ended: false };
    this.current = entry;
    if (this.relistRequested) {
      this.relistRequested = false;
      const controller = new AbortController();
      entry.controller = controller;
      this.endAsGone(entry);
      return controller;
    }
    const observed: WatchCallback = (phase, obj, watchObj) => {
      if (entry.ended) return;
      if (phase === 'ERROR' && isGone(obj)) this.hooks.onExpired(obj);
      else if (phase !== 'ERROR') this.hooks.onEvent();
      callback(phase, obj, watchObj);
    };
    const finished: WatchDone = (err) => {
      if (entry.ended) return;
      entry.ended = true;
      if (isGone(err)) this.hooks.onExpired(err);
      done(err);
    };
    const controller = await super.watch(path, queryParams, observed, finished);
    entry.controller = controller;
    if (!entry.ended) return controller;
    // Ended by relist() while the API server had not answered yet: the ListWatch has
    // moved on, and takes what this returns for its current request.
    controller.abort();
    return entry !== this.current && this.current?.controller ? this.current.controller : controller;
  }

  /** Ends the current watch as a 410 would, so that the ListWatch relists; false if none runs. */
  relist(): boolean {
    const entry = this.current;
    if (!entry || entry.ended) return false;
    // A watch request the API server has not answered (one stalled by a partition, say)
    // is not waited for: it is aborted once it returns.
    this.endAsGone(entry);
    return true;
  }

  private endAsGone(entry: WatchEntry): void {
    entry.ended = true;
    entry.controller?.abort();
    // Later than the ListWatch's own bookkeeping of the request it just made.
    setImmediate(() => entry.done(gone()));
  }
}

/** How to list and watch one kind in one scope. */
interface InformerSpec {
  kind: WatchedKind;
  path: string;
  listFn: () => Promise<KubernetesListObject<KubernetesObject>>;
  /** Label selector. */
  selector?: string;
  fieldSelector?: string;
}

interface Entry {
  kind: WatchedKind;
  informer: ListWatch<KubernetesObject>;
  watch: ObservedWatch;
  synced: boolean;
  failures: number;
  retry: NodeJS.Timeout | undefined;
  /** Resolved by the next completed list. */
  waiters: (() => void)[];
}

/** One informer per kind and namespace scope. */
export class Informers {
  private readonly entries: Entry[] = [];
  private stopped = false;
  private readonly events: InformerEvents;
  private allSynced: (() => void) | undefined;
  /** Resolves once every informer has listed once. */
  readonly synced: Promise<void>;

  /** `kinds`: what to watch (every operator watches BASE_KINDS; the Gateway API kinds are a second set). */
  constructor(kc: KubeConfig, namespaces: readonly string[], events: InformerEvents, kinds: readonly WatchedKind[] = BASE_KINDS) {
    this.events = events;
    this.synced = new Promise((resolve) => (this.allSynced = resolve));
    const custom = kc.makeApiClient(CustomObjectsApi);
    const core = kc.makeApiClient(CoreV1Api);
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    const scopes = namespaces.length > 0 ? namespaces : [undefined];
    const list = <T>(p: Promise<T>): Promise<KubernetesListObject<KubernetesObject>> => p as unknown as Promise<KubernetesListObject<KubernetesObject>>;
    /** A custom resource in a namespace scope (all namespaces when undefined). */
    const customSpec = (kind: WatchedKind, group: string, version: string, plural: string, ns: string | undefined): InformerSpec => ({
      kind,
      path: `/apis/${group}/${version}${ns ? `/namespaces/${ns}` : ''}/${plural}`,
      listFn: () => list(ns ? custom.listNamespacedCustomObject({ group, version, namespace: ns, plural }) : custom.listClusterCustomObject({ group, version, plural })),
    });
    const specFor = (kind: WatchedKind, ns: string | undefined): InformerSpec => {
      const prefix = ns ? `/namespaces/${ns}` : '';
      switch (kind) {
        case 'GatewayRoute':
          return customSpec(kind, GROUP, VERSION, 'gatewayroutes', ns);
        case 'Upstream':
          return customSpec(kind, GROUP, VERSION, 'upstreams', ns);
        case 'RoutePolicy':
          return customSpec(kind, GROUP, VERSION, 'routepolicies', ns);
        case 'Gateway':
          return customSpec(kind, GATEWAY_API_GROUP, GATEWAY_API_VERSION, 'gateways', ns);
        case 'HTTPRoute':
          return customSpec(kind, GATEWAY_API_GROUP, GATEWAY_API_VERSION, 'httproutes', ns);
        case 'ReferenceGrant':
          return customSpec(kind, GATEWAY_API_GROUP, GATEWAY_API_VERSION, 'referencegrants', ns);
        // Cluster-scoped: one informer whatever the namespaces.
        case 'GatewayClass':
          return customSpec(kind, GATEWAY_API_GROUP, GATEWAY_API_VERSION, 'gatewayclasses', undefined);
        case 'Namespace':
          return { kind, path: '/api/v1/namespaces', listFn: () => list(core.listNamespace()) };
        case 'Service':
          return { kind, path: `/api/v1${prefix}/services`, listFn: () => list(ns ? core.listNamespacedService({ namespace: ns }) : core.listServiceForAllNamespaces()) };
        case 'Secret':
          // Only certificates: the operator never holds other Secrets in memory.
          return {
            kind,
            path: `/api/v1${prefix}/secrets`,
            fieldSelector: 'type=kubernetes.io/tls',
            listFn: () => list(ns ? core.listNamespacedSecret({ namespace: ns, fieldSelector: 'type=kubernetes.io/tls' }) : core.listSecretForAllNamespaces({ fieldSelector: 'type=kubernetes.io/tls' })),
          };
        case 'ConfigMap':
          // CA bundles Upstreams name; the store keeps every ConfigMap, compile reads only those named.
          return { kind, path: `/api/v1${prefix}/configmaps`, listFn: () => list(ns ? core.listNamespacedConfigMap({ namespace: ns }) : core.listConfigMapForAllNamespaces()) };
        case 'EndpointSlice':
          return {
            kind,
            path: `/apis/discovery.k8s.io/v1${prefix}/endpointslices`,
            selector: 'kubernetes.io/service-name',
            listFn: () =>
              list(ns ? discovery.listNamespacedEndpointSlice({ namespace: ns, labelSelector: 'kubernetes.io/service-name' }) : discovery.listEndpointSliceForAllNamespaces({ labelSelector: 'kubernetes.io/service-name' })),
          };
      }
    };
    const clusterScoped = new Set<WatchedKind>(['GatewayClass', 'Namespace']);
    for (const kind of kinds) {
      for (const ns of clusterScoped.has(kind) ? [undefined] : scopes) this.entries.push(this.build(kc, specFor(kind, ns)));
    }
  }

  private build(kc: KubeConfig, spec: InformerSpec): Entry {
    const { kind } = spec;
    const entry = {} as Entry;
    const watch = new ObservedWatch(kc, {
      onExpired: (err) => {
        if (!this.stopped) this.events.onRestart(kind, 'expired', err, 0);
      },
      onListed: () => this.onListed(entry),
      onEvent: () => {
        entry.failures = 0;
      },
    });
    const listFn = async (): Promise<KubernetesListObject<KubernetesObject>> => {
      const result = await spec.listFn();
      watch.listed = true;
      return result;
    };
    const informer = new ListWatch<KubernetesObject>(spec.path, watch, listFn, false, spec.selector, spec.fieldSelector);
    Object.assign(entry, { kind, informer, watch, synced: false, failures: 0, retry: undefined, waiters: [] } satisfies Entry);
    const forward = (verb: 'add' | 'update' | 'delete') => (obj: KubernetesObject) => this.events.onEvent(kind, verb, obj as KubeObject);
    informer.on('add', forward('add'));
    informer.on('update', forward('update'));
    informer.on('delete', forward('delete'));
    informer.on('error', (err: unknown) => {
      if (this.stopped) return;
      entry.failures++;
      const delay = Math.round(Math.random() * Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(entry.failures, 10)));
      this.events.onRestart(kind, 'error', err, delay);
      clearTimeout(entry.retry);
      entry.retry = setTimeout(() => {
        entry.retry = undefined;
        if (!this.stopped) void informer.start();
      }, delay);
    });
    return entry;
  }

  private onListed(entry: Entry): void {
    entry.failures = 0;
    entry.synced = true;
    this.events.onSynced(entry.kind);
    for (const w of entry.waiters.splice(0)) w();
    if (this.entries.every((e) => e.synced)) this.allSynced?.();
  }

  /** Starts every informer; `synced` resolves once each has listed (retrying meanwhile). */
  start(): void {
    for (const e of this.entries) void e.informer.start();
  }

  /**
   * Relists every informer now and resolves once each has. A replica about to serve
   * as the new leader does this, so that a cache gone stale while it followed (a
   * watch silently stalled by a partition, say) never reaches the data planes.
   */
  async relist(): Promise<void> {
    await Promise.all(
      this.entries.map(
        (e) =>
          new Promise<void>((resolve) => {
            e.waiters.push(resolve);
            if (e.watch.relist()) return;
            // Not watching now (listing, or waiting to retry): its next watch() turns into the relist.
            e.watch.relistRequested = true;
            if (e.retry !== undefined) {
              clearTimeout(e.retry);
              e.retry = undefined;
              void e.informer.start();
            }
          }),
      ),
    );
  }

  /** Stops watching. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const e of this.entries) {
      clearTimeout(e.retry);
      for (const w of e.waiters.splice(0)) w();
    }
    await Promise.all(this.entries.map(({ informer }) => informer.stop()));
  }
}
