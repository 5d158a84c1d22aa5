/**
 * Leader election with a coordination.k8s.io/v1 Lease, as client-go does it:
 * try to acquire or renew every retry period; a lease whose record has not
 * changed for its duration (timed on this replica's clock, so clock skew
 * between nodes does not matter) may be taken over. A leader that cannot renew
 * within the renew deadline steps down before anyone else may take over.
 */
import type { KubeConfig} from '@kubernetes/client-node';
import { CoordinationV1Api, V1MicroTime, type V1Lease } from '@kubernetes/client-node';

/** Timing of the election. */
export interface LeaderOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  onStartedLeading(): void;
  onStoppedLeading(): void;
  onError?(err: unknown): void;
}

// The API wants microsecond precision in Lease times; V1MicroTime writes it.
const micro = (d: Date): V1MicroTime => new V1MicroTime(d.getTime());
const statusOf = (err: unknown): number | undefined => (err as { code?: number }).code;

/** Runs the election loop until stopped. */
export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly o: LeaderOptions;
  private leading = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private lastRenew = 0;
  private observed: { record: string; at: number } | undefined;

  constructor(kc: KubeConfig, options: LeaderOptions) {
    this.api = kc.makeApiClient(CoordinationV1Api);
    this.o = options;
  }

  /** Whether this replica leads now. */
  get isLeader(): boolean {
    return this.leading;
  }

  /** Starts campaigning. */
  start(): void {
    void this.tick();
  }

  private schedule(): void {
    if (!this.stopped) this.timer = setTimeout(() => void this.tick(), this.o.retryPeriodMs);
  }

  private async tick(): Promise<void> {
    try {
      const ok = await this.tryAcquireOrRenew();
      if (ok) {
        this.lastRenew = Date.now();
        if (!this.leading) {
          this.leading = true;
          this.o.onStartedLeading();
        }
      } else if (this.leading && Date.now() - this.lastRenew > this.o.renewDeadlineMs) {
        this.stepDown();
      }
    } catch (err) {
      this.o.onError?.(err);
      if (this.leading && Date.now() - this.lastRenew > this.o.renewDeadlineMs) this.stepDown();
    }
    this.schedule();
  }

  private stepDown(): void {
    this.leading = false;
    this.o.onStoppedLeading();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = new Date();
    const { namespace, name, identity } = this.o;
    const durationSeconds = Math.max(1, Math.round(this.o.leaseDurationMs / 1000));
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
      await this.api.createNamespacedLease({
        namespace,
        body: { metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: micro(now), renewTime: micro(now), leaseTransitions: 0 } },
      });
      return true;
    }
    const spec = lease.spec ?? {};
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.acquireTime, spec.leaseTransitions]);
    if (this.observed?.record !== record) this.observed = { record, at: Date.now() };
    const holder = spec.holderIdentity ?? '';
    const heldByMe = holder === identity;
    const expired = holder === '' || Date.now() - this.observed.at > (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (!heldByMe && !expired) return false;
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds: durationSeconds,
      renewTime: micro(now),
      acquireTime: heldByMe ? spec.acquireTime : micro(now),
      leaseTransitions: heldByMe ? spec.leaseTransitions : (spec.leaseTransitions ?? 0) + 1,
    };
    try {
      // The resourceVersion in `lease` makes this a compare-and-swap: if another replica won the race, we get 409.
      await this.api.replaceNamespacedLease({ name, namespace, body: lease });
    } catch (err) {
      if (statusOf(err) === 409) return false;
      throw err;
    }
    return true;
  }

  /** Stops campaigning; a leader releases the lease so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.api.readNamespacedLease({ name: this.o.name, namespace: this.o.namespace });
      if (lease.spec?.holderIdentity === this.o.identity) {
        lease.spec = { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1 };
        await this.api.replaceNamespacedLease({ name: this.o.name, namespace: this.o.namespace, body: lease });
      }
    } catch (err) {
      this.o.onError?.(err);
    }
    this.o.onStoppedLeading();
  }
}
