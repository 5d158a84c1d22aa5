/**
 * The one reference the request path reads. A new table is validated and fully
 * built off the hot path, then swapped in with a single assignment; requests in
 * flight keep the runtime they started with.
 */
import type { Pool } from 'undici';
import type { Logger } from '../observability/logger.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import { describeIssues } from '../contract/field-path.ts';
import type { PoolRegistry } from '../upstream/pools.ts';
import { canonicalJson } from '../contract/version.ts';
import type { GatewayDefaults } from '../contract/policy.ts';
import { buildRuntime, type StageFactory, type TableRuntime } from './runtime.ts';
import { CertificateSchema, ListenerSchema, RouteSchema, RouteTableSchema, tableIssues, UpstreamSchema, type RouteTable } from '../contract/schema.ts';
import { tableVersion } from '../contract/version.ts';
import { applyTableDelta, DeltaMismatchError, type TableDelta } from '../contract/delta.ts';
import { z } from 'zod';

const listDelta = <T extends z.ZodType>(entry: T) => z.object({ set: z.array(entry).optional(), remove: z.array(z.string()).optional(), order: z.array(z.string()).optional() }).optional();

/** A delta as it arrives: only what it adds or changes is validated, entry by entry. */
const TableDeltaSchema = z.object({
  from: z.string().min(1),
  to: z.string().min(1),
  routes: listDelta(RouteSchema),
  upstreams: listDelta(UpstreamSchema),
  listeners: z.array(ListenerSchema).nullable().optional(),
  certificates: z.array(CertificateSchema).nullable().optional(),
});

/** What became of a delta: applied or rejected as a table would be, or it does not fit the live table (`gap`: the whole table is needed). */
export type DeltaResult = ApplyResult | { applied: false; gap: true; version: string | undefined; error: string };

/** What happened to a table that was offered. */
export type ApplyResult = { applied: true; version: string; unchanged: boolean } | { applied: false; version: string | undefined; error: string };

/** One table offered to the holder: when, from where, and the result. */
export interface TableAttempt {
  /** Epoch milliseconds. */
  at: number;
  source: string;
  result: ApplyResult;
}

/** Holds the live table and applies new ones. */
export class TableHolder {
  private live: TableRuntime | undefined;
  private readonly pools: PoolRegistry;
  private readonly stagesFor: StageFactory;
  private readonly metrics: GatewayMetrics;
  private readonly log: Logger;
  private readonly listeners: ((rt: TableRuntime) => void)[] = [];
  private defaults: GatewayDefaults;

  /** `defaults`: the gateway-wide policy (from the config's `middleware`) laid under every route's own. */
  constructor(pools: PoolRegistry, stagesFor: StageFactory, metrics: GatewayMetrics, log: Logger, defaults: GatewayDefaults = {}) {
    this.pools = pools;
    this.stagesFor = stagesFor;
    this.metrics = metrics;
    this.log = log;
    this.defaults = defaults;
  }


  /** The live table, or undefined before the first one was applied. */
  get current(): TableRuntime | undefined {
    return this.live;
  }

  /** The last table offered (a reload, an operator push) and what became of it, for the dashboard. */
  get lastAttempt(): TableAttempt | undefined {
    return this.attempt;
  }

  private attempt: TableAttempt | undefined;

  /** Notes a table offered from `source` that never reached apply() (a config file that does not load), counted as rejected. */
  rejected(source: string, error: string): void {
    this.metrics.reloads.inc({ result: 'rejected' });
    this.attempt = { at: Date.now(), source, result: { applied: false, version: undefined, error } };
  }

  /**
   * Notes that the live table's source said it is still current at `at` (epoch ms):
   * the operator re-sent it or named it in a heartbeat, or a saved copy was that old.
   */
  markCurrent(at: number = Date.now()): void {
    if (this.live) this.metrics.tableCurrent(at);
  }

  /** Called after each swap (health checkers, state files). */
  onApplied(listener: (rt: TableRuntime) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Validates and applies a table. On any failure the old table keeps serving,
   * the rejection is logged and counted, and the reason is returned.
   */
  apply(candidate: unknown, source: string, defaults: GatewayDefaults = this.defaults): ApplyResult {
    const claimed = typeof candidate === 'object' && candidate !== null ? (candidate as { version?: unknown }).version : undefined;
    const version = typeof claimed === 'string' ? claimed : undefined;
    const reject = (error: string): ApplyResult => {
      this.metrics.reloads.inc({ result: 'rejected' });
      this.attempt = { at: Date.now(), source, result: { applied: false, version, error } };
      this.log.error({ event: 'table_rejected', source, version, error, serving: this.live?.version ?? null }, 'route table rejected; the previous table keeps serving');
      return { applied: false, version, error };
    };
    const parsed = RouteTableSchema.safeParse(candidate);
    if (!parsed.success) {
      return reject(describeIssues(parsed.error));
    }
    const table = parsed.data;
    const actual = tableVersion(table, { reuse: true });
    if (table.version !== actual) return reject(`version: the table says "${table.version}" but its content hashes to "${actual}"`);
    return this.install(table, source, defaults, reject);
  }

  /**
   * Applies a delta to the live table: validates what it adds or changes, builds
   * the table it leads to, checks that table across its lists and its content
   * hash against `to`, then swaps it in as apply() does, rebuilding only what
   * changed. A delta for another version than the live one is a `gap`: nothing
   * changes and the caller fetches the whole table.
   */
  applyDelta(candidate: unknown, source: string): DeltaResult {
    const to = typeof candidate === 'object' && candidate !== null ? (candidate as { to?: unknown }).to : undefined;
    const version = typeof to === 'string' ? to : undefined;
    const reject = (error: string): ApplyResult => {
      this.metrics.reloads.inc({ result: 'rejected' });
      this.attempt = { at: Date.now(), source, result: { applied: false, version, error } };
      this.log.error({ event: 'table_rejected', source, version, error, serving: this.live?.version ?? null, delta: true }, 'route table delta rejected; the previous table keeps serving');
      return { applied: false, version, error };
    };
    const parsed = TableDeltaSchema.safeParse(candidate);
    if (!parsed.success) return reject(describeIssues(parsed.error));
    const delta = parsed.data as TableDelta;
    const live = this.live;
    if (live === undefined || live.version !== delta.from) return { applied: false, gap: true, version, error: `the delta applies to version ${delta.from}, the data plane serves ${live?.version ?? 'no table'}` };
    if (delta.to === live.version) {
      this.attempt = { at: Date.now(), source, result: { applied: true, version: live.version, unchanged: true } };
      return this.attempt.result;
    }
    let table: RouteTable;
    try {
      table = applyTableDelta(live.table, delta);
    } catch (err) {
      if (err instanceof DeltaMismatchError) return { applied: false, gap: true, version, error: err.message };
      throw err;
    }
    const issues = tableIssues(table);
    if (issues.length > 0) return reject(issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    const actual = tableVersion(table, { reuse: true });
    // The delta's entries are valid but do not make the operator's table: ask for the whole table.
    if (actual !== delta.to) return { applied: false, gap: true, version, error: `the delta leads to content that hashes to "${actual}", not "${delta.to}"` };
    return this.install(table, source, this.defaults, reject);
  }

  private install(table: RouteTable, source: string, defaults: GatewayDefaults, reject: (error: string) => ApplyResult): ApplyResult {
    // A reloaded config may change the gateway-wide policy alone: the same table is rebuilt then.
    if (this.live?.version === table.version && canonicalJson(this.live.defaults) === canonicalJson(defaults)) {
      this.attempt = { at: Date.now(), source, result: { applied: true, version: table.version, unchanged: true } };
      return this.attempt.result;
    }

    let next: TableRuntime;
    try {
      next = buildRuntime(table, source, this.pools, this.stagesFor, defaults, this.live);
    } catch (err) {
      return reject((err as Error).message);
    }
    const previous = this.live;
    this.live = next;
    this.defaults = defaults;
    this.retainPools();
    this.metrics.reloads.inc({ result: 'applied' });
    this.metrics.setTable(table.version, source, table.routes.length);
    this.log.info({ event: 'table_applied', source, version: table.version, previous: previous?.version ?? null, routes: table.routes.length, upstreams: table.upstreams.length }, 'route table applied');
    for (const r of next.routes) {
      // A route's own settings and the gateway's can combine into this; it allows no origin, which should not be a mystery.
      if (r.def.cors?.allowCredentials && r.def.cors.allowedOrigins.includes('*')) {
        this.log.warn({ event: 'cors_no_origin', route: r.id, policySource: r.def.policySources.cors }, `route "${r.id}": CORS allows credentials with the "*" origin, which allows no origin at all; list the origins`);
      }
    }
    // One warning per shadowed claim, however many listeners serve the route.
    const shadowed = [...new Map([...new Set(next.listenerMatchers.values())].flatMap((m) => m.shadowed).map((x) => [`${x.route}\0${x.by}\0${x.method}\0${x.host}`, x])).values()];
    for (const s of shadowed) {
      this.log.warn({ event: 'route_shadowed', route: s.route, by: s.by, method: s.method, host: s.host }, `route "${s.route}" never serves ${s.method === '*' ? 'any method' : s.method}${s.host === '*' ? '' : ` on ${s.host}`}: "${s.by}" comes first with the same path, method and conditions`);
    }
    for (const l of this.listeners) l(next);
    this.attempt = { at: Date.now(), source, result: { applied: true, version: table.version, unchanged: false } };
    return this.attempt.result;
  }

  private retainPools(): void {
    const live = new Set<Pool>();
    for (const u of this.live?.upstreams.values() ?? []) for (const e of u.endpoints) live.add(e.pool);
    this.pools.retainOnly(live);
  }
}

