/**
 * The guards of the golden tests (test/support/golden.ts): UPDATE_GOLDEN is
 * refused when CI is set, since a rewrite would compare each file with itself;
 * an output without its input and an input without its output are both found.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { goldenCases, updatingGolden } from '../../support/golden.ts';

describe('golden guards', () => {
  const saved = { CI: process.env.CI, UPDATE_GOLDEN: process.env.UPDATE_GOLDEN };
  afterEach(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  const env = (ci: string | undefined, update: string | undefined): void => {
    if (ci === undefined) delete process.env.CI;
    else process.env.CI = ci;
    if (update === undefined) delete process.env.UPDATE_GOLDEN;
    else process.env.UPDATE_GOLDEN = update;
  };

  it('refuses UPDATE_GOLDEN=1 when CI is set, as .ci/run sets it', () => {
    env('1', '1');
    expect(() => updatingGolden()).toThrow('UPDATE_GOLDEN=1 with CI set: golden files would be compared with themselves. Regenerate them outside CI and commit the diff.');
    env('true', '1');
    expect(() => updatingGolden()).toThrow('UPDATE_GOLDEN=1 with CI set');
  });

  it('rewrites only when asked, outside CI', () => {
    env(undefined, '1');
    expect(updatingGolden()).toBe(true);
    env('false', '1');
    expect(updatingGolden()).toBe(true);
    env('1', undefined);
    expect(updatingGolden()).toBe(false);
    env(undefined, undefined);
    expect(updatingGolden()).toBe(false);
  });

  it('finds outputs left without their input and inputs without their output', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'switchyard-golden-'));
    try {
      for (const f of ['paired.in.yaml', 'paired.out.yaml', 'no-output.in.yaml', 'orphan.out.yaml', 'README']) writeFileSync(path.join(dir, f), '');
      expect(goldenCases(dir, '.in.yaml', '.out.yaml')).toEqual({ cases: ['no-output', 'paired'], orphans: ['orphan.out.yaml'], missing: ['no-output.out.yaml'] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
