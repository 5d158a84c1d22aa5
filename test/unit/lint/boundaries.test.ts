/**
 * The operator reaches the data plane only through its contract module; eslint
 * (`@typescript-eslint/no-restricted-imports` in eslint.config.js) enforces it.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ESLint } from 'eslint';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// The config is type-aware, and its project service lints only files that exist, so the snippets are real files under operator/src/.
const FIXTURE_DIR = path.join('operator', 'src', `__lint_fixture_${process.pid}__`);

describe('operator import boundary', () => {
  let eslint: ESLint;
  beforeAll(() => {
    mkdirSync(FIXTURE_DIR, { recursive: true });
    eslint = new ESLint({ cwd: process.cwd() });
  });
  afterAll(() => rmSync(FIXTURE_DIR, { recursive: true, force: true }));

  const lint = async (name: string, code: string): Promise<{ ruleId: string | null; message: string }[]> => {
    const filePath = path.join(FIXTURE_DIR, name);
    writeFileSync(filePath, code);
    const [result] = await eslint.lintText(code, { filePath });
    return (result?.messages ?? []).map((m) => ({ ruleId: m.ruleId, message: m.message }));
  };

  it('refuses a data-plane module other than the contract', async () => {
    const messages = await lint('matcher.ts', "import { compileMatcher } from '../../../dataplane/src/routing/matcher.ts';\n\nexport const matcher: unknown = compileMatcher;\n");
    expect(messages).toEqual([expect.objectContaining({ ruleId: '@typescript-eslint/no-restricted-imports', message: expect.stringContaining('dataplane/src/contract/index.ts') })]);
  }, 60_000);

  it('allows the contract module', async () => {
    const messages = await lint('contract.ts', "import { tableVersion } from '../../../dataplane/src/contract/index.ts';\n\nexport const version: unknown = tableVersion;\n");
    expect(messages).toEqual([]);
  }, 60_000);
});
