/**
 * Keeps the resilience machinery in step with the live table: after each swap
 * it attaches event reporting to the new upstreams and breakers, starts and
 * stops health probes, disposes of breakers no table uses any more, and keeps
 * the per-endpoint metric series to the endpoints of the table (so the number
 * of series is bounded by the table, never by history).
 */
import type { Logger } from '../observability/logger.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import type { TableRuntime } from '../table/runtime.ts';
import { BREAKER_STATE_VALUE, type UpstreamBreaker } from './breaker.ts';
import { HealthChecker, type HealthEvents } from './health-check.ts';
import type { EndpointRuntime, UpstreamEvents, UpstreamRuntime } from './upstream.ts';

const key = (upstream: string, origin: string): string => `${upstream}\u0000${origin}`;

/** Health checks, breakers and outlier detection for the live table, with their logs and metrics. */
export class UpstreamResilience implements HealthEvents, UpstreamEvents {
  readonly checker: HealthChecker;
  private readonly metrics: GatewayMetrics;
  private readonly log: Logger;
  private breakers = new Map<UpstreamBreaker, string>();
  private live = new Set<string>();
  private liveUpstreams = new Set<string>();
  private lastPanicLog = new Map<string, number>();
  private stopped = false;

  constructor(metrics: GatewayMetrics, log: Logger, random: () => number = Math.random) {
    this.metrics = metrics;
    this.log = log;
    this.checker = new HealthChecker(this, random);
  }

  /** Brings everything in line with a table that was just applied. */
  sync(rt: TableRuntime): void {
    if (this.stopped) return;
    const upstreams = [...rt.upstreams.values()];
    const breakers = new Map<UpstreamBreaker, string>();
    const live = new Set<string>();
    const m = this.metrics;
    m.endpointHealthy.reset();
    m.endpointEjected.reset();
    m.breakerState.reset();
    for (const u of upstreams) {
      u.events = this;
      for (const e of u.endpoints) {
        live.add(key(u.name, e.origin));
        m.endpointHealthy.set({ upstream: u.name, endpoint: e.origin }, e.health.checkPassing ? 1 : 0);
        m.endpointEjected.set({ upstream: u.name, endpoint: e.origin }, e.health.ejected ? 1 : 0);
      }
      if (u.breaker) {
        breakers.set(u.breaker, u.name);
        this.attachBreaker(u.name, u.breaker);
        m.breakerState.set({ upstream: u.name }, BREAKER_STATE_VALUE[u.breaker.state]);
      }
    }
    for (const [b] of this.breakers) if (!breakers.has(b)) b.dispose();
    this.breakers = breakers;
    this.live = live;
    this.liveUpstreams = new Set(upstreams.map((u) => u.name));
    this.checker.sync(upstreams);
  }

  private attachBreaker(upstream: string, breaker: UpstreamBreaker): void {
    breaker.onStateChange = (from, to) => {
      this.log[to === 'open' ? 'warn' : 'info']({ event: 'circuit_breaker_state', upstream, from, to, ...(to === 'open' ? { retryAfterSeconds: breaker.retryAfterSeconds() } : {}) }, `circuit breaker of "${upstream}" is ${to}`);
      this.metrics.breakerTransitions.inc({ upstream, state: to });
      if (this.liveUpstreams.has(upstream)) this.metrics.breakerState.set({ upstream }, BREAKER_STATE_VALUE[to]);
    };
  }

  probed(upstream: string, _endpoint: EndpointRuntime, ok: boolean): void {
    this.metrics.healthChecks.inc({ upstream, result: ok ? 'success' : 'failure' });
  }

  healthChanged(upstream: string, endpoint: EndpointRuntime, healthy: boolean, reason: string | undefined): void {
    this.log[healthy ? 'info' : 'warn']({ event: healthy ? 'endpoint_healthy' : 'endpoint_unhealthy', upstream, endpoint: endpoint.origin, reason: reason ?? null }, `endpoint ${endpoint.origin} of "${upstream}" is ${healthy ? 'healthy' : 'unhealthy'}`);
    if (this.live.has(key(upstream, endpoint.origin))) this.metrics.endpointHealthy.set({ upstream, endpoint: endpoint.origin }, healthy ? 1 : 0);
  }

  ejected(upstream: string, endpoint: EndpointRuntime, durationMs: number): void {
    this.log.warn({ event: 'endpoint_ejected', upstream, endpoint: endpoint.origin, durationMs, ejections: endpoint.health.ejections }, `endpoint ${endpoint.origin} of "${upstream}" ejected for ${durationMs} ms`);
    this.metrics.outlierEjections.inc({ upstream });
    if (this.live.has(key(upstream, endpoint.origin))) this.metrics.endpointEjected.set({ upstream, endpoint: endpoint.origin }, 1);
  }

  returned(upstream: string, endpoint: EndpointRuntime): void {
    if (this.stopped) return;
    this.log.info({ event: 'endpoint_returned', upstream, endpoint: endpoint.origin }, `endpoint ${endpoint.origin} of "${upstream}" is back in rotation`);
    if (this.live.has(key(upstream, endpoint.origin))) this.metrics.endpointEjected.set({ upstream, endpoint: endpoint.origin }, 0);
  }

  panic(upstream: string): void {
    this.metrics.panicRequests.inc({ upstream });
    // One line per upstream every 10 s at most: panic mode happens per request.
    const now = performance.now();
    if ((this.lastPanicLog.get(upstream) ?? -Infinity) > now - 10_000) return;
    this.lastPanicLog.set(upstream, now);
    this.log.warn({ event: 'upstream_panic', upstream }, `no endpoint of "${upstream}" is healthy; sending to all of them (panic mode)`);
  }

  /** Stops every probe and timer; called when the gateway stops. */
  stop(upstreams: Iterable<UpstreamRuntime> = []): void {
    this.stopped = true;
    this.checker.stop();
    for (const [b] of this.breakers) b.dispose();
    this.breakers.clear();
    for (const u of upstreams) for (const e of u.endpoints) e.health.dispose();
  }
}
