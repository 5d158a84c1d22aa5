/** Field paths as people write them, for every message that points into a config, a table or a resource. */

/** `['routes', 3, 'methods', 0]` → `routes[3].methods[0]`; the empty path is `""`. */
export function formatFieldPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out === '' ? String(part) : `.${String(part)}`;
  return out;
}

/** The issues of a failed zod parse as one line: `routes[2].path: a path must start with "/"; …`. */
export function describeIssues(err: { issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }> }): string {
  return err.issues.map((i) => `${formatFieldPath(i.path) || '(top level)'}: ${i.message}`).join('; ');
}
