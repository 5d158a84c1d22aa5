/**
 * Passive outlier detection: an endpoint that fails real requests several
 * times in a row (5xx answers, refused or reset connections, timeouts) is
 * ejected for a while, without waiting for the active check to notice.
 *
 * The ejection grows with repeat offences: base × the number of ejections,
 * capped. Time forgives: for each base interval the endpoint then stays in
 * rotation, the count drops by one (computed when it is next ejected, so no
 * timer runs for it). Never more than `maxEjectionPercent` of an upstream's
 * endpoints are ejected at once, so outlier detection alone cannot empty an
 * upstream; with the default 50%, a single-endpoint upstream is never ejected
 * (its circuit breaker is the tool for that case).
 */
import type { z } from 'zod';
import type { OutlierDetectionSchema } from '../contract/schema.ts';
import type { EndpointHealth } from './health.ts';

/** An upstream's outlier detection, as the table states it (defaults filled in). */
export type OutlierSettings = z.infer<typeof OutlierDetectionSchema>;

/** The verdict for one upstream's endpoints; all state lives on EndpointHealth. */
export class OutlierDetector {
  readonly settings: OutlierSettings;
  private readonly now: () => number;

  constructor(settings: OutlierSettings, now: () => number = () => performance.now()) {
    this.settings = settings;
    this.now = now;
  }

  /** A request to the endpoint succeeded (any answer below 500). */
  success(h: EndpointHealth): void {
    h.consecutiveFailures = 0;
  }

  /**
   * A request to the endpoint failed. Returns the ejection time when this
   * failure ejects it, undefined otherwise. `peers` are all of the upstream's
   * endpoints, for the share that may be ejected at once.
   */
  failure(h: EndpointHealth, peers: readonly { health: EndpointHealth }[], onReturn: () => void): number | undefined {
    if (h.ejected) return undefined;
    h.consecutiveFailures++;
    if (h.consecutiveFailures < this.settings.consecutiveFailures) return undefined;
    let ejected = 0;
    for (const p of peers) if (p.health.ejected) ejected++;
    if (ejected + 1 > Math.floor((peers.length * this.settings.maxEjectionPercent) / 100)) return undefined;
    const now = this.now();
    const base = this.settings.baseEjectionMs;
    if (h.ejections > 0 && h.returnedAt > 0) h.ejections = Math.max(0, h.ejections - Math.floor((now - h.returnedAt) / base));
    h.ejections++;
    const duration = Math.min(this.settings.maxEjectionMs, base * h.ejections);
    h.consecutiveFailures = 0;
    h.eject(duration, now, onReturn);
    return duration;
  }
}
