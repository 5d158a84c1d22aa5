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
import { copiedPaths, parseDockerfile, stageInstructions } from '../../support/dockerfile.ts';

const ROOT = path.resolve(import.meta.dirname, '../../..');

const dockerfile = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
const instructions = (name: string, op: string): string[] => stageInstructions(dockerfile, name, op);

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
        const copied = copiedPaths(dockerfile, target);
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
    const copied = new Set(Object.keys(TARGETS).flatMap((t) => copiedPaths(dockerfile, t)).concat(instructions('deps', 'COPY').flatMap((a) => a.split(/\s+/).slice(0, -1))));
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
