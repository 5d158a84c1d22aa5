/**
 * A network namespace that plays the pod network: a veth pair, the host end
 * on this machine, the other end inside the namespace with one address per
 * "pod". Tests send traffic only to these addresses, which exist nowhere else.
 * Needs root and iproute2; fails (never skips) and says so otherwise.
 */
import { execFileSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import path from 'node:path';
import { startProcess, type Proc } from './processes.ts';

/** A pod network and the pods started in it. */
export interface PodNetwork {
  readonly namespace: string;
  /** Reserves the next pod address (10.213.N.10, .11, …). */
  allocate(): string;
  /** Starts an example service listening on `ip:port` inside the namespace. */
  startPod(kind: 'auth' | 'echo', name: string, ip: string, port: number, secret?: string): Promise<Proc>;
  destroy(): Promise<void>;
}

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** Creates the namespace and the veth pair. */
export function createPodNetwork(): PodNetwork {
  if (process.getuid?.() !== 0) throw new Error('the end-to-end tests create a network namespace and need root (run them as root, as CI does)');
  try {
    ip('-V');
  } catch {
    throw new Error('the end-to-end tests need iproute2 ("ip"): apt-get install iproute2');
  }
  const id = `${process.pid % 10000}${randomInt(100)}`;
  const namespace = `sy-e2e-${id}`;
  const subnet = `10.213.${randomInt(1, 250)}`;
  const hostIf = `syh${id}`;
  const podIf = `syp${id}`;
  ip('netns', 'add', namespace);
  ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', podIf);
  ip('link', 'set', podIf, 'netns', namespace);
  ip('addr', 'add', `${subnet}.1/24`, 'dev', hostIf);
  ip('link', 'set', hostIf, 'up');
  ip('netns', 'exec', namespace, 'ip', 'link', 'set', 'lo', 'up');
  ip('netns', 'exec', namespace, 'ip', 'link', 'set', podIf, 'up');
  let next = 10;
  const pods: Proc[] = [];
  const cleanup = (): void => {
    try {
      ip('link', 'del', hostIf);
    } catch {
      /* already gone */
    }
    try {
      ip('netns', 'del', namespace);
    } catch {
      /* already gone */
    }
  };
  process.on('exit', cleanup);
  return {
    namespace,
    allocate: () => {
      const address = `${subnet}.${next++}`;
      ip('netns', 'exec', namespace, 'ip', 'addr', 'add', `${address}/24`, 'dev', podIf);
      return address;
    },
    startPod: async (kind, name, address, port, secret) => {
      const proc = startProcess(path.join('test/support/pod-server.ts'), [kind, name, address, String(port), ...(secret ? [secret] : [])], {}, ['ip', 'netns', 'exec', namespace]);
      pods.push(proc);
      await proc.waitForLog(`listening ${address}:${port}`);
      return proc;
    },
    destroy: async () => {
      await Promise.all(pods.map((p) => p.kill('SIGKILL')));
      cleanup();
      process.off('exit', cleanup);
    },
  };
}
