/**
 * Reading, validating and compiling a config file on a worker thread, so that
 * a reload's YAML parsing, `${VAR}` expansion, zod validation and compile
 * (most of its cost) run beside the event loop that serves requests rather
 * than on it. Only the compiled table and the config come back, by structured
 * clone, for the table holder to apply.
 *
 * The worker starts at the first reload and stops after a while without one,
 * so that a gateway that never reloads carries no second V8 isolate. Should a
 * worker not start or die, the work runs on the main thread as before: a
 * reload never fails for want of a worker.
 */
import { isMainThread, parentPort, SHARE_ENV, Worker, workerData } from 'node:worker_threads';
import type { RouteTable } from '../contract/index.ts';
import { compileConfig } from './compile.ts';
import { ConfigError, loadConfigFile } from './load.ts';
import type { GatewayConfig } from './schema.ts';

/** What a reload needs from the file. */
export interface PreparedConfig {
  config: GatewayConfig;
  table: RouteTable;
  warnings: string[];
}

type Answer = { id: number; ok: true; prepared: PreparedConfig } | { id: number; ok: false; problems?: readonly string[]; message: string };

const ROLE = 'switchyard-config-preparer';
/** A worker without a reload for this long is stopped; the next reload starts another. */
const IDLE_MS = 30_000;

/** The work itself, the same on either thread. */
async function prepareHere(file: string): Promise<PreparedConfig> {
  const { config } = await loadConfigFile(file);
  const { table, warnings } = compileConfig(config, file);
  return { config, table, warnings };
}

/** Prepares config files on a worker thread, one at a time, in the order asked. */
export class ConfigPreparer {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, { file: string; resolve: (p: PreparedConfig) => void; reject: (e: Error) => void }>();
  private nextId = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  /** Set once a worker failed to start or died: the work then stays on the main thread. */
  private inline = false;

  /** Reads, validates and compiles `file`; rejects with a ConfigError naming the problems, as loadConfigFile does. */
  prepare(file: string): Promise<PreparedConfig> {
    if (this.inline) return prepareHere(file);
    const worker = this.ensureWorker();
    if (worker === undefined) return prepareHere(file);
    clearTimeout(this.idleTimer);
    const id = this.nextId++;
    return new Promise<PreparedConfig>((resolve, reject) => {
      this.pending.set(id, { file, resolve, reject });
      worker.postMessage({ id, file });
    });
  }

  /** Stops the worker, if one runs; what was still asked of it is done on this thread, so no caller waits forever. */
  async close(): Promise<void> {
    clearTimeout(this.idleTimer);
    const worker = this.worker;
    this.worker = undefined;
    this.prepareLeftHere();
    if (worker !== undefined) await worker.terminate();
  }

  /** Prepares on this thread whatever a worker that is gone was asked. */
  private prepareLeftHere(): void {
    for (const [, waiting] of this.pending) prepareHere(waiting.file).then(waiting.resolve, waiting.reject);
    this.pending.clear();
  }

  private ensureWorker(): Worker | undefined {
    if (this.worker !== undefined) return this.worker;
    let worker: Worker;
    try {
      // The process's environment, shared: `${VAR}` and GATEWAY_* overrides read the same values as on the main thread.
      worker = new Worker(new URL(import.meta.url), { workerData: { role: ROLE }, env: SHARE_ENV });
    } catch {
      this.inline = true;
      return undefined;
    }
    worker.unref();
    worker.on('message', (answer: Answer) => {
      const waiting = this.pending.get(answer.id);
      if (waiting === undefined) return;
      this.pending.delete(answer.id);
      if (answer.ok) waiting.resolve(answer.prepared);
      else waiting.reject(answer.problems !== undefined ? new ConfigError(answer.problems) : new Error(answer.message));
      if (this.pending.size === 0) this.scheduleIdleStop();
    });
    const failed = (): void => {
      if (this.worker !== worker) return;
      this.worker = undefined;
      this.inline = true;
      this.prepareLeftHere();
    };
    worker.on('error', failed);
    worker.on('exit', () => {
      if (this.worker === worker) failed();
    });
    this.worker = worker;
    return worker;
  }

  private scheduleIdleStop(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.pending.size === 0) void this.close();
    }, IDLE_MS);
    this.idleTimer.unref();
  }
}

// The worker thread's side.
if (!isMainThread && (workerData as { role?: unknown } | null)?.role === ROLE && parentPort !== null) {
  const port = parentPort;
  port.on('message', ({ id, file }: { id: number; file: string }) => {
    prepareHere(file).then(
      (prepared) => port.postMessage({ id, ok: true, prepared } satisfies Answer),
      (err: unknown) => port.postMessage({ id, ok: false, problems: err instanceof ConfigError ? [...err.problems] : undefined, message: (err as Error).message ?? String(err) } satisfies Answer),
    );
  });
}
