/**
 * Checks, once per run, that the tools the suites use are installed, and fails
 * the run with what to install otherwise: no tier skips silently.
 */
import { execFileSync } from 'node:child_process';

const TOOLS: { bin: string; args: string[]; install: string }[] = [
  { bin: 'promtool', args: ['--version'], install: 'apt-get install prometheus (Debian) for promtool' },
  { bin: 'redis-server', args: ['--version'], install: 'apt-get install redis-server' },
];

export default function setup(): void {
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 24) throw new Error(`Node.js ${process.versions.node} runs the tests; Switchyard needs Node.js 24 or newer. Run the tests with "npm test", which uses the Node.js 24 that "npm ci" installs.`);
  const missing = TOOLS.filter((t) => {
    try {
      execFileSync(t.bin, t.args, { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) throw new Error(`missing test tools: ${missing.map((t) => `${t.bin} (${t.install})`).join('; ')}. .ci/run installs them.`);
}
