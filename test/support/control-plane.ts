// A fresh, real Kubernetes control plane per call: etcd, kube-apiserver (RBAC on) and
// kube-controller-manager (EndpointSlice, namespace, garbage collector and service
// account controllers) on 127.0.0.1, on free ports, in a temporary directory.
//
// The binaries come from hack/control-plane.sh (built from the Kubernetes Go modules and
// cached, or taken from KUBEBUILDER_ASSETS); its launcher makes the PKI, starts the
// programs and prints one JSON line once /readyz is ok and the default service account
// exists. See docs/control-plane.md.

import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync, readSync, rmSync } from 'node:fs';
import http from 'node:http';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** A running control plane; stop() ends every process it started and removes its files. */
export interface ControlPlane {
  /** Path of an admin kubeconfig (system:masters), certificates embedded. */
  readonly kubeconfigPath: string;
  /** The same kubeconfig as YAML text, for KubeConfig.loadFromString(). */
  readonly kubeconfig: string;
  /** The API server's URL, https://127.0.0.1:PORT. */
  readonly server: string;
  /** Path of the kubectl binary built from the same Kubernetes release. */
  readonly kubectl: string;
  /** The Kubernetes release, e.g. v1.35.4. */
  readonly version: string;
  /** Directory with each program's log while the control plane runs. */
  readonly logDir: string;
  /** etcd's client URL, http://127.0.0.1:PORT. */
  readonly etcd: string;
  /**
   * Stops one program and starts it again on the same ports (etcd keeps its data);
   * resolves once it serves again. `signal` KILL stops it without a chance to clean up;
   * `downMs` keeps it stopped that long first.
   */
  restart(component: ControlPlaneComponent, options?: { signal?: 'TERM' | 'KILL'; downMs?: number }): Promise<void>;
  /** Freezes one program (SIGSTOP): its sockets stay open and nothing answers. */
  pause(component: ControlPlaneComponent): Promise<void>;
  /** Lets a paused program run again (SIGCONT). */
  resume(component: ControlPlaneComponent): Promise<void>;
  /** Stops the control plane; safe to call more than once. */
  stop(): Promise<void>;
}

/** The programs of the control plane that restart(), pause() and resume() act on. */
export type ControlPlaneComponent = 'etcd' | 'kube-apiserver' | 'kube-controller-manager';

/** Options for startControlPlane(). */
export interface ControlPlaneOptions {
  /** kube-controller-manager --controllers; '' runs no controller manager. */
  readonly controllers?: string;
  /** How long startup may take, in milliseconds (default 120 000). */
  readonly timeoutMs?: number;
}

interface Paths {
  readonly built: boolean;
  readonly version: string;
  readonly controlPlane: string;
  readonly binDir: string;
  readonly kubectl: string;
}

interface ReadyLine {
  readonly kubeconfig: string;
  readonly server: string;
  readonly etcd: string;
}

const repoRoot = resolve(import.meta.dirname, '../..');
const script = join(repoRoot, 'hack', 'control-plane.sh');
const stopGraceMs = 15_000;

/** Starts a fresh control plane and resolves once its API server is ready. */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const paths = await ensureBuilt();
  // The launcher owns this directory and removes it when it stops, even when this
  // process was killed outright and no cleanup of ours ran.
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-control-plane-'));

  const args = ['run', '--dir', dir, '--bin-dir', paths.binDir, '--watch-parent', '--remove-dir'];
  if (options.controllers !== undefined) args.push(`--controllers=${options.controllers}`);
  const timeoutMs = options.timeoutMs ?? 120_000;
  args.push(`--timeout=${Math.ceil(timeoutMs / 1000)}s`);

  // The launcher's own messages go to a file inside the directory. This process keeps the
  // file open, so a startup failure can still be read after the launcher removed it.
  const logFd = openSync(join(dir, 'control-plane.log'), 'w+');
  // detached: the launcher leads a new process group, which its programs join, so one
  // group kill reaches all of them.
  const child = spawn(paths.controlPlane, args, { detached: true, stdio: ['ignore', 'pipe', logFd] });
  const pid = child.pid;
  if (pid === undefined) {
    closeSync(logFd);
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`control plane: could not start ${paths.controlPlane}`);
  }

  // Last resort when the test process exits without calling stop(): synchronous, as exit
  // handlers must be. A process killed outright runs no handler; the launcher watches
  // its parent for that case and stops itself.
  const onExit = (): void => {
    killGroup(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', onExit);

  // A test that forgets stop() must not keep this process alive; the exit handler above
  // still ends the control plane.
  child.unref();

  const exited = new Promise<void>((resolveExit) => {
    if (child.exitCode !== null || child.signalCode !== null) resolveExit();
    else child.once('exit', () => resolveExit());
  });

  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async (): Promise<void> => {
      // SIGTERM to the launcher alone: it stops its programs in order. Then the group
      // kill removes anything that survived the grace period.
      killProcess(pid, 'SIGTERM');
      const timer = delay(stopGraceMs);
      await Promise.race([exited, timer.promise]);
      timer.cancel();
      killGroup(pid, 'SIGKILL');
      await waitGroupGone(pid);
      process.removeListener('exit', onExit);
      closeSync(logFd);
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };

  let ready: ReadyLine;
  try {
    ready = await readReadyLine(child, exited, timeoutMs + 10_000);
  } catch (error) {
    const log = readWhole(logFd);
    await stop();
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`control plane did not start: ${reason}\n${lastLines(log, 60)}`, { cause: error });
  }

  return {
    kubeconfigPath: ready.kubeconfig,
    kubeconfig: readFileSync(ready.kubeconfig, 'utf8'),
    server: ready.server,
    kubectl: paths.kubectl,
    version: paths.version,
    logDir: join(dir, 'logs'),
    etcd: ready.etcd,
    restart: async (component, opts = {}) => {
      const query = new URLSearchParams({ component, signal: opts.signal ?? 'TERM', down: `${opts.downMs ?? 0}ms` });
      await control(dir, 'POST', `/v1/restart?${query}`);
    },
    pause: async (component) => {
      await control(dir, 'POST', `/v1/pause?component=${component}`);
    },
    resume: async (component) => {
      await control(dir, 'POST', `/v1/resume?component=${component}`);
    },
    stop,
  };
}

/** One request to the launcher's control socket (hack/control-plane/cmd/control-plane/control.go). */
function control(dir: string, method: string, path: string): Promise<string> {
  return new Promise((resolveControl, rejectControl) => {
    const req = http.request({ socketPath: join(dir, 'control.sock'), method, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        if (res.statusCode === 200) resolveControl(body);
        else rejectControl(new Error(`control plane: ${method} ${path}: ${res.statusCode ?? 0} ${body.trim()}`));
      });
    });
    req.on('error', rejectControl);
    req.end();
  });
}

/** Builds the binaries with hack/control-plane.sh unless they are already cached. */
async function ensureBuilt(): Promise<Paths> {
  let paths = await readPaths();
  if (paths.built) return paths;
  const result = await run('bash', [script, 'build']);
  if (result.code !== 0) {
    const goMissing = result.stderr.includes('Go is not installed');
    throw new Error(
      (goMissing
        ? 'control plane: Go is needed to build the test control plane. Install Go (see the required version in hack/control-plane/go.mod) or set KUBEBUILDER_ASSETS.\n'
        : 'control plane: `hack/control-plane.sh build` failed.\n') + lastLines(result.stderr, 60),
    );
  }
  paths = await readPaths();
  if (!paths.built) throw new Error('control plane: `hack/control-plane.sh build` succeeded but the binaries are still missing');
  return paths;
}

async function readPaths(): Promise<Paths> {
  const result = await run('bash', [script, 'paths']);
  if (result.code !== 0) throw new Error(`control plane: \`hack/control-plane.sh paths\` failed:\n${result.stderr}`);
  return JSON.parse(result.stdout) as Paths;
}

interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function run(file: string, args: readonly string[]): Promise<RunResult> {
  return new Promise((resolveRun) => {
    execFile(file, args, { maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolveRun({ code, stdout, stderr: stderr || (error?.message ?? '') });
    });
  });
}

/** Resolves with the launcher's JSON line, or rejects if it exits or times out first. */
function readReadyLine(child: ChildProcess, exited: Promise<void>, timeoutMs: number): Promise<ReadyLine> {
  const stdout = child.stdout;
  if (stdout === null) return Promise.reject(new Error('no stdout pipe'));
  return new Promise<ReadyLine>((resolveReady, rejectReady) => {
    let buffered = '';
    let settled = false;
    const timer = delay(timeoutMs);
    const finish = (outcome: { line: ReadyLine } | { error: Error }): void => {
      if (settled) return;
      settled = true;
      timer.cancel();
      stdout.removeListener('data', onData);
      // The launcher writes nothing more to stdout; closing the pipe lets this process
      // exit even while the control plane runs.
      stdout.destroy();
      if ('line' in outcome) resolveReady(outcome.line);
      else rejectReady(outcome.error);
    };
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString('utf8');
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      try {
        const parsed = JSON.parse(buffered.slice(0, newline)) as Partial<ReadyLine>;
        if (typeof parsed.kubeconfig !== 'string' || typeof parsed.server !== 'string' || typeof parsed.etcd !== 'string') {
          throw new Error(`unexpected line from the launcher: ${buffered.slice(0, newline)}`);
        }
        finish({ line: { kubeconfig: parsed.kubeconfig, server: parsed.server, etcd: parsed.etcd } });
      } catch (error) {
        finish({ error: error instanceof Error ? error : new Error(String(error)) });
      }
    };
    stdout.on('data', onData);
    void exited.then(() => finish({ error: new Error(`the launcher exited (code ${String(child.exitCode)}, signal ${String(child.signalCode)})`) }));
    void timer.promise.then(() => finish({ error: new Error(`not ready within ${String(timeoutMs)} ms`) }));
  });
}

function killProcess(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  killProcess(-pid, signal);
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits until no process of the group is left (a killed process may take a moment). */
async function waitGroupGone(pid: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (groupAlive(pid) && Date.now() < deadline) {
    await delay(20).promise;
  }
}

function delay(ms: number): { promise: Promise<void>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<void>((resolveDelay) => {
    timer = setTimeout(resolveDelay, ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

/** Reads a file from its start through an open descriptor, whether or not it was unlinked. */
function readWhole(fd: number): string {
  const buffer = Buffer.alloc(fstatSync(fd).size);
  const length = buffer.length > 0 ? readSync(fd, buffer, 0, buffer.length, 0) : 0;
  return buffer.subarray(0, length).toString('utf8');
}

function lastLines(text: string, count: number): string {
  return text.trimEnd().split('\n').slice(-count).join('\n');
}
