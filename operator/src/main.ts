/**
 * The operator's command line: `switchyard-operator [options]`.
 * Wiring only: flags → Operator → signals.
 */
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import http from 'node:http';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { PooledKubeConfig } from './kube/config.ts';
import { parseDuration } from '../../dataplane/src/contract/index.ts';
import { createLogger } from './log.ts';
import { Operator } from './operator.ts';
import { readFrontProxyTrust } from './kube/front-proxy.ts';
import { ObserveServer } from './observe/api.ts';
import { CONTROLLER_NAME } from './api/gateway-api.ts';

const HELP = `Usage: switchyard-operator [options]

Watches GatewayRoutes, Upstreams, Services and EndpointSlices (and the Gateway API's GatewayClasses,
Gateways, HTTPRoutes and ReferenceGrants when the cluster serves them), compiles one route table, serves it
to the data planes, and writes status conditions back.

Options:
      --kubeconfig <file>     kubeconfig to use (default: in-cluster, then KUBECONFIG, then ~/.kube/config)
      --namespaces <a,b>      namespaces to watch (default: all)
      --listen <host:port>    config server for data planes (default 0.0.0.0:18000)
      --metrics <host:port>   Prometheus metrics (default 0.0.0.0:9091; "off" to disable)
      --listen-cert-file <file>  serve data planes over TLS with this certificate (PEM), with
                              --listen-key-file <file>; both are read again when they change
      --token-file <file>     bearer token data planes must present (or SWITCHYARD_OPERATOR_TOKEN)
      --leader-elect          elect a leader with a Lease (default on; --no-leader-elect for a single replica)
      --lease-namespace <ns>  namespace of the Lease (default: POD_NAMESPACE, else "switchyard-system")
      --lease-name <name>     name of the Lease (default "switchyard-operator")
      --lease-duration <d>    default 15s; --renew-deadline 10s; --retry-period 2s
      --identity <id>         this replica's name in the election (default: the host name, i.e. the pod name)
      --gateway-api           serve the Gateway API once its CRDs are installed (default on; --no-gateway-api:
                              GatewayRoutes only, and no rights on Gateway API objects or Namespaces needed)
      --dataplane-service <ns/name>  the data plane Service: a route is Programmed once each of its ready
                              pods has applied it, connected or not (default: once every connected data plane has)
      --gateway-service <ns/name>  the data plane Service every Gateway is reached at: its address is the
                              Gateways' status.addresses, its ports named http and https their listener ports
      --controller-name <name> the controllerName of the GatewayClasses to serve
                              (default "switchyard.dev/gateway-controller")
      --api-listen <host:port> serve the aggregated API observe.switchyard.dev (kubectl switchyard) over TLS
      --api-cert-file <file>  its serving certificate (PEM), with --api-key-file <file>; requests are taken
                              only from the API server's front proxy (kube-system/extension-apiserver-authentication)
      --log-level <level>     default info
  -h, --help
`;

/** Runs the CLI; resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        kubeconfig: { type: 'string' },
        namespaces: { type: 'string' },
        listen: { type: 'string', default: '0.0.0.0:18000' },
        metrics: { type: 'string', default: '0.0.0.0:9091' },
        'token-file': { type: 'string' },
        'listen-cert-file': { type: 'string' },
        'listen-key-file': { type: 'string' },
        'leader-elect': { type: 'boolean', default: true },
        'no-leader-elect': { type: 'boolean' },
        'lease-namespace': { type: 'string' },
        'lease-name': { type: 'string', default: 'switchyard-operator' },
        'lease-duration': { type: 'string', default: '15s' },
        'renew-deadline': { type: 'string', default: '10s' },
        'retry-period': { type: 'string', default: '2s' },
        identity: { type: 'string' },
        'gateway-api': { type: 'boolean', default: true },
        'no-gateway-api': { type: 'boolean' },
        'gateway-service': { type: 'string' },
        'dataplane-service': { type: 'string' },
        'controller-name': { type: 'string', default: CONTROLLER_NAME },
        'api-listen': { type: 'string' },
        'api-cert-file': { type: 'string' },
        'api-key-file': { type: 'string' },
        'log-level': { type: 'string', default: 'info' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (err) {
    process.stderr.write(`switchyard-operator: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const hostPort = (v: string, flag: string): { host: string; port: number } => {
    const i = v.lastIndexOf(':');
    const port = Number(v.slice(i + 1));
    if (i < 0 || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--${flag} expects host:port, got "${v}"`);
    return { host: v.slice(0, i) || '0.0.0.0', port };
  };
  let token = process.env.SWITCHYARD_OPERATOR_TOKEN ?? '';
  if (args['token-file']) token = readFileSync(args['token-file'], 'utf8').trim();
  if (token === '') {
    process.stderr.write('switchyard-operator: a token for data planes is required: --token-file <file> or SWITCHYARD_OPERATOR_TOKEN\n');
    return 2;
  }
  const certFile = args['listen-cert-file'];
  const keyFile = args['listen-key-file'];
  if ((certFile === undefined) !== (keyFile === undefined)) {
    process.stderr.write('switchyard-operator: --listen-cert-file and --listen-key-file go together\n');
    return 2;
  }
  let listenTls: { cert: string; key: string } | undefined;
  if (certFile !== undefined && keyFile !== undefined) {
    try {
      listenTls = { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
    } catch (err) {
      process.stderr.write(`switchyard-operator: --listen-cert-file/--listen-key-file: ${(err as Error).message}\n`);
      return 2;
    }
  }
  const log = createLogger({ level: args['log-level'] });
  const kc = new PooledKubeConfig();
  if (args.kubeconfig) kc.loadFromFile(args.kubeconfig);
  else kc.loadFromDefault();
  const ms = (flag: string, v: string): number => {
    const d = parseDuration(v);
    if (d === undefined) throw new Error(`--${flag}: "${v}" is not a duration`);
    return d;
  };
  const gatewayService = args['gateway-service'];
  const dataplaneService = args['dataplane-service'];
  for (const [flag, value] of [['gateway-service', gatewayService], ['dataplane-service', dataplaneService]] as const) {
    if (value !== undefined && !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?\/[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(value)) {
      process.stderr.write(`switchyard-operator: --${flag} expects <namespace>/<name>, got "${value}"\n`);
      return 2;
    }
  }
  const identity = args.identity ?? hostname();
  const operator = new Operator({
    kubeconfig: kc,
    dataplaneService,
    namespaces: (args.namespaces ?? '').split(',').map((s) => s.trim()).filter((s) => s !== ''),
    token,
    tls: listenTls,
    listen: hostPort(args.listen, 'listen'),
    identity,
    lease:
      args['leader-elect'] && !args['no-leader-elect']
        ? {
            namespace: args['lease-namespace'] ?? process.env.POD_NAMESPACE ?? 'switchyard-system',
            name: args['lease-name'],
            durationMs: ms('lease-duration', args['lease-duration']),
            renewDeadlineMs: ms('renew-deadline', args['renew-deadline']),
            retryPeriodMs: ms('retry-period', args['retry-period']),
          }
        : undefined,
    gatewayApi: args['gateway-api'] && !args['no-gateway-api'] ? { controllerName: args['controller-name'], addressService: gatewayService } : undefined,
    log,
  });
  let metricsServer: http.Server | undefined;
  if (args.metrics !== 'off') {
    const { host, port } = hostPort(args.metrics, 'metrics');
    metricsServer = http.createServer((req, res) => {
      if (req.url === '/metrics') {
        operator.metrics.registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': operator.metrics.registry.contentType }).end(text),
          (err: unknown) => res.writeHead(500).end(String(err)),
        );
      } else if (req.url === '/healthz') {
        res.writeHead(200).end('ok\n');
      } else if (req.url === '/readyz') {
        // Ready once every watch has listed: before that, a table would miss objects.
        if (operator.isReady) res.writeHead(200).end('ok\n');
        else res.writeHead(503).end('informers have not listed yet\n');
      } else res.writeHead(404).end();
    });
    metricsServer.listen(port, host);
  }

  let observe: ObserveServer | undefined;
  let observeTimer: NodeJS.Timeout | undefined;
  if (args['api-listen']) {
    const { host, port } = hostPort(args['api-listen'], 'api-listen');
    if (!args['api-cert-file'] || !args['api-key-file']) {
      process.stderr.write('switchyard-operator: --api-listen needs --api-cert-file and --api-key-file\n');
      return 2;
    }
    const tls = { cert: readFileSync(args['api-cert-file']), key: readFileSync(args['api-key-file']) };
    const source = { get table() { return operator.table; }, get isLeader() { return operator.isLeader; }, identity, server: operator.server };
    // The front proxy's CA is read from the cluster, which may not answer yet: try until it does.
    const serve = (): void => {
      readFrontProxyTrust(kc).then(
        async (trust) => {
          if (trust === undefined) {
            log.error({ event: 'observe_unavailable' }, 'the API server has no aggregation layer (no requestheader CA in kube-system/extension-apiserver-authentication): kubectl switchyard cannot reach this operator');
            return;
          }
          try {
            observe = new ObserveServer({ source, tls, trust, log });
            const bound = await observe.listen(port, host);
            log.info({ event: 'observe_listening', port: bound }, 'serving observe.switchyard.dev');
          } catch (err) {
            // The operator's own work goes on without it: kubectl switchyard then says the API is unavailable.
            log.error({ event: 'observe_failed', error: (err as Error).message }, 'cannot serve observe.switchyard.dev');
          }
        },
        (err: unknown) => {
          log.warn({ event: 'observe_waiting', error: (err as Error).message }, 'cannot read the front proxy CA yet; trying again');
          observeTimer = setTimeout(serve, 5_000);
        },
      );
    };
    serve();
  }

  // A renewed certificate (cert-manager, or a Secret replaced) serves new data plane connections without a restart.
  let tlsWatch: FSWatcher | undefined;
  if (certFile !== undefined && keyFile !== undefined) {
    const names = new Set([path.basename(certFile), path.basename(keyFile), '..data']);
    let timer: NodeJS.Timeout | undefined;
    const reload = (): void => {
      try {
        operator.setTls({ cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') });
        log.info({ event: 'listen_tls_reloaded', certFile }, 'config server certificate reloaded');
      } catch (err) {
        log.error({ event: 'listen_tls_reload_failed', error: (err as Error).message }, 'config server certificate not reloaded; the previous one keeps serving');
      }
    };
    try {
      tlsWatch = watch(path.dirname(path.resolve(certFile)), (_event, name) => {
        if (name !== null && !names.has(name)) return;
        clearTimeout(timer);
        timer = setTimeout(reload, 200);
      });
    } catch (err) {
      log.warn({ event: 'listen_tls_watch_failed', error: (err as Error).message }, 'cannot watch the config server certificate; it is read again at restart');
    }
  }

  // Not awaited: with the API server away, start() waits for it, and meanwhile the
  // probes must answer (/healthz ok, /readyz not ready) and a signal must stop it.
  const started = operator.start().then(
    () => undefined,
    (err: unknown) => err,
  );

  return new Promise<number>((resolve) => {
    void started.then((err) => {
      if (err === undefined) return;
      log.error({ event: 'start_failed', error: (err as Error)?.message ?? String(err) }, 'cannot start');
      metricsServer?.close();
      void operator.stop().finally(() => log.flush(() => resolve(1)));
    });
    const stop = (signal: string): void => {
      log.info({ event: 'signal', signal }, `received ${signal}`);
      metricsServer?.close();
      tlsWatch?.close();
      clearTimeout(observeTimer);
      void observe?.close();
      operator.stop().then(
        () => log.flush(() => resolve(0)),
        (err: unknown) => {
          log.error({ event: 'shutdown_failed', err }, 'shutdown failed');
          log.flush(() => resolve(1));
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
