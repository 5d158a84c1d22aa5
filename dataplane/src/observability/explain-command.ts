/**
 * `switchyard-dataplane explain`: what a gateway running a config file would
 * do with one request, worked out from the file alone. Nothing listens,
 * nothing is probed or sent; the table is built and validated as the gateway
 * builds it, and tokens are verified with the file's `auth.jwt`. A check for
 * CI: the exit status says whether the request would reach an upstream.
 */
import { parseArgs } from 'node:util';
import { compileConfig, gatewayDefaults } from '../config/compile.ts';
import { ConfigError, loadConfigFile } from '../config/load.ts';
import { parseDuration } from '../contract/duration.ts';
import { createJwtVerifier } from '../pipeline/jwt.ts';
import type { TokenVerifier } from '../pipeline/auth.ts';
import { TableHolder } from '../table/holder.ts';
import { PoolRegistry } from '../upstream/pools.ts';
import { silentLogger } from './logger.ts';
import { GatewayMetrics } from './metrics.ts';
import { explainRequest } from './explain.ts';
import { explanationExitCode, formatExplanation } from './explain-format.ts';

export const EXPLAIN_HELP = `Usage: switchyard-dataplane explain --config <file> <METHOD> <target> [options]

Says which route of the config would serve the request and why, the near misses and what each
failed, the stages that would run (authentication with the token given, roles and permissions,
rate limit, CORS), the upstream and its endpoints, and the URL after any rewrite. Offline: the
file is read and validated as the gateway reads it; nothing listens and nothing is sent.

Options:
  -c, --config <file>      gateway.yaml (also GATEWAY_CONFIG)
  -H, --header <line>      a request header, "Name: value" (repeatable); a bearer token in
                           Authorization is verified with the file's auth.jwt and never printed
      --host <host>        the Host header (default: one given with -H, else none: only routes
                           without hosts can match)
      --client <address>   the client address, for a rate limit counted per address
      --listener <name>    http (default) or https
  -o, --output <format>    text (default) or json
  -h, --help               show this help

Exit status: 0 when the request would reach an upstream (or be redirected), 1 when the gateway
would answer it itself (404, 405, 401, 403, 429, 503, ...), 2 for a usage error or an invalid config.

Example:
  switchyard-dataplane explain --config gateway.yaml GET /api/v1/users/42 -H "authorization: Bearer $TOKEN"
`;

/** Runs `explain`; resolves with the exit status. */
export async function explainCommand(argv: string[], out: (text: string) => void = (t) => process.stdout.write(t), err: (text: string) => void = (t) => process.stderr.write(t)): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        config: { type: 'string', short: 'c' },
        header: { type: 'string', short: 'H', multiple: true },
        host: { type: 'string' },
        client: { type: 'string' },
        listener: { type: 'string' },
        output: { type: 'string', short: 'o' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (e) {
    err(`switchyard-dataplane explain: ${(e as Error).message}\n\n${EXPLAIN_HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    out(EXPLAIN_HELP);
    return 0;
  }
  const usage = (message: string): number => {
    err(`switchyard-dataplane explain: ${message}\n\n${EXPLAIN_HELP}`);
    return 2;
  };
  const file = values.config ?? process.env.GATEWAY_CONFIG;
  if (!file) return usage('--config <file> is required');
  if (positionals.length !== 2) return usage('give the method and the request target, e.g. GET /api/v1/users/42');
  const [method, target] = positionals as [string, string];
  const output = values.output ?? 'text';
  if (output !== 'text' && output !== 'json') return usage('--output is text or json');
  const listener = values.listener ?? 'http';
  if (listener !== 'http' && listener !== 'https') return usage('--listener is http or https');
  const headers: Record<string, string[]> = {};
  for (const line of values.header ?? []) {
    const colon = line.indexOf(':');
    if (colon <= 0) return usage(`header "${line.slice(0, 40)}" must be "Name: value"`);
    (headers[line.slice(0, colon).trim().toLowerCase()] ??= []).push(line.slice(colon + 1).trim());
  }

  const log = silentLogger();
  let pools: PoolRegistry | undefined;
  let verifier: TokenVerifier | undefined;
  try {
    const { config } = await loadConfigFile(file);
    const { table } = compileConfig(config, file);
    // Pools are built with the table, as the gateway builds them; nothing connects until a request is sent, and none is.
    pools = new PoolRegistry(parseDuration(config.server.timeouts.keepalive_timeout));
    const holder = new TableHolder(pools, () => [], new GatewayMetrics({ defaultMetrics: false }), log, gatewayDefaults(config));
    const applied = holder.apply(table, file);
    if (!applied.applied) throw new ConfigError([`${file}: ${applied.error}`]);
    if (config.auth.jwt) verifier = (await createJwtVerifier(config.auth.jwt, log)).verifier;
    const explanation = await explainRequest(
      { method, target, host: values.host ?? headers.host?.[0] ?? '', headers, client: values.client, listener },
      { runtime: holder.current, verifier, live: false, limit: 10 },
    );
    out(output === 'json' ? `${JSON.stringify(explanation, null, 2)}\n` : formatExplanation(explanation));
    return explanationExitCode(explanation);
  } catch (e) {
    if (e instanceof ConfigError) {
      err(`switchyard-dataplane explain: invalid configuration\n${e.problems.map((p) => `  ${p}`).join('\n')}\n`);
      return 2;
    }
    throw e;
  } finally {
    await pools?.closeAll(true);
  }
}
