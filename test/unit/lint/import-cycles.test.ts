import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { findCycles, sourceFiles } from '../../../hack/check-import-cycles.ts';

describe('import cycle check', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'switchyard-cycles-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, text: string): string => {
    const file = path.join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  it('reports two modules that import each other when one side imports only a type', () => {
    const a = write('a.ts', "import type { B } from './b.ts';\nexport interface A { b: B }\nexport const a = 1;\n");
    const b = write('b.ts', "import { a } from './a.ts';\nexport interface B { n: number }\nexport const b = a + 1;\n");
    const c = write('c.ts', "import { a } from './a.ts';\nexport const c = a;\n");
    const cycles = findCycles([a, b, c]);
    expect(cycles).toHaveLength(1);
    expect(cycles[0]?.modules).toEqual([a, b]);
    expect(cycles[0]?.cycle).toEqual([a, b, a]);
  });

  it('reports a cycle made of type-only imports', () => {
    const x = write('x.ts', "import type { Y } from './y.ts';\nexport interface X { y?: Y }\n");
    const y = write('y.ts', "import type { X } from './x.ts';\nexport interface Y { x?: X }\n");
    expect(findCycles([x, y]).map((c) => c.cycle)).toEqual([[x, y, x]]);
  });

  it('finds none in dataplane/ and operator/', () => {
    const cycles = findCycles(sourceFiles(['dataplane', 'operator']));
    expect(cycles.map((c) => c.cycle.map((f) => path.relative(process.cwd(), f)).join(' → '))).toEqual([]);
  });
});
