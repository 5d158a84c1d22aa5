/**
 * The operator, wired: informers → store → (debounced) compile → config server,
 * and statuses back through the one status writer while this replica leads.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from './log.ts';
import type { RouteTable } from '../../dataplane/src/contract/index.ts';
import { compile, type CompileResult, type ObjectStatus } from './compile/index.ts';
import { ConfigServer } from './distribute/server.ts';
import { Informers, type WatchedKind } from './kube/informers.ts';
import { LeaderElector } from './kube/leader.ts';
import { StatusWriter } from './kube/status-writer.ts';
import { OperatorMetrics } from './metrics.ts';
import { ConditionType } from './status/conditions.ts';
import { programmedCondition, type VersionHistory } from './status/programmed.ts';
import { toSnapshot } from './store/convert.ts';
import { PARSERS } from './store/parsers.ts';
import { Store } from './store/store.ts';

/** How the operator runs. */
export interface OperatorOptions {
  kubeconfig: KubeConfig;
  /** Namespaces to watch; empty means all. */
  namespaces: string[];
  token: string;
  listen: { host: string; port: number };
  identity: string;
  lease: { namespace: string; name: string; durationMs: number; renewDeadlineMs: number; retryPeriodMs: number } | undefined;
  log: Logger;
  /** Coalescing of bursts: wait this long after a change, but never longer than maxDelayMs after the first. */
  debounce?: { delayMs: number; maxDelayMs: number };
  heartbeatMs?: number;
}

const HISTORY = 64;
const STATUS_COALESCE_MS = 50;

/** A running operator replica. */
export class Operator {
  readonly store = new Store();
  readonly metrics = new OperatorMetrics();
  readonly server: ConfigServer;
  readonly writer: StatusWriter;
  private readonly options: OperatorOptions;
  private readonly informers: Informers;
  private readonly leader: LeaderElector | undefined;
  private leading = false;
  private last: CompileResult | undefined;
  private readonly history = new Map<string, Map<string, number>>();
  private timer: NodeJS.Timeout | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private firstPending = 0;
  private readonly synced = new Set<WatchedKind>();
  private listed = false;
  private stopped = false;
  /** Compile runs so far (for tests and the metric). */
  compiles = 0;
  /** Status recomputations so far (for tests): a burst should cost a few, not one per object. */
  statusRefreshes = 0;
  port = 0;

  constructor(options: OperatorOptions) {
    this.options = options;
    const { log } = options;
    this.writer = new StatusWriter(options.kubeconfig, this.store, log, options.identity, { writes: this.metrics.statusWrites, events: this.metrics.events });
    this.server = new ConfigServer({
      token: options.token,
      heartbeatMs: options.heartbeatMs,
      isLeader: () => this.leading,
      log,
      events: { onFleetChange: () => this.scheduleStatus(), onAck: (applied) => this.metrics.acks.inc({ result: applied ? 'applied' : 'rejected' }) },
    });
    this.informers = new Informers(options.kubeconfig, options.namespaces, {
      onEvent: (kind, verb, obj) => {
        if (this.store.apply(kind, verb, obj)) this.schedule();
        else if (kind === 'GatewayRoute' || kind === 'Upstream') this.scheduleStatus();
      },
      onError: (kind, err, retryInMs) => {
        this.metrics.watchRestarts.inc({ kind });
        log.warn({ event: 'watch_failed', kind, error: (err as Error)?.message ?? String(err), retryInMs }, 'watch failed; relisting after a pause');
      },
      onSynced: (kind) => {
        this.synced.add(kind);
        this.schedule();
      },
    });
    if (options.lease) {
      const lease = options.lease;
      this.leader = new LeaderElector(options.kubeconfig, {
        namespace: lease.namespace,
        name: lease.name,
        identity: options.identity,
        leaseDurationMs: lease.durationMs,
        renewDeadlineMs: lease.renewDeadlineMs,
        retryPeriodMs: lease.retryPeriodMs,
        onStartedLeading: () => this.setLeading(true),
        onStoppedLeading: () => this.setLeading(false),
        onError: (err) => log.warn({ event: 'lease_error', error: (err as Error)?.message ?? String(err) }, 'leader election: API error'),
      });
    }
  }

  /** Starts the config server, the informers and the election. */
  async start(): Promise<void> {
    this.port = await this.server.listen(this.options.listen.port, this.options.listen.host);
    this.options.log.info({ event: 'listening', port: this.port, identity: this.options.identity }, 'config server listening');
    await this.informers.start();
    // Publishing before every kind has listed once would hand data planes a table with routes missing.
    this.listed = true;
    this.schedule();
    if (this.leader) this.leader.start();
    else this.setLeading(true);
  }

  /** Ready once every informer has listed once and the config server listens. */
  get isReady(): boolean {
    return this.listed && this.port > 0;
  }

  /** Whether this replica leads (writes status, serves data planes). */
  get isLeader(): boolean {
    return this.leading;
  }

  /** The table last compiled. */
  get table(): RouteTable | undefined {
    return this.last?.table;
  }

  private setLeading(leading: boolean): void {
    if (this.leading === leading) return;
    this.leading = leading;
    this.metrics.leader.set(leading ? 1 : 0);
    this.options.log.info({ event: leading ? 'leading' : 'following', identity: this.options.identity }, leading ? 'became the leader' : 'stopped leading');
    if (!leading) this.server.disconnectAll();
    this.writer.setEnabled(leading);
    this.refreshStatus();
  }

  /** Coalesces changes: compile after a quiet `delayMs`, or `maxDelayMs` after the first change at the latest. */
  private schedule(): void {
    if (this.stopped) return;
    const { delayMs, maxDelayMs } = this.options.debounce ?? { delayMs: 100, maxDelayMs: 1000 };
    const now = Date.now();
    if (this.timer === undefined) this.firstPending = now;
    clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(delayMs, this.firstPending + maxDelayMs - now));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.runCompile();
    }, wait);
  }

  private runCompile(): void {
    if (!this.listed) return;
    const started = performance.now();
    const snapshot = toSnapshot(
      {
        routes: [...this.store.routes.values()],
        upstreams: [...this.store.upstreams.values()],
        services: [...this.store.services.values()],
        endpointSlices: [...this.store.endpointSlices.values()],
      },
      PARSERS,
    );
    const result = compile(snapshot);
    this.compiles++;
    this.metrics.compiles.inc();
    this.metrics.compileSeconds.observe((performance.now() - started) / 1000);
    const changed = this.last?.table.version !== result.table.version;
    this.last = result;
    if (changed) {
      this.history.set(result.table.version, result.routeGenerations);
      while (this.history.size > HISTORY) this.history.delete(this.history.keys().next().value as string);
      this.metrics.setTable(result.table.version, result.table.routes.length);
      this.options.log.info({ event: 'compiled', version: result.table.version, routes: result.table.routes.length, upstreams: result.table.upstreams.length, ms: Math.round(performance.now() - started) }, 'route table compiled');
    }
    this.server.publish(result.table);
    this.refreshStatus();
  }

  /**
   * Status-only events (our own writes included) and fleet changes arrive one per
   * object; refreshing once per burst instead of once per event keeps a burst of n
   * routes O(n) rather than O(n²).
   */
  private scheduleStatus(): void {
    if (this.statusTimer !== undefined || this.stopped) return;
    this.statusTimer = setTimeout(() => {
      this.statusTimer = undefined;
      this.refreshStatus();
    }, STATUS_COALESCE_MS);
  }

  /** Recomputes Programmed from the fleet and hands every status to the writer. */
  private refreshStatus(): void {
    const result = this.last;
    if (!result || !this.leading) return;
    this.statusRefreshes++;
    const fleet = this.server.fleet();
    this.metrics.dataplanes.set(fleet.length);
    const history: VersionHistory = this.history;
    const desired = new Map<string, ObjectStatus>();
    for (const [key, status] of result.statuses) {
      if (status.kind === 'GatewayRoute' && result.routeGenerations.has(`${status.namespace}/${status.name}`)) {
        const programmed = programmedCondition(`${status.namespace}/${status.name}`, status.generation, result.table.version, fleet, history);
        desired.set(key, { ...status, conditions: [...status.conditions.filter((c) => c.type !== ConditionType.Programmed), programmed] });
      } else {
        desired.set(key, status);
      }
    }
    this.writer.update(desired);
  }

  /** Stops everything; a leader releases its lease first so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.statusTimer);
    await this.leader?.stop();
    this.writer.stop();
    await this.informers.stop();
    await this.server.close();
  }
}
