/**
 * The chart's rate-limit storage: values alone point the data planes at one
 * Redis, a Sentinel group or a Redis Cluster; passwords go from Secrets to
 * files and never into the ConfigMap; values.schema.json refuses a
 * half-configured storage, saying where.
 *
 * The last tests go further than rendering: the rendered bootstrap config
 * runs two data planes against a real Sentinel group and a real Redis Cluster
 * on 127.0.0.1, with the Secrets written where the kubelet would mount them.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { CHART, find, helm, helmBinary, helmOk, parseObjects, ROOT, type K8sObject } from '../../support/helm.ts';
import { startGateway, type TestGateway } from '../../support/gateway.ts';
import { makeTestTls, startRedisCluster, startSentinelGroup, type TestTls } from '../../support/redis-ha.ts';
import { echo, startUpstream, type TestUpstream } from '../../support/upstreams.ts';

const GOLDEN = path.join(ROOT, 'test', 'golden', 'helm');

const render = (args: string[]): Promise<K8sObject[]> => helmOk(['template', 'switchyard', CHART, '--namespace', 'switchyard-system', ...args]).then(parseObjects);

type Volume = { name: string; projected?: { sources: { secret: { name: string; items: { key: string; path: string }[] } }[] } };
type Container = { volumeMounts?: { name: string; mountPath: string }[] };
type PodSpec = { containers: Container[]; volumes: Volume[] };

const podSpec = (objects: K8sObject[]): PodSpec => (find(objects, 'Deployment', '-dataplane') as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
const gatewayYaml = (objects: K8sObject[]): string => (find(objects, 'ConfigMap', '-dataplane') as unknown as { data: Record<string, string> }).data['gateway.yaml'] as string;
const storageOf = (objects: K8sObject[]): Record<string, unknown> => (parse(gatewayYaml(objects)) as { middleware: { rate_limiting: { storage: Record<string, unknown> } } }).middleware.rate_limiting.storage;

beforeAll(async () => {
  await helmBinary();
}, 900_000);

describe('values.schema.json refuses a half-configured storage', () => {
  const refused: [string, string[], string][] = [
    ['a Sentinel group without its name', ['--set', 'dataplane.redis.sentinel.sentinels[0]=s-0:26379'], "at '/dataplane/redis/sentinel/name': minLength: got 0, want 1"],
    ['a Sentinel name without sentinels', ['--set', 'dataplane.redis.sentinel.name=mymaster'], "at '/dataplane/redis/sentinel/sentinels': minItems: got 0, want 1"],
    ['a URL and cluster nodes at once', ['--set', 'dataplane.redis.url=redis://r:6379', '--set', 'dataplane.redis.cluster.nodes[0]=r-0:6379'], "at '/dataplane/redis/cluster/nodes/0': value must be '(nothing: url is the storage already; set one of url, sentinel.sentinels, cluster.nodes)'"],
    ['sentinels and cluster nodes at once', ['--set', 'dataplane.redis.sentinel.sentinels[0]=s-0:26379', '--set', 'dataplane.redis.sentinel.name=m', '--set', 'dataplane.redis.cluster.nodes[0]=r-0:6379'], "at '/dataplane/redis/cluster/nodes/0': value must be '(nothing: sentinel.sentinels is the storage already"],
    // No storage for the password: the three ways to give one are named, each with what it lacks.
    ['a password for no storage', ['--set', 'dataplane.redis.auth.password=pw'], ["- at '/dataplane/redis': 'anyOf' failed", "- at '/dataplane/redis/url': minLength: got 0, want 1", "- at '/dataplane/redis/sentinel/sentinels': minItems: got 0, want 1", "- at '/dataplane/redis/cluster/nodes': minItems: got 0, want 1"].join('\n    ')],
    ['a user name for no storage', ['--set', 'dataplane.redis.username=gateway'], ["- at '/dataplane/redis': 'anyOf' failed", "- at '/dataplane/redis/url': minLength: got 0, want 1", "- at '/dataplane/redis/sentinel/sentinels': minItems: got 0, want 1", "- at '/dataplane/redis/cluster/nodes': minItems: got 0, want 1"].join('\n    ')],
    ['a sentinels\' password without sentinels', ['--set', 'dataplane.redis.cluster.nodes[0]=r-0:6379', '--set', 'dataplane.redis.sentinelAuth.existingSecret=s'], "at '/dataplane/redis/sentinel/sentinels': minItems: got 0, want 1"],
    ['TLS files without TLS', ['--set', 'dataplane.redis.url=rediss://r:6379', '--set', 'dataplane.redis.tls.caSecret=redis-ca'], "at '/dataplane/redis/tls/enabled': value must be true"],
    ['TLS with a redis:// URL', ['--set', 'dataplane.redis.url=redis://r:6379', '--set', 'dataplane.redis.tls.enabled=true'], "at '/dataplane/redis/url': 'redis://r:6379' does not match pattern '^(rediss://.+)?$'"],
    ['a cluster node without a port', ['--set', 'dataplane.redis.cluster.nodes[0]=r-0'], "at '/dataplane/redis/cluster/nodes/0'"],
  ];
  it.each(refused)('refuses %s, naming the setting', async (_what, args, message) => {
    const r = await helm(['template', 'switchyard', CHART, '--namespace', 'switchyard-system', ...args]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("values don't meet the specifications of the schema(s)");
    expect(r.stderr).toContain(message);
  });
});

describe('rendering the storage', () => {
  it('points at a Sentinel group with values alone; passwords reach the pod as files from Secrets, never through the ConfigMap', async () => {
    const objects = await render(['--values', path.join(GOLDEN, 'redis-sentinel.values.yaml')]);
    expect(storageOf(objects)).toEqual({
      type: 'RedisSentinel',
      sentinels: ['redis-sentinel-0.redis:26379', 'redis-sentinel-1.redis:26379', 'redis-sentinel-2.redis:26379'],
      name: 'mymaster',
      username: 'gateway',
      password_file: '/var/run/switchyard-redis/password',
      sentinel_password_file: '/var/run/switchyard-redis/sentinel-password',
      tls: { ca_file: '/app/redis-tls/ca.crt', cert_file: '/app/redis-tls/tls.crt', key_file: '/app/redis-tls/tls.key', server_name: 'redis.internal', insecure_skip_verify: false },
      timeout: '100ms',
      failure_policy: 'open',
    });
    const rendered = objects.filter((o) => o.kind !== 'Secret').map((o) => stringify(o)).join('\n');
    expect(rendered).not.toContain('sentinel-password-from-values');
    expect(rendered).not.toContain(Buffer.from('sentinel-password-from-values').toString('base64'));
    const secret = find(objects, 'Secret', '-redis') as K8sObject & { data: Record<string, string> };
    expect(Object.keys(secret.data)).toEqual(['sentinel-password']);
    const spec = podSpec(objects);
    const auth = spec.volumes.find((v) => v.name === 'redis-auth');
    expect(auth?.projected?.sources.map((s) => [s.secret.name, s.secret.items])).toEqual([
      ['redis', [{ key: 'redis-password', path: 'password' }]],
      ['switchyard-redis', [{ key: 'sentinel-password', path: 'sentinel-password' }]],
    ]);
    expect(spec.containers[0]?.volumeMounts).toEqual(expect.arrayContaining([{ name: 'redis-auth', mountPath: '/var/run/switchyard-redis', readOnly: true }, { name: 'redis-tls', mountPath: '/app/redis-tls', readOnly: true }]));
  });

  it('points at a Redis Cluster with values alone, and the data planes roll when the storage changes', async () => {
    const objects = await render(['--values', path.join(GOLDEN, 'redis-cluster.values.yaml')]);
    expect(storageOf(objects)).toEqual({ type: 'RedisCluster', nodes: ['redis-cluster-0.redis-cluster:6379', 'redis-cluster-1.redis-cluster:6379', 'redis-cluster-2.redis-cluster:6379'], password_file: '/var/run/switchyard-redis/password', timeout: '50ms', failure_policy: 'closed' });
    expect(podSpec(objects).volumes.some((v) => v.name === 'redis-tls')).toBe(false);
    const checksum = (o: K8sObject[]): string | undefined => (find(o, 'Deployment', '-dataplane') as unknown as { spec: { template: { metadata: { annotations: Record<string, string> } } } }).spec.template.metadata.annotations['checksum/config'];
    const other = await render(['--values', path.join(GOLDEN, 'redis-cluster.values.yaml'), '--set', 'dataplane.redis.failurePolicy=open']);
    expect(checksum(other)).not.toBe(checksum(objects));
  });

  it('renders no storage, Secret or volume when no Redis is set', async () => {
    const objects = await render([]);
    expect((parse(gatewayYaml(objects)) as { middleware: { rate_limiting: Record<string, unknown> } }).middleware.rate_limiting.storage).toBeUndefined();
    expect(objects.some((o) => o.kind === 'Secret' && o.metadata.name.endsWith('-redis'))).toBe(false);
    expect(podSpec(objects).volumes.map((v) => v.name)).not.toContain('redis-auth');
  });
});

describe('the rendered config on real Redis', () => {
  let dir: string;
  let tls: TestTls;
  let up: TestUpstream;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'switchyard-helm-redis-'));
    tls = makeTestTls(dir);
    up = await startUpstream(echo('u'));
  });
  afterAll(async () => {
    await up.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * What the kubelet does with the pod's projected volumes: each Secret's
   * items written under the mount path (here a directory of the test), then
   * the config's paths pointed there.
   */
  function mountSecrets(objects: K8sObject[], external: Record<string, Record<string, string>>): Record<string, unknown> {
    const spec = podSpec(objects);
    const secrets = new Map<string, Record<string, string>>(Object.entries(external));
    for (const o of objects.filter((x) => x.kind === 'Secret')) {
      const data = (o as unknown as { data: Record<string, string> }).data;
      secrets.set(o.metadata.name, Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')])));
    }
    let text = gatewayYaml(objects);
    for (const mount of spec.containers[0]?.volumeMounts ?? []) {
      const volume = spec.volumes.find((v) => v.name === mount.name);
      if (!volume?.projected) continue;
      const at = path.join(dir, `mount-${mount.name}-${Math.random().toString(36).slice(2)}`);
      mkdirSync(at);
      for (const { secret } of volume.projected.sources) {
        for (const item of secret.items) {
          const value = secrets.get(secret.name)?.[item.key];
          if (value === undefined) throw new Error(`Secret ${secret.name} has no key ${item.key}`);
          writeFileSync(path.join(at, item.path), value);
        }
      }
      text = text.replaceAll(`${mount.mountPath}/`, `${at}/`);
    }
    return parse(text) as Record<string, unknown>;
  }

  async function expectSharedLimit(config: Record<string, unknown>): Promise<void> {
    const gateways: TestGateway[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        const c = structuredClone(config) as { middleware: { rate_limiting: { storage: Record<string, unknown> } } } & Record<string, unknown>;
        // The test's own: routes (the operator's, in a cluster) and a deadline for a busy machine.
        c.routes = [{ path: '/limited', upstream: 'u', rate_limit: 3 }, { path: '/probe', upstream: 'u', rate_limit: 1_000_000 }];
        c.upstreams = { u: { discovery: { type: 'Static', endpoints: [up.url] } } };
        c.middleware.rate_limiting.storage.timeout = '500ms';
        // The pod's ports and listen addresses give way to free loopback ones.
        const { http_port: _h, https_port: _s, admin_port: _a, metrics_port: _m, bind_address: _b, admin_bind_address: _ab, ...server } = c.server as Record<string, unknown>;
        c.server = server;
        gateways.push(await startGateway(c, { env: { JWT_SECRET: 'x'.repeat(48) } }));
      }
      const redisDecisions = async (g: TestGateway): Promise<number> => [...(await (await request(g.metricsUrl)).body.text()).matchAll(/switchyard_ratelimit_decisions_total\{result="\w+",store="redis"\} (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
      for (const g of gateways) {
        const deadline = Date.now() + 20_000;
        while ((await redisDecisions(g)) === 0) {
          if (Date.now() > deadline) throw new Error('the data plane never reached the store');
          await (await request(`${g.url}/probe`)).body.dump();
        }
      }
      const out: number[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await request(`${(gateways[i % 2] as TestGateway).url}/limited`);
        await res.body.dump();
        out.push(res.statusCode);
      }
      expect(out).toEqual([200, 200, 200, 429, 429]);
    } finally {
      await Promise.all(gateways.map((g) => g.stop()));
    }
  }

  it('two data planes share a limit through a Sentinel group over TLS, with both passwords from Secrets', async () => {
    const group = await startSentinelGroup({ password: 'node-password', sentinelPassword: 'sentinel-password', tls });
    try {
      const objects = await render([
        ...group.sentinels.flatMap((s, i) => ['--set', `dataplane.redis.sentinel.sentinels[${i}]=${s}`]),
        '--set', `dataplane.redis.sentinel.name=${group.name}`,
        '--set', 'dataplane.redis.auth.existingSecret=redis',
        '--set', 'dataplane.redis.sentinelAuth.password=sentinel-password',
        '--set', 'dataplane.redis.tls.enabled=true',
        '--set', 'dataplane.redis.tls.caSecret=redis-ca',
      ]);
      const config = mountSecrets(objects, { redis: { password: 'node-password' }, 'redis-ca': { 'ca.crt': readFileSync(tls.caFile, 'utf8') } });
      await expectSharedLimit(config);
    } finally {
      await group.stop();
    }
  }, 120_000);

  it('two data planes share a limit through a Redis Cluster, the password from a Secret the chart creates', async () => {
    const cluster = await startRedisCluster({ password: 'cluster-password' });
    try {
      const objects = await render([...cluster.seeds.slice(0, 3).flatMap((s, i) => ['--set', `dataplane.redis.cluster.nodes[${i}]=${s}`]), '--set', 'dataplane.redis.auth.password=cluster-password']);
      await expectSharedLimit(mountSecrets(objects, {}));
    } finally {
      await cluster.stop();
    }
  }, 120_000);
});
