/**
 * The operator, wired: informers → store → compile (at once, or once per burst) → config server,
 * and statuses back through the one status writer while this replica leads.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from './log.ts';
import type { RouteTable } from '../../dataplane/src/contract/index.ts';
import { compile, type CompileResult, type ObjectStatus } from './compile/index.ts';
import { ConfigServer } from './distribute/server.ts';
import { GatewayApiWatch } from './kube/gateway-api.ts';
import { GatewayServices, KubeServiceClient } from './kube/gateway-services.ts';
import { Informers, type InformerEvents } from './kube/informers.ts';
import { LeaderElector, type LeaderTerm } from './kube/leader.ts';
import { StatusWriter } from './kube/status-writer.ts';
import { KubeStatusClient, StatusUpdater } from './kube/status-updater.ts';
import { OperatorMetrics } from './metrics.ts';
import { ConditionType } from './status/conditions.ts';
import { programmedCondition, type VersionHistory } from './status/programmed.ts';
import { toSnapshot, type KubeObject } from './store/convert.ts';
import { gatewayApiSnapshot } from './store/gateway-api.ts';
import { PARSERS } from './store/parsers.ts';
import { Store } from './store/store.ts';

/** How the operator runs. */
export interface OperatorOptions {
  /**
   * Serve the Gateway API when the cluster has it: GatewayClasses naming
   * `controllerName`, reached at the data plane Service `addressService`
   * (`namespace/name`; none: Gateways get no address). Undefined: GatewayRoutes only.
   */
  gatewayApi?: { controllerName: string; addressService?: string | undefined; pollMs?: number } | undefined;
  kubeconfig: KubeConfig;
  /**
   * The data plane Service (`namespace/name`): its ready pods are the data planes a
   * route waits for before it is Programmed, connected or not. Undefined, or a
   * namespace that `namespaces` leaves out: only the connected data planes count.
   */
  dataplaneService?: string | undefined;
  /** Namespaces to watch; empty means all. */
  namespaces: string[];
  token: string;
  /** The config server's certificate and key (PEM); absent: plain HTTP. */
  tls?: { cert: string | Buffer; key: string | Buffer } | undefined;
  listen: { host: string; port: number };
  identity: string;
  lease: { namespace: string; name: string; durationMs: number; renewDeadlineMs: number; retryPeriodMs: number } | undefined;
  log: Logger;
  /**
   * When changes compile. A change that comes after `quietMs` without one (default 20)
   * compiles at once; a change that follows another sooner starts a burst, which
   * compiles once `delayMs` (default 100) pass without a change, and never later than
   * `maxDelayMs` (default 1000) after the burst's first change.
   */
  debounce?: { quietMs?: number; delayMs: number; maxDelayMs: number };
  heartbeatMs?: number;
  /** How long a Programmed=Pending status waits for the data planes before it is written (default PENDING_HOLD_MS, 2 s). */
  pendingHoldMs?: number;
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
  /** The Gateway API's informers, once the cluster serves it; undefined when the operator does not serve it. */
  private readonly gatewayApi: GatewayApiWatch | undefined;
  /** Writes Gateway API and RoutePolicy status while this replica serves. */
  readonly gatewayStatus: StatusUpdater | undefined;
  /** Keeps the Services of Gateways that have their own, while this replica serves. */
  readonly gatewayServices: GatewayServices | undefined;
  private readonly leader: LeaderElector | undefined;
  private leading = false;
  /** Leading, and the cache was relisted since leadership began: tables and status may go out. */
  private serving = false;
  /** Bumped on every change of leadership, so that a relist finishing late knows it is moot. */
  private leadership = 0;
  private last: CompileResult | undefined;
  private readonly history = new Map<string, Map<string, number>>();
  private timer: NodeJS.Timeout | undefined;
  /** A compile queued at once (leading edge), behind the events already read. */
  private immediate: NodeJS.Immediate | undefined;
  /** When the last change that matters arrived (performance.now()). */
  private lastChange = Number.NEGATIVE_INFINITY;
  private statusTimer: NodeJS.Timeout | undefined;
  private firstPending = 0;
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
    this.writer = new StatusWriter(options.kubeconfig, this.store, log, options.identity, { writes: this.metrics.statusWrites, events: this.metrics.events }, { pendingHoldMs: options.pendingHoldMs });
    this.server = new ConfigServer({
      token: options.token,
      tls: options.tls,
      heartbeatMs: options.heartbeatMs,
      isLeader: () => this.serving,
      log,
      events: {
        onFleetChange: () => {
          // Here, not in refreshStatus: a follower computes no status, and its count must still fall to 0.
          this.metrics.dataplanes.set(this.server.fleet().length);
          this.scheduleStatus();
        },
        onAck: (applied) => this.metrics.acks.inc({ result: applied ? 'applied' : 'rejected' }) },
    });
    const events: InformerEvents = {
      onEvent: (kind, verb, obj) => {
        if (this.store.apply(kind, verb, obj)) this.schedule();
        else if (kind === 'GatewayRoute' || kind === 'Upstream') this.scheduleStatus();
      },
      onRestart: (kind, reason, err, retryInMs) => {
        this.metrics.watchRestarts.inc({ kind, reason });
        const error = (err as Error)?.message ?? String(err);
        if (reason === 'expired') log.warn({ event: 'watch_expired', kind, error }, 'watch expired (410 Gone); relisting');
        else log.warn({ event: 'watch_failed', kind, error, retryInMs }, 'watch failed; resuming after a pause');
      },
      onSynced: () => this.schedule(),
    };
    this.informers = new Informers(options.kubeconfig, options.namespaces, events);
    if (options.gatewayApi) {
      const gw = options.gatewayApi;
      this.store.addressService = gw.addressService;
      this.gatewayServices = new GatewayServices(new KubeServiceClient(options.kubeconfig), { log, controllerName: gw.controllerName });
      this.gatewayStatus = new StatusUpdater(new KubeStatusClient(options.kubeconfig), { log, onResult: (kind, result) => this.metrics.statusWrites.inc({ kind, result }) });
      this.gatewayApi = new GatewayApiWatch(
        options.kubeconfig,
        options.namespaces,
        {
          ...events,
          onAvailability: (served, missing) => {
            if (served) log.info({ event: 'gateway_api_watching', controllerName: gw.controllerName }, `watching the Gateway API for GatewayClasses of ${gw.controllerName}`);
            else log.warn({ event: 'gateway_api_absent', missing }, `the cluster does not serve the Gateway API (missing ${missing.join(', ')}); serving GatewayRoutes only until its CRDs are installed`);
          },
        },
        gw.pollMs,
      );
    }
    void this.informers.synced.then(() => {
      this.listed = true;
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
        onStartedLeading: (term) => this.setLeading(true, term),
        onStoppedLeading: () => this.setLeading(false),
        onError: (err) => log.warn({ event: 'lease_error', error: (err as Error)?.message ?? String(err) }, 'leader election: API error'),
      });
    }
  }

  /**
   * Starts the config server, the informers and the election; resolves once every
   * informer has listed (which waits for the API server if it is away).
   */
  async start(): Promise<void> {
    this.port = await this.server.listen(this.options.listen.port, this.options.listen.host);
    this.options.log.info({ event: 'listening', port: this.port, identity: this.options.identity }, 'config server listening');
    this.informers.start();
    this.gatewayApi?.start();
    if (this.leader) this.leader.start();
    else this.setLeading(true);
    // Publishing before every kind has listed once would hand data planes a table with routes missing,
    // or none at all.
    await this.informers.synced;
    // With the Gateway API, its objects are in the first table too (or known to be absent).
    await this.gatewayApi?.ready;
    this.runCompile();
    if (this.leading && !this.leader) this.startServing(this.leadership);
  }

  /** Ready once every informer has listed once and the config server listens. */
  get isReady(): boolean {
    return this.listed && this.port > 0;
  }

  /** Whether this replica holds the lease. */
  get isLeader(): boolean {
    return this.leading;
  }

  /** Whether this replica serves data planes and writes status: it leads and has relisted since it began to. */
  get isServing(): boolean {
    return this.serving;
  }

  /** The table last compiled. */
  get table(): RouteTable | undefined {
    return this.last?.table;
  }

  private setLeading(leading: boolean, term?: LeaderTerm): void {
    if (this.leading === leading) return;
    this.leading = leading;
    const leadership = ++this.leadership;
    this.metrics.leader.set(leading ? 1 : 0);
    this.options.log.info({ event: leading ? 'leading' : 'following', identity: this.options.identity, ...(term ? { lease: term.lease, term: term.term } : {}) }, leading ? 'became the leader' : 'stopped leading');
    if (!leading) {
      this.serving = false;
      this.server.disconnectAll();
      this.writer.setEnabled(false);
      this.gatewayStatus?.setEnabled(false);
      this.gatewayServices?.setEnabled(false);
      return;
    }
    this.server.setTerm(term);
    if (!this.leader) return; // a single replica serves once it has listed (start())
    // While this replica followed, a watch may have stalled without an error and left
    // the cache behind. Relist before serving, so that a new leader never hands data
    // planes a table older than the one the previous leader gave them.
    const relisted = this.listed ? Promise.all([this.informers.relist(), this.gatewayApi?.relist()]) : this.informers.synced;
    relisted.then(
      () => this.startServing(leadership),
      () => undefined,
    );
  }

  private startServing(leadership: number): void {
    if (this.stopped || leadership !== this.leadership || !this.leading) return;
    this.runCompile();
    this.serving = true;
    this.options.log.info({ event: 'serving', identity: this.options.identity, version: this.last?.table.version ?? null }, 'serving data planes as the leader');
    this.writer.setEnabled(true);
    this.gatewayStatus?.setEnabled(true);
    this.gatewayServices?.setEnabled(true);
    this.refreshStatus();
  }

  /**
   * Leading edge: the first change after a quiet period compiles at once (behind the
   * events of the same read, which it takes along). A change that follows another
   * within `quietMs` is part of a burst: it compiles after a quiet `delayMs`, or
   * `maxDelayMs` after the burst's first change at the latest.
   */
  private schedule(): void {
    if (this.stopped) return;
    const { quietMs = 20, delayMs, maxDelayMs } = this.options.debounce ?? { delayMs: 100, maxDelayMs: 1000 };
    const now = performance.now();
    const since = now - this.lastChange;
    this.lastChange = now;
    // Queued at once and not run yet: this change goes along with it.
    if (this.immediate !== undefined) return;
    if (this.timer === undefined && since >= quietMs) {
      this.immediate = setImmediate(() => {
        this.immediate = undefined;
        this.runCompile();
      });
      return;
    }
    if (this.timer === undefined) this.firstPending = now;
    clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(delayMs, this.firstPending + maxDelayMs - now));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.runCompile();
    }, wait);
  }

  private runCompile(): void {
    if (!this.listed || this.stopped) return;
    clearTimeout(this.timer);
    this.timer = undefined;
    clearImmediate(this.immediate);
    this.immediate = undefined;
    const started = performance.now();
    const snapshot = toSnapshot(
      {
        routes: [...this.store.routes.values()],
        upstreams: [...this.store.upstreams.values()],
        services: [...this.store.services.values()],
        endpointSlices: [...this.store.endpointSlices.values()],
        secrets: this.store.upstreamTlsObjects('Secret'),
        configMaps: this.store.upstreamTlsObjects('ConfigMap'),
      },
      PARSERS,
      this.gatewayApiSnapshot(),
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
    this.gatewayServices?.sync(result.gatewayServices, this.releaseServices());
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
    if (!result || !this.serving) return;
    this.statusRefreshes++;
    const fleet = this.server.fleet();
    const expected = this.expectedDataplanes();
    const history: VersionHistory = this.history;
    const desired = new Map<string, ObjectStatus>();
    for (const [key, status] of result.statuses) {
      if (status.kind === 'GatewayRoute' && result.routeGenerations.has(`${status.namespace}/${status.name}`)) {
        const programmed = programmedCondition(`${status.namespace}/${status.name}`, status.generation, result.table.version, fleet, history, expected);
        desired.set(key, { ...status, conditions: [...status.conditions.filter((c) => c.type !== ConditionType.Programmed), programmed] });
      } else {
        desired.set(key, status);
      }
    }
    this.writer.update(desired);
    this.gatewayStatus?.send(result.gatewayApi);
  }

  /** The ready pods behind the data plane Service (their names are the data planes' ids), from its EndpointSlices. */
  private expectedDataplanes(): string[] {
    const service = this.options.dataplaneService;
    if (service === undefined) return [];
    const [ns, name] = service.split('/');
    const pods = new Set<string>();
    for (const slice of this.store.endpointSlices.values()) {
      if (slice.metadata?.namespace !== ns || slice.metadata?.labels?.['kubernetes.io/service-name'] !== name) continue;
      const endpoints = (slice as { endpoints?: { conditions?: { ready?: boolean }; targetRef?: { kind?: string; name?: string } }[] }).endpoints ?? [];
      for (const e of endpoints) {
        if (e.conditions?.ready !== false && e.targetRef?.kind === 'Pod' && e.targetRef.name !== undefined) pods.add(e.targetRef.name);
      }
    }
    return [...pods].sort();
  }

  /** The Services in the data plane Service's namespace, where each Gateway's own Service lives. */
  private releaseServices(): KubeObject[] {
    const ns = this.options.gatewayApi?.addressService?.split('/')[0];
    return ns === undefined ? [] : [...this.store.services.values()].filter((o) => o.metadata?.namespace === ns);
  }

  /** The Gateway API objects for compile, once their informers have listed; undefined otherwise. */
  private gatewayApiSnapshot(): ReturnType<typeof gatewayApiSnapshot> | undefined {
    const gw = this.options.gatewayApi;
    if (gw === undefined || this.gatewayApi?.synced !== true) return undefined;
    const s = this.store;
    return gatewayApiSnapshot({
      gatewayClasses: [...s.gatewayClasses.values()],
      gateways: [...s.gateways.values()],
      httpRoutes: [...s.httpRoutes.values()],
      referenceGrants: [...s.referenceGrants.values()],
      routePolicies: [...s.routePolicies.values()],
      secrets: [...s.secrets.values()],
      namespaces: [...s.namespaces.values()],
      addressService: gw.addressService === undefined ? undefined : s.services.get(gw.addressService),
      addressServiceKey: gw.addressService,
      controllerName: gw.controllerName,
      releaseServices: this.releaseServices(),
    });
  }

  /** A renewed certificate for the config server: new data plane connections get it. */
  setTls(tls: { cert: string | Buffer; key: string | Buffer }): void {
    this.server.setTls(tls);
  }

  /** Stops everything; a leader releases its lease first so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearImmediate(this.immediate);
    clearTimeout(this.statusTimer);
    await this.leader?.stop();
    this.writer.stop();
    this.gatewayStatus?.stop();
    this.gatewayServices?.stop();
    await Promise.all([this.informers.stop(), this.gatewayApi?.stop()]);
    await this.server.close();
  }
}
