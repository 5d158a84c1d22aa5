/**
 * Fails when the project's TypeScript modules import each other in a cycle,
 * type-only imports included: a cycle means two rooms that should be one, or a
 * type that lives in the wrong room. Part of `npm run lint`.
 *
 *     node hack/check-import-cycles.ts [dir ...]    (default: dataplane operator kubectl)
 *
 * Prints each cycle as `a.ts → b.ts → a.ts` and exits 1 when there is one.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/** Every .ts file under the given directories. */
export function sourceFiles(dirs: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      if (name === 'node_modules' || name.startsWith('.')) continue;
      const full = path.join(dir, name);
      if (statSync(full).isDirectory()) walk(full);
      else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path.resolve(full));
    }
  };
  for (const d of dirs) walk(d);
  return out;
}

/** The project files a module imports or re-exports (static and dynamic), resolved to absolute paths. */
export function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  const out: string[] = [];
  for (const ref of info.importedFiles) {
    if (!ref.fileName.startsWith('.')) continue;
    const target = path.resolve(path.dirname(file), ref.fileName);
    if (existsSync(target)) out.push(target);
  }
  return out;
}

/** A group of modules that reach each other through imports, and one cycle through it. */
export interface CycleGroup {
  /** Every module of the group, sorted. */
  modules: string[];
  /** A shortest cycle from the group's first module back to itself (first module repeated at the end). */
  cycle: string[];
}

/** The import cycles among `files`: one group per set of modules that import each other, directly or not. */
export function findCycles(files: readonly string[]): CycleGroup[] {
  const graph = new Map(files.map((f) => [f, importsOf(f)] as const));
  // Tarjan's strongly connected components: each component of more than one module (or a module importing itself) holds a cycle.
  let index = 0;
  const indices = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const visit = (v: string): void => {
    indices.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!indices.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, indices.get(w) as number));
      }
    }
    if (low.get(v) === indices.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) components.push(component);
    }
  };
  for (const f of files) if (!indices.has(f)) visit(f);
  // One concrete cycle per component: a shortest path back to its first module, for a readable message.
  return components.map((component) => {
    const members = new Set(component);
    const modules = [...component].sort();
    const start = modules[0] as string;
    const previous = new Map<string, string>();
    const queue = [start];
    while (queue.length > 0) {
      const v = queue.shift() as string;
      for (const w of graph.get(v) ?? []) {
        if (!members.has(w)) continue;
        if (w === start) {
          const cycle = [start];
          for (let u: string | undefined = v; u !== undefined && u !== start; u = previous.get(u)) cycle.splice(1, 0, u);
          return { modules, cycle: [...cycle, start] };
        }
        if (!previous.has(w)) {
          previous.set(w, v);
          queue.push(w);
        }
      }
    }
    return { modules, cycle: [start, start] };
  });
}

if (import.meta.main) {
  const dirs = process.argv.length > 2 ? process.argv.slice(2) : ['dataplane', 'operator', 'kubectl'];
  const root = process.cwd();
  const cycles = findCycles(sourceFiles(dirs));
  for (const c of cycles) {
    process.stderr.write(`import cycle: ${c.cycle.map((f) => path.relative(root, f)).join(' → ')}\n`);
    if (c.modules.length > c.cycle.length - 1) process.stderr.write(`  (one of several among ${c.modules.map((f) => path.relative(root, f)).join(', ')})\n`);
  }
  if (cycles.length > 0) {
    process.stderr.write(`${cycles.length} import cycle(s); move the shared piece into a module both can import\n`);
    process.exit(1);
  }
  process.stdout.write(`no import cycles in ${dirs.join(', ')}\n`);
}
