/**
 * Golden files for compile: test/golden/compile/<case>.in.yaml (API objects) →
 * <case>.out.yaml (the table and every object's status). Regenerate with
 * `npm run gen:golden` and review the diff; CI fails on any difference.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments, stringify } from 'yaml';
import { compile } from '../../../operator/src/compile/index.ts';
import { CONTROLLER_NAME } from '../../../operator/src/api/gateway-api.ts';
import type { GatewayApiSnapshot } from '../../../operator/src/compile/snapshot.ts';
import { toSnapshot, type KubeObject } from '../../../operator/src/store/convert.ts';
import { gatewayApiSnapshot } from '../../../operator/src/store/gateway-api.ts';
import { PARSERS } from '../../../operator/src/store/parsers.ts';
import { goldenCases, updatingGolden } from '../../support/golden.ts';

const DIR = 'test/golden/compile';
const UPDATE = updatingGolden();

function load(file: string): KubeObject[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as KubeObject).filter((o) => o !== null);
}

function objectsFor(name: string): KubeObject[] {
  const objects = load(path.join(DIR, `${name}.in.yaml`));
  // The examples cases compile the documented example manifests as they are.
  const examples = name === 'examples' ? 'examples/kubernetes' : name === 'examples-gateway-api' ? 'examples/gateway-api' : undefined;
  if (examples !== undefined) {
    for (const f of readdirSync(examples).filter((n) => n.endsWith('.yaml')).sort()) objects.push(...load(path.join(examples, f)));
  }
  // Objects written without server-set fields get fixed ones, so the output does not depend on a clock.
  for (const o of objects) {
    o.metadata ??= {};
    o.metadata.generation ??= 1;
    o.metadata.creationTimestamp ??= '2026-01-01T00:00:00Z';
  }
  return objects;
}

/** The data plane Service of the Helm chart in the golden cases: every Gateway's address. */
const ADDRESS_SERVICE = 'switchyard-system/switchyard-dataplane';

/** The Gateway API part of a case: present when the case has any Gateway API object or RoutePolicy, as when the cluster has the CRDs. */
function gatewayApiOf(objects: KubeObject[]): GatewayApiSnapshot | undefined {
  const of = (kind: string): KubeObject[] => objects.filter((o) => o.kind === kind);
  if (!objects.some((o) => o.apiVersion?.startsWith('gateway.networking.k8s.io/') || o.kind === 'RoutePolicy')) return undefined;
  return gatewayApiSnapshot({
    gatewayClasses: of('GatewayClass'),
    gateways: of('Gateway'),
    httpRoutes: of('HTTPRoute'),
    referenceGrants: of('ReferenceGrant'),
    routePolicies: of('RoutePolicy'),
    secrets: of('Secret'),
    namespaces: of('Namespace'),
    addressService: of('Service').find((o) => `${o.metadata?.namespace}/${o.metadata?.name}` === ADDRESS_SERVICE),
    addressServiceKey: ADDRESS_SERVICE,
    controllerName: CONTROLLER_NAME,
    releaseServices: of('Service').filter((o) => o.metadata?.namespace === ADDRESS_SERVICE.split('/')[0]),
  });
}

function run(name: string): string {
  const objects = objectsFor(name);
  const of = (kind: string): KubeObject[] => objects.filter((o) => o.kind === kind);
  const result = compile(
    toSnapshot({ routes: of('GatewayRoute'), upstreams: of('Upstream'), services: of('Service'), endpointSlices: of('EndpointSlice'), secrets: of('Secret'), configMaps: of('ConfigMap') }, PARSERS, gatewayApiOf(objects)),
  );
  const statuses = Object.fromEntries([...result.statuses, ...result.gatewayApi].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  return stringify({ table: result.table, statuses, ...(result.gatewayServices.length > 0 ? { gatewayServices: result.gatewayServices } : {}) }, { lineWidth: 0 });
}

const { cases, orphans, missing } = goldenCases(DIR, '.in.yaml', '.out.yaml');

describe('compile golden files', () => {
  it('has cases', () => expect(cases.length).toBeGreaterThan(3));

  it('pairs every output with its input', () => expect(orphans, `outputs without an input in ${DIR}: delete them, or restore their input`).toEqual([]));

  it('pairs every input with its output', () => expect(UPDATE ? [] : missing, `inputs without an output in ${DIR}: run npm run gen:golden`).toEqual([]));

  it.each(cases)('%s', (name) => {
    const actual = run(name);
    const file = path.join(DIR, `${name}.out.yaml`);
    if (UPDATE) writeFileSync(file, actual);
    let expected = '';
    try {
      expected = readFileSync(file, 'utf8');
    } catch {
      throw new Error(`${file} is missing; run: npm run gen:golden`);
    }
    expect(actual, `${file} is out of date; run: npm run gen:golden, then review the diff`).toBe(expected);
  });

  it('is deterministic: input order does not change the table', () => {
    const objects = objectsFor('conflicts');
    const of = (list: KubeObject[], kind: string): KubeObject[] => list.filter((o) => o.kind === kind);
    const forward = compile(toSnapshot({ routes: of(objects, 'GatewayRoute'), upstreams: of(objects, 'Upstream'), services: [], endpointSlices: [] }, PARSERS));
    const reversed = [...objects].reverse();
    const backward = compile(toSnapshot({ routes: of(reversed, 'GatewayRoute'), upstreams: of(reversed, 'Upstream'), services: [], endpointSlices: [] }, PARSERS));
    expect(backward.table).toEqual(forward.table);
    expect([...backward.statuses]).toEqual([...forward.statuses]);
  });
});
