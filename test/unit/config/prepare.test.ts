import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { compileConfig } from '../../../dataplane/src/config/compile.ts';
import { ConfigError, loadConfigFile } from '../../../dataplane/src/config/load.ts';
import { ConfigPreparer } from '../../../dataplane/src/config/prepare.ts';

const preparers: ConfigPreparer[] = [];
afterEach(async () => {
  for (const p of preparers.splice(0)) await p.close();
});

function configFile(text: string): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'switchyard-prepare-')), 'gateway.yaml');
  writeFileSync(file, text);
  return file;
}

// A worker loads the config modules afresh: seconds on a busy machine, more than the unit tier's default timeout.
describe('ConfigPreparer (a reload read and compiled on a worker thread)', { timeout: 60_000 }, () => {
  it('gives the same config, table and warnings as loading and compiling on the main thread, with ${VAR} from the same environment', async () => {
    process.env.SWITCHYARD_PREPARE_TEST_SECRET = 'a-secret-of-at-least-thirty-two-bytes-long!!';
    const file = configFile(
      stringify({
        routes: [
          { path: '/a', upstream: 'u', auth_required: true },
          { path: '/b', path_type: 'Prefix', upstream: 'u', methods: ['GET'] },
          { path: '/c', upstream: 'missing' },
        ],
        upstreams: { u: { discovery: { type: 'Static', endpoints: ['http://127.0.0.1:1'] } } },
        auth: { jwt: { secret: '${SWITCHYARD_PREPARE_TEST_SECRET}', algorithm: 'HS256' } },
      }),
    );
    const preparer = new ConfigPreparer();
    preparers.push(preparer);
    const prepared = await preparer.prepare(file);
    const { config } = await loadConfigFile(file);
    const compiled = compileConfig(config, file);
    expect(prepared.config).toEqual(config);
    expect(prepared.table).toEqual(compiled.table);
    expect(prepared.warnings).toEqual(compiled.warnings);
    expect(prepared.warnings.join('\n')).toContain('upstream "missing" is not defined');
    expect(prepared.config.auth.jwt?.secret).toBe(process.env.SWITCHYARD_PREPARE_TEST_SECRET);
  });

  it('rejects an invalid file with a ConfigError naming the file, line and field, and keeps working after it', async () => {
    const preparer = new ConfigPreparer();
    preparers.push(preparer);
    const bad = configFile('routes:\n  - path: 3\n    upstream: u\n');
    const err = await preparer.prepare(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).problems).toContain(`${bad}:2: routes[0].path: expected string, got number 3`);
    const good = configFile(stringify({ routes: [{ path: '/a', upstream: 'u' }], upstreams: { u: { discovery: { type: 'Static', endpoints: ['http://127.0.0.1:1'] } } } }));
    expect((await preparer.prepare(good)).table.routes).toHaveLength(1);
  });

  it('prepares again after it was closed, on a new worker', async () => {
    const preparer = new ConfigPreparer();
    preparers.push(preparer);
    const file = configFile(stringify({ routes: [{ path: '/a', upstream: 'u' }], upstreams: { u: { discovery: { type: 'Static', endpoints: ['http://127.0.0.1:1'] } } } }));
    const first = await preparer.prepare(file);
    await preparer.close();
    expect(await preparer.prepare(file)).toEqual(first);
  });

  it('answers a prepare still in flight when it is closed, on this thread', async () => {
    const preparer = new ConfigPreparer();
    preparers.push(preparer);
    const file = configFile(stringify({ routes: [{ path: '/a', upstream: 'u' }], upstreams: { u: { discovery: { type: 'Static', endpoints: ['http://127.0.0.1:1'] } } } }));
    const inFlight = preparer.prepare(file);
    await preparer.close();
    expect((await inFlight).table.routes).toHaveLength(1);
  });
});
