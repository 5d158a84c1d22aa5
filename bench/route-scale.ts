/**
 * Route-table scale, in process, no network:
 * - match cost at 10, 1,000 and 10,000 routes (dataplane/src/routing/matcher.ts);
 * - compile time at 10,000 routes: the config file path (YAML → zod → table),
 *   the data plane's apply (validate, hash, build, swap) and the operator's
 *   compile(snapshot);
 * - the data plane's memory with a 10,000-route table applied.
 *
 * Each measurement runs in a fresh child process (`--child <what>`, with
 * --expose-gc), so one does not inherit another's garbage or JIT state.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { compileConfig } from '../dataplane/src/config/compile.ts';
import { loadConfigFile } from '../dataplane/src/config/load.ts';
import { silentLogger } from '../dataplane/src/observability/logger.ts';
import { GatewayMetrics } from '../dataplane/src/observability/metrics.ts';
import { authStages } from '../dataplane/src/pipeline/auth.ts';
import { compileMatcher, type MatchableRoute } from '../dataplane/src/routing/matcher.ts';
import { TableHolder } from '../dataplane/src/table/holder.ts';
import { PoolRegistry } from '../dataplane/src/upstream/pools.ts';
import { compile } from '../operator/src/compile/index.ts';
import type { Snapshot } from '../operator/src/compile/snapshot.ts';
import { metaOf } from '../operator/src/store/convert.ts';
import { PARSERS } from '../operator/src/store/parsers.ts';
import { cpuPlan, runToEnd, tempDir } from './lib/processes.ts';
import { generateRoutes, requestFor, seeded, type GeneratedRoute } from './lib/routes.ts';
import { median, percentile, round } from './lib/stats.ts';

/** Match cost at one table size. */
export interface MatchResult {
  routes: number;
  matcherCompileMs: number;
  /** Nanoseconds per match: median and p99 over batches of 1,000 requests spread over the whole table (10 % not found). */
  nsPerMatch: { p50: number; p99: number };
  /** The same, for requests to the first 10 routes only, which every size has: the walk without the cache misses of a bigger table. */
  nsPerMatchSameRequests: { p50: number; p99: number };
  batches: number;
}

/** Compile times at one size, medians over `repeats`. */
export interface CompileResult {
  routes: number;
  repeats: number;
  /** gateway.yaml text → validated config (YAML parse, ${VAR}, zod). */
  configLoadMs: number;
  /** Validated config → route table (compileConfig). */
  configCompileMs: number;
  /** TableHolder.apply: schema validation, version hash, stages, matcher, swap. */
  dataplaneApplyMs: number;
  /** The operator's store parse of every spec (once per object change in the operator). */
  operatorParseMs: number;
  /** The operator's compile(snapshot). */
  operatorCompileMs: number;
}

/** The data plane's memory with one table applied. */
export interface MemoryResult {
  routes: number;
  heapUsedDeltaBytes: number;
  rssDeltaBytes: number;
}

/** The section's result. */
export interface RouteScaleResult {
  match: MatchResult[];
  compile: CompileResult[];
  memory: MemoryResult[];
}

function toMatchable(routes: GeneratedRoute[]): MatchableRoute[] {
  return routes.map((r) => ({ id: r.name, hosts: r.hosts, path: { type: r.type, value: r.path }, methods: r.methods }));
}

function measureMatch(n: number, batches: number): MatchResult {
  const generated = generateRoutes(n);
  const t0 = performance.now();
  const matcher = compileMatcher(toMatchable(generated));
  const matcherCompileMs = performance.now() - t0;
  // 1,000 requests: 90 % for routes spread over the whole table, 10 % for paths no route has.
  const rand = seeded(42);
  const spread: Request[] = [];
  const same: Request[] = [];
  for (let k = 0; k < 1000; k++) {
    const miss = { host: 'api.example.com', method: 'GET', path: `/r/missing${k}/x` };
    spread.push(k % 10 === 9 ? miss : requestFor(generated[Math.floor(rand() * n)] as GeneratedRoute, k));
    same.push(k % 10 === 9 ? miss : requestFor(generated[k % Math.min(10, n)] as GeneratedRoute, k));
  }
  const a = timeMatches(matcher, spread, batches);
  const b = timeMatches(matcher, same, batches);
  return { routes: n, matcherCompileMs: round(matcherCompileMs, 1), nsPerMatch: a, nsPerMatchSameRequests: b, batches };
}

type Request = { host: string; method: string; path: string };

/** Times `batches` passes over the requests after a warm-up; nanoseconds per match, median and p99 over the passes. */
function timeMatches(matcher: ReturnType<typeof compileMatcher>, requests: Request[], batches: number): { p50: number; p99: number } {
  let found = 0;
  const pass = (): void => {
    for (let k = 0; k < requests.length; k++) {
      const q = requests[k] as Request;
      if (matcher.match(q.host, q.method, q.path).kind === 'match') found++;
    }
  };
  for (let w = 0; w < 200; w++) pass();
  const perMatch: number[] = [];
  for (let i = 0; i < batches; i++) {
    const s = process.hrtime.bigint();
    pass();
    perMatch.push(Number(process.hrtime.bigint() - s) / requests.length);
  }
  if (found === 0) throw new Error('no request matched: the generated requests are wrong');
  return { p50: round(median(perMatch), 0), p99: round(percentile(perMatch, 99), 0) };
}

function configFor(routes: GeneratedRoute[]): Record<string, unknown> {
  return {
    server: { http_port: 0, admin_port: 0, metrics_port: 0, bind_address: '127.0.0.1' },
    routes: routes.map((r) => ({ name: r.name, path: r.path, path_type: r.type, methods: r.methods, hosts: r.hosts, upstream: `u${r.name.length % 10}` })),
    upstreams: Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`u${i}`, { discovery: { type: 'Static', endpoints: [`http://127.0.0.1:${20000 + i}`] } }])),
    observability: { logging: { level: 'silent', access_log: false } },
  };
}

function newHolder(): TableHolder {
  return new TableHolder(new PoolRegistry(), (r) => authStages(r, undefined), new GatewayMetrics({ defaultMetrics: false }), silentLogger());
}

function snapshotFor(routes: GeneratedRoute[]): { snapshot: Snapshot; parseMs: number } {
  const created = '2025-01-01T00:00:00Z';
  const t0 = performance.now();
  const parsedRoutes = routes.map((r, i) => {
    const obj = { metadata: { namespace: 'bench', name: r.name, generation: 1, creationTimestamp: created }, spec: { path: { type: r.type, value: r.path }, methods: r.methods, hosts: r.hosts, upstream: `u${i % 10}` } };
    const p = PARSERS.route(obj.spec);
    if (!p.ok) throw new Error(`route ${r.name}: ${p.error}`);
    return { meta: metaOf(obj), spec: p.spec };
  });
  const upstreams = Array.from({ length: 10 }, (_, i) => {
    const obj = { metadata: { namespace: 'bench', name: `u${i}`, generation: 1, creationTimestamp: created }, spec: { static: { endpoints: [`http://127.0.0.1:${20000 + i}`] } } };
    const p = PARSERS.upstream(obj.spec);
    if (!p.ok) throw new Error(`upstream u${i}: ${p.error}`);
    return { meta: metaOf(obj), spec: p.spec };
  });
  const parseMs = performance.now() - t0;
  return { snapshot: { routes: parsedRoutes, upstreams, services: [], endpointSlices: [] }, parseMs };
}

async function measureCompile(n: number, repeats: number, dir: string): Promise<CompileResult> {
  const routes = generateRoutes(n);
  const file = path.join(dir, `gateway-${n}.yaml`);
  writeFileSync(file, stringify(configFor(routes)));
  const load: number[] = [];
  const comp: number[] = [];
  const apply: number[] = [];
  const parse: number[] = [];
  const op: number[] = [];
  for (let i = 0; i < repeats; i++) {
    let t = performance.now();
    const loaded = await loadConfigFile(file, {});
    load.push(performance.now() - t);
    t = performance.now();
    const { table } = compileConfig(loaded.config, file);
    comp.push(performance.now() - t);
    const holder = newHolder();
    t = performance.now();
    const applied = holder.apply(table, file);
    apply.push(performance.now() - t);
    if (!applied.applied) throw new Error(`the ${n}-route table was rejected: ${applied.error}`);
    const { snapshot, parseMs } = snapshotFor(routes);
    parse.push(parseMs);
    t = performance.now();
    const result = compile(snapshot);
    op.push(performance.now() - t);
    if (result.table.routes.length !== n) throw new Error(`operator compile kept ${result.table.routes.length} of ${n} routes`);
  }
  return {
    routes: n,
    repeats,
    configLoadMs: round(median(load), 1),
    configCompileMs: round(median(comp), 1),
    dataplaneApplyMs: round(median(apply), 1),
    operatorParseMs: round(median(parse), 1),
    operatorCompileMs: round(median(op), 1),
  };
}

async function measureMemory(n: number, dir: string): Promise<MemoryResult> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  const file = path.join(dir, `gateway-mem-${n}.yaml`);
  writeFileSync(file, stringify(configFor(generateRoutes(n))));
  const holder = newHolder();
  gc();
  gc();
  const before = process.memoryUsage();
  {
    const loaded = await loadConfigFile(file, {});
    const { table } = compileConfig(loaded.config, file);
    const applied = holder.apply(table, file);
    if (!applied.applied) throw new Error(applied.error);
  }
  gc();
  gc();
  const after = process.memoryUsage();
  if (holder.current?.table.routes.length !== n) throw new Error('the table is not held');
  return { routes: n, heapUsedDeltaBytes: after.heapUsed - before.heapUsed, rssDeltaBytes: after.rss - before.rss };
}

/** Options of the section. */
export interface RouteScaleOptions {
  quick: boolean;
  log: (line: string) => void;
}

async function child(what: string, args: string[], cpu: string | undefined): Promise<unknown> {
  const { code, output } = await runToEnd(`route-scale ${what}`, process.execPath, ['--expose-gc', 'bench/route-scale.ts', '--child', what, ...args], { cpu, timeoutMs: 180_000 });
  const line = output.split('\n').find((l) => l.startsWith('{'));
  if (code !== 0 || line === undefined) throw new Error(`route-scale ${what} ${args.join(' ')} failed (exit ${code}):\n${output.slice(-3000)}`);
  return JSON.parse(line);
}

/** Runs the section: each measurement in its own process, pinned to the subject CPU. */
export async function runRouteScale(options: RouteScaleOptions): Promise<RouteScaleResult> {
  const cpu = cpuPlan().subject;
  const sizes = [10, 1_000, 10_000];
  const match: MatchResult[] = [];
  for (const n of sizes) {
    const r = (await child('match', [String(n), String(options.quick ? 100 : 400)], cpu)) as MatchResult;
    options.log(`route scale: match at ${n} routes: p50 ${r.nsPerMatch.p50} ns (same requests ${r.nsPerMatchSameRequests.p50} ns)`);
    match.push(r);
  }
  const compileSizes = options.quick ? [1_000] : [1_000, 10_000];
  const compileResults: CompileResult[] = [];
  for (const n of compileSizes) {
    const r = (await child('compile', [String(n), String(options.quick ? 1 : 3)], cpu)) as CompileResult;
    options.log(`route scale: compile at ${n} routes: config ${r.configLoadMs}+${r.configCompileMs} ms, apply ${r.dataplaneApplyMs} ms, operator ${r.operatorCompileMs} ms`);
    compileResults.push(r);
  }
  const memory: MemoryResult[] = [];
  for (const n of options.quick ? [1_000] : [1_000, 10_000]) {
    const r = (await child('memory', [String(n)], cpu)) as MemoryResult;
    options.log(`route scale: memory at ${n} routes: heap +${(r.heapUsedDeltaBytes / 1048576).toFixed(1)} MiB, RSS +${(r.rssDeltaBytes / 1048576).toFixed(1)} MiB`);
    memory.push(r);
  }
  return { match, compile: compileResults, memory };
}

if (import.meta.main) {
  const [flag, what, ...rest] = process.argv.slice(2);
  if (flag !== '--child') {
    process.stderr.write('usage: route-scale.ts --child match <routes> <batches> | compile <routes> <repeats> | memory <routes>\n');
    process.exit(2);
  }
  const tmp = tempDir('routes');
  try {
    let out: unknown;
    if (what === 'match') out = measureMatch(Number(rest[0]), Number(rest[1] ?? 200));
    else if (what === 'compile') out = await measureCompile(Number(rest[0]), Number(rest[1] ?? 3), tmp.dir);
    else if (what === 'memory') out = await measureMemory(Number(rest[0]), tmp.dir);
    else throw new Error(`unknown measurement ${what}`);
    process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    tmp.remove();
  }
}
