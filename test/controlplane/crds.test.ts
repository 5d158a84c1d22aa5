/**
 * The generated CRDs against a real API server: they install, the examples
 * apply, every invalid fixture is refused with its field and message, the
 * server and parseGatewayRoute / parseUpstream agree on what is valid and on
 * defaults, and kubectl shows the descriptions, categories and columns.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseGatewayRoute, parseUpstream } from '../../operator/src/api/index.ts';
import { startControlPlane } from '../support/control-plane.ts';
import { kubeFor } from '../support/kube.ts';
import type { ControlPlane } from '../support/control-plane.ts';
import { EXAMPLES_DIR, VALID_DIR, invalidFixtures, loadManifests, yamlFiles } from '../unit/api/fixtures.ts';
import type { Manifest } from '../unit/api/fixtures.ts';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let cp: ControlPlane;

function kubectl(args: readonly string[], stdin?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(cp.kubectl, ['--kubeconfig', cp.kubeconfigPath, ...args], { maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : 1, stdout, stderr });
    });
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}

async function ok(args: readonly string[], stdin?: string): Promise<string> {
  const r = await kubectl(args, stdin);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${String(r.code)}): ${r.stderr}`);
  return r.stdout;
}

/** Runs `fn` over `items` with at most `limit` at a time. */
async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

const FIXTURES_NS = 'fixtures';

/** The example manifests, applied (again: apply is idempotent) by each test that reads them. */
const applyExamples = (): Promise<string> => ok(['apply', '-f', `${EXAMPLES_DIR}/`]);

beforeAll(async () => {
  // No controller manager: nothing here needs one, and the API server starts faster alone.
  cp = await startControlPlane({ controllers: '' });
  await ok(['apply', '-f', 'crds/']);
  await ok(['wait', '--for=condition=Established', '--timeout=60s', 'crd/gatewayroutes.switchyard.dev', 'crd/upstreams.switchyard.dev']);
  await ok(['create', 'namespace', FIXTURES_NS]);
});

afterAll(async () => {
  await cp?.stop();
});

describe('CRDs on a real API server', () => {
  it('are established and served', async () => {
    const names = await ok(['get', 'crd', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Established")].status} {end}']);
    expect(names.trim().split(' ').sort()).toEqual(['gatewayroutes.switchyard.dev=True', 'routepolicies.switchyard.dev=True', 'upstreams.switchyard.dev=True']);
    const resources = await ok(['api-resources', '--api-group=switchyard.dev', '--no-headers']);
    expect(resources).toMatch(/gatewayroutes\s+gwr\s+switchyard\.dev\/v1alpha1\s+true\s+GatewayRoute/);
    expect(resources).toMatch(/upstreams\s+ups\s+switchyard\.dev\/v1alpha1\s+true\s+Upstream/);
  });

  it('apply every example manifest, and store what zod parses, defaults included', async () => {
    const out = await applyExamples();
    const examples = yamlFiles(EXAMPLES_DIR).flatMap(loadManifests);
    expect(out.trim().split('\n')).toHaveLength(examples.length);
    for (const m of examples.filter((x) => x.kind !== 'Namespace')) {
      const stored = JSON.parse(await ok(['get', m.kind.toLowerCase(), '-n', m.metadata.namespace ?? 'default', m.metadata.name, '-o', 'json'])) as Manifest;
      const parsed = m.kind === 'GatewayRoute' ? parseGatewayRoute(m) : parseUpstream(m);
      expect(parsed.ok, `${m.kind} ${m.metadata.name}`).toBe(true);
      // The API server applied the CRD's defaults; zod applied its own. They must be the same.
      if (parsed.ok) expect(stored.spec, `${m.kind} ${m.metadata.name}`).toEqual(parsed.value.spec);
    }
  });

  it('accept the valid edge cases', async () => {
    const out = await ok(['apply', '-n', FIXTURES_NS, '-f', `${VALID_DIR}/`]);
    expect(out).toMatch(/created/);
  });

  const fixtures = invalidFixtures();
  it(`refuse each of the ${String(fixtures.length)} invalid fixtures with its field and message, exactly`, async () => {
    const custom = kubeFor(cp).custom;
    /** The API server's causes for a create, as field → messages (a dry run: nothing is stored). */
    const causes = async (m: Manifest): Promise<string[]> => {
      try {
        await custom.createNamespacedCustomObject({ group: 'switchyard.dev', version: 'v1alpha1', namespace: FIXTURES_NS, plural: m.kind === 'GatewayRoute' ? 'gatewayroutes' : 'upstreams', body: m, dryRun: 'All' });
        return [];
      } catch (err) {
        const status = JSON.parse((err as { body: string }).body) as { details?: { causes?: { field: string; message: string }[] } };
        return (status.details?.causes ?? []).map((c) => `${c.field}: ${c.message}`);
      }
    };
    const results = await pool(fixtures, 6, async (f) => ({ f, r: await kubectl(['apply', '-n', FIXTURES_NS, '-f', f.path]), causes: await causes(f.object) }));
    const wrong = results
      .filter(({ f, r, causes: c }) => r.code === 0 || !r.stderr.includes(`${f.field}: ${f.api}`) || !c.includes(`${f.field}: ${f.api}`))
      .map(({ f, r, causes: c }) => `${f.file}: expected "${f.field}: ${f.api}", got (exit ${String(r.code)}) ${JSON.stringify(c)}`);
    expect(wrong).toEqual([]);
    // Nothing was created by accident.
    expect(await ok(['get', 'gatewayroutes,upstreams', '-n', FIXTURES_NS, '-o', 'name'])).not.toMatch(/weights-all-zero|service-and-static/);
  });

  it('agree with zod on what is valid', async () => {
    const route = (spec: Record<string, unknown>): Manifest => ({ apiVersion: 'switchyard.dev/v1alpha1', kind: 'GatewayRoute', metadata: { name: 'probe' }, spec: { upstream: 'u', ...spec } });
    const upstream = (spec: Record<string, unknown>): Manifest => ({ apiVersion: 'switchyard.dev/v1alpha1', kind: 'Upstream', metadata: { name: 'probe' }, spec });
    const samples: Manifest[] = [
      ...['/', '/a/', '/a//b', '/a/./b', '/a/..', '/a/.b', '/a/%2F', '/a/%2f', '/a b', '/a#b', '/~user', "/a;b=c,d'e", '/ü', '/a\\b'].map((value) => route({ path: { value } })),
      ...['/{id}', '/{id}/{id2}', '/{_x-y}', '/{}', '/{a}{b}', '/a{b}', '/*', '/*/x', '/x/**', '/{a/b}', '/{-a}'].map((value) => route({ path: { type: 'Template', value } })),
      ...['/', '/static/', '/a/*'].map((value) => route({ path: { type: 'Prefix', value } })),
      ...['1ms', '0.5ms', '0.001s', '0.0009s', '1h', '1h0.001ms', '59m60s', '1.5s', '0', '1d', '10 s', '-1s', '1e3ms', '.5s'].map((timeout) => route({ path: { value: '/' }, timeout })),
      ...['shop.example.com', '*.example.com', '*', '*.*.example.com', 'a.*.com', 'xn--bcher-kva.example', 'under_score.example', '-a.example', 'a-.example', 'localhost', '10.0.0.1'].map((h) => route({ path: { value: '/' }, hosts: [h] })),
      ...['*', 'https://a.example', 'http://localhost:5173', 'https://a.example/', 'null', 'https://*.example.com', 'ftp://a.example'].map((o) => route({ path: { value: '/' }, cors: { allowedOrigins: [o] } })),
      ...[80, 65535, 0, 'http', 'h2c-port', 'a-very-long-port-name', '80', 'Http', '-http', 1.5].map((port) => upstream({ service: { name: 'svc', port } })),
      ...['http://a:1', 'http://a', 'https://a', 'http://10.0.0.1:8080', 'http://[fd00::1]:80', 'http://a:1/', 'http://a:1/x', 'http://a?x=1', 'http://user@a', 'a:1', '//a', 'http://'].map((e) =>
        upstream({ static: { endpoints: [e] }, protocol: e.startsWith('https') ? 'https' : 'http' }),
      ),
      upstream({ service: { name: 'svc', port: 80 }, healthCheck: { path: '/h', interval: '1s', timeout: '999ms' } }),
      upstream({ service: { name: 'svc', port: 80 }, healthCheck: { path: '/h', interval: '1s', timeout: '1s' } }),
      upstream({ service: { name: 'svc', port: 80 }, healthCheck: { path: '/h', interval: '1s' } }),
    ];
    const results = await pool(samples, 6, async (m) => {
      const server = await kubectl(['create', '--dry-run=server', '-n', FIXTURES_NS, '-o', 'name', '-f', '-'], JSON.stringify(m));
      const zod = m.kind === 'GatewayRoute' ? parseGatewayRoute(m) : parseUpstream(m);
      return { spec: JSON.stringify(m.spec), server: server.code === 0, zod: zod.ok, detail: server.stderr.trim() || (zod.ok ? '' : JSON.stringify(zod.errors)) };
    });
    const disagreements = results.filter((r) => r.server !== r.zod).map((r) => `${r.spec}: API server ${r.server ? 'accepts' : 'refuses'}, zod ${r.zod ? 'accepts' : 'refuses'}: ${r.detail}`);
    expect(disagreements).toEqual([]);
    // The samples exercise both outcomes.
    expect(results.filter((r) => r.server).length).toBeGreaterThan(10);
    expect(results.filter((r) => !r.server).length).toBeGreaterThan(10);
  });

  it('teach their fields through kubectl explain', async () => {
    const auth = await ok(['explain', 'gatewayroute.spec.auth']);
    expect(auth).toContain('Authentication and authorization');
    expect(auth).toMatch(/required\s+<boolean>/);
    expect(auth).toContain('Whether a valid bearer token (JWT) is needed');
    expect(auth).toMatch(/roles\s+<\[\]string>/);
    const service = await ok(['explain', 'upstream.spec.service']);
    expect(service).toContain('Discover endpoints through a Service');
    // kubectl explain shows an int-or-string field of a CRD as <Object>.
    expect(service).toMatch(/port\s+<\w+> -required-/);
    expect(service).toContain('its number (1-65535) or its name');
    const path = await ok(['explain', 'gwr.spec.path.type']);
    expect(path).toMatch(/ENUM:\s+Exact\s+Prefix\s+Template/);
  });

  it('list both kinds under kubectl get switchyard', async () => {
    await applyExamples();
    const out = await ok(['get', 'switchyard', '-n', 'shop', '-o', 'name']);
    expect(out).toContain('gatewayroute.switchyard.dev/users');
    expect(out).toContain('upstream.switchyard.dev/user-service');
  });

  it('show printer columns, fed by the status subresource', async () => {
    await applyExamples();
    const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const condition = (type: string, status: string): Record<string, unknown> => ({ type, status, observedGeneration: 1, lastTransitionTime: now, reason: type, message: '' });
    await ok([
      'patch', 'gwr', 'users', '-n', 'shop', '--subresource=status', '--type=merge',
      '-p', JSON.stringify({ status: { observedGeneration: 1, conditions: [condition('Accepted', 'True'), condition('ResolvedRefs', 'True'), condition('Programmed', 'False')] } }),
    ]);
    await ok(['patch', 'ups', 'user-service', '-n', 'shop', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { readyEndpoints: 2, totalEndpoints: 3, conditions: [condition('Accepted', 'True')] } })]);

    const routes = await ok(['get', 'gwr', '-n', 'shop']);
    expect(routes.split('\n')[0]).toMatch(/^NAME\s+PATH\s+UPSTREAM\s+ACCEPTED\s+PROGRAMMED\s+AGE$/);
    expect(routes).toMatch(/\nusers\s+\/api\/v1\/users\s+user-service\s+True\s+False\s+\S+\n/);
    expect(routes).toMatch(/\nuser\s+\/api\/v1\/users\/\{id\}\s+user-service\s+\S+\n/);
    expect(await ok(['get', 'gwr', '-n', 'shop', '-o', 'wide'])).toMatch(/^NAME\s+PATH\s+TYPE\s+UPSTREAM/);

    const ups = await ok(['get', 'ups', '-n', 'shop']);
    expect(ups.split('\n')[0]).toMatch(/^NAME\s+SERVICE\s+READY\s+TOTAL\s+ACCEPTED\s+AGE$/);
    expect(ups).toMatch(/\nuser-service\s+user-service\s+2\s+3\s+True\s+\S+\n/);
  });

  it('refuse a malformed status as well', async () => {
    await applyExamples();
    const r = await kubectl(['patch', 'gwr', 'users', '-n', 'shop', '--subresource=status', '--type=merge', '-p', JSON.stringify({ status: { conditions: [{ type: 'Accepted', status: 'Yes' }] } })]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('status.conditions[0].status: Unsupported value: "Yes"');
    expect(r.stderr).toContain('status.conditions[0].lastTransitionTime: Required value');
  });
});
