/**
 * Writing Gateway API statuses (GatewayClass, Gateway, HTTPRoute) and
 * RoutePolicy status, as Contour's StatusUpdater and Envoy Gateway's updater
 * do: each update is a mutation of the object's current status
 * (status/gateway-api-status.ts), applied to the latest copy read from the
 * API server and written with that copy's resourceVersion, so a concurrent
 * writer (another controller's HTTPRoute parents) is never overwritten: a
 * conflict re-reads and re-applies. An update that changes nothing is not
 * written, and one already written is not even read again.
 *
 * The API is behind `StatusClient`, so the queueing, no-op and conflict logic
 * is tested with an in-memory client (test/support/memory-status-client.ts).
 * Only the leader writes: the updater is enabled while this replica leads.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { CustomObjectsApi } from '@kubernetes/client-node';
import type { GatewayApiStatus } from '../compile/index.ts';
import type { Logger } from '../log.ts';
import type { KubeObject } from '../store/convert.ts';
import { mergeStatus, statusEqual, type StatusBody } from '../status/gateway-api-status.ts';
import { GATEWAY_API_GROUP, GATEWAY_API_VERSION } from '../api/gateway-api.ts';
import { GROUP, VERSION } from './resources.ts';

/** The kinds whose status the updater writes. */
export type StatusKind = GatewayApiStatus['kind'];

/** A write lost to a concurrent one: re-read and re-apply. */
export class StatusConflictError extends Error {
  override readonly name = 'StatusConflictError';
}

/** What the updater needs from the API server. */
export interface StatusClient {
  /** The latest copy of the object, or undefined when it is gone. */
  get(kind: StatusKind, namespace: string, name: string): Promise<KubeObject | undefined>;
  /**
   * Replaces the object's status, guarded by the copy's `resourceVersion`.
   * Throws StatusConflictError when the object changed since; resolves
   * undefined when the object is gone.
   */
  replaceStatus(kind: StatusKind, obj: KubeObject & { status: StatusBody }): Promise<KubeObject | undefined>;
}

/** Counters the updater keeps (and reports as metrics when given). */
export interface StatusUpdaterCounters {
  written: number;
  /** Read, merged, and found unchanged. */
  unchanged: number;
  conflicts: number;
  failed: number;
}

/** Options of a StatusUpdater. */
export interface StatusUpdaterOptions {
  log: Logger;
  /** RFC 3339 to the second, for lastTransitionTime. */
  now?: () => string;
  /** Called for each finished update (`written`, `unchanged`, `conflict`, `error`). */
  onResult?: (kind: StatusKind, result: 'written' | 'unchanged' | 'conflict' | 'error') => void;
  /** Pause before retrying after an API error. */
  retryMs?: () => number;
}

const MAX_CONFLICT_RETRIES = 5;

/** Queues status updates and writes those that change something, while enabled. */
export class StatusUpdater {
  readonly counters: StatusUpdaterCounters = { written: 0, unchanged: 0, conflicts: 0, failed: 0 };
  private readonly client: StatusClient;
  private readonly options: StatusUpdaterOptions;
  private desired = new Map<string, GatewayApiStatus>();
  /** What was last written (or found in place) per key: the same desire is not read again. */
  private readonly settled = new Map<string, string>();
  private readonly queue = new Set<string>();
  private enabled = false;
  private running = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private idle: (() => void)[] = [];

  constructor(client: StatusClient, options: StatusUpdaterOptions) {
    this.client = client;
    this.options = options;
  }

  /** Turns writing on (leader) or off. A new leader re-checks every object: the previous one may have died mid-batch. */
  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
    if (!enabled) {
      clearTimeout(this.retryTimer);
      this.kick();
      return;
    }
    this.settled.clear();
    for (const key of this.desired.keys()) this.queue.add(key);
    this.kick();
  }

  /** Replaces every desired status; those that differ from what was last settled are queued. */
  send(statuses: ReadonlyMap<string, GatewayApiStatus>): void {
    this.desired = new Map(statuses);
    for (const [key, s] of this.desired) if (this.settled.get(key) !== fingerprint(s)) this.queue.add(key);
    for (const key of [...this.settled.keys()]) if (!this.desired.has(key)) this.settled.delete(key);
    this.kick();
  }

  /** Resolves once nothing is queued or being written (or writing is off). */
  drained(): Promise<void> {
    if (!this.running && (this.queue.size === 0 || !this.enabled)) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Stops writing and retrying. */
  stop(): void {
    this.setEnabled(false);
  }

  private kick(): void {
    if (this.running) return;
    if (!this.enabled || this.queue.size === 0) {
      for (const r of this.idle.splice(0)) r();
      return;
    }
    this.running = true;
    void this.drain();
  }

  private async drain(): Promise<void> {
    let failed = false;
    while (this.enabled && this.queue.size > 0) {
      const batch = [...this.queue].slice(0, 8);
      for (const key of batch) this.queue.delete(key);
      const results = await Promise.allSettled(batch.map((key) => this.update(key)));
      results.forEach((r, i) => {
        if (r.status === 'fulfilled') return;
        failed = true;
        const key = batch[i] as string;
        this.queue.add(key);
        this.counters.failed++;
        this.options.onResult?.(this.desired.get(key)?.kind ?? 'Gateway', 'error');
        this.options.log.warn({ event: 'status_write_failed', object: key, error: String((r.reason as Error)?.message ?? r.reason) }, 'status write failed; will retry');
      });
      if (failed) break;
    }
    this.running = false;
    if (failed && this.enabled) {
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.kick(), this.options.retryMs?.() ?? 500 + Math.random() * 1000);
      return;
    }
    this.kick();
  }

  /** Reads the object, merges, and writes if anything changed; re-reads on a conflict. */
  private async update(key: string): Promise<void> {
    const want = this.desired.get(key);
    if (want === undefined) return;
    const print = fingerprint(want);
    for (let attempt = 0; ; attempt++) {
      const obj = await this.client.get(want.kind, want.namespace, want.name);
      if (obj === undefined) return;
      // Compiled from an older copy: the newer generation brings its own compile and update.
      if ((obj.metadata?.generation ?? want.generation) !== want.generation) return;
      const current = obj.status as StatusBody | undefined;
      const next = mergeStatus(current, want, this.now());
      if (statusEqual(current, next)) {
        this.counters.unchanged++;
        this.options.onResult?.(want.kind, 'unchanged');
        this.settled.set(key, print);
        return;
      }
      try {
        await this.client.replaceStatus(want.kind, { ...obj, status: next });
      } catch (err) {
        if (!(err instanceof StatusConflictError) || attempt >= MAX_CONFLICT_RETRIES) throw err;
        this.counters.conflicts++;
        this.options.onResult?.(want.kind, 'conflict');
        continue;
      }
      this.counters.written++;
      this.options.onResult?.(want.kind, 'written');
      this.settled.set(key, print);
      return;
    }
  }

  private now(): string {
    return this.options.now?.() ?? new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
  }
}

/** What a desired status says, to know whether it was already settled. */
function fingerprint(s: GatewayApiStatus): string {
  return JSON.stringify(s);
}

const API: Record<StatusKind, { group: string; version: string; plural: string; cluster: boolean }> = {
  GatewayClass: { group: GATEWAY_API_GROUP, version: GATEWAY_API_VERSION, plural: 'gatewayclasses', cluster: true },
  Gateway: { group: GATEWAY_API_GROUP, version: GATEWAY_API_VERSION, plural: 'gateways', cluster: false },
  HTTPRoute: { group: GATEWAY_API_GROUP, version: GATEWAY_API_VERSION, plural: 'httproutes', cluster: false },
  RoutePolicy: { group: GROUP, version: VERSION, plural: 'routepolicies', cluster: false },
};

const codeOf = (err: unknown): number | undefined => (err as { code?: number }).code;

/** The StatusClient of a real API server. */
export class KubeStatusClient implements StatusClient {
  private readonly custom: CustomObjectsApi;

  constructor(kc: KubeConfig) {
    this.custom = kc.makeApiClient(CustomObjectsApi);
  }

  async get(kind: StatusKind, namespace: string, name: string): Promise<KubeObject | undefined> {
    const a = API[kind];
    try {
      const obj = a.cluster
        ? await this.custom.getClusterCustomObject({ group: a.group, version: a.version, plural: a.plural, name })
        : await this.custom.getNamespacedCustomObject({ group: a.group, version: a.version, namespace, plural: a.plural, name });
      return obj as KubeObject;
    } catch (err) {
      if (codeOf(err) === 404) return undefined;
      throw err;
    }
  }

  async replaceStatus(kind: StatusKind, obj: KubeObject & { status: StatusBody }): Promise<KubeObject | undefined> {
    const a = API[kind];
    const name = obj.metadata?.name ?? '';
    try {
      const out = a.cluster
        ? await this.custom.replaceClusterCustomObjectStatus({ group: a.group, version: a.version, plural: a.plural, name, body: obj })
        : await this.custom.replaceNamespacedCustomObjectStatus({ group: a.group, version: a.version, namespace: obj.metadata?.namespace ?? '', plural: a.plural, name, body: obj });
      return out as KubeObject;
    } catch (err) {
      if (codeOf(err) === 409) throw new StatusConflictError(`${kind} "${name}" changed since it was read`);
      if (codeOf(err) === 404) return undefined;
      throw err;
    }
  }
}
