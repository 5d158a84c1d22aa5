/**
 * The images' file system without a Docker engine: a directory laid out as the
 * Dockerfile lays out /app (the paths its COPY instructions name, and
 * `npm ci --omit=dev`), outside the repository so that no devDependency can be
 * found. Each target's entrypoint must run from it on Node.js 24: the data
 * plane serves /health and /ready and exits 0 on SIGTERM, the operator loads
 * every module, the example service answers.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copiedPaths, parseDockerfile, stageInstructions } from '../../support/dockerfile.ts';
import { ROOT, runTool } from '../../support/helm.ts';
import { eventually } from '../../support/kube.ts';
import { freePort } from '../../support/processes.ts';
import { spawn } from 'node:child_process';

const dockerfile = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));

/** Runs `node <entry> args` from the image directory; resolves with its exit code and output. */
function start(app: string, entry: string, args: string[], env: NodeJS.ProcessEnv): { exited: Promise<number | null>; output: () => string; kill: (s: NodeJS.Signals) => void } {
  // The environment is the image's: no NODE_OPTIONS or NODE_PATH from the test runner.
  const child = spawn(process.execPath, [entry, ...args], { cwd: app, env: { PATH: process.env.PATH, NODE_ENV: 'production', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  process.once('exit', () => child.kill('SIGKILL'));
  return { exited, output: () => out, kill: (s) => child.kill(s) };
}

describe('the images, laid out from the Dockerfile', () => {
  const app = mkdtempSync(path.join(tmpdir(), 'switchyard-image-'));

  beforeAll(async () => {
    for (const spec of stageInstructions(dockerfile, 'deps', 'COPY')) {
      for (const file of spec.split(/\s+/).slice(0, -1)) cpSync(path.join(ROOT, file), path.join(app, file));
    }
    const npmCi = (stageInstructions(dockerfile, 'deps', 'RUN').find((r) => r.includes('npm ci')) ?? '').split('&&')[0]?.trim().split(/\s+/) ?? [];
    expect(npmCi.slice(0, 2)).toEqual(['npm', 'ci']);
    const r = await runTool('npm', [...npmCi.slice(1), '--prefer-offline'], { cwd: app });
    if (r.code !== 0) throw new Error(`npm ci in ${app} failed:\n${r.stderr}`);
    for (const target of ['dataplane', 'operator', 'examples']) {
      for (const p of copiedPaths(dockerfile, target)) cpSync(path.join(ROOT, p), path.join(app, p), { recursive: true });
    }
  }, 300_000);

  afterAll(() => rmSync(app, { recursive: true, force: true }));

  it('installs no devDependency', () => {
    const lock = JSON.parse(readFileSync(path.join(app, 'node_modules', '.package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
    const installed = Object.keys(lock.packages);
    // Some devDependencies (type packages) are also dependencies of production packages; the tools never are.
    for (const tool of ['typescript', 'vitest', 'eslint', 'node', 'autocannon']) expect(installed, tool).not.toContain(`node_modules/${tool}`);
    expect(Object.entries(lock.packages).filter(([, v]) => v.dev).map(([k]) => k)).toEqual([]);
  });

  it('runs the data plane: /health, /ready, and exit 0 on SIGTERM', async () => {
    const port = await freePort();
    const config = path.join(app, 'gateway.yaml');
    writeFileSync(
      config,
      `server: { bind_address: 127.0.0.1, shutdown: { drain_delay: 0s, grace_period: 1s } }
routes: [{ path: /x, upstream: x }]
upstreams: { x: { discovery: { type: Static, endpoints: ["http://127.0.0.1:9"] } } }
`,
    );
    const dp = start(app, 'dataplane/bin/switchyard-dataplane.ts', ['--config', config], { GATEWAY_SERVER_HTTP_PORT: String(port), GATEWAY_SERVER_ADMIN_PORT: '0', GATEWAY_SERVER_METRICS_PORT: '0' });
    try {
      await eventually(async () => ((await fetch(`http://127.0.0.1:${port}/health`)).ok ? true : undefined), 30_000, `the data plane to answer /health:\n${dp.output()}`);
      expect((await fetch(`http://127.0.0.1:${port}/ready`)).status).toBe(200);
    } finally {
      dp.kill('SIGTERM');
    }
    expect(await dp.exited).toBe(0);
    expect(dp.output()).not.toMatch(/ERR_|Cannot find/);
  });

  it('runs the operator entrypoint (every module loads)', async () => {
    const op = start(app, 'operator/bin/switchyard-operator.ts', ['--help'], {});
    expect(await op.exited).toBe(0);
    expect(op.output()).toContain('Usage: switchyard-operator');
  });

  it('runs an example service', async () => {
    const port = await freePort();
    const svc = start(app, 'examples/kubernetes/services/serve.ts', ['auth-service'], { HOST: '127.0.0.1', PORT: String(port), JWT_SECRET: 'an-example-secret-of-at-least-32-bytes' });
    try {
      await eventually(async () => ((await fetch(`http://127.0.0.1:${port}/health`)).ok ? true : undefined), 30_000, `the example service to answer:\n${svc.output()}`);
    } finally {
      svc.kill('SIGTERM');
    }
    expect(await svc.exited).toBe(0);
  });
});
