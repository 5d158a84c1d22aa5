/**
 * Endpoint health: the state that decides whether an endpoint takes traffic.
 * The active checker (health-check.ts) and outlier detection (outlier.ts)
 * write it; the balancer reads it.
 *
 * Two signals keep an endpoint out of rotation: its active health check is
 * failing, or outlier detection ejected it after real requests failed.
 * Kubernetes readiness is a third, applied before the table is built: the
 * operator lists only ready endpoints.
 */
import type { HealthCheckSchema } from '../contract/schema.ts';
import type { z } from 'zod';

/** An upstream's active health check, as the table states it. */
export type HealthCheckSettings = z.infer<typeof HealthCheckSchema>;

/**
 * The health of one endpoint of one upstream. It outlives table swaps: a table
 * that keeps the endpoint keeps this object, so an unhealthy endpoint does not
 * come back just because an unrelated route changed.
 */
export class EndpointHealth {
  /** The active check's verdict; true when the upstream has no active check. */
  checkPassing = true;
  /** Consecutive probe results in the current direction. */
  probeSuccesses = 0;
  probeFailures = 0;
  /** Why the last probe failed, for logs and the admin API. */
  lastProbeError: string | undefined;
  /** Consecutive failed requests (5xx or connection errors), for outlier detection. */
  consecutiveFailures = 0;
  ejected = false;
  /** How many times the endpoint was ejected, less what time forgave (see outlier.ts). */
  ejections = 0;
  ejectedUntil = 0;
  /** When the last ejection ended (performance.now()), 0 if never. */
  returnedAt = 0;
  /** Takes traffic: the check passes and the endpoint is not ejected. Read on every pick. */
  available = true;
  private ejectTimer: NodeJS.Timeout | undefined;

  private update(): void {
    this.available = this.checkPassing && !this.ejected;
  }

  /** Records one probe result; returns the new verdict when it changed. */
  recordProbe(ok: boolean, settings: HealthCheckSettings, error?: string): boolean | undefined {
    if (ok) {
      this.probeFailures = 0;
      this.probeSuccesses++;
      this.lastProbeError = undefined;
      if (!this.checkPassing && this.probeSuccesses >= settings.healthyThreshold) return this.setCheckPassing(true);
    } else {
      this.probeSuccesses = 0;
      this.probeFailures++;
      this.lastProbeError = error;
      if (this.checkPassing && this.probeFailures >= settings.unhealthyThreshold) return this.setCheckPassing(false);
    }
    return undefined;
  }

  /** Forgets the active check's verdict (the upstream no longer has a check). */
  resetCheck(): boolean | undefined {
    this.probeFailures = 0;
    this.probeSuccesses = 0;
    this.lastProbeError = undefined;
    return this.checkPassing ? undefined : this.setCheckPassing(true);
  }

  private setCheckPassing(passing: boolean): boolean {
    this.checkPassing = passing;
    this.probeFailures = 0;
    this.probeSuccesses = 0;
    this.update();
    return passing;
  }

  /** Takes the endpoint out of rotation for `durationMs`; `onReturn` runs when it comes back. */
  eject(durationMs: number, now: number, onReturn: () => void): void {
    this.ejected = true;
    this.ejectedUntil = now + durationMs;
    this.update();
    clearTimeout(this.ejectTimer);
    this.ejectTimer = setTimeout(() => {
      this.ejectTimer = undefined;
      this.ejected = false;
      this.consecutiveFailures = 0;
      this.returnedAt = performance.now();
      this.update();
      onReturn();
    }, durationMs);
    this.ejectTimer.unref();
  }

  /** Cancels a pending return timer (the gateway is stopping). */
  dispose(): void {
    clearTimeout(this.ejectTimer);
    this.ejectTimer = undefined;
  }
}
