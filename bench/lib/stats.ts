/** Small statistics and formatting helpers shared by the benchmarks. */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

/** The median of the values (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** The p-th percentile by the nearest-rank method (p in 0..100). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1] as number;
}

/** Rounds to `digits` significant decimals for the JSON output. */
export function round(value: number, digits = 2): number {
  if (!Number.isFinite(value)) return value;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** 12345 → "12,345". */
export function int(value: number): string {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : 'n/a';
}

/** Milliseconds with a precision that suits the size. */
export function ms(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  return value.toFixed(2);
}

/** Bytes as MiB. */
export function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}

/** A ratio as "0.85×". */
export function ratio(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : 'n/a';
}

/** What the numbers were measured on. */
export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  node: string;
  kernel: string;
  wrk: string;
  nginx: string;
  haproxy: string;
  /** 1-minute load average when the run started and ended. */
  loadStart: number;
  loadEnd?: number;
  /**
   * Share of the machine's CPU time over the run that the hypervisor gave to
   * other guests (`steal` in /proc/stat), in percent; absent off Linux. A few
   * percent is usual on a VM; tens of percent mean the run measured a host
   * busy with others, and every rate in it is low by about that much or more.
   */
  stolenPercent?: number;
}

/** The all-CPU time counters of /proc/stat: steal and the total, in ticks; undefined off Linux. */
export function cpuTicks(): { steal: number; total: number } | undefined {
  try {
    const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest and guest_nice are counted in user and nice).
    const counted = fields.slice(0, 8);
    if (counted.length < 8 || counted.some((n) => !Number.isFinite(n))) return undefined;
    return { steal: counted[7] as number, total: counted.reduce((a, b) => a + b, 0) };
  } catch {
    return undefined;
  }
}

/** The share of CPU time stolen since `from` (cpuTicks()), in percent with one decimal. */
export function stolenSince(from: { steal: number; total: number } | undefined): number | undefined {
  const to = cpuTicks();
  if (!from || !to || to.total <= from.total) return undefined;
  return round(((to.steal - from.steal) / (to.total - from.total)) * 100, 1);
}

function version(cmd: string, args: string[], pattern: RegExp): string {
  // nginx and HAProxy print their versions on stderr.
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  const text = `${r.stdout ?? ''}${r.stderr ?? ''}`;
  return pattern.exec(text)?.[1] ?? 'unknown';
}

/** Describes this machine and the tools used. */
export function machineInfo(): MachineInfo {
  let cpuModel = os.cpus()[0]?.model ?? 'unknown';
  try {
    cpuModel = /model name\s*:\s*(.+)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? cpuModel;
  } catch {
    // not Linux
  }
  return {
    cpus: os.cpus().length,
    cpuModel,
    memoryGiB: round(os.totalmem() / 1024 ** 3, 1),
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    wrk: version('wrk', ['-v'], /wrk (\S+)/),
    nginx: version('nginx', ['-v'], /nginx\/(\S+)/),
    haproxy: version('haproxy', ['-v'], /HAProxy version (\S+)/),
    loadStart: round(os.loadavg()[0] as number),
  };
}
