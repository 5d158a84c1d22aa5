/**
 * The gateway process: listeners, the table holder, reloads and shutdown.
 * Wiring only; the request path lives in handler.ts and below.
 */
import { createHash } from 'node:crypto';
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import path from 'node:path';
import { compileConfig, gatewayDefaults } from '../config/compile.ts';
import { ConfigError } from '../config/load.ts';
import { ConfigPreparer } from '../config/prepare.ts';
import { parseDuration } from '../contract/duration.ts';
import type { GatewayConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { GatewayMetrics } from '../observability/metrics.ts';
import type { Tracing, TracingSettings } from '../observability/tracing.ts';
import { authStages, type TokenVerifier } from '../pipeline/auth.ts';
import { clientErrorHandler } from '../pipeline/limits.ts';
import { createSecurity, type SecurityPipeline } from '../pipeline/security.ts';
import { forwardPolicy } from '../proxy/forward.ts';
import { ClientAddressResolver } from './client-address.ts';
import type { Stage } from '../pipeline/context.ts';
import { TableHolder, type ApplyResult } from '../table/holder.ts';
import type { ServedRoute } from '../contract/policy.ts';
import { PoolRegistry } from '../upstream/pools.ts';
import { UpstreamResilience } from '../upstream/resilience.ts';
import { createAdminHandler } from './admin.ts';
import { Http2Sessions, http2SessionOptions, sniffH2c, withHttp2, type Http2Settings } from './http2.ts';
import { createRequestHandler, createUpgradeHandler, type HandlerDeps, type LifecycleState } from './handler.ts';
import { TunnelRegistry } from '../proxy/upgrade.ts';
import type { SecureContext } from 'node:tls';
import { ListenerTls, refuseUnverifiedClientCertificates } from './listener-tls.ts';
import type { TableRuntime } from '../table/runtime.ts';
import type { Listener } from '../contract/schema.ts';
import { explainQuery, explainRequest, type ExplainRequest } from '../observability/explain.ts';
import type { Explanation } from '../observability/explain-format.ts';

/** How the gateway is started. */
export interface GatewayOptions {
  config: GatewayConfig;
  /** The file the config came from; watched for changes when `watch` is set. */
  configFile?: string;
  watch?: boolean;
  log: Logger;
  /** Where the table comes from: the config file (default) or nowhere yet (an operator will push one). */
  tableSource?: 'file' | 'external';
}

/** Ports actually bound (useful when the config asked for port 0). */
export interface BoundPorts {
  http: number;
  https: number | undefined;
  admin: number | undefined;
  metrics: number | undefined;
}

/** A traffic listener: HTTP/1.1 (cleartext, or TLS without HTTP/2) or TLS offering h2 and HTTP/1.1. */
type TrafficServer = http.Server | SecureTrafficServer;
type SecureTrafficServer = https.Server | http2.Http2SecureServer;

/** The sockets of each TLS listener that offers h2, so that a stop can cut HTTP/1.1 and HTTP/2 connections alike. */
const secureSockets = new WeakMap<NetServer, Set<Socket>>();

/** Closes a listener's idle HTTP/1.1 connections. */
function closeIdle(server: NetServer): void {
  (server as Partial<http.Server>).closeIdleConnections?.();
}

/** Closes every connection of a listener. */
function closeAll(server: NetServer): void {
  const sockets = secureSockets.get(server);
  if (sockets !== undefined) for (const socket of sockets) socket.destroy();
  else (server as Partial<http.Server>).closeAllConnections?.();
}

/** `server.http2` in the listeners' units. */
function http2Settings(s: GatewayConfig['server']): Http2Settings {
  const h = s.http2;
  return {
    enabled: h.enabled,
    cleartext: h.cleartext,
    maxConcurrentStreams: h.max_concurrent_streams,
    // HPACK counts 32 bytes per field besides its name and value (RFC 9113 6.5.2); pseudo-headers are 4 more fields.
    maxHeaderListSize: h.max_header_list_size ?? s.limits.max_header_size + 32 * (s.limits.max_headers_count + 4),
    // One more than the limit, as for HTTP/1.1: the limits stage refuses such a request with 431 rather than a reset.
    maxHeaderListPairs: s.limits.max_headers_count + 5,
    maxResets: h.max_resets,
    resetWindowMs: parseDuration(h.reset_window) ?? 10_000,
    idleTimeoutMs: parseDuration(s.timeouts.keepalive_timeout) ?? 60_000,
  };
}

const listen = (server: NetServer, port: number, host: string): Promise<number> =>
  new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });

/** A running gateway. */
export class Gateway {
  readonly holder: TableHolder;
  readonly metrics: GatewayMetrics;
  readonly lifecycle: LifecycleState = { accepting: true, inFlight: 0 };
  readonly log: Logger;
  readonly pools: PoolRegistry;
  /** Health checks, breakers and outlier detection, kept in step with each applied table. */
  readonly resilience: UpstreamResilience;
  /** Undefined when tracing is off. */
  tracing: Tracing | undefined;
  /** Upgraded connections (WebSocket) open now. */
  readonly tunnels: TunnelRegistry;
  /** `server.tls`: the `https` listener's own certificates, kept current with their files. */
  private ownTls: ListenerTls | undefined;
  config: GatewayConfig;
  ports: BoundPorts = { http: 0, https: undefined, admin: undefined, metrics: undefined };
  private readonly options: GatewayOptions;
  private readonly servers: NetServer[] = [];
  private trafficServers: NetServer[] = [];
  private tlsServer: SecureTrafficServer | undefined;
  /** The listeners the live table declares, open now, by name. */
  private readonly tableListeners = new Map<string, { port: number; protocol: 'http' | 'https'; server: TrafficServer }>();
  /** HTTP/2 connections of every traffic listener. */
  private http2: Http2Sessions | undefined;
  /** The port each listener the table declares is bound to, by name, once bound. */
  readonly listenerPorts = new Map<string, number>();
  private trafficOptions: http.ServerOptions | undefined;
  private handlerDeps: HandlerDeps | undefined;
  private watcher: FSWatcher | undefined;
  private reloadTimer: NodeJS.Timeout | undefined;
  /** Reads and compiles the config file for a reload on a worker thread, off the request path. */
  private readonly preparer = new ConfigPreparer();
  private lastConfigHash: string | undefined;
  private verifier: TokenVerifier | undefined;
  private security: SecurityPipeline | undefined;
  private stopping: Promise<void> | undefined;

  private constructor(options: GatewayOptions) {
    this.options = options;
    this.config = options.config;
    this.log = options.log;
    this.metrics = new GatewayMetrics();
    this.pools = new PoolRegistry(parseDuration(options.config.server.timeouts.keepalive_timeout));
    this.holder = new TableHolder(this.pools, (r) => this.stagesFor(r), this.metrics, this.log, gatewayDefaults(options.config));
    this.resilience = new UpstreamResilience(this.metrics, this.log);
    this.tunnels = new TunnelRegistry(this.metrics);
    this.holder.onApplied((rt) => this.resilience.sync(rt));
    this.holder.onApplied((rt) => this.onTableApplied(rt));
  }

  /** Starts listeners and, in file mode, applies the config's routes. Throws ConfigError on bad input. */
  static async start(options: GatewayOptions): Promise<Gateway> {
    const gw = new Gateway(options);
    gw.security = await createSecurity(options.config, { metrics: gw.metrics, log: gw.log });
    gw.verifier = gw.security.verifier;
    if (options.config.server.tls) {
      try {
        gw.ownTls = new ListenerTls(options.config.server.tls, gw.log);
      } catch (err) {
        gw.resilience.stop();
        await gw.security.close();
        throw new ConfigError([(err as Error).message]);
      }
    }
    if ((options.tableSource ?? 'file') === 'file') {
      const { table, warnings } = compileConfig(options.config, options.configFile);
      for (const w of warnings) gw.log.warn({ event: 'config_warning' }, w);
      const result = gw.holder.apply(table, options.configFile ?? 'config');
      if (!result.applied) {
        gw.resilience.stop();
        await gw.security.close();
        throw new ConfigError([`${options.configFile ?? 'config'}: ${result.error}`]);
      }
      if (options.configFile) gw.lastConfigHash = hashText(readFileSync(options.configFile, 'utf8'));
    }
    gw.tracing = await startTracing(options.config.observability.tracing, gw.log);
    try {
      await gw.listen();
    } catch (err) {
      await gw.stop(0);
      throw err;
    }
    if (options.watch && options.configFile) gw.watchConfig(options.configFile);
    return gw;
  }

  /** The stages of one route, in request order. Security and resilience stages slot in here. */
  private stagesFor(route: ServedRoute): Stage[] {
    return this.security ? this.security.stagesFor(route, this.verifier) : authStages(route, this.verifier);
  }

  private async listen(): Promise<void> {
    const s = this.config.server;
    const t = s.timeouts;
    const headersTimeout = parseDuration(t.client_header_timeout) ?? 10_000;
    const trafficOptions: http.ServerOptions = {
      // The whole request (headers and body) must arrive within this, so a client trickling a body cannot hold a connection forever.
      requestTimeout: Math.max(headersTimeout, 300_000),
      headersTimeout,
      // How often both deadlines are checked; Node's default of 30 s would let a slow client overstay by that much.
      connectionsCheckingInterval: Math.max(100, Math.min(5_000, Math.floor(headersTimeout / 4))),
      keepAliveTimeout: parseDuration(t.keepalive_timeout) ?? 60_000,
      maxHeaderSize: s.limits.max_header_size,
      requireHostHeader: true,
    };
    const handlerDeps: HandlerDeps = {
      holder: this.holder,
      metrics: this.metrics,
      log: this.log,
      accessLog: this.config.observability.logging.access_log,
      lifecycle: this.lifecycle,
      tracing: this.tracing,
      timeouts: { requestMs: parseDuration(t.request_timeout) ?? 30_000, upstreamMs: parseDuration(t.upstream_timeout) ?? 10_000 },
      headCheck: this.security?.headCheck,
      forwarding: forwardPolicy(s.headers_with_underscores, this.config.auth.jwt?.header),
      clientAddress: new ClientAddressResolver(s.trusted_proxies),
      upgrades: { tunnels: this.tunnels, idleMs: parseDuration(t.upgrade_idle_timeout) ?? 3_600_000 },
    };
    const h2 = http2Settings(s);
    this.http2 = new Http2Sessions(h2, {
      onRapidReset: (peer, resets) => {
        this.metrics.rejectedRequests.inc({ code: 'http2_rapid_reset' });
        this.log.warn({ event: 'http2_rapid_reset', client: peer, resets }, `closed an HTTP/2 connection that reset ${resets} streams within ${s.http2.reset_window}`);
      },
    });
    const handler = createRequestHandler(handlerDeps, false);
    const plain = http.createServer(trafficOptions, handler);
    // One more than the limit: Node drops header lines past maxHeadersCount silently, the limits stage refuses them (431).
    plain.maxHeadersCount = s.limits.max_headers_count + 1;
    plain.on('clientError', clientErrorHandler(this.metrics));
    plain.on('upgrade', createUpgradeHandler(handlerDeps, false));
    if (h2.cleartext) {
      const h2c = http2.createServer(http2SessionOptions(h2), withHttp2(this.http2, handler));
      this.http2.attach(h2c);
      sniffH2c(plain, h2c, this.http2, headersTimeout);
    }
    this.trafficServers.push(plain);
    this.servers.push(plain);
    this.ports.http = await listen(plain, s.http_port, s.bind_address);

    this.trafficOptions = trafficOptions;
    this.handlerDeps = handlerDeps;
    // With a certificate of its own the TLS listener starts now; otherwise with the first table that brings one.
    if (s.tls || this.holder.current?.certificates.has('https') === true) await this.listenTls();
    if (this.holder.current !== undefined) this.syncTableListeners(this.holder.current);

    const admin = http.createServer(createAdminHandler(this));
    this.servers.push(admin);
    this.ports.admin = await listen(admin, s.admin_port, s.admin_bind_address);

    const metricsCfg = this.config.observability.metrics;
    if (metricsCfg.prometheus_enabled) {
      const server = http.createServer((req, res) => {
        if (req.url !== metricsCfg.endpoint_path || (req.method !== 'GET' && req.method !== 'HEAD')) {
          res.writeHead(404, { 'content-type': 'text/plain' }).end(`metrics are at ${metricsCfg.endpoint_path}\n`);
          return;
        }
        this.metrics.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': this.metrics.registry.contentType }).end(text),
          (err: unknown) => res.writeHead(500).end(String(err)),
        );
      });
      this.servers.push(server);
      this.ports.metrics = await listen(server, s.metrics_port, s.bind_address);
    }
    this.log.info({ event: 'listening', ports: this.ports, bind: s.bind_address, admin_bind: s.admin_bind_address }, 'gateway listening');
  }

  /**
   * The TLS traffic listener. Each connection's certificate is chosen by SNI
   * from the live table's certificates for `https` (Gateway API HTTPS
   * listeners served here: an exact host, a wildcard, then one without hosts),
   * else `server.tls`; a client without SNI gets `server.tls`, else the
   * table's fallback certificate.
   */
  private async listenTls(): Promise<void> {
    if (this.tlsServer !== undefined || this.trafficOptions === undefined || this.handlerDeps === undefined) return;
    const s = this.config.server;
    const own = this.ownTls?.current.serverOptions ?? {};
    const secure = this.secureServer(
      {
        ...own,
        SNICallback: (servername, cb) => cb(null, this.httpsContext(servername)),
      },
      createRequestHandler(this.handlerDeps, true),
    );
    this.tlsServer = secure;
    secure.on('upgrade', createUpgradeHandler(this.handlerDeps, true));
    if (this.ownTls !== undefined) {
      if (s.tls?.client_auth?.required === false) secure.on('secureConnection', refuseUnverifiedClientCertificates);
      // New handshakes get the new certificates; connections already open keep the ones they have.
      this.ownTls.watch((loaded) => secure.setSecureContext(loaded.serverOptions));
    }
    this.trafficServers.push(secure);
    this.servers.push(secure);
    this.syncTlsFallback();
    this.ports.https = await listen(secure, s.https_port, s.bind_address);
  }

  /**
   * A TLS traffic listener: with `server.http2.enabled`, one that offers h2
   * and HTTP/1.1 by ALPN (HTTP/1.1 connections get the same timeouts and
   * limits as on the cleartext listener); otherwise HTTPS only.
   */
  private secureServer(tlsOptions: https.ServerOptions, handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): SecureTrafficServer {
    const s = this.config.server;
    const options = this.trafficOptions as http.ServerOptions;
    const sessions = this.http2 as Http2Sessions;
    const h2 = http2Settings(s);
    let server: SecureTrafficServer;
    if (h2.enabled) {
      const secure = http2.createSecureServer({ ...tlsOptions, ...http2SessionOptions(h2), allowHTTP1: true, minVersion: tlsOptions.minVersion ?? 'TLSv1.2' }, withHttp2(sessions, handler));
      // HTTP/1.1 connections on this listener are served by Node's HTTP/1.1 server code, which reads these from the server.
      Object.assign(secure, {
        requestTimeout: options.requestTimeout,
        headersTimeout: options.headersTimeout,
        // Read when the listener starts listening; Node's 30 s would let a slow HTTP/1.1 client overstay by that much.
        connectionsCheckingInterval: options.connectionsCheckingInterval,
        keepAliveTimeout: options.keepAliveTimeout,
        maxHeaderSize: options.maxHeaderSize,
        requireHostHeader: options.requireHostHeader,
        maxHeadersCount: s.limits.max_headers_count + 1,
      });
      sessions.attach(secure);
      const sockets = new Set<Socket>();
      secureSockets.set(secure, sockets);
      secure.on('secureConnection', (socket: Socket) => {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
      });
      server = secure;
    } else {
      const https1 = https.createServer({ ...options, ...tlsOptions }, handler);
      https1.maxHeadersCount = s.limits.max_headers_count + 1;
      server = https1;
    }
    server.on('clientError', clientErrorHandler(this.metrics));
    return server;
  }

  /** The certificate for a server name on `https`: the route table's, else `server.tls`'s (ListenerTls.select). */
  private httpsContext(servername: string): SecureContext | undefined {
    const table = this.holder.current?.certificates.get('https');
    return this.ownTls !== undefined ? this.ownTls.select(servername, table) : table?.select(servername);
  }

  /** Clients without SNI get the table's fallback certificate when the config has none of its own. */
  private syncTlsFallback(): void {
    if (this.tlsServer === undefined || this.config.server.tls) return;
    const pair = this.holder.current?.certificates.get('https')?.defaultPair;
    if (pair !== undefined) this.tlsServer.setSecureContext(pair);
  }

  /**
   * After each table: start the TLS listener when the table is the first to
   * bring certificates for it, and open and close the listeners the table
   * declares (a Gateway's own sockets).
   */
  private onTableApplied(rt: TableRuntime): void {
    // Before the listeners start, listen() does this itself; while stopping, nothing starts.
    if (this.trafficOptions === undefined || this.stopping !== undefined) return;
    if (rt.certificates.has('https')) {
      if (this.tlsServer === undefined) {
        this.listenTls().then(
          () => this.log.info({ event: 'tls_listening', port: this.ports.https }, "TLS listener started for the route table's certificates"),
          (err: unknown) => this.log.error({ event: 'tls_listen_failed', port: this.config.server.https_port, error: (err as Error).message }, "cannot start the TLS listener for the route table's certificates"),
        );
      } else {
        this.syncTlsFallback();
      }
    }
    this.syncTableListeners(rt);
  }

  /** Opens the listeners the table declares that are not open, closes those it no longer declares. */
  private syncTableListeners(rt: TableRuntime): void {
    const wanted = new Map((rt.table.listeners ?? []).map((l) => [l.name, l]));
    for (const [name, open] of this.tableListeners) {
      const w = wanted.get(name);
      if (w === undefined || w.port !== open.port || w.protocol !== open.protocol) this.closeTableListener(name);
    }
    for (const l of wanted.values()) {
      const open = this.tableListeners.get(l.name);
      if (open === undefined) this.openTableListener(l);
      else if (open.protocol === 'https') this.setListenerDefault(l.name, open.server as SecureTrafficServer);
    }
  }

  /** A client without SNI gets the listener's fallback certificate. */
  private setListenerDefault(name: string, server: SecureTrafficServer): void {
    const pair = this.holder.current?.certificates.get(name)?.defaultPair;
    if (pair !== undefined) server.setSecureContext(pair);
  }

  private openTableListener(l: Listener): void {
    const s = this.config.server;
    const options = this.trafficOptions as http.ServerOptions;
    const handler = createRequestHandler(this.handlerDeps as HandlerDeps, l.protocol === 'https', l.name);
    let server: TrafficServer;
    if (l.protocol === 'https') {
      const secure = this.secureServer({ SNICallback: (servername, cb) => cb(null, this.holder.current?.certificates.get(l.name)?.select(servername)) }, handler);
      this.setListenerDefault(l.name, secure);
      server = secure;
    } else {
      server = http.createServer(options, handler);
      server.maxHeadersCount = s.limits.max_headers_count + 1;
      server.on('clientError', clientErrorHandler(this.metrics));
    }
    server.on('upgrade', createUpgradeHandler(this.handlerDeps as HandlerDeps, l.protocol === 'https', l.name));
    this.tableListeners.set(l.name, { port: l.port, protocol: l.protocol, server });
    this.trafficServers.push(server);
    this.servers.push(server);
    listen(server, l.port, s.bind_address).then(
      (port) => {
        if (this.tableListeners.get(l.name)?.server !== server) return;
        this.listenerPorts.set(l.name, port);
        this.log.info({ event: 'listener_opened', listener: l.name, port, protocol: l.protocol }, `listening on ${port} for ${l.name}`);
      },
      (err: unknown) => {
        this.log.error({ event: 'listener_failed', listener: l.name, port: l.port, error: (err as Error).message }, `cannot listen on ${l.port} for ${l.name}; its routes are not served here`);
        if (this.tableListeners.get(l.name)?.server === server) this.closeTableListener(l.name);
      },
    );
  }

  /** Stops accepting on a table listener; requests in flight on it finish. */
  private closeTableListener(name: string): void {
    const open = this.tableListeners.get(name);
    if (open === undefined) return;
    this.tableListeners.delete(name);
    this.listenerPorts.delete(name);
    this.trafficServers = this.trafficServers.filter((x) => x !== open.server);
    const i = this.servers.indexOf(open.server);
    if (i >= 0) this.servers.splice(i, 1);
    open.server.close();
    closeIdle(open.server);
    this.log.info({ event: 'listener_closed', listener: name, port: open.port }, `stopped listening for ${name}`);
  }

  /** Re-reads the config file and applies its routes; the old table serves on any failure. */
  async reload(reason: string): Promise<ApplyResult> {
    const file = this.options.configFile;
    if (!file) return { applied: false, version: undefined, error: 'this gateway was not started from a config file' };
    if (this.options.tableSource === 'external') return { applied: false, version: this.holder.current?.version, error: 'the route table comes from the operator; the config file holds only bootstrap settings, read at start' };
    try {
      const text = await readFile(file, 'utf8');
      const hash = hashText(text);
      if (hash === this.lastConfigHash && reason === 'watch') return { applied: true, version: this.holder.current?.version ?? '', unchanged: true };
      const { config, table, warnings } = await this.preparer.prepare(file);
      for (const w of warnings) this.log.warn({ event: 'config_warning' }, w);
      // Listeners, logging, token verification and the rate-limit store are built once at start;
      // routes, upstreams and the gateway-wide policies (middleware limits and CORS) apply now.
      const restartOnly = [
        ['server', config.server, this.config.server],
        ['observability', config.observability, this.config.observability],
        ['auth', config.auth, this.config.auth],
        ['middleware.rate_limiting.storage', config.middleware.rate_limiting?.storage, this.config.middleware.rate_limiting?.storage],
      ] as const;
      for (const [section, next, live] of restartOnly) {
        if (JSON.stringify(next) !== JSON.stringify(live)) {
          this.log.warn({ event: 'config_restart_needed', section }, `changes under "${section}" take effect at the next restart`);
        }
      }
      const result = this.holder.apply(table, file, gatewayDefaults(config));
      if (result.applied) this.lastConfigHash = hash;
      this.log.info({ event: 'config_reload', reason, result }, 'config reloaded');
      return result;
    } catch (err) {
      const error = err instanceof ConfigError ? err.problems.join('; ') : (err as Error).message;
      this.holder.rejected(file, error);
      this.log.error({ event: 'config_rejected', reason, error, serving: this.holder.current?.version ?? null }, 'config rejected; the previous table keeps serving');
      return { applied: false, version: undefined, error };
    }
  }

  private watchConfig(file: string): void {
    // Watch the directory, not the file: editors and Kubernetes ConfigMaps replace the file (or a symlink) rather than writing into it.
    const dir = path.dirname(path.resolve(file));
    const base = path.basename(file);
    this.watcher = watch(dir, (_event, name) => {
      if (name !== null && name !== base && name !== '..data') return;
      clearTimeout(this.reloadTimer);
      this.reloadTimer = setTimeout(() => void this.reload('watch'), 100);
    });
    this.watcher.on('error', (err) => this.log.warn({ event: 'config_watch_failed', err: err.message }, 'cannot watch the config file; use SIGHUP or the admin /reload'));
  }

  /** What the gateway would do with a request, from its live table, endpoints and counters; `visible` hides the routes the asker may not see. */
  explain(request: ExplainRequest, visible?: (route: ServedRoute) => boolean): Promise<Explanation> {
    return explainRequest(request, { runtime: this.holder.current, verifier: this.verifier, limiter: this.security?.limiter, live: true, visible });
  }

  /**
   * An explanation asked through the operator (kubectl switchyard explain):
   * the request as the admin POST /explain takes it; with a namespace, the
   * routes of other namespaces are shown only as placeholders.
   */
  async explainRelayed(request: unknown, namespace: string | undefined): Promise<Explanation | { error: string }> {
    const parsed = explainQuery(request);
    if (typeof parsed === 'string') return { error: parsed };
    return this.explain(parsed, namespace === undefined ? undefined : (route) => route.source?.namespace === namespace);
  }

  /** Requests being handled now. */
  get inFlight(): number {
    return this.lifecycle.inFlight;
  }

  /**
   * Graceful stop: readiness fails at once, then after the drain delay the
   * listeners close, requests in flight get up to the grace period, and
   * whatever is left is cut.
   */
  stop(gracePeriodMs?: number): Promise<void> {
    this.stopping ??= this.doStop(gracePeriodMs);
    return this.stopping;
  }

  private async doStop(gracePeriodMs?: number): Promise<void> {
    const shutdown = this.config.server.shutdown;
    const grace = gracePeriodMs ?? parseDuration(shutdown.grace_period) ?? 30_000;
    const drainDelay = gracePeriodMs === 0 ? 0 : parseDuration(shutdown.drain_delay) ?? 0;
    this.lifecycle.accepting = false;
    this.watcher?.close();
    this.ownTls?.close();
    clearTimeout(this.reloadTimer);
    this.log.info({ event: 'shutdown_started', inFlight: this.lifecycle.inFlight, drainDelayMs: drainDelay, gracePeriodMs: grace }, 'shutting down');
    if (drainDelay > 0) await new Promise((r) => setTimeout(r, drainDelay));
    const closed = this.servers.map((s) => new Promise<void>((r) => s.close(() => r())));
    for (const s of this.servers) closeIdle(s);
    // HTTP/2 clients get GOAWAY: the streams they have finish, new ones go elsewhere.
    this.http2?.drain();
    // WebSocket peers are told now (a Close frame each way) and get the grace period to leave; each counts as in flight until it does.
    this.tunnels.closeAll();
    const deadline = Date.now() + grace;
    while (this.lifecycle.inFlight > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      for (const s of this.trafficServers) closeIdle(s);
    }
    const cut = this.lifecycle.inFlight;
    // The servers no longer track upgraded connections, and closing them waits for those.
    this.tunnels.destroyAll();
    for (const s of this.servers) closeAll(s);
    this.http2?.destroyAll();
    await Promise.all(closed);
    this.resilience.stop(this.holder.current?.upstreams.values());
    await this.pools.closeAll(true);
    await this.security?.close();
    await this.tracing?.shutdown();
    await this.preparer.close();
    this.log.info({ event: 'shutdown_complete', cutRequests: cut }, 'gateway stopped');
  }
}

/** Starts tracing when the settings enable it, loading the OpenTelemetry SDK only then; undefined otherwise. One gateway per process may trace. */
async function startTracing(settings: TracingSettings, log: Logger): Promise<Tracing | undefined> {
  if (!settings.enabled) return undefined;
  const { OtelTracing } = await import('../observability/tracing-otel.ts');
  return OtelTracing.start(settings, log);
}

function hashText(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
