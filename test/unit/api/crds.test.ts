import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CATEGORY, crdFiles, gatewayRouteCrd, routePolicyCrd, upstreamCrd } from '../../../operator/src/api/index.ts';
import { generatedFiles } from '../../../operator/src/api/generate.ts';
import type { JSONSchemaProps } from '../../../operator/src/api/openapi.ts';

/** Every node of a schema with its path, e.g. `spec.backends[].weight`. */
function walk(schema: JSONSchemaProps, path: string, visit: (node: JSONSchemaProps, path: string) => void): void {
  visit(schema, path);
  for (const [name, child] of Object.entries(schema.properties ?? {})) walk(child, path === '' ? name : `${path}.${name}`, visit);
  if (schema.items) walk(schema.items, `${path}[]`, visit);
}

const crds = [gatewayRouteCrd(), upstreamCrd(), routePolicyCrd()];

describe('generated CRDs', () => {
  it.each(generatedFiles((p) => readFileSync(p, 'utf8')))('$path is up to date with operator/src/api', ({ path, content }) => {
    let committed: string | undefined;
    try {
      committed = readFileSync(path, 'utf8');
    } catch {
      committed = undefined;
    }
    // A plain boolean keeps the failure message short and actionable instead of a 500-line diff.
    expect(committed === content, `${path} differs from what the schemas generate; run: npm run gen:crds`).toBe(true);
  });

  it.each(crdFiles())('$path reads back as YAML 1.1 (what kubectl reads) to the same object', ({ path, content }) => {
    const crd = crds.find((c) => path.endsWith(`${c.metadata.name}.yaml`));
    expect(parse(content, { version: '1.1' })).toEqual(JSON.parse(JSON.stringify(crd)));
  });

  it.each(crds.map((c) => [c.metadata.name, c] as const))('%s: names, scope, status subresource, category', (_name, crd) => {
    expect(crd.spec.group).toBe('switchyard.dev');
    expect(crd.spec.scope).toBe('Namespaced');
    expect(crd.spec.names.categories).toEqual([CATEGORY]);
    expect(crd.spec.versions.map((v) => [v.name, v.served, v.storage])).toEqual([['v1alpha1', true, true]]);
    expect(crd.spec.versions[0]?.subresources).toEqual({ status: {} });
  });

  it('names and printer columns', () => {
    const [route, upstream] = crds;
    expect(route?.spec.names).toMatchObject({ kind: 'GatewayRoute', plural: 'gatewayroutes', singular: 'gatewayroute', shortNames: ['gwr'] });
    expect(upstream?.spec.names).toMatchObject({ kind: 'Upstream', plural: 'upstreams', singular: 'upstream', shortNames: ['ups'] });
    const cols = (i: number): string[] => (crds[i]?.spec.versions[0]?.additionalPrinterColumns ?? []).filter((c) => !c.priority).map((c) => `${c.name}=${c.jsonPath}`);
    expect(cols(0)).toEqual([
      'Path=.spec.path.value',
      'Upstream=.spec.upstream',
      'Accepted=.status.conditions[?(@.type=="Accepted")].status',
      'Programmed=.status.conditions[?(@.type=="Programmed")].status',
      'Age=.metadata.creationTimestamp',
    ]);
    expect(cols(1)).toEqual([
      'Service=.spec.service.name',
      'Ready=.status.readyEndpoints',
      'Total=.status.totalEndpoints',
      'Accepted=.status.conditions[?(@.type=="Accepted")].status',
      'Age=.metadata.creationTimestamp',
    ]);
  });

  describe.each(crds.map((c) => [c.spec.names.kind, c.spec.versions[0]?.schema.openAPIV3Schema as JSONSchemaProps] as const))('%s schema', (_kind, root) => {
    it('describes every field, for kubectl explain', () => {
      const missing: string[] = [];
      walk(root, '', (node, path) => {
        for (const [name, child] of Object.entries(node.properties ?? {})) {
          if (!child.description && !(path === '' && name === 'metadata')) missing.push(path === '' ? name : `${path}.${name}`);
        }
      });
      expect(missing).toEqual([]);
    });

    it('bounds every string and list, so that CEL cost estimates stay within budget', () => {
      const unbounded: string[] = [];
      walk(root, '', (node, path) => {
        if (path === '' || path === 'apiVersion' || path === 'kind' || path === 'metadata') return;
        if (node.type === 'array' && node.maxItems === undefined) unbounded.push(path);
        const stringy = node.type === 'string' || node['x-kubernetes-int-or-string'] === true;
        if (stringy && node.maxLength === undefined && node.enum === undefined && node.format !== 'date-time') unbounded.push(path);
      });
      expect(unbounded).toEqual([]);
    });

    it('has every field in the reference of docs/resources.md', () => {
      const doc = readFileSync('docs/resources.md', 'utf8');
      const missing: string[] = [];
      walk(root, '', (_node, path) => {
        if (/^(spec|status)[.[]/.test(path) && !path.endsWith('[]') && !doc.includes(`| \`${path}\` |`)) missing.push(path);
      });
      expect(missing).toEqual([]);
    });

    it('is structural: no unions, refs or open maps', () => {
      const text = JSON.stringify(root);
      for (const keyword of ['"$ref"', '"$defs"', '"$schema"', '"anyOf"', '"oneOf"', '"allOf"', '"additionalProperties"', '"const"', '"nullable"']) {
        expect(text).not.toContain(keyword);
      }
      walk(root, '', (node, path) => {
        if (node['x-kubernetes-int-or-string'] !== true) expect(node.type, path).toBeDefined();
        if (node.type === 'integer') expect(['int32', 'int64'], path).toContain(node.format);
      });
    });
  });

  it('sets list semantics where the API server should enforce uniqueness or merge by key', () => {
    const spec = crds[0]?.spec.versions[0]?.schema.openAPIV3Schema.properties?.spec as JSONSchemaProps;
    expect(spec.properties?.methods?.['x-kubernetes-list-type']).toBe('set');
    expect(spec.properties?.hosts?.['x-kubernetes-list-type']).toBe('set');
    expect(spec.properties?.backends?.['x-kubernetes-list-type']).toBe('map');
    expect(spec.properties?.backends?.['x-kubernetes-list-map-keys']).toEqual(['upstream']);
    const status = crds[1]?.spec.versions[0]?.schema.openAPIV3Schema.properties?.status as JSONSchemaProps;
    expect(status.properties?.conditions?.['x-kubernetes-list-map-keys']).toEqual(['type']);
    expect(status.properties?.conditions?.items?.properties?.lastTransitionTime).toMatchObject({ type: 'string', format: 'date-time' });
  });

  it('turns the Service port into an int-or-string with the bounds of both branches', () => {
    const spec = crds[1]?.spec.versions[0]?.schema.openAPIV3Schema.properties?.spec as JSONSchemaProps;
    expect(spec.properties?.service?.properties?.port).toMatchObject({ 'x-kubernetes-int-or-string': true, minimum: 1, maximum: 65535, maxLength: 15 });
  });
});
