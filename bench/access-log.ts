/**
 * The cost of one access-log line, this checkout against an earlier one:
 * each writes the same 200,000 records through its own logger
 * (`createLogger`), yielding to the event loop every 1,000 lines as a busy
 * server does, with stdout going to a file. Runs alternate, three of each,
 * each in a fresh process; prints the CPU time per line of each run and
 * whether the two files hold the same lines apart from `time`.
 *
 *     git archive <commit> dataplane package.json | tar -x -C /tmp/before && ln -s "$PWD/node_modules" /tmp/before/
 *     node bench/access-log.ts /tmp/before
 *
 * A checkout whose logger has no `accessLogWriter` logs with
 * `log.info({ event: 'access', ...record }, 'request')`, as the handler did.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, tempDir } from './lib/processes.ts';

const LINES = 200_000;

async function child(root: string): Promise<void> {
  const logger = (await import(path.join(root, 'dataplane/src/observability/logger.ts'))) as {
    createLogger(o: { level: string }): { info(o: object, m: string): void; flush(cb: () => void): void };
    accessLogWriter?: (log: unknown) => ((r: object) => void) | undefined;
  };
  const log = logger.createLogger({ level: 'info' });
  const fast = logger.accessLogWriter?.(log);
  const write = fast ?? ((r: object) => log.info({ event: 'access', ...r }, 'request'));
  const record = (i: number): object => ({
    requestId: `0b6f7c1e-5d1a-4c1e-9a55-${String(i).padStart(12, '0')}`,
    method: 'GET',
    path: '/api/v1/users',
    host: '127.0.0.1:8080',
    client: '127.0.0.1',
    route: 'users',
    upstream: 'u',
    endpoint: 'http://127.0.0.1:9000',
    attempts: 1,
    status: 200,
    completed: true,
    durationMs: 0.412,
    bytesOut: 12,
    error: null,
    traceId: undefined,
  });
  const start = process.cpuUsage();
  for (let b = 0; b < LINES; b += 1000) {
    for (let i = b; i < b + 1000; i++) write(record(i));
    await new Promise((r) => setImmediate(r));
  }
  await new Promise<void>((r) => log.flush(r));
  const used = process.cpuUsage(start);
  process.stderr.write(`${((used.user + used.system) / LINES).toFixed(2)}\n`);
}

if (import.meta.main) {
  const [earlier, mode] = process.argv.slice(2);
  if (mode === '--child') await child(earlier as string);
  else {
    if (!earlier) throw new Error('usage: node bench/access-log.ts <earlier checkout>');
    const tmp = tempDir('access-log');
    try {
      const sides = [
        ['before', path.resolve(earlier)],
        ['after', ROOT],
      ] as const;
      const us: Record<string, string[]> = { before: [], after: [] };
      for (let round = 0; round < 3; round++) {
        for (const [side, root] of sides) {
          const fd = openSync(path.join(tmp.dir, `${side}.log`), 'w');
          const run = spawnSync(process.execPath, [path.join(ROOT, 'bench/access-log.ts'), root, '--child'], { stdio: ['ignore', fd, 'pipe'], cwd: ROOT });
          closeSync(fd);
          if (run.status !== 0) throw new Error(`${side}: ${run.stderr.toString()}`);
          us[side]?.push(run.stderr.toString().trim());
        }
      }
      const strip = (side: string): string => readFileSync(path.join(tmp.dir, `${side}.log`), 'utf8').replace(/"time":"[^"]*"/g, '');
      process.stdout.write(`CPU µs per access line (${LINES.toLocaleString('en')} lines to a file, 3 runs each):\n  before: ${us.before?.join(', ')}\n  after:  ${us.after?.join(', ')}\nsame lines apart from "time": ${strip('before') === strip('after') ? 'yes' : 'NO'}\n`);
    } finally {
      tmp.remove();
    }
  }
}
