import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { gatewayRouteCrd, parseGatewayRoute, parseUpstream, upstreamCrd } from '../../../operator/src/api/index.ts';
import type { GatewayRoute, Upstream } from '../../../operator/src/api/index.ts';
import type { JSONSchemaProps } from '../../../operator/src/api/openapi.ts';
import { EXAMPLES_DIR, VALID_DIR, loadManifests, yamlFiles } from './fixtures.ts';
import type { Manifest } from './fixtures.ts';

const SCHEMAS: Record<string, JSONSchemaProps | undefined> = {
  GatewayRoute: gatewayRouteCrd().spec.versions[0]?.schema.openAPIV3Schema,
  Upstream: upstreamCrd().spec.versions[0]?.schema.openAPIV3Schema,
};

/**
 * Fields the schema does not declare. The API server prunes them (or, with
 * kubectl's strict field validation, refuses them); zod strips them. Either
 * way a misspelt field would be lost silently, so examples must have none.
 */
function unknownFields(value: unknown, schema: JSONSchemaProps, path: string): string[] {
  if (Array.isArray(value)) return value.flatMap((v, i) => (schema.items ? unknownFields(v, schema.items, `${path}[${String(i)}]`) : []));
  if (value === null || typeof value !== 'object' || schema.properties === undefined) return [];
  return Object.entries(value).flatMap(([k, v]) => {
    const child = schema.properties?.[k];
    const p = path === '' ? k : `${path}.${k}`;
    if (child === undefined) return [p];
    return k === 'metadata' && path === '' ? [] : unknownFields(v, child, p);
  });
}

function parseAny(m: Manifest): { ok: boolean; errors?: unknown } {
  return m.kind === 'GatewayRoute' ? parseGatewayRoute(m) : parseUpstream(m);
}

const examples = yamlFiles(EXAMPLES_DIR).flatMap((file) => loadManifests(file).map((m) => ({ file, m })));
const routes = examples.map((e) => e.m).filter((m) => m.kind === 'GatewayRoute').map((m) => (parseGatewayRoute(m) as { value: GatewayRoute }).value);
const upstreams = examples.map((e) => e.m).filter((m) => m.kind === 'Upstream').map((m) => (parseUpstream(m) as { value: Upstream }).value);

describe('example manifests', () => {
  it('hold a Namespace, Upstreams and GatewayRoutes only', () => {
    expect(new Set(examples.map((e) => e.m.kind))).toEqual(new Set(['Namespace', 'Upstream', 'GatewayRoute']));
  });

  const custom = examples.filter((e) => e.m.kind in SCHEMAS).map((e) => [`${e.file}: ${e.m.kind} ${e.m.metadata.name}`, e.m] as const);
  it.each(custom)('%s parses, with no unknown fields', (_name, m) => {
    expect(parseAny(m)).toMatchObject({ ok: true });
    expect(unknownFields(m, SCHEMAS[m.kind] as JSONSchemaProps, '')).toEqual([]);
  });

  it('name only Upstreams that exist in the same namespace', () => {
    const known = new Set(upstreams.map((u) => `${u.metadata.namespace ?? ''}/${u.metadata.name}`));
    const refs = routes.flatMap((r) => [r.spec.upstream, ...(r.spec.backends ?? []).map((b) => b.upstream)].filter((u) => u !== undefined).map((u) => `${r.metadata.namespace ?? ''}/${u}`));
    expect(refs.filter((r) => !known.has(r))).toEqual([]);
  });

  it('live in one namespace, which they create', () => {
    expect(new Set([...routes, ...upstreams].map((o) => o.metadata.namespace))).toEqual(new Set(['shop']));
    expect(examples.find((e) => e.m.kind === 'Namespace')?.m.metadata.name).toBe('shop');
  });

  describe('reproduce the seed gateway.yaml', () => {
    interface SeedRoute {
      path: string;
      methods: string[];
      upstream: string;
      auth_required: boolean;
      required_roles?: string[];
      timeout: string;
    }
    interface SeedUpstream {
      discovery: { endpoints: string[] };
      load_balancer: { type: string };
      health_check: { path: string; interval: string; timeout: string; healthy_threshold: number; unhealthy_threshold: number };
      circuit_breaker?: { failure_threshold: number; timeout: string; success_threshold: number };
    }
    const seed = parse(readFileSync('test/fixtures/seed-gateway.yaml', 'utf8')) as {
      routes: SeedRoute[];
      upstreams: Record<string, SeedUpstream>;
      middleware: { rate_limiting: { route_limits: Record<string, number> } };
    };

    it.each(seed.routes.map((r) => [r.path, r] as const))('route %s', (path, s) => {
      const r = routes.find((x) => x.spec.path.value === path);
      expect(r, `no GatewayRoute for ${path}`).toBeDefined();
      if (r === undefined) return;
      expect(r.spec.path.type).toBe(path.includes('{') ? 'Template' : 'Exact');
      expect(r.spec.methods).toEqual(s.methods);
      expect(r.spec.upstream).toBe(s.upstream);
      expect(r.spec.auth?.required ?? false).toBe(s.auth_required);
      expect(r.spec.auth?.roles ?? []).toEqual(s.required_roles ?? []);
      expect(r.spec.timeout).toBe(s.timeout);
      expect(r.spec.rateLimit?.requests).toBe(seed.middleware.rate_limiting.route_limits[path]);
    });

    it.each(Object.entries(seed.upstreams))('upstream %s, discovered through its Service', (name, s) => {
      const u = upstreams.find((x) => x.metadata.name === name);
      expect(u, `no Upstream ${name}`).toBeDefined();
      if (u === undefined) return;
      const endpoint = new URL(s.discovery.endpoints[0] as string);
      expect(u.spec.service).toEqual({ name: endpoint.hostname, port: Number(endpoint.port) });
      expect(u.spec.loadBalancer).toBe(s.load_balancer.type);
      expect(u.spec.healthCheck).toEqual({
        path: s.health_check.path,
        interval: s.health_check.interval,
        timeout: s.health_check.timeout,
        healthyThreshold: s.health_check.healthy_threshold,
        unhealthyThreshold: s.health_check.unhealthy_threshold,
      });
      expect(u.spec.circuitBreaker).toEqual(
        s.circuit_breaker && { failureThreshold: s.circuit_breaker.failure_threshold, timeout: s.circuit_breaker.timeout, successThreshold: s.circuit_breaker.success_threshold, halfOpenRequests: 1 },
      );
    });
  });

  it('include a 90/10 canary', () => {
    const canary = routes.find((r) => r.spec.backends !== undefined);
    expect(canary?.spec.backends?.map((b) => b.weight)).toEqual([90, 10]);
  });
});

describe('valid edge cases', () => {
  const valid = yamlFiles(VALID_DIR).flatMap((file) => loadManifests(file).map((m) => [`${m.kind} ${m.metadata.name}`, m] as const));
  it.each(valid)('%s parses, with no unknown fields', (_name, m) => {
    expect(parseAny(m)).toMatchObject({ ok: true });
    expect(unknownFields(m, SCHEMAS[m.kind] as JSONSchemaProps, '')).toEqual([]);
  });
});
