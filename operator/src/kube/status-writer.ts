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
const WRITERS = 32;
/** Events in flight at once. Events go out beside the status writes, never holding the next write back. */
const EVENT_WRITERS = 8;
/** How long an Event waits for the status writes under way to finish before it goes anyway. */
const EVENT_WAIT_MS = 1000;
/** Events waiting beyond this are dropped (with a warning), as client-go's recorder drops them when its buffer is full. */
const EVENT_BACKLOG = 10_000;
/** How long a Programmed=Pending status waits for the data planes before it is written. */
export const PENDING_HOLD_MS = 2000;

/** What a desired status says, as text: equal texts, equal statuses. */
function fingerprintOf(want: ObjectStatus): string {
  return JSON.stringify([want.generation, want.conditions, want.readyEndpoints ?? 0, want.totalEndpoints ?? 0]);
}

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
  /** Per object: a desired status found already in place, and the resourceVersion it was found in. */
  private readonly settled = new Map<string, { fingerprint: string; base: string | undefined }>();
  /** Workers writing now, the keys they write, and whether a failed write stopped them. */
  private active = 0;
  private readonly writing = new Set<string>();
  private failed = false;
  private enabled = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private idle: (() => void)[] = [];
  private readonly events: (() => Promise<void>)[] = [];
  private eventWriters = 0;
  private eventsDropped = 0;
  private whenIdle: Promise<void> | undefined;

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
      this.settled.clear();
      this.queueAll();
    }
  }

  /** Replaces the desired statuses; objects whose status would change are queued. */
  update(desired: Map<string, ObjectStatus>): void {
    this.desired = desired;
    for (const key of this.held.keys()) if (!desired.has(key)) this.held.delete(key);
    for (const key of this.settled.keys()) if (!desired.has(key)) this.settled.delete(key);
    this.queueAll();
  }

  /** Queues every desired status, except a Pending one still within its hold. */
  private queueAll(): void {
    const now = Date.now();
    for (const [key, want] of this.desired) {
      if (!isProgrammedPending(want.conditions)) {
        this.held.delete(key);
        // Found in place before, and the object has not changed since: nothing to check again.
        const settled = this.settled.get(key);
        if (settled !== undefined && settled.base === this.store.get(want.kind, `${want.namespace}/${want.name}`)?.metadata?.resourceVersion && settled.fingerprint === fingerprintOf(want)) continue;
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
    if (this.active === 0 && (this.queue.size === 0 || !this.enabled)) return Promise.resolve();
    return new Promise((r) => this.idle.push(r));
  }

  /** Resolves when no status write is under way, or after `ms`. */
  private statusIdle(ms: number): Promise<void> {
    // One waiter per busy spell, shared by every Event that waits in it (not one per Event).
    this.whenIdle ??= this.drained().finally(() => (this.whenIdle = undefined));
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([this.whenIdle, new Promise<void>((r) => (timer = setTimeout(r, ms)))]).finally(() => clearTimeout(timer));
  }

  /**
   * Keeps up to WRITERS writes in flight while keys wait: each worker takes the
   * next key as soon as its write is done (no batch waits for its slowest
   * write), and keys queued while workers run get workers of their own. A burst
   * that starts with one change thus does not stay one write at a time.
   */
  private kick(): void {
    if (this.enabled && !this.failed) {
      const idleWorkers = Math.min(WRITERS - this.active, this.queue.size);
      for (let i = 0; i < idleWorkers; i++) {
        this.active++;
        void this.worker();
      }
    }
    if (this.active === 0 && (this.queue.size === 0 || !this.enabled)) for (const r of this.idle.splice(0)) r();
  }

  /** The next queued key no worker is writing (an object queued again meanwhile waits for its write, so two never race). */
  private next(): string | undefined {
    for (const key of this.queue) if (!this.writing.has(key)) return key;
    return undefined;
  }

  /**
   * Writes queued keys until none is left. A failed write goes back in the queue
   * and stops every worker; once the last one stops, the queue is retried after
   * a pause.
   */
  private async worker(): Promise<void> {
    try {
      for (let key = this.next(); key !== undefined && this.enabled && !this.failed; key = this.next()) {
        this.queue.delete(key);
        this.writing.add(key);
        try {
          await this.writeOne(key);
        } catch (err) {
          this.failed = true;
          this.queue.add(key);
          this.log.warn({ event: 'status_write_failed', object: key, error: String((err as Error)?.message ?? err) }, 'status write failed; will retry');
        } finally {
          this.writing.delete(key);
        }
      }
    } finally {
      this.active--;
    }
    if (this.active > 0) return;
    if (this.failed) {
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => {
        this.failed = false;
        this.kick();
      }, 500 + Math.random() * 1000);
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
    const fingerprint = fingerprintOf(want);
    const base = obj.metadata?.resourceVersion;
    const last = this.written.get(key);
    // The same write over the same copy: the watch has not brought our own write back yet.
    if (unchanged) {
      this.settled.set(key, { fingerprint, base });
      return 'skipped';
    }
    this.settled.delete(key);
    if (last?.fingerprint === fingerprint && last.base === base) return 'skipped';

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
    if (event) this.sendEvent(key, () => this.event(want, obj.metadata?.uid, event));
    return 'written';
  }

  /** Queues an Event; EVENT_WRITERS send them in order, beside the status writes. */
  private sendEvent(key: string, send: () => Promise<void>): void {
    if (this.events.length >= EVENT_BACKLOG) {
      if (this.eventsDropped++ === 0) this.log.warn({ event: 'events_dropped', object: key, backlog: EVENT_BACKLOG }, 'too many Events waiting; dropping new ones until the backlog clears');
      return;
    }
    this.events.push(async () => {
      try {
        await send();
      } catch (err) {
        this.log.warn({ event: 'event_write_failed', object: key, error: (err as Error).message }, 'cannot record an event');
      }
    });
    while (this.eventWriters < EVENT_WRITERS && this.events.length > 0) {
      this.eventWriters++;
      void (async () => {
        for (let next = this.events.shift(); next; next = this.events.shift()) {
          // Status first: an Event waits while status writes are under way, for a second at most.
          if (this.active > 0) await this.statusIdle(EVENT_WAIT_MS);
          await next();
        }
        this.eventWriters--;
        if (this.eventWriters === 0 && this.eventsDropped > 0) {
          this.log.warn({ event: 'events_dropped', count: this.eventsDropped }, `${this.eventsDropped} Events were dropped`);
          this.eventsDropped = 0;
        }
      })();
    }
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
