/**
 * Compile reuses its work for routes that did not change (the same route object,
 * validated once, hashed once, parsed once by the conflict matcher), and gives
 * the same table as a compile of fresh copies of the same objects, through a
 * series of changes: an Upstream that appears and goes, a route that changes and
 * then conflicts, and a return to the first state.
 */
import { describe, expect, it } from 'vitest';
import { compile, type Snapshot } from '../../../operator/src/compile/index.ts';
import { PARSERS } from '../../../operator/src/store/parsers.ts';

const CREATED = ['2026-01-01T00:00:00Z', '2026-01-01T00:00:01Z', '2026-01-01T00:00:02Z'];

function route(name: string, generation: number, created: string, spec: Record<string, unknown>): Snapshot['routes'][number] {
  const p = PARSERS.route(spec);
  if (!p.ok) throw new Error(`route ${name}: ${p.error}`);
  return { meta: { namespace: 'shop', name, generation, creationTimestamp: created }, spec: p.spec };
}

function upstream(name: string): Snapshot['upstreams'][number] {
  const p = PARSERS.upstream({ static: { endpoints: [`http://127.0.0.1:${name === 'main' ? 9001 : 9002}`] } });
  if (!p.ok) throw new Error(`upstream ${name}: ${p.error}`);
  return { meta: { namespace: 'shop', name, generation: 1, creationTimestamp: CREATED[0] as string }, spec: p.spec };
}

const snapshot = (routes: Snapshot['routes'], upstreams: Snapshot['upstreams']): Snapshot => ({ routes, upstreams, services: [], endpointSlices: [] });

describe('compile reuses unchanged routes', () => {
  const a = route('a', 1, CREATED[0] as string, { path: { type: 'Prefix', value: '/a' }, upstream: 'main' });
  const b = route('b', 1, CREATED[1] as string, { path: { type: 'Exact', value: '/b' }, methods: ['GET'], upstream: 'main' });
  const c = route('c', 1, CREATED[2] as string, { path: { type: 'Prefix', value: '/c' }, upstream: 'late' });
  const bMoved = route('b', 2, CREATED[1] as string, { path: { type: 'Prefix', value: '/a' }, upstream: 'main' });
  const main = upstream('main');
  const late = upstream('late');

  it('builds an unchanged route as the same table entry, compile after compile', () => {
    const s = snapshot([a, b], [main]);
    const first = compile(s);
    const second = compile(s);
    expect(second.table.version).toBe(first.table.version);
    expect(second.table.routes[0]).toBe(first.table.routes[0]);
    expect(second.table.routes[1]).toBe(first.table.routes[1]);
  });

  it('gives the table a compile of fresh copies gives, through every change', () => {
    const steps: [string, Snapshot][] = [
      ['c names an Upstream that does not exist', snapshot([a, b, c], [main])],
      ['the Upstream appears', snapshot([a, b, c], [main, late])],
      ['and goes again', snapshot([a, b, c], [main])],
      ['b changes to the same path as the older a, and conflicts', snapshot([a, bMoved, c], [main, late])],
      ['back to the first state', snapshot([a, b, c], [main])],
    ];
    const invalid: (string | undefined)[] = [];
    for (const [what, s] of steps) {
      const reused = compile(s);
      // structuredClone: new objects for everything, so nothing is reused.
      const fresh = compile(structuredClone(s));
      expect(reused.table, what).toEqual(fresh.table);
      expect(reused.table.version, what).toBe(fresh.table.version);
      expect([...reused.statuses], what).toEqual([...fresh.statuses]);
      invalid.push(reused.table.routes.find((r) => r.id === 'shop/c')?.invalid);
    }
    expect(invalid).toEqual(['Upstream "late" not found in namespace "shop"', undefined, 'Upstream "late" not found in namespace "shop"', undefined, 'Upstream "late" not found in namespace "shop"']);
  });
});
