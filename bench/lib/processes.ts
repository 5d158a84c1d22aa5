/**
 * Child processes for the benchmarks: pinned to a CPU with taskset where the
 * machine has two or more, stopped by their own pid (never by name), and
 * killed if the benchmark exits without stopping them.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';

/** The repository root. */
export const ROOT = path.resolve(import.meta.dirname, '../..');

/**
 * Which CPU each side runs on. With two or more CPUs the system under test gets
 * CPU 1 to itself, and the load generator shares CPU 0 with the upstream and
 * the benchmark's own process: on a 2-core machine that is the only split that
 * gives the proxy a whole core and keeps it out of the client's way.
 */
export interface CpuPlan {
  pinned: boolean;
  /** The proxy (or whatever is measured). */
  subject: string | undefined;
  /** wrk, the upstream, the orchestrator. */
  load: string | undefined;
}

let hasTaskset: boolean | undefined;
function tasksetAvailable(): boolean {
  if (hasTaskset === undefined) {
    try {
      execFileSync('taskset', ['--version'], { stdio: 'ignore' });
      hasTaskset = true;
    } catch {
      hasTaskset = false;
    }
  }
  return hasTaskset;
}

let plan: CpuPlan | undefined;

/** The CPU split for this machine, or no pinning when it has one CPU or no taskset. */
export function cpuPlan(): CpuPlan {
  // The machine's CPUs, not this process's affinity: the benchmark pins itself to one of them.
  plan ??= cpus().length < 2 || !tasksetAvailable() ? { pinned: false, subject: undefined, load: undefined } : { pinned: true, subject: '1', load: '0' };
  return plan;
}

/** Pins this process (every thread) to `cpu`; a no-op without a plan. */
export function pinSelf(cpu: string | undefined): void {
  if (cpu === undefined || !tasksetAvailable()) return;
  execFileSync('taskset', ['-a', '-p', '-c', cpu, String(process.pid)], { stdio: 'ignore' });
}

/** A process the benchmark started. */
export interface Child {
  readonly name: string;
  readonly pid: number;
  readonly proc: ChildProcess;
  /** Resolves with the exit code (or null after a signal). */
  readonly exited: Promise<number | null>;
  /** stdout and stderr collected so far, when they were piped (the last 64 KiB). */
  output(): string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it exited. */
  stop(graceMs?: number): Promise<void>;
}

const running = new Set<Child>();

/** Signals the child's whole process group (nginx's workers outlive a killed master otherwise). */
function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

process.on('exit', () => {
  for (const c of running) killGroup(c.pid, 'SIGKILL');
});

/** Options for launch(). */
export interface LaunchOptions {
  /** CPU list for taskset; undefined runs unpinned. */
  cpu?: string | undefined;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Where stdout goes: collected in memory (default), discarded, or appended to a file. */
  stdout?: 'pipe' | 'ignore' | { file: string };
}

/** Starts `cmd args`, pinned when `cpu` is given. */
export function launch(name: string, cmd: string, args: readonly string[], options: LaunchOptions = {}): Child {
  const pinned = options.cpu !== undefined && tasksetAvailable();
  const argv = pinned ? ['taskset', '-c', options.cpu as string, cmd, ...args] : [cmd, ...args];
  let fd: number | undefined;
  let stdout: 'pipe' | 'ignore' | number = 'pipe';
  if (options.stdout === 'ignore') stdout = 'ignore';
  else if (typeof options.stdout === 'object') stdout = fd = openSync(options.stdout.file, 'a');
  const proc = spawn(argv[0] as string, argv.slice(1), {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', stdout, 'pipe'],
    // Its own process group, so one kill reaches everything it forked.
    detached: true,
  });
  if (fd !== undefined) closeSync(fd);
  if (proc.pid === undefined) throw new Error(`${name}: could not start ${argv.join(' ')}`);
  let buffer = '';
  const collect = (d: Buffer): void => {
    buffer += d.toString();
    if (buffer.length > 128 * 1024) buffer = buffer.slice(-64 * 1024);
  };
  proc.stdout?.on('data', collect);
  proc.stderr?.on('data', collect);
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const child: Child = {
    name,
    pid: proc.pid,
    proc,
    exited,
    output: () => buffer,
    stop: async (graceMs = 5_000) => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => killGroup(proc.pid as number, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      // Anything the child forked and left behind.
      killGroup(proc.pid as number, 'SIGKILL');
      running.delete(child);
    },
  };
  running.add(child);
  void exited.then(() => running.delete(child));
  return child;
}

/** Runs a command to completion (bounded by `timeoutMs`) and returns its stdout. */
export function runToEnd(name: string, cmd: string, args: readonly string[], options: LaunchOptions & { timeoutMs: number }): Promise<{ code: number | null; output: string }> {
  const child = launch(name, cmd, args, options);
  const timer = setTimeout(() => killGroup(child.pid, 'SIGKILL'), options.timeoutMs);
  return child.exited.then((code) => {
    clearTimeout(timer);
    return { code, output: child.output() };
  });
}

/** A free TCP port on 127.0.0.1 (the tests' helper; one implementation for both). */
export { freePort } from '../../test/support/processes.ts';

/** Waits until 127.0.0.1:port accepts connections; fails with the child's output after `timeoutMs`. */
export async function waitForPort(port: number, child: Child | undefined, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.proc.exitCode !== null) throw new Error(`${child.name} exited (${child.proc.exitCode}):\n${child.output().slice(-2000)}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`${child?.name ?? 'server'}: port ${port} not open within ${timeoutMs} ms\n${child?.output().slice(-2000) ?? ''}`);
}

/** Waits until `GET url` answers `status`. */
export async function waitForStatus(url: string, status: number, child: Child | undefined, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (child && child.proc.exitCode !== null) throw new Error(`${child.name} exited (${child.proc.exitCode}):\n${child.output().slice(-2000)}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.status === status) return;
      last = `status ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(50);
  }
  throw new Error(`${child?.name ?? url}: no ${status} from ${url} within ${timeoutMs} ms (last: ${last})\n${child?.output().slice(-2000) ?? ''}`);
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A temporary directory, removed by the returned function. */
export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), `switchyard-bench-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** CPU time (user + system, seconds) and resident memory (bytes) of a live process, from /proc. */
export function procUsage(pid: number): { cpuSeconds: number; rssBytes: number } | undefined {
  const statFile = `/proc/${pid}/stat`;
  if (!existsSync(statFile)) return undefined;
  try {
    const stat = readFileSync(statFile, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = 100; // USER_HZ on Linux
    const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / ticks;
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = /VmRSS:\s+(\d+) kB/.exec(status);
    return { cpuSeconds, rssBytes: rss ? Number(rss[1]) * 1024 : 0 };
  } catch {
    return undefined;
  }
}
