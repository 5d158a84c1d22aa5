/** The operator's Prometheus metrics. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Every metric the operator exports. */
export class OperatorMetrics {
  readonly registry = new Registry();
  readonly compiles: Counter;
  readonly compileSeconds: Histogram;
  readonly tableInfo: Gauge<'version'>;
  readonly tableRoutes: Gauge;
  readonly dataplanes: Gauge;
  readonly leader: Gauge;
  readonly statusWrites: Counter<'kind' | 'result'>;
  readonly events: Counter<'type'>;
  readonly acks: Counter<'result'>;
  readonly watchRestarts: Counter<'kind' | 'reason'>;

  constructor() {
    const registers = [this.registry];
    this.compiles = new Counter({ name: 'switchyard_operator_compiles_total', help: 'Compile runs.', registers });
    this.compileSeconds = new Histogram({ name: 'switchyard_operator_compile_duration_seconds', help: 'Time to compile the route table.', buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5], registers });
    this.tableInfo = new Gauge({ name: 'switchyard_operator_table_info', help: 'The table being served (value 1), by version.', labelNames: ['version'], registers });
    this.tableRoutes = new Gauge({ name: 'switchyard_operator_table_routes', help: 'Routes in the table being served.', registers });
    this.dataplanes = new Gauge({ name: 'switchyard_operator_dataplanes_connected', help: 'Data planes subscribed to this replica.', registers });
    this.leader = new Gauge({ name: 'switchyard_operator_leader', help: '1 when this replica is the leader.', registers });
    this.statusWrites = new Counter({ name: 'switchyard_operator_status_writes_total', help: 'Status patches, by kind and result.', labelNames: ['kind', 'result'], registers });
    this.events = new Counter({ name: 'switchyard_operator_events_total', help: 'Events recorded, by type.', labelNames: ['type'], registers });
    this.acks = new Counter({ name: 'switchyard_operator_acks_total', help: 'Table acknowledgements from data planes, by result (applied or rejected).', labelNames: ['result'], registers });
    this.watchRestarts = new Counter({ name: 'switchyard_operator_watch_restarts_total', help: 'Watches started over, by kind and reason: expired (410 Gone, relisted) or error (resumed after a backoff).', labelNames: ['kind', 'reason'], registers });
    this.acks.inc({ result: 'applied' }, 0);
    this.acks.inc({ result: 'rejected' }, 0);
    collectDefaultMetrics({ register: this.registry, prefix: 'switchyard_operator_process_' });
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(`switchyard_operator_process_${name}`);
  }

  /** Records the table being served. */
  setTable(version: string, routes: number): void {
    this.tableInfo.reset();
    this.tableInfo.set({ version }, 1);
    this.tableRoutes.set(routes);
  }
}
