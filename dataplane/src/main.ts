/**
 * The data plane's command line: `switchyard-dataplane --config gateway.yaml`.
 * Wiring only: read the config, start the gateway, handle signals.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfigFile } from './config/load.ts';
import { compileConfig } from './config/compile.ts';
import { createLogger } from './observability/logger.ts';
import { Gateway } from './server/gateway.ts';
import { OperatorSource } from './table/operator-source.ts';
import { explainCommand } from './observability/explain-command.ts';

const HELP = `Usage: switchyard-dataplane --config <file> [options]
       switchyard-dataplane explain --config <file> <METHOD> <target> [-H 'Name: value' ...]

Runs the Switchyard gateway data plane; \`explain\` says what it would do with one request
(which route and why, the near misses, the stages, the upstream), offline (explain --help).

Options:
  -c, --config <file>     gateway.yaml to serve (routes, upstreams, auth, middleware, observability).
                          Also read from GATEWAY_CONFIG. \${VAR} in the file is taken from the environment;
                          GATEWAY_* variables override settings (see docs/configuration.md).
      --no-watch          do not reload when the config file changes (SIGHUP and POST /reload still do)
      --operator <urls>   take the route table from the operator (comma-separated base URLs, tried in
                          turn) instead of the file's routes and upstreams; the file is then the bootstrap
                          config (server, auth, middleware, observability). Also SWITCHYARD_OPERATOR_URL.
      --token-file <file> the bearer token for the operator (or SWITCHYARD_OPERATOR_TOKEN)
      --operator-ca <file> PEM CA the operator's certificate must chain to, for https:// operator URLs
                          (or SWITCHYARD_OPERATOR_CA; default: the system roots). http:// URLs send the
                          token in clear and are logged as such
      --operator-server-name <name>  the name the operator's certificate must carry, when the URLs
                          reach it by another (or SWITCHYARD_OPERATOR_SERVER_NAME; default: each URL's host)
      --dataplane-id <id> this data plane's name in the fleet (default: the host name, i.e. the pod name)
      --state-dir <dir>   write each table applied from the operator here and boot from it, so a restart
                          while the operator is away still serves
      --check             validate the config, print the compiled route table summary, and exit
      --log-level <level> trace, debug, info, warn, error, fatal or silent (overrides the config)
  -h, --help              show this help
  -v, --version           print the version

Ports (from the config's "server" section): traffic http_port (8080), https_port (8443, when
server.tls is set), admin_port (8081, on admin_bind_address 127.0.0.1), metrics_port (9090).
Signals: SIGHUP reloads the config; SIGTERM and SIGINT drain and stop.
`;

/** Runs the CLI; resolves with the process exit code. */
export async function main(argv: string[]): Promise<number> {
  if (argv[0] === 'explain') return explainCommand(argv.slice(1));
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        'no-watch': { type: 'boolean' },
        operator: { type: 'string' },
        'token-file': { type: 'string' },
        'operator-ca': { type: 'string' },
        'operator-server-name': { type: 'string' },
        'dataplane-id': { type: 'string' },
        'state-dir': { type: 'string' },
        check: { type: 'boolean' },
        'log-level': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    process.stderr.write(`switchyard-dataplane: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(HELP);
    return 0;
  }
  if (args.version) {
    const pkg = (await import('../../package.json', { with: { type: 'json' } })).default as { version: string };
    process.stdout.write(`${pkg.version}\n`);
    return 0;
  }
  const file = args.config ?? process.env.GATEWAY_CONFIG;
  if (!file) {
    process.stderr.write(`switchyard-dataplane: --config <file> is required\n\n${HELP}`);
    return 2;
  }

  let loaded;
  try {
    loaded = await loadConfigFile(file);
    if (args.check) {
      const { table, warnings } = compileConfig(loaded.config, file);
      for (const w of [...loaded.warnings, ...warnings]) process.stderr.write(`warning: ${w}\n`);
      process.stdout.write(`${file}: ok, ${table.routes.length} routes, ${table.upstreams.length} upstreams, table version ${table.version}\n`);
      return 0;
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`switchyard-dataplane: invalid configuration\n${err.problems.map((p) => `  ${p}`).join('\n')}\n`);
      return 1;
    }
    throw err;
  }

  const logging = loaded.config.observability.logging;
  const log = createLogger({ level: args['log-level'] ?? logging.level, destination: logging.output.type, format: logging.format });
  for (const w of loaded.warnings) log.warn({ event: 'config_warning' }, w);
  if (loaded.overrides.length > 0) log.info({ event: 'config_overrides', overrides: loaded.overrides }, 'settings overridden from the environment');

  const operatorUrls = (args.operator ?? process.env.SWITCHYARD_OPERATOR_URL ?? '').split(',').map((u) => u.trim()).filter((u) => u !== '');
  let token = process.env.SWITCHYARD_OPERATOR_TOKEN ?? '';
  if (operatorUrls.length > 0) {
    if (args['token-file']) {
      try {
        token = readFileSync(args['token-file'], 'utf8').trim();
      } catch (err) {
        process.stderr.write(`switchyard-dataplane: cannot read --token-file: ${(err as Error).message}\n`);
        return 1;
      }
    }
    if (token === '') {
      process.stderr.write('switchyard-dataplane: --operator needs a token: --token-file <file> or SWITCHYARD_OPERATOR_TOKEN\n');
      return 2;
    }
    if (loaded.config.routes.length > 0 || Object.keys(loaded.config.upstreams).length > 0) {
      log.warn({ event: 'config_warning' }, `${file}: routes and upstreams in the file are ignored: the operator provides the route table`);
    }
  }

  let operatorCa: string | undefined;
  const caFile = args['operator-ca'] ?? process.env.SWITCHYARD_OPERATOR_CA;
  if (operatorUrls.length > 0 && caFile !== undefined && caFile !== '') {
    try {
      operatorCa = readFileSync(caFile, 'utf8');
    } catch (err) {
      process.stderr.write(`switchyard-dataplane: cannot read --operator-ca: ${(err as Error).message}\n`);
      return 1;
    }
  }
  for (const u of operatorUrls) {
    if (u.startsWith('http://')) log.warn({ event: 'operator_plaintext', operator: u }, 'the operator is reached over plain HTTP: the token and the route table travel unencrypted; use https:// with --operator-ca');
  }

  let gateway: Gateway;
  let source: OperatorSource | undefined;
  try {
    gateway = await Gateway.start({ config: loaded.config, configFile: file, watch: !args['no-watch'] && operatorUrls.length === 0, log, tableSource: operatorUrls.length > 0 ? 'external' : 'file' });
    if (operatorUrls.length > 0) {
      const gw = gateway;
      source = new OperatorSource({ urls: operatorUrls, token, ca: operatorCa, serverName: args['operator-server-name'] ?? process.env.SWITCHYARD_OPERATOR_SERVER_NAME, id: args['dataplane-id'] ?? hostname(), holder: gateway.holder, log, stateDir: args['state-dir'], explain: (request, namespace) => gw.explainRelayed(request, namespace) });
      source.start();
    }
  } catch (err) {
    const message = err instanceof ConfigError ? err.problems.join('\n  ') : (err as Error).message;
    process.stderr.write(`switchyard-dataplane: cannot start: ${message}\n`);
    log.flush();
    return 1;
  }

  return new Promise<number>((resolve) => {
    const stop = (signal: string): void => {
      log.info({ event: 'signal', signal }, `received ${signal}`);
      Promise.all([source?.stop(), gateway.stop()]).then(
        () => log.flush(() => resolve(0)),
        (err: unknown) => {
          log.error({ event: 'shutdown_failed', err }, 'shutdown failed');
          log.flush(() => resolve(1));
        },
      );
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', () => void gateway.reload('SIGHUP'));
  });
}
