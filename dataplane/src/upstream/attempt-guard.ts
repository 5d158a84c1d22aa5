/**
 * One attempt's passage through an upstream's circuit breaker and its report
 * to the breaker and outlier detection, apart from the retry loop (undici's
 * interceptor/circuit-breaker.js keeps these hooks apart the same way).
 *
 * Every admitted attempt gets exactly one verdict: `ok` or `fail` as soon as
 * the answer's status is known (a long body must not hold a half-open probe
 * slot), else `fail` when the upstream refused, reset or stayed silent, and
 * `neutral` when the client left or no endpoint was there to try.
 */
import type { AttemptVerdict, BreakerPermit } from './breaker.ts';

/** What the guard needs of an upstream (UpstreamRuntime has it). */
export interface GuardedUpstream<E> {
  readonly breaker?: { tryPass(): BreakerPermit | undefined; record(permit: BreakerPermit, verdict: AttemptVerdict): void } | undefined;
  /** Tells the breaker (with the permit) and outlier detection (about `endpoint`) how an attempt went. */
  report(endpoint: E, permit: BreakerPermit | undefined, verdict: AttemptVerdict): void;
}

/** The breaker's admission and the single verdict of one attempt. */
export class AttemptGuard<E> {
  private verdict: AttemptVerdict | undefined;
  private endpoint: E | undefined;
  private readonly upstream: GuardedUpstream<E>;
  /** The breaker's permit; undefined when the upstream has no breaker. */
  readonly permit: BreakerPermit | undefined;

  private constructor(upstream: GuardedUpstream<E>, permit: BreakerPermit | undefined) {
    this.upstream = upstream;
    this.permit = permit;
  }

  /** A guard for the next attempt, or undefined while the upstream's breaker refuses attempts. */
  static admit<E>(upstream: GuardedUpstream<E>): AttemptGuard<E> | undefined {
    const breaker = upstream.breaker;
    if (breaker === undefined) return new AttemptGuard(upstream, undefined);
    const permit = breaker.tryPass();
    return permit === undefined ? undefined : new AttemptGuard(upstream, permit);
  }

  /** The endpoint the attempt goes to. */
  sendTo(endpoint: E): void {
    this.endpoint = endpoint;
  }

  /** No endpoint to try: the permit goes back to the breaker without a verdict about the upstream. */
  abandon(): void {
    if (this.verdict !== undefined) return;
    this.verdict = 'neutral';
    if (this.permit !== undefined) this.upstream.breaker?.record(this.permit, 'neutral');
  }

  /** The upstream answered with `status`: 5xx fails, anything else succeeds. Returns the verdict. */
  answered(status: number): AttemptVerdict {
    return this.settle(status >= 500 ? 'fail' : 'ok');
  }

  /** The attempt is over; without an answer, `upstreamFault` says whether the upstream was to blame (rather than a client that left). */
  ended(upstreamFault: boolean): AttemptVerdict {
    return this.settle(upstreamFault ? 'fail' : 'neutral');
  }

  /** The verdict given, if any yet. */
  get settled(): AttemptVerdict | undefined {
    return this.verdict;
  }

  private settle(verdict: AttemptVerdict): AttemptVerdict {
    if (this.verdict !== undefined) return this.verdict;
    this.verdict = verdict;
    this.upstream.report(this.endpoint as E, this.permit, verdict);
    return verdict;
  }
}
