/**
 * `node bench/delta-apply.ts [routes]`: what a change costs a data plane at
 * one table size (default 5,300 routes, the bench's route shapes), applied as
 * a whole table and as a delta, in interleaved rounds in one process, so the
 * machine's load weighs on both alike. One route is added, then removed, per
 * round. Also the parts that the delta path reuses: the matcher built from
 * parsed forms, and the table hash from entry texts; and `canonicalJson`.
 * Prints medians; checks that both ways reach the same version.
 */
import { canonicalJson, diffTables, RouteTableSchema, tableVersion, type RouteTable } from '../dataplane/src/contract/index.ts';
import { silentLogger } from '../dataplane/src/observability/logger.ts';
import { GatewayMetrics } from '../dataplane/src/observability/metrics.ts';
import { authStages } from '../dataplane/src/pipeline/auth.ts';
import { compileMatcher } from '../dataplane/src/routing/matcher.ts';
import { TableHolder } from '../dataplane/src/table/holder.ts';
import { PoolRegistry } from '../dataplane/src/upstream/pools.ts';
import { generateRoutes } from './lib/routes.ts';
import { median, round } from './lib/stats.ts';

const n = Number(process.argv[2] ?? 5300);
const ROUNDS = 21;

function table(extra: boolean): RouteTable {
  const routes = generateRoutes(n).map((r, i) => ({ id: `bench/${r.name}`, path: { type: r.type, value: r.path }, methods: r.methods, hosts: r.hosts, backends: [{ upstream: `u${i % 10}`, weight: 1 }] }));
  if (extra) routes.push({ id: 'bench/zz-new', path: { type: 'Exact', value: '/zz/new' }, methods: ['GET'], hosts: [], backends: [{ upstream: 'u1', weight: 1 }] });
  const t = RouteTableSchema.parse({ version: 'x', routes, upstreams: Array.from({ length: 10 }, (_, i) => ({ name: `u${i}`, endpoints: [{ url: `http://127.0.0.1:${20000 + i}` }] })) });
  return { ...t, version: tableVersion(t) };
}

const holder = (): TableHolder => new TableHolder(new PoolRegistry(), (r) => authStages(r, undefined), new GatewayMetrics({ defaultMetrics: false }), silentLogger());
const time = (f: () => void): number => {
  const s = performance.now();
  f();
  return performance.now() - s;
};

const [t1, t2] = [table(false), table(true)];
const whole = [JSON.stringify({ type: 'table', table: t1 }), JSON.stringify({ type: 'table', table: t2 })];
const deltas = [JSON.stringify({ type: 'delta', ...diffTables(t2, t1) }), JSON.stringify({ type: 'delta', ...diffTables(t1, t2) })];
const byWhole = holder();
const byDelta = holder();
byWhole.apply(JSON.parse(whole[0] as string).table, 'bench');
byDelta.apply(JSON.parse(whole[0] as string).table, 'bench');
const m = { whole: [] as number[], delta: [] as number[], matcherParse: [] as number[], matcherReuse: [] as number[], hashFull: [] as number[], hashReuse: [] as number[], canonical: [] as number[] };
for (let i = 1; i <= ROUNDS; i++) {
  let a: ReturnType<TableHolder['apply']> | undefined;
  let b: ReturnType<TableHolder['applyDelta']> | undefined;
  m.whole.push(time(() => (a = byWhole.apply((JSON.parse(whole[i % 2] as string) as { table: unknown }).table, 'bench'))));
  m.delta.push(time(() => (b = byDelta.applyDelta(JSON.parse(deltas[i % 2] as string), 'bench'))));
  if (!a?.applied || !b?.applied || a.version !== b.version) throw new Error(`the two ways differ: ${JSON.stringify([a, b])}`);
  const routes = byDelta.current?.routes ?? [];
  m.matcherParse.push(time(() => compileMatcher(routes)));
  m.matcherReuse.push(time(() => compileMatcher(routes, { reuseParsed: true })));
  const t = byDelta.current?.table as RouteTable;
  m.hashFull.push(time(() => tableVersion(t)));
  m.hashReuse.push(time(() => tableVersion(t, { reuse: true })));
  m.canonical.push(time(() => canonicalJson(t)));
}
const ms = (x: number[]): number => round(median(x), 1);
console.log(`${t1.routes.length} routes; one route added or removed per change; medians of ${ROUNDS} interleaved rounds`);
console.log(`whole table: ${ms(m.whole)} ms (${whole[1]?.length} bytes on the wire)`);
console.log(`delta: ${ms(m.delta)} ms (${deltas[1]?.length} bytes on the wire)`);
console.log(`matcher from all routes: parsing each ${ms(m.matcherParse)} ms, parsed forms reused ${ms(m.matcherReuse)} ms`);
console.log(`table hash: every entry's canonical text ${ms(m.hashFull)} ms, entry texts reused ${ms(m.hashReuse)} ms; canonicalJson of the table ${ms(m.canonical)} ms`);
