/**
 * The single-node cluster of hack/cluster.sh, for the node tier: kubectl and helm on a
 * PATH of their own (the binaries hack/ builds), the README's commands as written, and a
 * bounded load generator that counts every request.
 *
 * The cluster itself is started and taken down by test/support/global-setup.ts.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { helmBinary } from './helm.ts';

export const ROOT = path.resolve(import.meta.dirname, '../..');
/** The admin kubeconfig `hack/cluster.sh start` writes. */
export const KUBECONFIG = path.join(ROOT, '.cache', 'cluster', 'kubeconfig');
/** The socket of the cluster's containerd (see hack/cluster.sh). */
const CONTAINERD = '/run/switchyard-node/containerd.sock';

/** What one command printed, and how it ended. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** kubectl, helm and a shell bound to the node's cluster. */
export interface NodeCluster {
  /** Runs kubectl; rejects with its output unless it exits 0. */
  kubectl(args: readonly string[], input?: string): Promise<string>;
  /** `kubectl get ... -o json`, parsed. */
  getJson<T>(args: readonly string[]): Promise<T>;
  /** Runs helm; rejects with its output unless it exits 0. */
  helm(args: readonly string[]): Promise<string>;
  /**
   * Runs a bash script in the repository as a user has it after README's steps: kubectl
   * and helm on PATH, `kubectl switchyard` linked there as `npm link` does, and the
   * Node.js 24 that `npm ci` installs first on PATH.
   */
  shell(script: string, env?: Record<string, string>): Promise<Run>;
}

let cluster: Promise<NodeCluster> | undefined;

/** The cluster's tools; the first call sets up their PATH. */
export function nodeCluster(): Promise<NodeCluster> {
  cluster ??= makeCluster();
  return cluster;
}

async function makeCluster(): Promise<NodeCluster> {
  const paths = JSON.parse(execFileSync(path.join(ROOT, 'hack', 'control-plane.sh'), ['paths'], { encoding: 'utf8' })) as { kubectl: string };
  const helmPath = await helmBinary();
  // The same kubectl and helm binaries, under the names the README uses.
  const home = mkdtempSync(path.join(tmpdir(), 'switchyard-node-tools-'));
  process.on('exit', () => rmSync(home, { recursive: true, force: true }));
  const bin = path.join(home, 'bin');
  mkdirSync(bin);
  symlinkSync(paths.kubectl, path.join(bin, 'kubectl'));
  symlinkSync(helmPath, path.join(bin, 'helm'));
  symlinkSync(path.join(ROOT, 'kubectl', 'bin', 'kubectl-switchyard.ts'), path.join(bin, 'kubectl-switchyard'));
  symlinkSync(process.execPath, path.join(bin, 'node'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: `${bin}:${process.env.PATH ?? ''}`,
    KUBECONFIG,
    HELM_CONFIG_HOME: path.join(home, 'helm-config'),
    HELM_CACHE_HOME: path.join(home, 'helm-cache'),
    HELM_DATA_HOME: path.join(home, 'helm-data'),
  };
  const ok = async (file: string, args: readonly string[], input?: string): Promise<string> => {
    const r = await run(file, args, env, input);
    if (r.code !== 0) throw new Error(`${path.basename(file)} ${args.join(' ')} failed (${r.code}):\n${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  return {
    kubectl: (args, input) => ok(paths.kubectl, args, input),
    getJson: async <T>(args: readonly string[]): Promise<T> => JSON.parse(await ok(paths.kubectl, ['get', ...args, '-o', 'json'])) as T,
    helm: (args) => ok(helmPath, args),
    shell: (script, extra = {}) => run('bash', ['-c', `set -euo pipefail\n${script}`], { ...env, ...extra }),
  };
}

function run(file: string, args: readonly string[], env: NodeJS.ProcessEnv, input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { env, cwd: ROOT, maxBuffer: 64 * 1024 * 1024, timeout: 600_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr: stderr || (error && !stderr ? error.message : '') });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/** Polls `check` every `intervalMs` until it returns a value; fails after `timeoutMs` with the last error. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 1000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Gives an image the node already holds another name, as `docker tag` would: the images
 * are built by hack/images.sh from the Dockerfile's targets, and the README names them
 * after a registry the node never pulls from (pullPolicy IfNotPresent finds them).
 */
export function tagImage(source: string, target: string): void {
  const full = (ref: string): string => (/^[^/]+\.[^/]+\//.test(ref) || ref.startsWith('localhost/') ? ref : `docker.io/${ref}`);
  if (full(source) === full(target)) return;
  execFileSync('ctr', ['--address', CONTAINERD, '--namespace', 'k8s.io', 'images', 'tag', '--force', full(source), full(target)], { stdio: ['ignore', 'ignore', 'pipe'] });
}

// ---------------------------------------------------------------------------------------
// The README

/** The shell blocks of one README section (## TITLE), in order. */
export function readmeBlocks(title: string): string[] {
  const text = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = text.indexOf(`\n## ${title}\n`);
  if (start < 0) throw new Error(`README.md has no section "## ${title}"`);
  const next = text.indexOf('\n## ', start + 1);
  const section = text.slice(start, next < 0 ? undefined : next);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
}

/** One `docker build --target T -t REF .` line of a README block. */
export interface BuildLine {
  target: string;
  ref: string;
}

/** Splits a block into its `docker build` lines and the rest, which runs as it is. */
export function splitBuilds(block: string): { builds: BuildLine[]; script: string } {
  const builds: BuildLine[] = [];
  const rest: string[] = [];
  for (const line of block.split('\n')) {
    const m = /^docker build --target (\S+)\s+-t (\S+) \.$/.exec(line.trim());
    if (m) builds.push({ target: m[1] as string, ref: m[2] as string });
    else rest.push(line);
  }
  return { builds, script: rest.join('\n') };
}

// ---------------------------------------------------------------------------------------
// Load

/** How to send load: bounded in time and in count, and at a steady rate. */
export interface LoadOptions {
  url: string;
  /** Header sets used in turn, one per request (several users spread rate-limit keys). */
  headers: Record<string, string>[];
  ratePerSecond: number;
  concurrency: number;
  maxDurationMs: number;
  maxRequests: number;
  timeoutMs?: number;
}

/** What a load run saw. */
export interface LoadStats {
  sent: number;
  ok: number;
  failed: number;
  /** Failures by status code or error code, with the first few messages. */
  failures: Record<string, number>;
  samples: string[];
  /** Per answering instance (the echo services' `instance`): count and first answer time. */
  instances: Map<string, { count: number; firstAt: number }>;
  startedAt: number;
  endedAt: number;
}

/** A load run in progress. */
export interface Load {
  readonly stats: LoadStats;
  /** Stops sending; resolves once every request in flight has ended. */
  stop(): Promise<LoadStats>;
  /** Resolves when the run ends by itself (time or count) or after stop(). */
  readonly done: Promise<LoadStats>;
}

/** Starts sending requests; only status 200 counts as success. */
export function startLoad(options: LoadOptions): Load {
  // A bad URL fails here, in the test, rather than in each request.
  if (!URL.canParse(options.url)) throw new Error(`load: invalid URL ${options.url}`);
  const agent = new http.Agent({ keepAlive: true, maxSockets: options.concurrency });
  const stats: LoadStats = { sent: 0, ok: 0, failed: 0, failures: {}, samples: [], instances: new Map(), startedAt: Date.now(), endedAt: 0 };
  const interval = 1000 / options.ratePerSecond;
  const deadline = stats.startedAt + options.maxDurationMs;
  let stopped = false;
  let slot = 0;
  const fail = (kind: string, detail: string): void => {
    stats.failed++;
    stats.failures[kind] = (stats.failures[kind] ?? 0) + 1;
    if (stats.samples.length < 5) stats.samples.push(`${new Date().toISOString()} ${kind}: ${detail.slice(0, 200)}`);
  };
  const once = (headers: Record<string, string>): Promise<void> =>
    new Promise((resolve) => {
      const req = http.get(options.url, { agent, headers, timeout: options.timeoutMs ?? 10_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => {
          fail((err as NodeJS.ErrnoException).code ?? 'response error', err.message);
          resolve();
        });
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode !== 200) {
            fail(String(res.statusCode), body);
            return resolve();
          }
          stats.ok++;
          try {
            const instance = (JSON.parse(body) as { instance?: unknown }).instance;
            if (typeof instance === 'string') {
              const seen = stats.instances.get(instance);
              if (seen) seen.count++;
              else stats.instances.set(instance, { count: 1, firstAt: Date.now() });
            }
          } catch {
            // Not every route answers with the echo's JSON.
          }
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(Object.assign(new Error('no answer in time'), { code: 'TIMEOUT' })));
      req.on('error', (err) => {
        fail((err as NodeJS.ErrnoException).code ?? 'request error', err.message);
        resolve();
      });
    });
  const worker = async (): Promise<void> => {
    for (;;) {
      if (stopped || stats.sent >= options.maxRequests || Date.now() >= deadline) return;
      // Slots are shared: the workers together keep the rate, whatever each waits for.
      const at = stats.startedAt + slot++ * interval;
      const wait = at - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      if (stopped || Date.now() >= deadline) return;
      const headers = options.headers[stats.sent % options.headers.length] ?? {};
      stats.sent++;
      await once(headers);
    }
  };
  const done = Promise.all(Array.from({ length: options.concurrency }, () => worker())).then(() => {
    stats.endedAt = Date.now();
    agent.destroy();
    return stats;
  });
  return {
    stats,
    done,
    stop: () => {
      stopped = true;
      return done;
    },
  };
}

/** What a person debugging a failure looks at first: pods, events, and the logs of pods that are not Ready. */
export async function describeCluster(k: NodeCluster, namespaces: readonly string[]): Promise<string> {
  const parts = [await k.kubectl(['get', 'pods', '-A', '-o', 'wide']).catch((e: Error) => e.message)];
  for (const ns of namespaces) {
    parts.push(await k.kubectl(['-n', ns, 'get', 'events', '--sort-by=.lastTimestamp']).then((out) => out.split('\n').slice(-15).join('\n')).catch((e: Error) => e.message));
    const pods = await k.getJson<{ items: { metadata: { name: string }; status: { conditions?: { type: string; status: string }[] } }[] }>(['pods', '-n', ns]).catch(() => ({ items: [] }));
    for (const pod of pods.items.filter((p) => !p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')).slice(0, 3)) {
      const logs = await k.kubectl(['-n', ns, 'logs', pod.metadata.name, '--all-containers', '--tail=20']).catch((e: Error) => e.message);
      parts.push(`logs of ${ns}/${pod.metadata.name}:\n${logs}`);
    }
  }
  return parts.join('\n');
}

/** One line for the log: what was sent and what failed. */
export function describeLoad(what: string, s: LoadStats): string {
  const seconds = ((s.endedAt || Date.now()) - s.startedAt) / 1000;
  const failures = Object.entries(s.failures)
    .map(([k, v]) => `${k}×${v}`)
    .join(', ');
  return `${what}: sent ${s.sent} requests in ${seconds.toFixed(1)} s, ${s.ok} ok, ${s.failed} failed${failures ? ` (${failures})` : ''}`;
}
