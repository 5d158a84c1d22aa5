/**
 * One wrk run: one thread (the load generator gets one CPU), a fixed number of
 * keep-alive connections and duration, `--latency`, and bench/wrk/report.lua,
 * whose done() hook prints the numbers as JSON (p99.9 included).
 */
import path from 'node:path';
import { ROOT, runToEnd } from './processes.ts';

/** What one wrk run measured. */
export interface WrkResult {
  rps: number;
  requests: number;
  seconds: number;
  /** Response bytes per second, headers included. */
  bytesPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  /** `status` counts responses that were not 2xx or 3xx. */
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
}

/** Options of one run. */
export interface WrkOptions {
  url: string;
  connections: number;
  durationS: number;
  cpu: string | undefined;
  /** Sent as `Authorization: Bearer …`. */
  bearer?: string;
  /** Socket timeout; requests slower than this count as timeouts. */
  timeoutS?: number;
}

const SCRIPT = path.join(ROOT, 'bench/wrk/report.lua');

/** Runs wrk and parses its report; throws if wrk fails or prints no report. */
export async function runWrk(options: WrkOptions): Promise<WrkResult> {
  const args = ['-t1', `-c${options.connections}`, `-d${options.durationS}s`, '--latency', `--timeout`, `${options.timeoutS ?? 10}s`, '-s', SCRIPT, options.url];
  const { code, output } = await runToEnd('wrk', 'wrk', args, {
    cpu: options.cpu,
    env: { BENCH_BEARER: options.bearer ?? '' },
    // wrk stops itself after -d; this only guards against a hang.
    timeoutMs: (options.durationS + 30) * 1000,
  });
  const line = output.split('\n').find((l) => l.startsWith('BENCH_JSON '));
  if (code !== 0 || line === undefined) throw new Error(`wrk ${args.join(' ')} failed (exit ${code}):\n${output.slice(-2000)}`);
  const r = JSON.parse(line.slice('BENCH_JSON '.length)) as {
    requests: number;
    duration_us: number;
    bytes: number;
    errors: WrkResult['errors'];
    latency_us: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  };
  const seconds = r.duration_us / 1e6;
  const l = r.latency_us;
  return {
    rps: r.requests / seconds,
    requests: r.requests,
    seconds,
    bytesPerSecond: r.bytes / seconds,
    latencyMs: { p50: l.p50 / 1000, p90: l.p90 / 1000, p99: l.p99 / 1000, p999: l.p999 / 1000, max: l.max / 1000, mean: l.mean / 1000 },
    errors: r.errors,
  };
}

/** Every error wrk counted, non-2xx/3xx responses included. */
export function errorCount(r: WrkResult): number {
  const e = r.errors;
  return e.connect + e.read + e.write + e.status + e.timeout;
}
