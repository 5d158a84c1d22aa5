/**
 * Table deltas, property-style: over random sequences of edits (routes and
 * upstreams added, changed, removed and moved; listeners added and dropped),
 * a data plane that takes only deltas ends up with exactly the table the
 * operator would send whole: the same content, the same version, the same
 * answers from its matcher. And a delta that does not fit is a gap, never a
 * wrong table.
 */
import { describe, expect, it } from 'vitest';
import { applyTableDelta, canonicalJson, diffTables, RouteTableSchema, tableVersion, type RouteTable } from '../../../dataplane/src/contract/index.ts';
import { silentLogger } from '../../../dataplane/src/observability/logger.ts';
import { GatewayMetrics } from '../../../dataplane/src/observability/metrics.ts';
import { TableHolder } from '../../../dataplane/src/table/holder.ts';
import { PoolRegistry } from '../../../dataplane/src/upstream/pools.ts';

/** A small deterministic PRNG (mulberry32), so a failing sequence can be replayed from its seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Model {
  routes: { id: string; path: string; methods: string[]; upstream: string; timeoutMs?: number }[];
  upstreams: { name: string; port: number }[];
  listener: boolean;
}

function tableOf(m: Model): RouteTable {
  const content = {
    routes: m.routes.map((r) => ({ id: r.id, path: { type: 'Exact', value: r.path }, methods: r.methods, backends: [{ upstream: r.upstream, weight: 1 }], ...(r.timeoutMs !== undefined ? { timeoutMs: r.timeoutMs } : {}) })),
    upstreams: m.upstreams.map((u) => ({ name: u.name, endpoints: [{ url: `http://127.0.0.1:${u.port}` }] })),
    ...(m.listener ? { listeners: [{ name: 'extra', port: 20001, protocol: 'http' }] } : {}),
  };
  const parsed = RouteTableSchema.parse({ version: 'x', ...content });
  return { ...parsed, version: tableVersion(parsed) };
}

/** One random edit of the model. */
function edit(m: Model, rnd: () => number, n: { next: number }): Model {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const routes = [...m.routes];
  let upstreams = [...m.upstreams];
  let listener = m.listener;
  const op = rnd();
  if (op < 0.3 || routes.length === 0) {
    const at = rnd() < 0.7 ? routes.length : Math.floor(rnd() * routes.length);
    routes.splice(at, 0, { id: `ns/r${n.next}`, path: `/r/${n.next}`, methods: rnd() < 0.5 ? ['GET'] : [], upstream: pick(upstreams).name });
    n.next++;
  } else if (op < 0.45) {
    routes.splice(Math.floor(rnd() * routes.length), 1);
  } else if (op < 0.65) {
    const i = Math.floor(rnd() * routes.length);
    const r = routes[i] as Model['routes'][number];
    routes[i] = rnd() < 0.5 ? { ...r, timeoutMs: Math.floor(rnd() * 5000) + 1 } : { ...r, upstream: pick(upstreams).name };
  } else if (op < 0.72 && routes.length > 1) {
    const i = Math.floor(rnd() * routes.length);
    const [r] = routes.splice(i, 1);
    routes.splice(Math.floor(rnd() * routes.length), 0, r as Model['routes'][number]);
  } else if (op < 0.8) {
    upstreams = [...upstreams, { name: `ns/u${n.next++}`, port: 30000 + Math.floor(rnd() * 1000) }].sort((a, b) => (a.name < b.name ? -1 : 1));
  } else if (op < 0.88) {
    const i = Math.floor(rnd() * upstreams.length);
    upstreams[i] = { ...(upstreams[i] as Model['upstreams'][number]), port: 30000 + Math.floor(rnd() * 1000) };
  } else if (op < 0.94 && upstreams.length > 1) {
    // Remove an upstream no route uses.
    const used = new Set(routes.map((r) => r.upstream));
    const free = upstreams.filter((u) => !used.has(u.name));
    if (free.length > 0) {
      const gone = pick(free).name;
      upstreams = upstreams.filter((u) => u.name !== gone);
    }
  } else {
    listener = !listener;
  }
  return { routes, upstreams, listener };
}

function newHolder(): TableHolder {
  return new TableHolder(new PoolRegistry(), () => [], new GatewayMetrics({ defaultMetrics: false }), silentLogger());
}

const answers = (h: TableHolder, m: Model): string[] => m.routes.map((r) => {
  const res = h.current?.matcher.match('example.test', 'GET', r.path);
  return res?.kind === 'match' ? res.route.id : String(res?.kind);
});

describe('table deltas', () => {
  it('lead, over random sequences of edits, to exactly the table sent whole', () => {
    let deltas = 0;
    for (let seed = 1; seed <= 30; seed++) {
      const rnd = prng(seed);
      const n = { next: 0 };
      let model: Model = { routes: [], upstreams: [{ name: 'ns/u-base', port: 30000 }], listener: false };
      for (let i = 0; i < 5; i++) model = edit(model, rnd, n);
      let sent = tableOf(model);
      const byDelta = newHolder();
      expect(byDelta.apply(sent, 'op')).toMatchObject({ applied: true });
      for (let step = 0; step < 30; step++) {
        model = edit(model, rnd, n);
        const next = tableOf(model);
        // What goes over the wire: JSON text.
        const delta = JSON.parse(JSON.stringify(diffTables(sent, next))) as unknown;
        const result = byDelta.applyDelta(delta, 'op');
        expect(result, `seed ${seed}, step ${step}`).toMatchObject({ applied: true, version: next.version });
        deltas++;
        const whole = newHolder();
        expect(whole.apply(next, 'op')).toMatchObject({ applied: true });
        expect(canonicalJson(byDelta.current?.table)).toBe(canonicalJson(whole.current?.table));
        expect(byDelta.current?.version).toBe(whole.current?.version);
        expect(answers(byDelta, model)).toEqual(answers(whole, model));
        expect(byDelta.current?.routes.map((r) => r.id)).toEqual(whole.current?.routes.map((r) => r.id));
        expect([...(byDelta.current?.upstreams.keys() ?? [])]).toEqual([...(whole.current?.upstreams.keys() ?? [])]);
        sent = next;
      }
    }
    expect(deltas).toBe(30 * 30);
  }, 60_000);

  it('hashes the same with and without reusing entries', () => {
    const rnd = prng(7);
    const n = { next: 0 };
    let model: Model = { routes: [], upstreams: [{ name: 'ns/u-base', port: 30000 }], listener: true };
    for (let i = 0; i < 50; i++) {
      model = edit(model, rnd, n);
      const t = tableOf(model);
      expect(tableVersion(t, { reuse: true })).toBe(tableVersion(t));
    }
    // Text beyond ASCII hashes as the same UTF-8 bytes both ways; so do empty lists and no lists at all.
    const wide = { routes: [{ id: 'ns/caf\u00e9', path: { type: 'Exact', value: '/caf\u00e9/\u{1F600}' }, backends: [] }], upstreams: [] } as unknown as Parameters<typeof tableVersion>[0];
    expect(tableVersion(wide, { reuse: true })).toBe(tableVersion(wide));
    const none = {} as Parameters<typeof tableVersion>[0];
    expect(tableVersion(none, { reuse: true })).toBe(tableVersion(none));
  });

  it('keeps the runtime of routes and upstreams a delta leaves alone', () => {
    const model: Model = { routes: [{ id: 'ns/a', path: '/a', methods: [], upstream: 'ns/u1' }, { id: 'ns/b', path: '/b', methods: [], upstream: 'ns/u2' }], upstreams: [{ name: 'ns/u1', port: 30001 }, { name: 'ns/u2', port: 30002 }], listener: false };
    const t1 = tableOf(model);
    const h = newHolder();
    h.apply(t1, 'op');
    const [a1, b1] = h.current?.routes ?? [];
    const t2 = tableOf({ ...model, upstreams: [{ name: 'ns/u1', port: 30001 }, { name: 'ns/u2', port: 30003 }] });
    expect(h.applyDelta(JSON.parse(JSON.stringify(diffTables(t1, t2))), 'op')).toMatchObject({ applied: true, version: t2.version });
    const [a2, b2] = h.current?.routes ?? [];
    // ns/a and its upstream are untouched; ns/b sends to an upstream that changed, so it is rebuilt.
    expect(a2).toBe(a1);
    expect(b2).not.toBe(b1);
    expect(h.current?.upstreams.get('ns/u2')?.endpoints.map((e) => e.origin)).toEqual(['http://127.0.0.1:30003']);
  });

  it('calls a delta for another version, or one whose result hashes otherwise, a gap, and changes nothing', () => {
    const m1: Model = { routes: [{ id: 'ns/a', path: '/a', methods: [], upstream: 'ns/u1' }], upstreams: [{ name: 'ns/u1', port: 30001 }], listener: false };
    const t1 = tableOf(m1);
    const t2 = tableOf({ ...m1, routes: [...m1.routes, { id: 'ns/b', path: '/b', methods: [], upstream: 'ns/u1' }] });
    const t3 = tableOf({ ...m1, routes: [...m1.routes, { id: 'ns/c', path: '/c', methods: [], upstream: 'ns/u1' }] });
    const h = newHolder();
    h.apply(t1, 'op');
    // Lost: the delta t2 → t3 reaches a data plane at t1.
    expect(h.applyDelta(JSON.parse(JSON.stringify(diffTables(t2, t3))), 'op')).toMatchObject({ applied: false, gap: true });
    // Tampered: claims t2 but leads elsewhere.
    const wrong = { ...diffTables(t1, t3), to: t2.version };
    expect(h.applyDelta(JSON.parse(JSON.stringify(wrong)), 'op')).toMatchObject({ applied: false, gap: true });
    // Removes what is not there.
    expect(h.applyDelta({ from: t1.version, to: t2.version, routes: { remove: ['ns/zzz'] } }, 'op')).toMatchObject({ applied: false, gap: true });
    expect(h.current?.version).toBe(t1.version);
    expect(applyTableDelta(t1, diffTables(t1, t2)).routes.map((r) => r.id)).toEqual(['ns/a', 'ns/b']);
  });

  it('rejects a delta whose entries are invalid, naming the field, and keeps the old table', () => {
    const m1: Model = { routes: [{ id: 'ns/a', path: '/a', methods: [], upstream: 'ns/u1' }], upstreams: [{ name: 'ns/u1', port: 30001 }], listener: false };
    const t1 = tableOf(m1);
    const h = newHolder();
    h.apply(t1, 'op');
    const bad = h.applyDelta({ from: t1.version, to: 'ffff', routes: { set: [{ id: 'ns/b', path: { type: 'Exact', value: '/b' }, backends: 'nope' }] } }, 'op');
    expect(bad).toMatchObject({ applied: false });
    expect('gap' in bad).toBe(false);
    expect((bad as { error: string }).error).toContain('routes.set[0].backends');
    const dangling = h.applyDelta({ from: t1.version, to: 'ffff', routes: { set: [{ id: 'ns/b', path: { type: 'Exact', value: '/b' }, backends: [{ upstream: 'ns/missing', weight: 1 }] }] } }, 'op');
    expect(dangling).toMatchObject({ applied: false });
    expect((dangling as { error: string }).error).toContain('unknown upstream "ns/missing"');
    expect(h.current?.version).toBe(t1.version);
  });
});
