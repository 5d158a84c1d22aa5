/**
 * A table of 10,000 routes: every sampled request must get the answer its
 * construction implies. Correctness only; speed is the benchmark's business.
 */
import { describe, expect, it } from 'vitest';
import { compileMatcher, type MatchableRoute, type MatchResult } from '../../../dataplane/src/routing/matcher.ts';

const SERVICES = 2_000;

function buildTable(): MatchableRoute[] {
  const routes: MatchableRoute[] = [];
  for (let i = 0; i < SERVICES; i++) {
    routes.push(
      { id: `health-${i}`, hosts: [], methods: ['GET'], path: { type: 'Exact', value: `/svc${i}/health` } },
      { id: `items-${i}`, hosts: [], methods: ['GET', 'PUT'], path: { type: 'Template', value: `/svc${i}/items/{id}` } },
      { id: `files-${i}`, hosts: [], methods: ['GET'], path: { type: 'Template', value: `/svc${i}/files/*` } },
      { id: `all-${i}`, hosts: [], methods: [], path: { type: 'Prefix', value: `/svc${i}` } },
      { id: `tenant-${i}`, hosts: [`t${i}.example.com`], methods: ['GET'], path: { type: 'Exact', value: `/svc${i}/health` } },
    );
  }
  return routes;
}

function view(r: MatchResult<MatchableRoute>): unknown {
  if (r.kind !== 'match') return r;
  return { id: r.route.id, params: { ...r.params }, prefix: r.matchedPrefix };
}

describe('10,000 routes', () => {
  const routes = buildTable();
  const matcher = compileMatcher(routes);

  it('compiles every route without shadowing', () => {
    expect(routes).toHaveLength(10_000);
    expect(matcher.size).toBe(10_000);
    expect(matcher.shadowed).toEqual([]);
  });

  it('answers a sample of requests as the table says', () => {
    // Every 4th service plus the edges: 502 services, 10 requests each.
    const sample = [...Array.from({ length: SERVICES / 4 }, (_, k) => k * 4 + 1), 0, SERVICES - 1];
    for (const i of sample) {
      const other = (i + 1) % SERVICES;
      const checks: Array<[string, string, string, unknown]> = [
        ['any.test', 'GET', `/svc${i}/health`, { id: `health-${i}`, params: {}, prefix: `/svc${i}/health` }],
        [`T${i}.Example.com:8080`, 'GET', `/svc${i}/health`, { id: `tenant-${i}`, params: {}, prefix: `/svc${i}/health` }],
        [`t${other}.example.com`, 'GET', `/svc${i}/health`, { id: `health-${i}`, params: {}, prefix: `/svc${i}/health` }],
        ['any.test', 'POST', `/svc${i}/health`, { id: `all-${i}`, params: {}, prefix: `/svc${i}` }],
        ['any.test', 'PUT', `/svc${i}/items/abc`, { id: `items-${i}`, params: { id: 'abc' }, prefix: `/svc${i}/items/abc` }],
        ['any.test', 'DELETE', `/svc${i}/items/abc`, { id: `all-${i}`, params: {}, prefix: `/svc${i}` }],
        ['any.test', 'GET', `/svc${i}/files/a/b.txt`, { id: `files-${i}`, params: { '*': 'a/b.txt' }, prefix: `/svc${i}/files` }],
        ['any.test', 'GET', `/svc${i}`, { id: `all-${i}`, params: {}, prefix: `/svc${i}` }],
        ['any.test', 'GET', `/svc${i}x/health`, { kind: 'not-found' }],
        // The host's own tier matched the path, so it answers; it does not fall through to the any-host prefix.
        [`t${i}.example.com`, 'POST', `/svc${i}/health`, { kind: 'method-not-allowed', allow: ['GET', 'HEAD'] }],
      ];
      for (const [host, method, path, expected] of checks) {
        expect({ request: `${method} ${path} @${host}`, result: view(matcher.match(host, method, path)) }).toEqual({
          request: `${method} ${path} @${host}`,
          result: expected,
        });
      }
    }
  });

  it('prints every route', () => {
    const printed = matcher.print();
    for (const i of [0, 999, SERVICES - 1]) {
      expect(printed).toContain(`[exact] health-${i} (GET)`);
      expect(printed).toContain(`host t${i}.example.com`);
    }
  });
});
