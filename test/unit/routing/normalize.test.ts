/**
 * Request-target normalization: every spelling of a protected path must either
 * become the canonical path or be refused, never reach a weaker route.
 */
import { describe, expect, it } from 'vitest';
import { compileMatcher } from '../../../dataplane/src/routing/matcher.ts';
import { normalizeTarget } from '../../../dataplane/src/routing/normalize.ts';

/** Input, then the normalized path (and query), or a pattern the refusal reason must match. */
const accepted: Array<[string, string, string?]> = [
  ['/', '/'],
  ['/api/v1/users', '/api/v1/users'],
  ['/api/v1/users/', '/api/v1/users/'],
  ['/file.json', '/file.json'],
  ['/api/v1/users/../admin/users', '/api/v1/admin/users'],
  ['/api//v1/admin/users', '/api/v1/admin/users'],
  ['//api///v1//admin/users', '/api/v1/admin/users'],
  ['/api/v1/%61dmin/users', '/api/v1/admin/users'],
  ['/api/v1/users/%2e%2e/admin/users', '/api/v1/admin/users'],
  ['/api/v1/users/%2E%2E/admin/users', '/api/v1/admin/users'],
  ['/api/v1/users/.%2e/admin/users', '/api/v1/admin/users'],
  ['/api/v1/users/%2e./admin/users', '/api/v1/admin/users'],
  ['/a/./b', '/a/b'],
  ['/a/%2e/b', '/a/b'],
  ['/a/b/.', '/a/b/'],
  ['/a/b/..', '/a/'],
  ['/a/..', '/'],
  ['/.', '/'],
  ['/a//', '/a/'],
  ['//', '/'],
  ['/a/b/c/../../d', '/a/d'],
  ['/.well-known/x', '/.well-known/x'],
  ['/a/...', '/a/...'],
  ['/a/..b/.c', '/a/..b/.c'],
  ['/%7e', '/~'],
  ['/%7Euser', '/~user'],
  ['/%41%5a%30%2d%5f', '/AZ0-_'],
  ['/%c3%a9', '/%C3%A9'],
  ['/caf%C3%A9', '/caf%C3%A9'],
  ['/a%20b', '/a%20b'],
  ['/a%3fb', '/a%3Fb'],
  ['/%25', '/%25'],
  // Only '%25' is an escape here; the '2e' after it is literal text.
  ['/%252e%252e/x', '/%252e%252e/x'],
  ['/%2A%2a', '/%2A%2A'],
  ['/users/{id}', '/users/{id}'],
  ['/a;b=1/c', '/a;b=1/c'],
  ['/a?x=1/../b', '/a', '?x=1/../b'],
  ['/a/../b?q=%2e%2e&r=//x', '/b', '?q=%2e%2e&r=//x'],
  ['/?', '/', '?'],
  ['/a?b?c#d', '/a', '?b?c#d'],
];

const refused: Array<[string, RegExp]> = [
  ['http://evil/x', /origin-form expected/],
  ['https://api.example.com/admin', /origin-form expected/],
  ['api.example.com:443', /origin-form expected/],
  ['*', /origin-form expected, got asterisk-form/],
  ['', /origin-form expected/],
  ['a/b', /origin-form expected/],
  ['/api/v1/admin%2Fusers', /encoded slash/],
  ['/api/v1/admin%2fusers', /encoded slash/],
  ['/a%5Cb', /encoded backslash/],
  ['/a%5cb', /encoded backslash/],
  ['/a%00b', /encoded NUL/],
  ['/%G1', /malformed percent-encoding "%G1"/],
  ['/%4', /malformed percent-encoding "%4"/],
  ['/a%', /malformed percent-encoding/],
  ['/%%41', /malformed percent-encoding/],
  ['/a\\b', /raw backslash/],
  ['/a\\..\\admin', /raw backslash/],
  ['/a b', /raw space/],
  ['/a\tb', /raw control character 0x09/],
  ['/a\x00b', /raw control character 0x00/],
  ['/a\r\nb', /raw control character 0x0D/],
  ['/a\x7fb', /raw control character 0x7F/],
  ['/caf\u00e9', /raw non-ASCII character U\+00E9 in path: it must be percent-encoded/],
  ['/admin#x', /raw "#" in path/],
  ['/..', /path escapes the root/],
  ['/../x', /path escapes the root/],
  ['/%2e%2e/x', /path escapes the root/],
  ['/a/../..', /path escapes the root/],
  ['/a/../../b', /path escapes the root/],
  ['//../x', /path escapes the root/],
  ['/public/..;/admin', /dot segment with path parameters "..;"/],
  ['/public/.;x/admin', /dot segment with path parameters/],
  ['/public/%2e%2e;/admin', /dot segment with path parameters/],
  ['/a?x=1 2', /invalid character 0x20 in query/],
  ['/a?x=\r\n', /invalid character 0x0D in query/],
];

describe('normalizeTarget', () => {
  for (const [input, path, query = ''] of accepted) {
    it(`accepts ${JSON.stringify(input)} as ${JSON.stringify(path + query)}`, () => {
      expect(normalizeTarget(input)).toEqual({ ok: true, path, query });
    });
  }
  for (const [input, reason] of refused) {
    it(`refuses ${JSON.stringify(input)}`, () => {
      const r = normalizeTarget(input);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.reason).toMatch(reason);
    });
  }

  it('is idempotent on everything it accepts', () => {
    for (const [input] of accepted) {
      const once = normalizeTarget(input);
      if (!once.ok) throw new Error(`expected ${input} to be accepted`);
      expect(normalizeTarget(once.path + once.query)).toEqual(once);
    }
  });
});

describe('normalization keeps protected routes protected', () => {
  // The admin route would carry stricter policy; the public prefix is the weaker route an attacker aims for.
  const matcher = compileMatcher([
    { id: 'public', hosts: [], methods: [], path: { type: 'Prefix', value: '/api/v1/users' } },
    { id: 'admin', hosts: [], methods: [], path: { type: 'Prefix', value: '/api/v1/admin' } },
    { id: 'root', hosts: [], methods: [], path: { type: 'Prefix', value: '/' } },
  ]);
  const spellings = [
    '/api/v1/admin/users',
    '/api/v1/users/../admin/users',
    '/api//v1/admin/users',
    '/api/v1/%61dmin/users',
    '/api/v1/users/%2e%2e/admin/users',
    '/api/v1/users/%2E%2E/admin/users',
    '/api/v1/users/.%2e/admin/users',
    '/api/v1/users/./../admin/users',
    '/api/v1/users//../admin/users',
    '/api/v1/users/x/../../admin/users',
    '/api/v1/users/..;/admin/users',
    '/api/v1/admin%2Fusers',
    '/api/v1/users/..%2Fadmin/users',
    '/api/v1/users/..%5Cadmin/users',
    '/api/v1/users/..\\admin/users',
    '/api/v1/users%00/../admin/users',
    '/api/v1/users/%252e%252e/admin/users',
  ];
  for (const spelling of spellings) {
    it(`${spelling} reaches the admin route or is refused`, () => {
      const n = normalizeTarget(spelling);
      if (!n.ok) return;
      const r = matcher.match('example.test', 'GET', n.path);
      if (r.kind !== 'match') throw new Error(`expected a match for ${n.path}`);
      // Double encoding is decoded once at most, by the upstream, to a literal "%2e%2e" segment; the route it gets is right.
      if (n.path.includes('%25')) {
        expect(n.path).toBe('/api/v1/users/%252e%252e/admin/users');
        expect(r.route.id).toBe('public');
        return;
      }
      expect(r.route.id).toBe('admin');
    });
  }
});
