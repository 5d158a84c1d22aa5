/**
 * Table deltas: what changed between two tables, keyed by route id and
 * upstream name, and how to rebuild the newer table from the older one and
 * the delta. The data plane checks the rebuilt table's content hash against
 * `to`, so a delta that does not lead exactly to the operator's table is
 * refused and the data plane asks for the whole table instead.
 *
 * A list delta says which entries are new or changed (`set`, whole entries),
 * which are gone (`remove`, by key), and the new order of the keys (`order`)
 * only when it is not the old order with the removed entries left out and the
 * new ones appended in `set` order.
 *
 * Pure: no I/O, no validation (the data plane validates what it receives).
 */
import type { Certificate, Listener, Route, RouteTable, Upstream } from './schema.ts';

/** The version of the stream protocol that carries deltas (`protocol=2` on the watch request). Protocol 1 sends whole tables only. */
export const DELTA_PROTOCOL = 2;

/** Changes to one keyed list. */
export interface ListDelta<T> {
  /** Entries added or changed, whole. */
  set?: T[];
  /** Keys of entries removed. */
  remove?: string[];
  /** Every key in the new order, when it is not the old order minus `remove` plus new entries appended. */
  order?: string[];
}

/** What turns the table `from` into the table `to`. */
export interface TableDelta {
  from: string;
  to: string;
  routes?: ListDelta<Route>;
  upstreams?: ListDelta<Upstream>;
  /** Present: the table's listeners are now these; null: the table has none. Absent: unchanged. */
  listeners?: Listener[] | null;
  /** As `listeners`. */
  certificates?: Certificate[] | null;
}

/** Thrown when a delta does not fit the table it is applied to. */
export class DeltaMismatchError extends Error {
  override readonly name = 'DeltaMismatchError';
}

const routeKey = (r: { id: string }): string => r.id;
const upstreamKey = (u: { name: string }): string => u.name;

/** A memo of each entry's JSON text, so that a table diffed twice is serialized once. */
const texts = new WeakMap<object, string>();
const textOf = (x: object): string => {
  let t = texts.get(x);
  if (t === undefined) {
    t = JSON.stringify(x);
    texts.set(x, t);
  }
  return t;
};

function diffList<T extends object>(prev: readonly T[], next: readonly T[], key: (x: T) => string): ListDelta<T> | undefined {
  const before = new Map<string, T>();
  for (const x of prev) before.set(key(x), x);
  const nextKeys = new Set<string>();
  const set: T[] = [];
  for (const x of next) {
    const k = key(x);
    nextKeys.add(k);
    const old = before.get(k);
    if (old === undefined || (old !== x && textOf(old) !== textOf(x))) set.push(x);
  }
  const remove = [...before.keys()].filter((k) => !nextKeys.has(k));
  // The order the receiver gets without `order`: the old one, removals left out, additions appended.
  const implied = [...prev.map(key).filter((k) => nextKeys.has(k)), ...set.map(key).filter((k) => !before.has(k))];
  const order = next.map(key);
  const sameOrder = implied.length === order.length && implied.every((k, i) => k === order[i]);
  if (set.length === 0 && remove.length === 0 && sameOrder) return undefined;
  return { ...(set.length > 0 ? { set } : {}), ...(remove.length > 0 ? { remove } : {}), ...(sameOrder ? {} : { order }) };
}

function applyList<T extends object>(prev: readonly T[], delta: ListDelta<T> | undefined, key: (x: T) => string, what: string): T[] {
  if (delta === undefined) return [...prev];
  const removed = new Set(delta.remove ?? []);
  const set = new Map<string, T>();
  for (const x of delta.set ?? []) {
    const k = key(x);
    if (set.has(k)) throw new DeltaMismatchError(`${what}: "${k}" is set twice`);
    if (removed.has(k)) throw new DeltaMismatchError(`${what}: "${k}" is both set and removed`);
    set.set(k, x);
  }
  const out: T[] = [];
  const had = new Set<string>();
  for (const x of prev) {
    const k = key(x);
    had.add(k);
    if (removed.has(k)) continue;
    out.push(set.get(k) ?? x);
  }
  for (const k of removed) if (!had.has(k)) throw new DeltaMismatchError(`${what}: removes "${k}", which the table does not have`);
  for (const [k, x] of set) if (!had.has(k)) out.push(x);
  if (delta.order === undefined) return out;
  const byKey = new Map(out.map((x) => [key(x), x] as const));
  if (delta.order.length !== byKey.size) throw new DeltaMismatchError(`${what}: the order names ${delta.order.length} entries, the table has ${byKey.size}`);
  return delta.order.map((k) => {
    const x = byKey.get(k);
    if (x === undefined) throw new DeltaMismatchError(`${what}: the order names "${k}", which the table does not have`);
    byKey.delete(k);
    return x;
  });
}

const sameList = (a: readonly object[] | undefined, b: readonly object[] | undefined): boolean =>
  a === b || (a !== undefined && b !== undefined && a.length === b.length && a.every((x, i) => x === b[i] || textOf(x) === textOf(b[i] as object)));

/** The delta from `prev` to `next`: undefined members are unchanged. */
export function diffTables(prev: RouteTable, next: RouteTable): TableDelta {
  const routes = diffList(prev.routes, next.routes, routeKey);
  const upstreams = diffList(prev.upstreams, next.upstreams, upstreamKey);
  return {
    from: prev.version,
    to: next.version,
    ...(routes ? { routes } : {}),
    ...(upstreams ? { upstreams } : {}),
    ...(sameList(prev.listeners, next.listeners) ? {} : { listeners: next.listeners ?? null }),
    ...(sameList(prev.certificates, next.certificates) ? {} : { certificates: next.certificates ?? null }),
  };
}

/**
 * The table `delta` leads to from `base`, with `version` set to `delta.to`
 * (unchecked: the caller hashes the content). Entries the delta does not touch
 * are `base`'s own objects. Throws DeltaMismatchError when the delta does not
 * fit `base` (another base version, unknown keys, an order that does not fit).
 */
export function applyTableDelta(base: RouteTable, delta: TableDelta): RouteTable {
  if (base.version !== delta.from) throw new DeltaMismatchError(`the delta applies to version ${delta.from}, the table is ${base.version}`);
  const table: RouteTable = {
    version: delta.to,
    routes: applyList(base.routes, delta.routes, routeKey, 'routes'),
    upstreams: applyList(base.upstreams, delta.upstreams, upstreamKey, 'upstreams'),
  };
  const listeners = delta.listeners === undefined ? base.listeners : (delta.listeners ?? undefined);
  const certificates = delta.certificates === undefined ? base.certificates : (delta.certificates ?? undefined);
  if (listeners !== undefined) table.listeners = listeners;
  if (certificates !== undefined) table.certificates = certificates;
  return table;
}
