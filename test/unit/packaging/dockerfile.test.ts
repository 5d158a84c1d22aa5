/**
 * The Dockerfile's promises, checked without a Docker engine: Node.js 24, only
 * production dependencies, a numeric non-root user, exec-form entrypoints, and
 * images that hold every file their entrypoint imports (the import graph is
 * walked from each entrypoint). hadolint lints the same file in
 * test/controlplane/packaging/tools.test.ts; image-runtime.test.ts there runs
 * the entrypoints from a production-only install.
 */
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../../..');

/** One build stage: its base, its instructions (continuation lines joined). */
export interface Stage {
  name: string;
  from: string;
  instructions: { op: string; args: string }[];
}

/** Parses the Dockerfile into its global ARG defaults and its stages. */
export function parseDockerfile(text: string): { args: Record<string, string>; stages: Stage[] } {
  const lines = text.replace(/\\\n/g, ' ').split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const line of lines) {
    const [op = '', ...rest] = line.split(/\s+/);
    const argText = rest.join(' ');
    if (op.toUpperCase() === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(argText);
      if (!m) throw new Error(`cannot parse ${line}`);
      stages.push({ name: m[2] ?? String(stages.length), from: m[1] as string, instructions: [] });
    } else if (stages.length === 0 && op.toUpperCase() === 'ARG') {
      const [k, v = ''] = argText.split('=');
      args[k as string] = v;
    } else {
      stages.at(-1)?.instructions.push({ op: op.toUpperCase(), args: argText });
    }
  }
  return { args, stages };
}

const dockerfile = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
const stage = (name: string): Stage => {
  const s = dockerfile.stages.find((x) => x.name === name);
  if (!s) throw new Error(`no stage ${name}`);
  return s;
};
/** The stage and the stages it is built on, base first. */
const chain = (name: string): Stage[] => {
  const s = stage(name);
  const parent = dockerfile.stages.find((x) => x.name === s.from);
  return parent ? [...chain(parent.name), s] : [s];
};
const instructions = (name: string, op: string): string[] => chain(name).flatMap((s) => s.instructions.filter((i) => i.op === op).map((i) => i.args));

/** Paths (relative to the repository) that COPY puts into a stage from the build context. */
const copiedPaths = (name: string): string[] =>
  instructions(name, 'COPY')
    .filter((a) => !a.startsWith('--from'))
    .flatMap((a) => a.split(/\s+/).slice(0, -1))
    .map((p) => p.replace(/\/$/, ''));

const TARGETS = { dataplane: 'dataplane/bin/switchyard-dataplane.ts', operator: 'operator/bin/switchyard-operator.ts', examples: 'examples/kubernetes/services/serve.ts' } as const;

describe('Dockerfile', () => {
  it('builds every stage on Node.js 24', () => {
    for (const s of dockerfile.stages) {
      const base = s.from.replace(/^\$\{(\w+)\}$/, (_, v: string) => dockerfile.args[v] ?? '');
      if (dockerfile.stages.some((x) => x.name === s.from)) continue;
      expect(base, `stage ${s.name}`).toMatch(/^node:24[.-]/);
    }
  });

  it('installs production dependencies only, from the lockfile', () => {
    const runs = instructions('deps', 'RUN').join('\n');
    expect(runs).toMatch(/npm ci\b[^\n]*--omit=dev/);
    expect(runs).not.toMatch(/npm (install|i)\b/);
  });

  for (const [target, entry] of Object.entries(TARGETS)) {
    describe(`target ${target}`, () => {
      it('runs as a numeric, non-root user', () => {
        const user = instructions(target, 'USER').at(-1);
        expect(user, 'a USER instruction').toBeDefined();
        const [uid] = (user as string).split(':');
        expect(uid).toMatch(/^\d+$/);
        expect(Number(uid)).toBeGreaterThan(0);
      });

      it('starts node itself with an exec-form ENTRYPOINT, so SIGTERM reaches it', () => {
        const entrypoint = instructions(target, 'ENTRYPOINT').at(-1) ?? '';
        const argv = JSON.parse(entrypoint) as string[];
        expect(argv).toEqual(['node', entry]);
        expect(existsSync(path.join(ROOT, entry))).toBe(true);
      });

      it('holds every file its entrypoint imports, and needs no devDependency', () => {
        const copied = copiedPaths(target);
        const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
        const { files, packages } = importGraph(path.join(ROOT, entry));
        const missing = files.map((f) => path.relative(ROOT, f)).filter((f) => !copied.some((c) => f === c || f.startsWith(`${c}/`)));
        expect(missing, `imported but not copied into the ${target} image`).toEqual([]);
        const notProduction = packages.filter((p) => !(p in pkg.dependencies));
        expect(notProduction, 'bare imports that are not production dependencies').toEqual([]);
      });
    });
  }

  it('lets every copied path through .dockerignore', () => {
    const ignore = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    expect(ignore[0]).toBe('**');
    const allowed = ignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1).replace(/\/$/, ''));
    const copied = new Set(Object.keys(TARGETS).flatMap((t) => copiedPaths(t)).concat(instructions('deps', 'COPY').flatMap((a) => a.split(/\s+/).slice(0, -1))));
    for (const p of copied) expect(allowed, p).toContain(p.replace(/\/$/, ''));
  });
});

const IMPORT = /(?:^|[\n;])\s*(?:import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]/g;

/** Every file reachable from an entrypoint through runtime imports, and the packages it names. */
function importGraph(entry: string): { files: string[]; packages: string[] } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const builtins = new Set(builtinModules);
  const visit = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    if (!file.endsWith('.ts')) return;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      if (m[1]) continue; // `import type` is erased
      const spec = (m[2] ?? m[3]) as string;
      if (spec.startsWith('.')) {
        visit(path.resolve(path.dirname(file), spec));
      } else if (!spec.startsWith('node:') && !builtins.has(spec)) {
        const parts = spec.split('/');
        packages.add(spec.startsWith('@') ? `${parts[0]}/${parts[1]}` : (parts[0] as string));
      }
    }
  };
  visit(entry);
  return { files: [...files].sort(), packages: [...packages].sort() };
}
