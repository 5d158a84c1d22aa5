/** Starts the real gateway in this process on free loopback ports, from a config object or YAML. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { parseConfig } from '../../dataplane/src/config/load.ts';
import { createLogger, silentLogger, type Logger } from '../../dataplane/src/observability/logger.ts';
import { Gateway } from '../../dataplane/src/server/gateway.ts';

/** A gateway under test with its base URLs. */
export interface TestGateway {
  gw: Gateway;
  url: string;
  adminUrl: string;
  metricsUrl: string;
  configFile: string;
  /** Rewrites the config file (the gateway reloads it when watching, or call gw.reload). */
  writeConfig(config: Record<string, unknown>): void;
  stop(): Promise<void>;
}

/** Fills in loopback addresses and free ports, so tests never collide. */
export function testServerSection(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { http_port: 0, admin_port: 0, metrics_port: 0, bind_address: '127.0.0.1', ...extra };
}

/** Starts a gateway from a config object; `server` defaults to free loopback ports. */
export async function startGateway(config: Record<string, unknown>, options: { watch?: boolean; env?: NodeJS.ProcessEnv; logLevel?: string; log?: Logger } = {}): Promise<TestGateway> {
  const dir = mkdtempSync(path.join(tmpdir(), 'switchyard-gw-'));
  const configFile = path.join(dir, 'gateway.yaml');
  const full = { ...config, server: testServerSection((config.server as Record<string, unknown>) ?? {}) };
  writeFileSync(configFile, stringify(full));
  const { config: parsed } = parseConfig(stringify(full), configFile, options.env ?? {});
  const log = options.log ?? (options.logLevel ? createLogger({ level: options.logLevel }) : silentLogger());
  const gw = await Gateway.start({ config: parsed, configFile, watch: options.watch ?? false, log });
  return {
    gw,
    url: `http://127.0.0.1:${gw.ports.http}`,
    adminUrl: `http://127.0.0.1:${gw.ports.admin}`,
    metricsUrl: `http://127.0.0.1:${gw.ports.metrics}/metrics`,
    configFile,
    writeConfig: (next) => writeFileSync(configFile, stringify({ ...next, server: full.server })),
    stop: () => gw.stop(0),
  };
}
