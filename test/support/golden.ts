/**
 * Golden files: a test compares what the code produces with a file in the
 * repository, and `UPDATE_GOLDEN=1` rewrites the files instead (then review the
 * diff). In CI a rewrite would only compare each file with itself, so it is
 * refused there. Each input has exactly one output: an output left without its
 * input, or an input without its output, fails.
 */
import { readdirSync } from 'node:fs';

/** Whether this run rewrites golden files; throws when asked to in CI. */
export function updatingGolden(): boolean {
  const update = process.env.UPDATE_GOLDEN === '1';
  if (update && process.env.CI !== undefined && process.env.CI !== '' && process.env.CI !== 'false') {
    throw new Error('UPDATE_GOLDEN=1 with CI set: golden files would be compared with themselves. Regenerate them outside CI and commit the diff.');
  }
  return update;
}

/** The cases of a golden directory (`<case><input>` → `<case><output>`), and the files that break the pairing. */
export function goldenCases(dir: string, input: string, output: string): { cases: string[]; orphans: string[]; missing: string[] } {
  const files = new Set(readdirSync(dir));
  const cases = [...files].filter((f) => f.endsWith(input)).map((f) => f.slice(0, -input.length)).sort();
  const orphans = [...files].filter((f) => f.endsWith(output) && !files.has(`${f.slice(0, -output.length)}${input}`)).sort();
  const missing = cases.filter((c) => !files.has(`${c}${output}`)).map((c) => `${c}${output}`);
  return { cases, orphans, missing };
}
