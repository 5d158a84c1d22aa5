import { describe, expect, it } from 'vitest';
import { API_VERSION, GROUP, VERSION, formatFieldErrors, formatFieldPath, parseGatewayRoute, parseUpstream } from '../../../operator/src/api/index.ts';

const route = (spec: unknown, extra: Record<string, unknown> = {}): unknown => ({
  apiVersion: 'switchyard.dev/v1alpha1',
  kind: 'GatewayRoute',
  metadata: { name: 'users', namespace: 'shop', generation: 3, uid: 'u-1', resourceVersion: '7', managedFields: [] },
  spec,
  ...extra,
});

describe('parseGatewayRoute', () => {
  it('applies the same defaults as the CRD', () => {
    const r = parseGatewayRoute(route({ path: { value: '/api/v1/users' }, backends: [{ upstream: 'a' }], auth: {}, rateLimit: { requests: 5 }, retries: { attempts: 1 }, cors: {} }));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.spec).toEqual({
      path: { type: 'Exact', value: '/api/v1/users' },
      backends: [{ upstream: 'a', weight: 1 }],
      auth: { required: false, roles: [], permissions: [] },
      // No window and no CORS field: the gateway-wide settings fill them in, on each data plane.
      rateLimit: { requests: 5 },
      retries: { attempts: 1, retryOn: ['connect-failure', 'reset', '503'], nonIdempotent: false, backoff: '25ms' },
      cors: {},
    });
    // Metadata the operator does not model passes through.
    expect(r.value.metadata).toMatchObject({ name: 'users', namespace: 'shop', generation: 3, managedFields: [] });
  });

  it('reports every problem with its field path', () => {
    const r = parseGatewayRoute(route({ path: { value: 'x', type: 'Regex' }, methods: ['GET', 'GET'], backends: [{ upstream: 'a', weight: -1 }] }));
    expect(r.ok).toBe(false);
    if (r.ok) return;
    expect(r.errors.map((e) => e.field)).toEqual(expect.arrayContaining(['spec.path.type', 'spec.path.value', 'spec.methods[1]', 'spec.backends[0].weight']));
    expect(formatFieldErrors(r.errors)).toMatch(/spec\.methods\[1\]: Duplicate value: "GET"/);
  });

  it('says Required value for a missing field', () => {
    const r = parseGatewayRoute(route(undefined));
    expect(r).toEqual({ ok: false, errors: [{ field: 'spec', message: 'Required value' }] });
  });

  it('refuses another kind or version', () => {
    const r = parseGatewayRoute(route({ path: { value: '/' }, upstream: 'a' }, { apiVersion: 'switchyard.dev/v1' }));
    expect(r.ok ? [] : r.errors.map((e) => e.field)).toEqual(['apiVersion']);
    const u = parseUpstream(route({ service: { name: 'a', port: 80 } }));
    expect(u.ok ? [] : u.errors.map((e) => e.field)).toEqual(['kind']);
  });

  it('accepts a status written by the operator', () => {
    const status = {
      observedGeneration: 3,
      conditions: [{ type: 'Accepted', status: 'True', observedGeneration: 3, lastTransitionTime: '2026-01-01T00:00:00Z', reason: 'Accepted', message: '' }],
    };
    expect(parseGatewayRoute(route({ path: { value: '/' }, upstream: 'a' }, { status })).ok).toBe(true);
    const bad = parseGatewayRoute(route({ path: { value: '/' }, upstream: 'a' }, { status: { conditions: [{ ...status.conditions[0], status: 'Yes' }] } }));
    expect(bad.ok ? [] : bad.errors.map((e) => e.field)).toEqual(['status.conditions[0].status']);
  });
});

describe('parseUpstream', () => {
  it('applies defaults and keeps a port name or number as written', () => {
    const named = parseUpstream({ apiVersion: API_VERSION, kind: 'Upstream', metadata: { name: 'u' }, spec: { service: { name: 'svc', port: 'http' }, healthCheck: { path: '/health' } } });
    expect(named.ok && named.value.spec).toEqual({
      service: { name: 'svc', port: 'http' },
      protocol: 'http',
      loadBalancer: 'RoundRobin',
      healthCheck: { path: '/health', interval: '10s', timeout: '2s', healthyThreshold: 2, unhealthyThreshold: 3 },
    });
    const numbered = parseUpstream({ apiVersion: API_VERSION, kind: 'Upstream', metadata: { name: 'u' }, spec: { service: { name: 'svc', port: 3001 }, circuitBreaker: { failureThreshold: 5 }, connectionPool: {} } });
    expect(numbered.ok && numbered.value.spec).toMatchObject({
      service: { port: 3001 },
      circuitBreaker: { failureThreshold: 5, timeout: '1m', successThreshold: 1, halfOpenRequests: 1 },
      connectionPool: { maxConnections: 128, connectTimeout: '5s' },
    });
  });
});

describe('constants and paths', () => {
  it('group and version', () => expect([GROUP, VERSION, API_VERSION]).toEqual(['switchyard.dev', 'v1alpha1', 'switchyard.dev/v1alpha1']));
  it('formats field paths as the API server does', () => {
    expect(formatFieldPath(['spec', 'backends', 0, 'weight'])).toBe('spec.backends[0].weight');
    expect(formatFieldPath([])).toBe('');
  });
});
