/**
 * resolveRoutes: the one conflict rule both table producers use. These cases
 * cover what the Gateway API front end adds: listeners as separate claim
 * spaces, and routes whose hosts are claimed one by one.
 */
import { describe, expect, it } from 'vitest';
import { resolveRoutes, type ResolvableRoute } from '../../../dataplane/src/contract/index.ts';

const r = (id: string, value: string, extra: Partial<ResolvableRoute> = {}): ResolvableRoute => ({ id, hosts: [], methods: [], path: { type: 'Prefix', value }, ...extra });
const ids = (xs: readonly { id: string }[]): string[] => xs.map((x) => x.id);

describe('resolveRoutes', () => {
  it('leaves out a younger route with the same claim, naming the winner', () => {
    const res = resolveRoutes([r('old', '/a'), r('young', '/a/')]);
    expect(ids(res.accepted)).toEqual(['old']);
    expect(res.rejected).toEqual([{ route: expect.objectContaining({ id: 'young' }), reason: 'Conflicted', by: 'old', method: '*', host: '*' }]);
  });

  it('routes on different listeners do not conflict; a route on both conflicts with either', () => {
    const res = resolveRoutes([r('plain', '/a', { listeners: ['http'] }), r('tls', '/a', { listeners: ['https'] }), r('both', '/a')]);
    expect(ids(res.accepted)).toEqual(['plain', 'tls']);
    expect(res.rejected.map((x) => [x.route.id, x.reason === 'Conflicted' && x.by])).toEqual([['both', 'plain']]);
  });

  it('a route with partial hosts keeps the hosts nobody older holds', () => {
    const res = resolveRoutes([r('gwr', '/a', { hosts: ['a.test'] }), r('hr', '/a', { hosts: ['a.test', 'B.test'] })], { partialHosts: (x) => x.id === 'hr' });
    expect(res.accepted.map((x) => [x.id, x.hosts])).toEqual([
      ['gwr', ['a.test']],
      ['hr', ['B.test']],
    ]);
    expect(res.trimmed).toEqual([{ route: expect.objectContaining({ id: 'hr' }), lost: [{ by: 'gwr', method: '*', host: 'a.test' }] }]);
    expect(res.rejected).toEqual([]);
  });

  it('a route with partial hosts that loses every host is left out, and one that wins a host keeps it from younger routes', () => {
    const res = resolveRoutes(
      [r('hr1', '/a', { hosts: ['a.test', 'b.test'] }), r('hr2', '/a', { hosts: ['a.test', 'b.test'] }), r('gwr', '/a', { hosts: ['b.test'] })],
      { partialHosts: (x) => x.id.startsWith('hr') },
    );
    expect(ids(res.accepted)).toEqual(['hr1']);
    expect(res.rejected.map((x) => [x.route.id, x.reason === 'Conflicted' && x.by])).toEqual([
      ['hr2', 'hr1'],
      ['gwr', 'hr1'],
    ]);
  });

  it('an invalid route is rejected with the matcher\'s message and claims nothing', () => {
    const res = resolveRoutes([r('bad', '/a/{x'), r('ok', '/a/{x')]);
    expect(res.rejected.map((x) => x.reason)).toEqual(['Invalid', 'Invalid']);
    expect(resolveRoutes([r('bad', '/a', { hosts: ['a:80'] }), r('ok', '/a')]).accepted.map((x) => x.id)).toEqual(['ok']);
  });
});
