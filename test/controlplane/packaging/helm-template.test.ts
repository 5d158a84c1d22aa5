/**
 * The chart rendered by the real Helm (hack/helm.sh builds it from its Go
 * module): lint, golden files per value set, the bootstrap config accepted by
 * the data plane's own loader, and bad values refused with the schema's message.
 *
 * Golden files: test/golden/helm/<case>.values.yaml → <case>.out.yaml, rendered
 * as release "switchyard" in namespace "switchyard-system". Generated secrets are
 * random, so a line that differs between two renders is written as <random>.
 * `npm run gen:helm-golden` rewrites the outputs.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../dataplane/src/config/load.ts';
import { goldenCases, updatingGolden } from '../../support/golden.ts';
import { CHART, find, helm, helmBinary, helmOk, parseObjects, ROOT, type K8sObject } from '../../support/helm.ts';

const GOLDEN = path.join(ROOT, 'test', 'golden', 'helm');
const UPDATE = updatingGolden();
const { cases: CASES, orphans, missing } = goldenCases(GOLDEN, '.values.yaml', '.out.yaml');

const template = (valuesFile: string, extra: string[] = []): Promise<string> =>
  helmOk(['template', 'switchyard', CHART, '--namespace', 'switchyard-system', '--values', valuesFile, ...extra]);

/** Replaces the value on each line that differs between two renders of the same input. */
export function maskRandom(first: string, second: string): string {
  const a = first.split('\n');
  const b = second.split('\n');
  if (a.length !== b.length) throw new Error('two renders of the same values differ in length: something other than a generated secret is random');
  return a.map((line, i) => (line === b[i] ? line : line.replace(/^(\s*[\w./-]+:\s*).*$/, '$1<random>'))).join('\n');
}

beforeAll(async () => {
  await helmBinary();
}, 900_000);

describe('helm lint', () => {
  it.each(CASES)('passes with %s values', async (name) => {
    const r = await helm(['lint', '--strict', CHART, '--namespace', 'switchyard-system', '--values', path.join(GOLDEN, `${name}.values.yaml`)]);
    expect(r.stdout + r.stderr).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(r.code).toBe(0);
  });
});

describe('helm template', () => {
  it('pairs every golden output with its values', () => expect(orphans, `outputs without values in ${GOLDEN}: delete them, or restore their values`).toEqual([]));

  it('pairs every values file with its golden output', () => expect(UPDATE ? [] : missing, `values without an output in ${GOLDEN}: run npm run gen:helm-golden`).toEqual([]));

  it.each(CASES)('renders %s as its golden file', async (name) => {
    const values = path.join(GOLDEN, `${name}.values.yaml`);
    const rendered = maskRandom(await template(values), await template(values));
    const golden = path.join(GOLDEN, `${name}.out.yaml`);
    if (UPDATE) writeFileSync(golden, rendered);
    expect(existsSync(golden), `${golden} is missing: run \`npm run gen:helm-golden\``).toBe(true);
    expect(rendered, `${name}: the chart's output changed; if intended, run \`npm run gen:helm-golden\` and review the diff`).toBe(readFileSync(golden, 'utf8'));
  });

  it('generates nothing random when every secret is given', async () => {
    const values = path.join(GOLDEN, 'full.values.yaml');
    expect(await template(values)).toBe(await template(values));
  });

  it.each(CASES)('renders a bootstrap config (%s) that the data plane accepts', async (name) => {
    const objects = parseObjects(await template(path.join(GOLDEN, `${name}.values.yaml`)));
    const configMap = find(objects, 'ConfigMap', '-dataplane') as K8sObject & { data: Record<string, string> };
    const text = configMap.data['gateway.yaml'] as string;
    const env = envOf(objects);
    const loaded = parseConfig(text, 'gateway.yaml', env);
    expect(loaded.config.routes).toEqual([]);
    const deployment = find(objects, 'Deployment', '-dataplane');
    const container = podSpec(deployment).containers[0] as Container;
    const ports = Object.fromEntries((container.ports ?? []).map((p) => [p.name, p.containerPort]));
    // The listeners the config opens are the ports the pod declares and probes.
    expect(loaded.config.server.http_port).toBe(ports.http);
    expect(loaded.config.server.metrics_port).toBe(ports.metrics);
    if (ports.admin !== undefined) {
      expect(loaded.config.server.admin_port).toBe(ports.admin);
      expect(loaded.config.server.admin_bind_address).toBe('0.0.0.0');
    } else {
      expect(loaded.config.server.admin_bind_address).toBe('127.0.0.1');
    }
    if (ports.https !== undefined) {
      const tls = loaded.config.server.tls;
      expect(tls).toMatchObject({ cert_file: '/app/tls/tls.crt', key_file: '/app/tls/tls.key', min_version: 'TLSv1.2' });
      // Every file the TLS listener reads is in a volume the container mounts.
      const mounts = (container.volumeMounts ?? []).map((m) => m.mountPath);
      const files = [tls?.cert_file, tls?.key_file, tls?.client_auth?.ca_file].filter((f) => f !== undefined);
      for (const f of files) expect(mounts, f).toContain(path.dirname(f));
    }
    expect(container.args).toContain('--config=/app/config/gateway.yaml');
  });

  it('points every data plane at every operator replica by its stable name', async () => {
    const objects = parseObjects(await template(path.join(GOLDEN, 'full.values.yaml')));
    const sts = find(objects, 'StatefulSet', '-operator') as K8sObject & { spec: { replicas: number; serviceName: string } };
    const args = (podSpec(find(objects, 'Deployment', '-dataplane')).containers[0] as Container).args ?? [];
    const operatorArg = args.find((a) => a.startsWith('--operator=')) ?? '';
    const urls = operatorArg.slice('--operator='.length).split(',');
    expect(urls).toHaveLength(sts.spec.replicas);
    urls.forEach((url, i) => expect(url).toBe(`https://${sts.metadata.name}-${i}.${sts.spec.serviceName}.switchyard-system.svc.cluster.local:18000`));
  });

  it("gives the operator a certificate for every replica's name, and the data planes only its CA", async () => {
    const objects = parseObjects(await template(path.join(GOLDEN, 'default.values.yaml')));
    const secret = find(objects, 'Secret', '-operator-config-tls') as K8sObject & { data: Record<string, string> };
    const caMap = find(objects, 'ConfigMap', '-operator-config-ca') as K8sObject & { binaryData: Record<string, string> };
    const ca = Buffer.from(caMap.binaryData['ca.crt'] as string, 'base64').toString();
    expect(Buffer.from(secret.data['ca.crt'] as string, 'base64').toString()).toBe(ca);
    const cert = new X509Certificate(Buffer.from(secret.data['tls.crt'] as string, 'base64'));
    expect(cert.verify(new X509Certificate(ca).publicKey)).toBe(true);
    const sts = find(objects, 'StatefulSet', '-operator') as K8sObject & { spec: { serviceName: string } };
    const args = (podSpec(find(objects, 'Deployment', '-dataplane')).containers[0] as Container).args ?? [];
    const first = new URL((args.find((a) => a.startsWith('--operator=')) ?? '').slice('--operator='.length).split(',')[0] as string);
    // checkHost answers with the name that covers the host (the wildcard), or undefined.
    expect(cert.checkHost(first.hostname)).toBe(`*.${sts.spec.serviceName}.switchyard-system.svc.cluster.local`);
    expect(cert.checkHost('operator.example.com')).toBeUndefined();
    expect(first.hostname).toBe(`${sts.metadata.name}-0.${sts.spec.serviceName}.switchyard-system.svc.cluster.local`);
    expect(args).toContain('--operator-ca=/var/run/switchyard-operator-ca/ca.crt');
    const dpVolumes = JSON.stringify(podSpec(find(objects, 'Deployment', '-dataplane')));
    expect(dpVolumes).not.toContain('-operator-config-tls');
  });
});

describe('values.schema.json', () => {
  const refused: [string, string[], string][] = [
    ['an unknown service type', ['--set', 'dataplane.service.type=Ingress'], "at '/dataplane/service/type': value must be one of 'ClusterIP', 'NodePort', 'LoadBalancer'"],
    ['routes in the bootstrap config', ['--set', 'dataplane.config.routes[0].path=/x'], "at '/dataplane/config': additional properties 'routes' not allowed"],
    ['ports in the bootstrap config', ['--set', 'dataplane.config.server.http_port=80'], "at '/dataplane/config/server': additional properties 'http_port' not allowed"],
    ['a misspelt key', ['--set', 'dataplane.replica=2'], "at '/dataplane': additional properties 'replica' not allowed"],
    ['two replicas without leader election', ['--set', 'operator.leaderElection.enabled=false'], "at '/operator/replicas': maximum: got 2, want 1"],
    ['a negative replica count', ['--set', 'dataplane.replicas=-1'], "at '/dataplane/replicas': minimum: got -1, want 0"],
    ['a port out of range', ['--set', 'dataplane.ports.http=70000'], "at '/dataplane/ports/http': maximum: got 70,000, want 65,535"],
    ['a Redis URL that is not one', ['--set', 'dataplane.redis.url=localhost:6379'], "at '/dataplane/redis/url'"],
    ['a lease duration that is not a duration', ['--set', 'operator.leaderElection.leaseDuration=15'], "at '/operator/leaderElection/leaseDuration'"],
    ['a short operator token', ['--set', 'operatorToken.value=short'], "at '/operatorToken/value'"],
  ];
  it.each(refused)('refuses %s with a message naming the value', async (_what, args, message) => {
    const r = await helm(['template', 'switchyard', CHART, '--namespace', 'switchyard-system', ...args]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("values don't meet the specifications of the schema(s)");
    expect(r.stderr).toContain(message);
  });

  it.each([
    ['a jwt.secret shorter than HS256 needs', ['--set', `jwt.secret=${'x'.repeat(20)}`], 'jwt.secret is 20 bytes, and the algorithms in dataplane.config.auth.jwt need at least 32 (RFC 7518 section 3.2)'],
    ['a jwt.secret shorter than HS512 needs', ['--set', `jwt.secret=${'x'.repeat(48)}`, '--set', 'dataplane.config.auth.jwt.algorithm=HS512'], 'jwt.secret is 48 bytes, and the algorithms in dataplane.config.auth.jwt need at least 64'],
  ])('refuses %s, naming the value and the length', async (_what, args, message) => {
    const r = await helm(['template', 'switchyard', CHART, '--namespace', 'switchyard-system', ...args]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(message);
    expect(r.stderr).not.toContain('x'.repeat(20));
  });

  it('generates a JWT secret as long as the algorithm needs', async () => {
    for (const [alg, length] of [['HS256', 48], ['HS384', 48], ['HS512', 64]] as const) {
      const objects = parseObjects(await template(path.join(GOLDEN, 'default.values.yaml'), ['--set', `dataplane.config.auth.jwt.algorithm=${alg}`]));
      const secret = find(objects, 'Secret', '-jwt') as K8sObject & { data: { secret: string } };
      expect(Buffer.from(secret.data.secret, 'base64').toString('utf8'), alg).toHaveLength(length);
    }
  });

  it('refuses jwt.enabled=false while the config still reads ${JWT_SECRET}', async () => {
    const r = await helm(['template', 'switchyard', CHART, '--set', 'jwt.enabled=false']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('jwt.enabled is false, but dataplane.config still reads ${JWT_SECRET}');
  });

  it('refuses client certificates without an https port of the data plane, naming the value to set', async () => {
    const r = await helm(['template', 'switchyard', CHART, '--set', 'dataplane.tls.clientCA.configMap=clients-ca']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('dataplane.tls.clientCA.configMap asks clients of the https port for a certificate, but there is no https port of the data plane\'s own: set dataplane.tls.secretName too');
  });
});

interface Container {
  name: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  ports?: { name: string; containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string }[];
}

function podSpec(workload: K8sObject): { containers: Container[] } {
  return (workload as unknown as { spec: { template: { spec: { containers: Container[] } } } }).spec.template.spec;
}

/** The data plane container's environment, with secret references given a stand-in value (long enough for HS512). */
function envOf(objects: K8sObject[]): NodeJS.ProcessEnv {
  const container = podSpec(find(objects, 'Deployment', '-dataplane')).containers[0] as Container;
  return Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? `secret-for-${e.name}-`.padEnd(64, 'x')]));
}
