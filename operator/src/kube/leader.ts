/**
 * Leader election with a coordination.k8s.io/v1 Lease, as client-go does it:
 * try to acquire or renew every retry period; a lease whose record has not
 * changed for its duration (timed on this replica's clock, so clock skew
 * between nodes does not matter) may be taken over.
 *
 * A leader that cannot renew within the renew deadline steps down before anyone
 * else may take over. That holds when the API server does not answer at all (a
 * paused process, a partition): each request is aborted once it could no longer
 * renew in time, and a timer steps down at the deadline even while a request is
 * still out.
 *
 * Each leadership has a term, the Lease's `leaseTransitions` with its UID: a
 * fencing token that only grows while the Lease exists, so data planes can tell
 * a deposed leader's tables from the current leader's.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import { CoordinationV1Api, V1MicroTime, setHeaderMiddleware, type V1Lease } from '@kubernetes/client-node';

/** A leadership term: the Lease (by UID) and its transition count when this replica acquired it. */
export interface LeaderTerm {
  lease: string;
  term: number;
  identity: string;
}

/** Timing of the election. */
export interface LeaderOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  onStartedLeading(term: LeaderTerm): void;
  onStoppedLeading(): void;
  onError?(err: unknown): void;
}

// The API wants microsecond precision in Lease times; V1MicroTime writes it.
const micro = (d: Date): V1MicroTime => new V1MicroTime(d.getTime());
const statusOf = (err: unknown): number | undefined => (err as { code?: number }).code;

type RequestOptions = Parameters<CoordinationV1Api['readNamespacedLease']>[1];

// What these calls read is JSON; the client's own header middleware is reused for
// the one thing it returns, the request in the form the client's pipeline expects.
const passThrough = setHeaderMiddleware('Accept', 'application/json');

/** Request options that abort the request after `ms`: a hung API server must not hold the loop. */
function within(ms: number): RequestOptions {
  const signal = AbortSignal.timeout(Math.max(1, Math.round(ms)));
  return {
    middleware: [
      {
        pre: (ctx) => {
          ctx.setSignal(signal);
          return passThrough.pre(ctx);
        },
        post: (res) => passThrough.post(res),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

/** Runs the election loop until stopped. */
export class LeaderElector {
  private readonly api: CoordinationV1Api;
  private readonly kc: KubeConfig;
  private readonly o: LeaderOptions;
  private leading = false;
  private timer: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private stopped = false;
  private lastRenew = 0;
  private observed: { record: string; at: number } | undefined;
  private acquired: LeaderTerm | undefined;

  constructor(kc: KubeConfig, options: LeaderOptions) {
    this.api = kc.makeApiClient(CoordinationV1Api);
    this.kc = kc;
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

  /** How long a request may take: a leader must know in time to step down, a follower just tries again. */
  private budget(): number {
    return this.leading ? this.lastRenew + this.o.renewDeadlineMs - Date.now() : this.o.renewDeadlineMs;
  }

  private async tick(): Promise<void> {
    try {
      const term = await this.tryAcquireOrRenew();
      if (term && !this.stopped) this.renewed(term);
    } catch (err) {
      this.o.onError?.(err);
      // The connection it waited on may be dead without knowing it: start over with new ones.
      if ((err as Error)?.name === 'TimeoutError') (this.kc as { dropConnections?: () => void }).dropConnections?.();
    }
    this.schedule();
  }

  private renewed(term: LeaderTerm): void {
    this.lastRenew = Date.now();
    clearTimeout(this.deadline);
    this.deadline = setTimeout(() => this.stepDown(), this.o.renewDeadlineMs);
    if (!this.leading) {
      this.leading = true;
      this.o.onStartedLeading(term);
    }
  }

  private stepDown(): void {
    clearTimeout(this.deadline);
    if (!this.leading) return;
    this.leading = false;
    this.o.onStoppedLeading();
  }

  /** The term this replica leads in after the call, or undefined if it does not lead. */
  private async tryAcquireOrRenew(): Promise<LeaderTerm | undefined> {
    const now = new Date();
    const { namespace, name, identity } = this.o;
    const durationSeconds = Math.max(1, Math.round(this.o.leaseDurationMs / 1000));
    let lease: V1Lease;
    try {
      lease = await this.api.readNamespacedLease({ name, namespace }, within(this.budget()));
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
      const created = await this.api.createNamespacedLease(
        {
          namespace,
          body: { metadata: { name, namespace }, spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: micro(now), renewTime: micro(now), leaseTransitions: 0 } },
        },
        within(this.budget()),
      );
      return this.termOf(created);
    }
    const spec = lease.spec ?? {};
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, spec.acquireTime, spec.leaseTransitions]);
    if (this.observed?.record !== record) this.observed = { record, at: Date.now() };
    const holder = spec.holderIdentity ?? '';
    const heldByMe = holder === identity;
    const expired = holder === '' || Date.now() - this.observed.at > (spec.leaseDurationSeconds ?? durationSeconds) * 1000;
    if (!heldByMe && !expired) {
      // Someone else renewed: whatever this replica thought, it does not lead.
      this.stepDown();
      return undefined;
    }
    lease.spec = {
      ...spec,
      holderIdentity: identity,
      leaseDurationSeconds: durationSeconds,
      renewTime: micro(now),
      acquireTime: heldByMe ? spec.acquireTime : micro(now),
      leaseTransitions: heldByMe ? spec.leaseTransitions : (spec.leaseTransitions ?? 0) + 1,
    };
    let written: V1Lease;
    try {
      // The resourceVersion in `lease` makes this a compare-and-swap: if another replica won the race, we get 409.
      written = await this.api.replaceNamespacedLease({ name, namespace, body: lease }, within(this.budget()));
    } catch (err) {
      if (statusOf(err) === 409) return undefined;
      throw err;
    }
    return this.termOf(written);
  }

  private termOf(lease: V1Lease): LeaderTerm {
    const term = { lease: lease.metadata?.uid ?? '', term: lease.spec?.leaseTransitions ?? 0, identity: this.o.identity };
    // Renewals keep the term this replica acquired; a new acquisition brings a new one.
    if (!this.leading || !this.acquired || this.acquired.lease !== term.lease || this.acquired.term !== term.term) this.acquired = term;
    return this.acquired;
  }

  /** Stops campaigning; a leader releases the lease so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.leading) return;
    this.stepDown();
    try {
      const lease = await this.api.readNamespacedLease({ name: this.o.name, namespace: this.o.namespace }, within(this.o.renewDeadlineMs));
      if (lease.spec?.holderIdentity === this.o.identity) {
        lease.spec = { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1 };
        await this.api.replaceNamespacedLease({ name: this.o.name, namespace: this.o.namespace, body: lease }, within(this.o.renewDeadlineMs));
      }
    } catch (err) {
      this.o.onError?.(err);
    }
  }
}
