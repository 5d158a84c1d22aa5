/**
 * Writes crds/*.yaml from the zod schemas in operator/src/api.
 *   node hack/gen-crds.ts          write the files
 *   node hack/gen-crds.ts --check  exit 1 if a committed file differs
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { crdFiles } from '../operator/src/api/crd.ts';

const root = resolve(import.meta.dirname, '..');
const check = process.argv.includes('--check');
let stale = 0;
for (const file of crdFiles()) {
  const target = join(root, file.path);
  let current: string | undefined;
  try {
    current = readFileSync(target, 'utf8');
  } catch {
    current = undefined;
  }
  if (current === file.content) continue;
  if (check) {
    stale++;
    console.error(`${file.path} is out of date with operator/src/api; run \`npm run gen:crds\``);
  } else {
    writeFileSync(target, file.content);
    console.log(`wrote ${file.path}`);
  }
}
if (stale > 0) process.exitCode = 1;
