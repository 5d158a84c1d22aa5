import { describe, expect, it } from 'vitest';
import { gatewayRouteCrd, parseGatewayRoute, parseUpstream, upstreamCrd } from '../../../operator/src/api/index.ts';
import type { FieldError } from '../../../operator/src/api/index.ts';
import type { JSONSchemaProps } from '../../../operator/src/api/openapi.ts';
import { invalidFixtures } from './fixtures.ts';

/** Every CEL message in the generated CRDs. */
function celMessages(): Set<string> {
  const out = new Set<string>();
  const walk = (s: JSONSchemaProps): void => {
    for (const v of s['x-kubernetes-validations'] ?? []) out.add(v.message);
    for (const child of Object.values(s.properties ?? {})) walk(child);
    if (s.items) walk(s.items);
  };
  for (const crd of [gatewayRouteCrd(), upstreamCrd()]) walk(crd.spec.versions[0]?.schema.openAPIV3Schema as JSONSchemaProps);
  return out;
}

const fixtures = invalidFixtures();
const messages = celMessages();

describe('invalid manifests (test/fixtures/invalid)', () => {
  it.each(fixtures.map((f) => [f.file, f] as const))('%s is rejected on its field', (_file, f) => {
    const result = f.object.kind === 'GatewayRoute' ? parseGatewayRoute(f.object) : parseUpstream(f.object);
    expect(result.ok, `${f.file} was accepted; expected: ${f.why}`).toBe(false);
    const errors = result.ok ? [] : (result.errors as FieldError[]);
    const onField = errors.filter((e) => e.field === f.field);
    expect(onField, `no error on ${f.field}; got ${JSON.stringify(errors)}`).not.toHaveLength(0);
    // A CEL rule carries the same message on both paths, and the API server reports it after
    // the value. Its built-in checks (bounds, enums, duplicates) word theirs differently from
    // zod: for those the fixture's message is the API server's own.
    if (messages.has(f.message)) {
      expect(onField.map((e) => e.message)).toContain(f.message);
      expect(f.api.endsWith(f.message), `${f.file}: the API server's message ends with the rule's`).toBe(true);
    } else {
      expect(f.message).toBe(f.api);
    }
  });

  it('cover every CEL rule', () => {
    // Duration bounds differ per field ("must be between 1s and 24h"); one fixture per
    // shape of message is enough, the bounds themselves are unit-tested below.
    const covered = (m: string): boolean => fixtures.some((f) => f.message === m) || /^must be (between|at most) /.test(m);
    expect([...messages].filter((m) => !covered(m))).toEqual([]);
  });
});

describe('durations', () => {
  const route = (timeout: string): unknown => ({
    apiVersion: 'switchyard.dev/v1alpha1',
    kind: 'GatewayRoute',
    metadata: { name: 'r' },
    spec: { path: { value: '/' }, upstream: 'u', timeout },
  });
  it.each(['1ms', '500ms', '30s', '1m', '0.5h', '1.5s', '1h', '59m60s', '0.001s'])('accepts %s', (t) => expect(parseGatewayRoute(route(t)).ok).toBe(true));
  it.each(['', '0', '10', '1d', '1 s', '-1s', 's', '1h1ms1', '2h', '1h0.001ms', '0s', '0.5ms', '0.0009s'])('rejects %j', (t) => expect(parseGatewayRoute(route(t)).ok).toBe(false));
});
