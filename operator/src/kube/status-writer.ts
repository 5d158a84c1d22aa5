/**
 * The one writer of status. Desired statuses come in whole after each compile
 * or fleet change; the writer merges them with what the object has (keeping
 * lastTransitionTime unless a condition really changed), skips no-ops, patches
 * the status subresource, and records an Event for each transition. Writes are
 * queued per object, so a burst coalesces into one write per object.
 *
 * Conditions of other types belong to other writers and are kept. Because a JSON
 * merge patch replaces the whole list, each patch carries the resourceVersion it
 * was computed from: if someone wrote in between, the API server answers 409,
 * and the writer reads the object again and merges anew, instead of writing back
 * a list that lacks their change.
 */
import type { KubeConfig} from '@kubernetes/client-node';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import type { Logger } from '../log.ts';
import type { ObjectStatus } from '../compile/index.ts';
import { isProgrammedPending, mergeConditions, sameConditions, transitionEvent, type Condition } from '../status/conditions.ts';
import type { Store } from '../store/store.ts';
import type { KubeObject } from '../store/convert.ts';
import { API_VERSION, GROUP, PLURAL, VERSION } from './resources.ts';

// A conflict means another writer just wrote; reading and merging again settles it
// unless that writer writes continuously, and then the queue retries after a pause.
const CONFLICT_ATTEMPTS = 5;
/** Status writes in flight at once: enough to keep up with a burst of creates, few enough for one API server. */
const WRITERS = 24;
/** How long a Programmed=Pending status waits for the data planes before it is written. */
export const PENDING_HOLD_MS = 2000;

/** Counters the writer reports. */
export interface StatusWriterMetrics {
  writes: { inc(labels: { kind: string; result: string }): void };
  events: { inc(labels: { type: string }): void };
}

interface CurrentStatus {
  conditions?: Condition[];
  observedGeneration?: number;
  readyEndpoints?: number;
  totalEndpoints?: number;
}

/** Patches status and records events; only the leader's writer is enabled. */
export class StatusWriter {
  private readonly custom: CustomObjectsApi;
  private readonly core: CoreV1Api;
  private readonly store: Store;
  private readonly log: Logger;
  private readonly identity: string;
  private readonly metrics: StatusWriterMetrics | undefined;
  private desired = new Map<string, ObjectStatus>();
  private readonly queue = new Set<string>();
  /** Objects whose Pending status is held back, with when the hold ends (past: written as it comes). */
  private readonly held = new Map<string, number>();
  private holdTimer: NodeJS.Timeout | undefined;
  private readonly holdMs: number;
  /** Per object: what it last wrote, and the resourceVersion it wrote over. */
  private readonly written = new Map<string, { fingerprint: string; base: string | undefined }>();
  private running = false;
  private enabled = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private idle: (() => void)[] = [];

  constructor(kc: KubeConfig, store: Store, log: Logger, identity: string, metrics?: StatusWriterMetrics, options: { pendingHoldMs?: number } = {}) {
    this.holdMs = options.pendingHoldMs ?? PENDING_HOLD_MS;
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.core = kc.makeApiClient(CoreV1Api);
    this.store = store;
    this.log = log;
    this.identity = identity;
    this.metrics = metrics;
  }

  /** Turns writing on (leader) or off (follower). */
  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
    if (enabled) {
      // A new leader re-checks everything: the previous one may have died mid-batch.
      this.written.clear();
      this.queueAll();
    }
  }

  /** Replaces the desired statuses; objects whose status would change are queued. */
  update(desired: Map<string, ObjectStatus>): void {
    this.desired = desired;
    for (const key of this.held.keys()) if (!desired.has(key)) this.held.delete(key);
    this.queueAll();
  }

  /** Queues every desired status, except a Pending one still within its hold. */
  private queueAll(): void {
    const now = Date.now();
    for (const [key, want] of this.desired) {
      if (!isProgrammedPending(want.conditions)) {
        this.held.delete(key);
        this.queue.add(key);
        continue;
      }
      const until = this.held.get(key);
      if (until === undefined && this.holdMs > 0) this.held.set(key, now + this.holdMs);
      else if (until === undefined || until <= now) this.queue.add(key);
    }
    this.armHold(now);
    this.kick();
  }

  /** Wakes up when the earliest hold ends. */
  private armHold(now: number): void {
    clearTimeout(this.holdTimer);
    let next = Infinity;
    for (const until of this.held.values()) if (until > now && until < next) next = until;
    if (next === Infinity) return;
    this.holdTimer = setTimeout(() => this.queueAll(), next - now);
    this.holdTimer.unref();
  }

  /** Resolves when the queue is empty (for tests and shutdown). */
  drained(): Promise<void> {
    if (!this.running && (this.queue.size === 0 || !this.enabled)) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  private kick(): void {
    if (this.running || !this.enabled || this.queue.size === 0) {
      if (!this.running) for (const r of this.idle.splice(0)) r();
      return;
    }
    this.running = true;
    void this.drain();
  }

  /**
   * Writes what is queued with WRITERS requests in flight, each taking the next
   * key as soon as it is done (no batch waits for its slowest write). A failed
   * write goes back in the queue and stops the round; the queue is retried
   * after a pause.
   */
  private async drain(): Promise<void> {
    let failed = false;
    // Keys being written: an object queued again meanwhile waits for its write, so two never race each other.
    const writing = new Set<string>();
    const next = (): string | undefined => {
      for (const key of this.queue) if (!writing.has(key)) return key;
      return undefined;
    };
    const worker = async (): Promise<void> => {
      for (let key = next(); key !== undefined && this.enabled && !failed; key = next()) {
        this.queue.delete(key);
        writing.add(key);
        try {
          await this.writeOne(key);
        } catch (err) {
          failed = true;
          this.queue.add(key);
          this.log.warn({ event: 'status_write_failed', object: key, error: String((err as Error)?.message ?? err) }, 'status write failed; will retry');
        } finally {
          writing.delete(key);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(WRITERS, this.queue.size) }, worker));
    this.running = false;
    if (failed) {
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.kick(), 500 + Math.random() * 1000);
      return;
    }
    this.kick();
  }

  private async writeOne(key: string): Promise<void> {
    const want = this.desired.get(key);
    if (!want) return;
    let obj: KubeObject | undefined = this.store.get(want.kind, `${want.namespace}/${want.name}`);
    for (let attempt = 1; obj; attempt++) {
      if ((await this.writeOver(key, want, obj)) !== 'conflict') return;
      this.metrics?.writes.inc({ kind: want.kind, result: 'conflict' });
      if (attempt === CONFLICT_ATTEMPTS) throw new Error(`status of ${want.kind} ${want.namespace}/${want.name}: still conflicting after ${attempt} attempts`);
      obj = await this.read(want);
    }
  }

  /** The object as the API server has it now (undefined once deleted). */
  private async read(want: ObjectStatus): Promise<KubeObject | undefined> {
    try {
      return (await this.custom.getNamespacedCustomObjectStatus({ group: GROUP, version: VERSION, namespace: want.namespace, plural: PLURAL[want.kind], name: want.name })) as KubeObject;
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  }

  /** Writes `want` over `obj`'s status, if that changes anything; 'conflict' if `obj` is no longer current. */
  private async writeOver(key: string, want: ObjectStatus, obj: KubeObject): Promise<'written' | 'skipped' | 'conflict'> {
    const current = ((obj as { status?: CurrentStatus }).status ?? {}) as CurrentStatus;
    const generation = obj.metadata?.generation ?? want.generation;
    // Compile ran on an older copy: the newer generation gets its own compile and write.
    if (generation !== want.generation) return 'skipped';
    const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
    const conditions = mergeConditions(current.conditions, want.conditions, want.generation, now);
    const status: CurrentStatus = { observedGeneration: want.generation, conditions };
    if (want.kind === 'Upstream') {
      status.readyEndpoints = want.readyEndpoints ?? 0;
      status.totalEndpoints = want.totalEndpoints ?? 0;
    }
    const unchanged =
      current.observedGeneration === status.observedGeneration &&
      sameConditions(current.conditions, conditions) &&
      current.readyEndpoints === status.readyEndpoints &&
      current.totalEndpoints === status.totalEndpoints;
    const fingerprint = JSON.stringify([want.generation, want.conditions, status.readyEndpoints, status.totalEndpoints]);
    const base = obj.metadata?.resourceVersion;
    const last = this.written.get(key);
    // The same write over the same copy: the watch has not brought our own write back yet.
    if (unchanged || (last?.fingerprint === fingerprint && last.base === base)) return 'skipped';

    try {
      await this.custom.patchNamespacedCustomObjectStatus(
        { group: GROUP, version: VERSION, namespace: want.namespace, plural: PLURAL[want.kind], name: want.name, body: { metadata: { resourceVersion: base }, status } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code === 404) return 'skipped';
      if (code === 409) return 'conflict';
      this.metrics?.writes.inc({ kind: want.kind, result: 'error' });
      throw err;
    }
    this.written.set(key, { fingerprint, base });
    this.metrics?.writes.inc({ kind: want.kind, result: 'ok' });

    const event = transitionEvent(current.conditions, conditions);
    if (event) await this.event(want, obj.metadata?.uid, event).catch((err: unknown) => this.log.warn({ event: 'event_write_failed', object: key, error: (err as Error).message }, 'cannot record an event'));
    return 'written';
  }

  private async event(want: ObjectStatus, uid: string | undefined, e: { warning: boolean; reason: string; message: string }): Promise<void> {
    const { warning } = e;
    const now = new Date();
    await this.core.createNamespacedEvent({
      namespace: want.namespace,
      body: {
        metadata: { generateName: `${want.name}.`, namespace: want.namespace },
        involvedObject: { apiVersion: API_VERSION, kind: want.kind, name: want.name, namespace: want.namespace, uid },
        type: warning ? 'Warning' : 'Normal',
        reason: e.reason,
        message: e.message,
        source: { component: 'switchyard-operator' },
        reportingComponent: 'switchyard.dev/operator',
        reportingInstance: this.identity,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
    this.metrics?.events.inc({ type: warning ? 'Warning' : 'Normal' });
  }

  /** Stops retrying. */
  stop(): void {
    this.enabled = false;
    clearTimeout(this.retryTimer);
    clearTimeout(this.holdTimer);
  }
}
