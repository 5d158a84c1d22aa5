/**
 * One circuit breaker per upstream (the seed's `circuit_breaker`): after
 * `failureThreshold` consecutive failed attempts it opens, and requests are
 * answered 503 `circuit_open` at once, without an upstream call. After
 * `openMs` it turns half-open and lets up to `halfOpenRequests` probes through
 * at a time; `successThreshold` successful probes close it, a failed probe
 * opens it again.
 *
 * opossum owns the state machine: the closed/open/half-open state, the timer
 * that turns open into half-open (`resetTimeout`), and the transition events.
 * Its own trip rule does not fit the seed's settings, so this class supplies
 * the counting and drives opossum with open() and close():
 * - opossum opens on an error percentage over a rolling window; the seed counts
 *   consecutive failures;
 * - opossum lets one trial call through when half-open and closes on its first
 *   success; the seed wants `successThreshold` successes, and we allow a
 *   configurable number of concurrent probes;
 * - requests do not go through fire(): an attempt's verdict is known when the
 *   response headers arrive while its body may stream for minutes, and fire()
 *   would add a promise and several events to every request.
 * The rolling-window machinery is left idle: a rotate controller that never
 * fires replaces its interval timer, and snapshots are off.
 */
import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import type { z } from 'zod';
import type { CircuitBreakerSchema } from '../contract/schema.ts';

/** An upstream's circuit breaker settings, as the table states them. */
export type BreakerSettings = z.infer<typeof CircuitBreakerSchema>;
export type BreakerState = 'closed' | 'half-open' | 'open';

/** The metric value of each state: `switchyard_circuit_breaker_state`. */
export const BREAKER_STATE_VALUE: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

/** Admission for one attempt: a normal pass while closed, or one of the half-open probes. */
export type BreakerPermit = 'pass' | 'probe';

/** The attempt's verdict: `neutral` when it says nothing about the upstream (the client went away). */
export type AttemptVerdict = 'ok' | 'fail' | 'neutral';

const noop = (): void => undefined;
const idle = (): Promise<void> => Promise.resolve();

/** Whether two settings need separate breakers (equal ones keep the state across a table swap). */
export function sameBreakerSettings(a: BreakerSettings | undefined, b: BreakerSettings | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.failureThreshold === b.failureThreshold && a.openMs === b.openMs && a.successThreshold === b.successThreshold && (a.halfOpenRequests ?? 1) === (b.halfOpenRequests ?? 1);
}

/** The circuit breaker of one upstream. */
export class UpstreamBreaker {
  readonly settings: BreakerSettings;
  /** Called on every state change; set by whoever reports them (logs, metrics). */
  onStateChange: (from: BreakerState, to: BreakerState) => void = noop;
  private readonly cb: CircuitBreaker;
  private current: BreakerState = 'closed';
  private failures = 0;
  private probesInFlight = 0;
  private probeSuccesses = 0;
  private openedAt = 0;
  private disposed = false;

  constructor(name: string, settings: BreakerSettings) {
    this.settings = settings;
    this.cb = new CircuitBreaker(idle, {
      name,
      timeout: false,
      resetTimeout: settings.openMs,
      enableSnapshots: false,
      rotateBucketController: new EventEmitter(),
    });
    this.cb.on('open', () => {
      this.openedAt = performance.now();
      this.transition('open');
    });
    this.cb.on('halfOpen', () => this.transition('half-open'));
    this.cb.on('close', () => this.transition('closed'));
  }

  private transition(to: BreakerState): void {
    const from = this.current;
    this.current = to;
    this.failures = 0;
    this.probesInFlight = 0;
    this.probeSuccesses = 0;
    if (from !== to) this.onStateChange(from, to);
  }

  get state(): BreakerState {
    return this.current;
  }

  /** Admits an attempt, or returns undefined when the breaker is open (or half-open with every probe slot taken). */
  tryPass(): BreakerPermit | undefined {
    if (this.current === 'closed') return 'pass';
    if (this.current === 'open') return undefined;
    if (this.probesInFlight >= (this.settings.halfOpenRequests ?? 1)) return undefined;
    this.probesInFlight++;
    return 'probe';
  }

  /** Seconds until probes are let through: the Retry-After of a `circuit_open` answer. */
  retryAfterSeconds(): number {
    if (this.current !== 'open') return 1;
    return Math.max(1, Math.ceil((this.openedAt + this.settings.openMs - performance.now()) / 1000));
  }

  /** Records the verdict of an attempt admitted with `permit`. */
  record(permit: BreakerPermit, verdict: AttemptVerdict): void {
    if (this.disposed) return;
    if (permit === 'probe') {
      // A probe admitted before the state changed again (opened by another probe) says nothing now.
      if (this.current !== 'half-open') return;
      this.probesInFlight = Math.max(0, this.probesInFlight - 1);
      if (verdict === 'fail') this.cb.open();
      else if (verdict === 'ok' && ++this.probeSuccesses >= this.settings.successThreshold) this.cb.close();
      return;
    }
    // Attempts admitted while closed that finish after the breaker opened do not count twice.
    if (this.current !== 'closed' || verdict === 'neutral') return;
    if (verdict === 'ok') this.failures = 0;
    else if (++this.failures >= this.settings.failureThreshold) this.cb.open();
  }

  /** Stops opossum's timers; later verdicts are ignored. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.onStateChange = noop;
    this.cb.shutdown();
  }
}
