/**
 * Prometheus metrics. Label sets are bounded: routes and upstreams come from the
 * table (never from the request), status is reduced to its class.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Every metric the data plane exports, on one registry per process. */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'route' | 'method' | 'status_class'>;
  readonly requestDuration: Histogram<'route'>;
  readonly upstreamDuration: Histogram<'upstream' | 'status_class'>;
  readonly upstreamErrors: Counter<'upstream' | 'kind'>;
  readonly inFlight: Gauge;
  readonly responseBytes: Counter<'route'>;
  readonly tableInfo: Gauge<'version' | 'source'>;
  readonly tableRoutes: Gauge;
  readonly tableLoadedAt: Gauge;
  readonly tableAge: Gauge;
  readonly reloads: Counter<'result'>;
  readonly rejectedRequests: Counter<'code'>;
  readonly rateLimitDecisions: Counter<'result' | 'store'>;
  readonly rateLimitStoreErrors: Counter<'kind'>;
  readonly rateLimitStoreAvailable: Gauge<'type'>;
  readonly rateLimitStoreTransitions: Counter<'state'>;
  readonly endpointHealthy: Gauge<'upstream' | 'endpoint'>;
  readonly endpointEjected: Gauge<'upstream' | 'endpoint'>;
  readonly healthChecks: Counter<'upstream' | 'result'>;
  readonly outlierEjections: Counter<'upstream'>;
  readonly breakerState: Gauge<'upstream'>;
  readonly breakerTransitions: Counter<'upstream' | 'state'>;
  readonly retries: Counter<'upstream' | 'result'>;
  readonly panicRequests: Counter<'upstream'>;
  readonly upgradedOpen: Gauge<'route'>;
  readonly upgraded: Counter<'route'>;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.requests = new Counter({ name: 'switchyard_requests_total', help: 'Requests answered, by route, method and status class.', labelNames: ['route', 'method', 'status_class'], registers });
    this.requestDuration = new Histogram({ name: 'switchyard_request_duration_seconds', help: 'Time from request received to response finished.', labelNames: ['route'], buckets: LATENCY_BUCKETS, registers });
    this.upstreamDuration = new Histogram({ name: 'switchyard_upstream_duration_seconds', help: 'Time from upstream request sent to upstream response headers.', labelNames: ['upstream', 'status_class'], buckets: LATENCY_BUCKETS, registers });
    this.upstreamErrors = new Counter({ name: 'switchyard_upstream_errors_total', help: 'Upstream attempts that failed without a response, by kind.', labelNames: ['upstream', 'kind'], registers });
    this.inFlight = new Gauge({ name: 'switchyard_requests_in_flight', help: 'Requests being handled now.', registers });
    this.responseBytes = new Counter({ name: 'switchyard_response_bytes_total', help: 'Response body bytes sent to clients.', labelNames: ['route'], registers });
    this.tableInfo = new Gauge({ name: 'switchyard_table_info', help: 'The route table being served (value 1), by version and source.', labelNames: ['version', 'source'], registers });
    this.tableRoutes = new Gauge({ name: 'switchyard_table_routes', help: 'Routes in the table being served.', registers });
    this.tableLoadedAt = new Gauge({ name: 'switchyard_table_loaded_timestamp_seconds', help: 'When the table being served was applied.', registers });
    this.tableAge = new Gauge({
      name: 'switchyard_table_age_seconds',
      help: 'Seconds since the source of the table being served last said it is current (the operator sent it or named it in a heartbeat; a file was loaded), across restarts through the state directory.',
      registers,
      collect: () => {
        if (this.tableCurrentAt !== undefined) this.tableAge.set(Math.max(0, (Date.now() - this.tableCurrentAt) / 1000));
      },
    });
    this.reloads = new Counter({ name: 'switchyard_table_reloads_total', help: 'Attempts to apply a new route table, by result.', labelNames: ['result'], registers });
    this.rejectedRequests = new Counter({ name: 'switchyard_rejected_requests_total', help: 'Requests answered by the gateway itself with an error, by error code.', labelNames: ['code'], registers });
    this.rateLimitDecisions = new Counter({ name: 'switchyard_ratelimit_decisions_total', help: 'Rate limit decisions, by result (allowed, limited, unavailable) and the store that made them (redis, memory, fallback).', labelNames: ['result', 'store'], registers });
    this.rateLimitStoreErrors = new Counter({ name: 'switchyard_ratelimit_store_errors_total', help: 'Requests that could not use the shared rate limit store, by kind (timeout, unavailable, error).', labelNames: ['kind'], registers });
    this.rateLimitStoreAvailable = new Gauge({ name: 'switchyard_ratelimit_store_available', help: 'Whether the shared rate limit store is in use (1) or requests fall back to the failure policy (0), by store type (Redis, RedisSentinel, RedisCluster).', labelNames: ['type'], registers });
    this.rateLimitStoreTransitions = new Counter({ name: 'switchyard_ratelimit_store_transitions_total', help: 'Changes of the shared rate limit store\'s state, by the state entered (available, unavailable).', labelNames: ['state'], registers });
    this.endpointHealthy = new Gauge({ name: 'switchyard_upstream_endpoint_healthy', help: 'Whether the endpoint passes its active health check (1) or not (0); 1 without a check.', labelNames: ['upstream', 'endpoint'], registers });
    this.endpointEjected = new Gauge({ name: 'switchyard_upstream_endpoint_ejected', help: 'Whether outlier detection has ejected the endpoint (1) or not (0).', labelNames: ['upstream', 'endpoint'], registers });
    this.healthChecks = new Counter({ name: 'switchyard_upstream_health_checks_total', help: 'Active health probes, by result (success, failure).', labelNames: ['upstream', 'result'], registers });
    this.outlierEjections = new Counter({ name: 'switchyard_upstream_outlier_ejections_total', help: 'Endpoints ejected by outlier detection.', labelNames: ['upstream'], registers });
    this.breakerState = new Gauge({ name: 'switchyard_circuit_breaker_state', help: 'Circuit breaker state: 0 closed, 1 half-open, 2 open.', labelNames: ['upstream'], registers });
    this.breakerTransitions = new Counter({ name: 'switchyard_circuit_breaker_transitions_total', help: 'Circuit breaker state changes, by the state entered.', labelNames: ['upstream', 'state'], registers });
    this.retries = new Counter({ name: 'switchyard_upstream_retries_total', help: 'Retry decisions: retried, or refused by the retry budget (budget_exhausted).', labelNames: ['upstream', 'result'], registers });
    this.panicRequests = new Counter({ name: 'switchyard_upstream_panic_requests_total', help: 'Attempts sent while no endpoint of the upstream was healthy (panic mode).', labelNames: ['upstream'], registers });
    this.upgradedOpen = new Gauge({ name: 'switchyard_upgraded_connections', help: 'Upgraded connections (WebSocket) open now, by route.', labelNames: ['route'], registers });
    this.upgraded = new Counter({ name: 'switchyard_upgraded_connections_total', help: 'Connections upgraded (WebSocket) since start, by route.', labelNames: ['route'], registers });
    this.reloads.inc({ result: 'applied' }, 0);
    this.reloads.inc({ result: 'rejected' }, 0);
    if (options.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, prefix: 'switchyard_process_' });
      // These three are gauges named like counters, which Prometheus' own linter rejects.
      for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
        this.registry.removeSingleMetric(`switchyard_process_${name}`);
      }
    }
  }

  private tableCurrentAt: number | undefined;

  /** Records which table is live; the previous version's series is dropped. */
  setTable(version: string, source: string, routes: number): void {
    this.tableInfo.reset();
    this.tableInfo.set({ version, source }, 1);
    this.tableRoutes.set(routes);
    this.tableLoadedAt.set(Date.now() / 1000);
    this.tableCurrentAt = Date.now();
  }

  /** Records when the table's source last said it is current (epoch milliseconds). */
  tableCurrent(at: number): void {
    this.tableCurrentAt = at;
  }
}

/** "2xx" for 204 and so on; label values stay few. */
export function statusClass(status: number): string {
  return status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : 'other';
}
