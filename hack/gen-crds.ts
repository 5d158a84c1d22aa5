/**
 * Writes crds/*.yaml (and their copies in the Helm chart's crds/) and the field
 * reference in docs/resources.md from the zod schemas in operator/src/api.
 *   node hack/gen-crds.ts          write the files
 *   node hack/gen-crds.ts --check  exit 1 if a committed file differs
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { generatedFiles } from '../operator/src/api/generate.ts';

const root = resolve(import.meta.dirname, '..');
const check = process.argv.includes('--check');
const read = (path: string): string => readFileSync(join(root, path), 'utf8');
let stale = 0;
// Helm installs the CRDs from the chart's own crds/ directory: the same files.
const files = generatedFiles(read).flatMap((f) => (f.path.startsWith('crds/') ? [f, { ...f, path: `charts/switchyard/${f.path}` }] : [f]));
for (const file of files) {
  const target = join(root, file.path);
  if (existsSync(target) && read(file.path) === file.content) continue;
  if (check) {
    stale++;
    console.error(`${file.path} is out of date with operator/src/api; run \`npm run gen:crds\``);
  } else {
    writeFileSync(target, file.content);
    console.log(`wrote ${file.path}`);
  }
}
if (stale > 0) process.exitCode = 1;
