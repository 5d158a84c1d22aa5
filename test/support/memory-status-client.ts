/**
 * An in-memory StatusClient: objects with resourceVersions, a status replace
 * that refuses a stale copy as the API server does (409), and hooks to make a
 * concurrent writer or an outage happen at the worst moment.
 */
import { StatusConflictError, type StatusClient, type StatusKind } from '../../operator/src/kube/status-updater.ts';
import type { KubeObject } from '../../operator/src/store/convert.ts';
import type { StatusBody } from '../../operator/src/status/gateway-api-status.ts';

/** A StatusClient over a Map. */
export class MemoryStatusClient implements StatusClient {
  readonly objects = new Map<string, KubeObject>();
  reads = 0;
  writes = 0;
  /** Runs before each replace; may change the stored object (a concurrent writer) or throw (an outage). */
  beforeReplace: ((key: string) => void) | undefined;
  private version = 0;

  private static key(kind: string, namespace: string, name: string): string {
    return namespace === '' ? `${kind}/${name}` : `${kind}/${namespace}/${name}`;
  }

  /** Adds or replaces an object, bumping its resourceVersion. */
  put(kind: StatusKind, obj: KubeObject): void {
    const key = MemoryStatusClient.key(kind, obj.metadata?.namespace ?? '', obj.metadata?.name ?? '');
    this.objects.set(key, structuredClone({ ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.version) } }));
  }

  /** The stored status of an object. */
  status(kind: StatusKind, namespace: string, name: string): StatusBody | undefined {
    return this.objects.get(MemoryStatusClient.key(kind, namespace, name))?.status as StatusBody | undefined;
  }

  get(kind: StatusKind, namespace: string, name: string): Promise<KubeObject | undefined> {
    this.reads++;
    const obj = this.objects.get(MemoryStatusClient.key(kind, namespace, name));
    return Promise.resolve(obj === undefined ? undefined : structuredClone(obj));
  }

  replaceStatus(kind: StatusKind, obj: KubeObject & { status: StatusBody }): Promise<KubeObject | undefined> {
    const key = MemoryStatusClient.key(kind, obj.metadata?.namespace ?? '', obj.metadata?.name ?? '');
    try {
      this.beforeReplace?.(key);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    const stored = this.objects.get(key);
    if (stored === undefined) return Promise.resolve(undefined);
    const version = (o: KubeObject): string | undefined => (o.metadata as { resourceVersion?: string } | undefined)?.resourceVersion;
    if (version(stored) !== version(obj)) return Promise.reject(new StatusConflictError(`${key} changed`));
    this.writes++;
    this.put(kind, { ...stored, status: structuredClone(obj.status) });
    return Promise.resolve(structuredClone(this.objects.get(key)));
  }
}
