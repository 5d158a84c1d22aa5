/**
 * Retry budget and backoff: what keeps retries from turning a partial outage
 * into a full one.
 *
 * A budget per upstream allows at most `percent` of the requests in flight to
 * that upstream to be retries in flight, but always at least `minConcurrent`
 * (Envoy's retry budget works the same way). When every endpoint fails, the
 * extra load the gateway adds is bounded by that share instead of multiplying
 * by the number of attempts.
 */
import type { z } from 'zod';
import type { RetryBudgetSchema } from '../contract/schema.ts';

export type RetryBudgetSettings = z.infer<typeof RetryBudgetSchema>;

/** The budget used when the table names none. */
export const DEFAULT_RETRY_BUDGET: RetryBudgetSettings = { percent: 20, minConcurrent: 3 };

/** Requests and retries in flight to one upstream. Shared across table swaps, so in-flight counts stay right. */
export class RetryBudget {
  settings: RetryBudgetSettings;
  /** Requests being proxied to the upstream, each counted once however many attempts it makes. */
  active = 0;
  /** Retries holding a slot: from the decision to retry until that attempt ends. */
  retries = 0;

  constructor(settings: RetryBudgetSettings = DEFAULT_RETRY_BUDGET) {
    this.settings = settings;
  }

  /** Takes a retry slot if the budget allows one. */
  tryAcquire(): boolean {
    const allowed = Math.max(this.settings.minConcurrent, (this.active * this.settings.percent) / 100);
    if (this.retries >= allowed) return false;
    this.retries++;
    return true;
  }

  release(): void {
    if (this.retries > 0) this.retries--;
  }
}

/**
 * The wait before retry number `retry` (0 for the first): exponential from
 * `baseMs`, capped at ten times it, with "equal jitter" (half fixed, half
 * random) so that requests failed by the same event do not come back together.
 */
export function backoffDelay(baseMs: number, retry: number, random: () => number = Math.random): number {
  if (baseMs <= 0) return 0;
  const ceiling = Math.min(baseMs * 2 ** retry, baseMs * 10);
  return ceiling / 2 + random() * (ceiling / 2);
}
