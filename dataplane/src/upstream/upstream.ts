/** An upstream as served: its endpoints with their live state, and how to choose among them. */
import type { Pool } from 'undici';
import type { Upstream } from '../contract/schema.ts';
import { createBalancer, type Balancer } from './balancer.ts';
import { UpstreamBreaker, sameBreakerSettings, type AttemptVerdict, type BreakerPermit } from './breaker.ts';
import { EndpointHealth } from './health.ts';
import { OutlierDetector } from './outlier.ts';
import type { PoolRegistry } from './pools.ts';
import { DEFAULT_RETRY_BUDGET, RetryBudget } from './retry-budget.ts';

/** One endpoint and the state that outlives a table swap (counters, health). */
export class EndpointRuntime {
  readonly origin: string;
  readonly weight: number;
  readonly name: string | undefined;
  readonly pool: Pool;
  readonly health: EndpointHealth;
  inFlight = 0;

  constructor(origin: string, weight: number, name: string | undefined, pool: Pool, health: EndpointHealth = new EndpointHealth()) {
    this.origin = origin;
    this.weight = weight;
    this.name = name;
    this.pool = pool;
    this.health = health;
  }

  /** False while a failing health check or outlier detection keeps it out of rotation. */
  get healthy(): boolean {
    return this.health.available;
  }
}

/** What an upstream reports as its endpoints change state (logs, metrics). */
export interface UpstreamEvents {
  ejected(upstream: string, endpoint: EndpointRuntime, durationMs: number): void;
  returned(upstream: string, endpoint: EndpointRuntime): void;
  /** A request was sent although no endpoint is healthy (panic mode). */
  panic(upstream: string): void;
}

const NO_EVENTS: UpstreamEvents = { ejected: () => undefined, returned: () => undefined, panic: () => undefined };

/** An upstream of the live table. */
export class UpstreamRuntime {
  readonly name: string;
  readonly def: Upstream;
  readonly endpoints: readonly EndpointRuntime[];
  /** Undefined when the upstream has no circuit breaker. Shared with the previous table when its settings are unchanged. */
  readonly breaker: UpstreamBreaker | undefined;
  readonly outlier: OutlierDetector | undefined;
  readonly retryBudget: RetryBudget;
  /** Where state changes are reported; attached when the table is applied. */
  events: UpstreamEvents = NO_EVENTS;
  private readonly balancer: Balancer<EndpointRuntime>;
  private readonly panicWhenAllUnhealthy: boolean;

  constructor(def: Upstream, endpoints: readonly EndpointRuntime[], previous?: UpstreamRuntime) {
    this.name = def.name;
    this.def = def;
    this.endpoints = endpoints;
    this.balancer = createBalancer<EndpointRuntime>(def.loadBalancer);
    this.panicWhenAllUnhealthy = (def.whenAllUnhealthy ?? 'panic') === 'panic';
    this.outlier = def.outlierDetection ? new OutlierDetector(def.outlierDetection) : undefined;
    const cb = def.circuitBreaker;
    this.breaker = cb ? (previous?.breaker && sameBreakerSettings(previous.breaker.settings, cb) ? previous.breaker : new UpstreamBreaker(def.name, cb)) : undefined;
    this.retryBudget = previous?.retryBudget ?? new RetryBudget();
    this.retryBudget.settings = def.retryBudget ?? DEFAULT_RETRY_BUDGET;
  }

  /**
   * An endpoint for the next attempt, avoiding those already `tried` while
   * another is available. Only healthy endpoints are candidates; when none is,
   * panic mode (the default) uses all of them, since a health check that fails
   * everywhere is as likely to be wrong as the whole service is to be down;
   * otherwise the answer is undefined (503 `no_healthy_upstream`).
   */
  pick(tried?: readonly EndpointRuntime[]): EndpointRuntime | undefined {
    const eps = this.endpoints;
    let available = 0;
    for (let i = 0; i < eps.length; i++) if ((eps[i] as EndpointRuntime).health.available) available++;
    if (available === eps.length) return this.balancer.pick(eps, tried);
    if (available > 0) return this.balancer.pick(eps.filter((e) => e.health.available), tried);
    if (!this.panicWhenAllUnhealthy) return undefined;
    this.events.panic(this.name);
    return this.balancer.pick(eps, tried);
  }

  /**
   * Records how an attempt on `endpoint` went: `ok` for any answer below 500,
   * `fail` for a 5xx answer or a connection failure, `neutral` when it says
   * nothing about the upstream (the client went away).
   */
  report(endpoint: EndpointRuntime, permit: BreakerPermit | undefined, verdict: AttemptVerdict): void {
    if (permit !== undefined) this.breaker?.record(permit, verdict);
    const outlier = this.outlier;
    if (!outlier || verdict === 'neutral') return;
    if (verdict === 'ok') {
      outlier.success(endpoint.health);
      return;
    }
    const events = this.events;
    const name = this.name;
    const ejectedFor = outlier.failure(endpoint.health, this.endpoints, () => events.returned(name, endpoint));
    if (ejectedFor !== undefined) events.ejected(name, endpoint, ejectedFor);
  }
}

/**
 * Builds the upstreams of a new table, reusing state from the previous table:
 * endpoints whose origin and pool settings are unchanged are kept as they are;
 * an endpoint that stays but needs a new pool or weight keeps its health; the
 * breaker is kept when its settings are unchanged, and the retry budget always.
 */
export function buildUpstreams(defs: readonly Upstream[], pools: PoolRegistry, previous?: ReadonlyMap<string, UpstreamRuntime>): Map<string, UpstreamRuntime> {
  const out = new Map<string, UpstreamRuntime>();
  for (const def of defs) {
    const before = previous?.get(def.name);
    // The same entry as before (a delta that left this upstream alone): nothing to rebuild.
    if (before !== undefined && before.def === def) {
      out.set(def.name, before);
      continue;
    }
    const endpoints = def.endpoints.map((ep) => {
      const origin = new URL(ep.url).origin;
      const pool = pools.get(origin, def);
      const sameOrigin = before?.endpoints.find((e) => e.origin === origin);
      if (sameOrigin && sameOrigin.pool === pool && sameOrigin.weight === ep.weight) return sameOrigin;
      return new EndpointRuntime(origin, ep.weight, ep.name, pool, sameOrigin?.health);
    });
    out.set(def.name, new UpstreamRuntime(def, endpoints, before));
  }
  return out;
}
