/**
 * Reading a gateway.yaml: parse, substitute `${VAR}` from the environment,
 * apply `GATEWAY_*` overrides, validate. Every failure is a ConfigError whose
 * message names the file, the line, the field path and what was expected.
 */
import { readFile } from 'node:fs/promises';
import { LineCounter, parseDocument, isScalar } from 'yaml';
import type { z } from 'zod';
import { formatFieldPath } from '../contract/field-path.ts';
import { GatewayConfigSchema, type GatewayConfig } from './schema.ts';

/** A configuration problem, already formatted for a person. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(problems.join('\n'));
    this.problems = problems;
  }
}

/** What loading produced: the validated config and the overrides that were applied. */
export interface LoadedConfig {
  config: GatewayConfig;
  /** `GATEWAY_*` variables applied, as `NAME -> field.path`. */
  overrides: string[];
  /** Non-fatal findings, e.g. an unknown `GATEWAY_*` variable. */
  warnings: string[];
}

type Path = ReadonlyArray<string | number>;

/** Formats a field path the way a user writes it: `routes[3].methods[0]`, or `(top level)`. */
export function formatPath(path: Path): string {
  return formatFieldPath(path) || '(top level)';
}

/** Seed names that do not follow the general `GATEWAY_<PATH>` rule. */
const ALIASES: Record<string, string[]> = {
  GATEWAY_LOG_LEVEL: ['observability', 'logging', 'level'],
  GATEWAY_LOG_FORMAT: ['observability', 'logging', 'format'],
  GATEWAY_METRICS_ENABLED: ['observability', 'metrics', 'prometheus_enabled'],
  GATEWAY_TRACING_ENABLED: ['observability', 'tracing', 'enabled'],
};

type Leaf = { path: string[]; kind: 'number' | 'boolean' | 'string' | 'list' };

/** Walks the schema to list every scalar setting an environment variable may override. */
function overridableLeaves(schema: z.ZodType, path: string[] = []): Leaf[] {
  const def = (schema as unknown as { def: { type: string; innerType?: z.ZodType; shape?: Record<string, z.ZodType>; in?: z.ZodType; options?: z.ZodType[]; element?: z.ZodType } }).def;
  switch (def.type) {
    case 'default':
    case 'optional':
    case 'nullable':
      return overridableLeaves(def.innerType as z.ZodType, path);
    case 'pipe':
      return overridableLeaves(def.in as z.ZodType, path);
    case 'object':
      return Object.entries(def.shape ?? {}).flatMap(([k, v]) => overridableLeaves(v, [...path, k]));
    case 'number':
    case 'int':
      return [{ path, kind: 'number' }];
    case 'boolean':
      return [{ path, kind: 'boolean' }];
    case 'array': {
      const inner = overridableLeaves(def.element as z.ZodType, []);
      return inner.length === 1 && inner[0]?.path.length === 0 ? [{ path, kind: 'list' }] : [];
    }
    case 'string':
    case 'enum':
    case 'literal':
    case 'union':
      return [{ path, kind: 'string' }];
    default:
      return [];
  }
}

let leafIndex: Map<string, Leaf> | undefined;
function leafByEnvName(): Map<string, Leaf> {
  if (leafIndex) return leafIndex;
  leafIndex = new Map();
  // Routes and upstreams are lists and maps keyed by user names: not overridable by a fixed name.
  for (const leaf of overridableLeaves(GatewayConfigSchema)) {
    if (leaf.path[0] === 'routes' || leaf.path[0] === 'upstreams') continue;
    leafIndex.set(`GATEWAY_${leaf.path.join('_').toUpperCase()}`, leaf);
  }
  for (const [name, path] of Object.entries(ALIASES)) {
    const target = [...leafIndex.values()].find((l) => l.path.join('.') === path.join('.'));
    if (target) leafIndex.set(name, target);
  }
  return leafIndex;
}

function coerce(raw: string, kind: Leaf['kind']): unknown {
  switch (kind) {
    case 'number':
      return raw.trim() === '' ? raw : Number(raw);
    case 'boolean':
      return raw === 'true' || raw === '1' ? true : raw === 'false' || raw === '0' ? false : raw;
    case 'list':
      return raw.split(',').map((s) => s.trim()).filter((s) => s !== '');
    default:
      return raw;
  }
}

const VAR = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\$/g;

/** Replaces `${NAME}` and `${NAME:-default}` in every string value; `$$` is a literal `$`. */
function substitute(data: unknown, env: NodeJS.ProcessEnv, problems: string[], where: (path: Path) => string): unknown {
  const walk = (node: unknown, path: (string | number)[]): unknown => {
    if (typeof node === 'string') {
      return node.replace(VAR, (whole, name: string | undefined, fallback: string | undefined) => {
        if (whole === '$$') return '$';
        const value = env[name as string];
        if (value !== undefined && value !== '') return value;
        if (fallback !== undefined) return fallback;
        problems.push(`${where(path)}: environment variable ${name} is not set (referenced as \${${name}})`);
        return '';
      });
    }
    if (Array.isArray(node)) return node.map((v, i) => walk(v, [...path, i]));
    if (node !== null && typeof node === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(node)) out[k] = walk(v, [...path, k]);
      return out;
    }
    return node;
  };
  return walk(data, []);
}

/** Parses and validates config text; `file` is used in messages only. */
export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      // The first few errors say it; the rest are usually echoes of the first.
      doc.errors.slice(0, 3).map((e) => {
        const at = e.pos[0] !== undefined ? lines.linePos(e.pos[0]) : undefined;
        return `${file}${at ? `:${at.line}:${at.col}` : ''}: invalid YAML: ${e.message.split('\n')[0]}`;
      }),
    );
  }
  const where = (path: Path): string => {
    let node: unknown;
    for (let i = path.length; i >= 0 && node === undefined; i--) {
      node = doc.getIn(path.slice(0, i), true);
      if (node !== undefined && !(isScalar(node) || (typeof node === 'object' && node !== null && 'range' in node))) node = undefined;
    }
    const range = (node as { range?: [number, number, number] } | undefined)?.range;
    const pos = range ? lines.linePos(range[0]) : undefined;
    return `${file}${pos ? `:${pos.line}` : ''}: ${formatPath(path)}`;
  };

  const problems: string[] = [];
  const data = substitute(doc.toJS() ?? {}, env, problems, where) as Record<string, unknown>;
  if (typeof data !== 'object' || Array.isArray(data)) throw new ConfigError([`${file}: expected a mapping at the top level`]);

  const overrides: string[] = [];
  const warnings: string[] = [];
  const leaves = leafByEnvName();
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('GATEWAY_') || raw === undefined) continue;
    const leaf = leaves.get(name);
    if (!leaf) {
      warnings.push(`environment variable ${name} does not name a setting; see docs/configuration.md for the GATEWAY_* rule`);
      continue;
    }
    let cursor: Record<string, unknown> = data;
    for (const key of leaf.path.slice(0, -1)) {
      const next = cursor[key];
      if (next === null || typeof next !== 'object') cursor[key] = {};
      cursor = cursor[key] as Record<string, unknown>;
    }
    cursor[leaf.path.at(-1) as string] = coerce(raw, leaf.kind);
    overrides.push(`${name} -> ${leaf.path.join('.')}`);
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const parsed = GatewayConfigSchema.safeParse(data, { reportInput: true });
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const path = issue.path as (string | number)[];
        const fromEnv = overrides.find((o) => o.endsWith(` -> ${path.join('.')}`));
        let message = issue.message;
        if (issue.code === 'unrecognized_keys') message = `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
        if (issue.code === 'invalid_type') message = `expected ${issue.expected}${issue.input === undefined ? ', but it is missing' : `, got ${describe(issue.input)}`}`;
        return `${where(path)}: ${message}${fromEnv ? ` (from ${fromEnv.split(' ')[0]})` : ''}`;
      }),
    );
  }
  const config = parsed.data;
  // The deprecated rate-limit setting becomes the one client-address setting, so that one answer serves every part.
  const legacyHops = config.middleware.rate_limiting?.trusted_proxy_hops;
  if (legacyHops !== undefined) {
    const at = where(['middleware', 'rate_limiting', 'trusted_proxy_hops']);
    if (config.server.trusted_proxies.hops !== 0 && config.server.trusted_proxies.hops !== legacyHops) {
      throw new ConfigError([`${at}: deprecated, and it disagrees with server.trusted_proxies.hops (${config.server.trusted_proxies.hops}); keep only server.trusted_proxies.hops`]);
    }
    // A new object: defaults may be shared between parses.
    config.server = { ...config.server, trusted_proxies: { ...config.server.trusted_proxies, hops: legacyHops } };
    warnings.push(`${at}: deprecated; use server.trusted_proxies.hops (it sets the client address for rate limits, the access log, tracing and the forwarding headers alike)`);
  }
  // A password written in the file goes wherever the file goes (a ConfigMap, a repository); from the environment or a file it does not.
  for (const field of ['password', 'sentinel_password', 'url'] as const) {
    const path = ['middleware', 'rate_limiting', 'storage', field];
    const raw = doc.getIn(path);
    if (typeof raw !== 'string' || raw.includes('${')) continue;
    if (field === 'url' && !/^[a-z][a-z0-9+.-]*:\/\/[^/@]*:[^/@]+@/i.test(raw)) continue;
    warnings.push(`${where(path)}: written in the file, which often ends up in a ConfigMap or a repository; give the password as \${REDIS_PASSWORD} (from a Secret) or with ${field === 'sentinel_password' ? 'sentinel_password_file' : 'password_file'}`);
  }
  return { config, overrides, warnings };
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  // Strings are not echoed: the value may be a secret that landed in the wrong field.
  return typeof value === 'string' ? 'a string' : `${typeof value} ${JSON.stringify(value)}`;
}

/** Reads and validates a config file. */
export async function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`${file}: cannot read the config file: ${(err as Error).message}`]);
  }
  return parseConfig(text, file, env);
}
