/**
 * The chart on a real node (hack/cluster.sh): a kubelet and containerd run the images
 * built from the project's Dockerfile, installed exactly as README's "Install on
 * Kubernetes" says, and then the things a cluster does to a gateway while traffic flows:
 * rolling restarts, an upgrade, scaling the upstream, the leader operator's loss.
 *
 * The tests run in order on one installation, the last one uninstalls it. Load is steady,
 * bounded in time and in count; every request must answer 200. The numbers are printed.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseObjects } from '../support/helm.ts';
import { describeCluster, describeLoad, nodeCluster, readmeBlocks, splitBuilds, startLoad, tagImage, waitFor, type Load, type LoadStats, type NodeCluster } from '../support/node.ts';

const NS = 'switchyard-system';
const RELEASE = 'switchyard';
const DATAPLANE = 'switchyard-dataplane';
const OPERATOR = 'switchyard-operator';
/** Steady load: under the chart's default rate limit (1000 a minute per user and replica). */
const RATE = 20;

interface Condition {
  type: string;
  status: string;
  lastTransitionTime?: string;
}
interface Pod {
  metadata: { name: string; deletionTimestamp?: string; labels?: Record<string, string> };
  spec: { containers: { name: string; image: string; readinessProbe?: { httpGet?: { path: string } }; livenessProbe?: { httpGet?: { path: string } } }[] };
  status: {
    phase?: string;
    podIP?: string;
    conditions?: Condition[];
    containerStatuses?: { name: string; ready: boolean; started?: boolean; restartCount: number; imageID: string; state?: { waiting?: { reason?: string; message?: string } } }[];
  };
}
interface List<T> {
  items: T[];
}

/** The README blocks the tests below run, each found by what only it holds. */
const README_BLOCKS = {
  install: 'helm install',
  examples: 'examples/kubernetes/services/',
  routes: 'kubectl apply -f examples/kubernetes/ ',
  plugin: 'kubectl switchyard explain',
  gateway: 'GATEWAY=',
} as const;

/** The block of README's "Install on Kubernetes" that holds `marker`. */
function readmeBlock(name: keyof typeof README_BLOCKS): string {
  const block = readmeBlocks('Install on Kubernetes').find((b) => b.includes(README_BLOCKS[name]));
  if (block === undefined) throw new Error(`README's "Install on Kubernetes" has no block with ${JSON.stringify(README_BLOCKS[name])}`);
  return block;
}

const log = (line: string): void => console.log(`[node] ${line}`);
const ready = (pod: Pod): boolean => pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true && !pod.metadata.deletionTimestamp;
const readySince = (pod: Pod): number => Date.parse(pod.status.conditions?.find((c) => c.type === 'Ready')?.lastTransitionTime ?? '');

describe('the chart on a real node, installed as README says', () => {
  let k: NodeCluster;
  let gateway = '';
  /** alice's token, from the Quick start's requests. */
  let aliceToken = '';
  const tokens: string[] = [];
  const loads: Load[] = [];

  const pods = async (namespace: string, selector: string): Promise<Pod[]> => (await k.getJson<List<Pod>>(['pods', '-n', namespace, '-l', selector])).items;
  const component = (name: string): string => `app.kubernetes.io/instance=${RELEASE},app.kubernetes.io/component=${name}`;
  /** Waits until exactly `count` pods match and all are Ready, none terminating. */
  const readyPods = (namespace: string, selector: string, count: number, timeoutMs = 240_000): Promise<Pod[]> =>
    waitFor(
      `${count} Ready pods ${selector} in ${namespace}`,
      async () => {
        const all = await pods(namespace, selector);
        return all.length === count && all.every(ready) ? all : undefined;
      },
      timeoutMs,
    );
  const load = (path: string, maxDurationMs: number): Load => {
    const l = startLoad({
      url: `${gateway}${path}`,
      headers: tokens.map((t) => ({ authorization: `Bearer ${t}` })),
      ratePerSecond: RATE,
      concurrency: 4,
      maxDurationMs,
      maxRequests: RATE * Math.ceil(maxDurationMs / 1000),
    });
    loads.push(l);
    return l;
  };
  const expectNoLoss = (what: string, stats: LoadStats, minimum: number): void => {
    log(describeLoad(what, stats));
    if (stats.failed > 0) log(`${what}: first failures:\n  ${stats.samples.join('\n  ')}`);
    expect(stats.sent, 'requests sent').toBeGreaterThanOrEqual(minimum);
    expect(stats.failed, `failed requests: ${JSON.stringify(stats.failures)} ${stats.samples.join(' | ')}`).toBe(0);
  };
  const leaseHolder = async (): Promise<{ holder: string; transitions: number }> => {
    const lease = await k.getJson<{ spec: { holderIdentity?: string; leaseTransitions?: number } }>(['lease', OPERATOR, '-n', NS]);
    return { holder: lease.spec.holderIdentity ?? '', transitions: lease.spec.leaseTransitions ?? 0 };
  };

  beforeAll(async () => {
    k = await nodeCluster();
  });

  afterEach(async ({ task }) => {
    // A failed test must not leave its load running into the next.
    await Promise.all(loads.splice(0).map((l) => l.stop()));
    if (task.result?.state === 'fail') log(`state after the failure:\n${await describeCluster(k, [NS, 'shop'])}`);
  });

  afterAll(async () => {
    await Promise.all(loads.map((l) => l.stop()));
  });

  it('runs every block of README\'s "Install on Kubernetes"', () => {
    // The section is what users run: a block no test below runs would be untested advice.
    const blocks = readmeBlocks('Install on Kubernetes');
    const markers = Object.values(README_BLOCKS);
    const unrun = blocks.filter((b) => markers.filter((m) => b.includes(m)).length !== 1);
    expect(unrun, 'README blocks that no node test runs (or that two would)').toEqual([]);
    expect(blocks).toHaveLength(markers.length);
  });

  it('installs the chart as README says; operator (2, leader election) and gateway (3) pods become Ready through their probes', async () => {
    const started = Date.now();
    const { builds, script } = splitBuilds(readmeBlock('install'));
    // The README builds these targets; hack/images.sh built the same targets of the same Dockerfile.
    expect(builds.map((b) => b.target).sort()).toEqual(['dataplane', 'operator']);
    for (const b of builds) tagImage(`switchyard/${b.target}:dev`, b.ref);
    const install = await k.shell(script);
    expect(install.code, install.stderr).toBe(0);
    expect(install.stdout).toContain('1. Reach the gateway');

    const operators = await readyPods(NS, component('operator'), 2);
    const dataplanes = await readyPods(NS, component('dataplane'), 3);
    log(`chart installed; 2 operator and 3 gateway pods Ready ${((Date.now() - started) / 1000).toFixed(1)} s after helm install`);
    for (const pod of [...operators, ...dataplanes]) {
      const [container] = pod.spec.containers;
      const [status] = pod.status.containerStatuses ?? [];
      const expected = builds.find((b) => pod.metadata.name.startsWith(`switchyard-${b.target}`))?.ref;
      expect(container?.image).toBe(expected);
      expect(status?.imageID, `${pod.metadata.name} runs an image the node holds`).toMatch(/sha256:[0-9a-f]{64}/);
      expect(status?.ready).toBe(true);
      expect(status?.restartCount, `${pod.metadata.name} restarts`).toBe(0);
    }
    // Readiness comes from the kubelet probing these endpoints, nothing else.
    expect(operators[0]?.spec.containers[0]?.readinessProbe?.httpGet?.path).toBe('/readyz');
    expect(dataplanes[0]?.spec.containers[0]?.readinessProbe?.httpGet?.path).toBe('/ready');
    expect(dataplanes[0]?.spec.containers[0]?.livenessProbe?.httpGet?.path).toBe('/health');

    const { holder } = await waitFor('a leader in the Lease', async () => ((await leaseHolder()).holder ? leaseHolder() : undefined), 60_000);
    expect(operators.map((p) => p.metadata.name)).toContain(holder);
    log(`leader: ${holder}`);
  }, 600_000);

  it('runs the example services from the examples image', async () => {
    const { builds, script } = splitBuilds(readmeBlock('examples'));
    expect(builds).toEqual([{ target: 'examples', ref: 'switchyard/examples:dev' }]);
    for (const b of builds) tagImage(`switchyard/${b.target}:dev`, b.ref);
    const run = await k.shell(script);
    expect(run.code, run.stderr).toBe(0);

    const deployments = (await k.getJson<List<{ metadata: { name: string }; spec: { replicas: number } }>>(['deployments', '-n', 'shop'])).items;
    expect(deployments.length).toBeGreaterThanOrEqual(4);
    const total = deployments.reduce((n, d) => n + d.spec.replicas, 0);
    const all = await waitFor(
      `${total} Ready example pods`,
      async () => {
        const list = (await k.getJson<List<Pod>>(['pods', '-n', 'shop'])).items;
        return list.length === total && list.every(ready) ? list : undefined;
      },
      240_000,
    );
    for (const pod of all) expect(pod.spec.containers[0]?.image).toBe('switchyard/examples:dev');
    log(`example services: ${deployments.map((d) => `${d.metadata.name}×${d.spec.replicas}`).join(', ')} Ready`);
  }, 300_000);

  it('kubectl apply -f examples/kubernetes/ makes every route Accepted and Programmed', async () => {
    const started = Date.now();
    const run = await k.shell(readmeBlock('routes'));
    expect(run.code, run.stderr).toBe(0);
    const routes = (await k.getJson<List<unknown>>(['gatewayroutes', '-A'])).items.length;
    expect(routes).toBeGreaterThanOrEqual(10);
    // The README's own command, read as a user reads it: ACCEPTED and PROGRAMMED columns.
    const table = await waitFor(
      'every route Accepted and Programmed',
      async () => {
        const out = await k.kubectl(['get', 'gwr', '-A']);
        const rows = out.trim().split('\n').slice(1);
        return rows.length === routes && rows.every((r) => /\sTrue\s+True\s/.test(r)) ? out : undefined;
      },
      120_000,
    );
    log(`${routes} routes Accepted and Programmed ${((Date.now() - started) / 1000).toFixed(1)} s after kubectl apply:\n${table}`);
  }, 300_000);

  it("answers the README's requests through the gateway's Service", async () => {
    const run = await k.shell(`${readmeBlock('gateway')}\nprintf '\\n@GATEWAY=%s\\n' "$GATEWAY"`);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^HTTP\/1\.1 401/m);
    const address = /@GATEWAY=(\S+)/.exec(run.stdout)?.[1] ?? '';
    expect(address).toMatch(/^198\.19\.255\.\d+$/);
    gateway = `http://${address}`;

    // The Quick start's requests, word for word, with $GATEWAY for localhost:8080.
    const quick = readmeBlocks('Quick start').find((b) => b.includes('/auth/register'));
    if (quick === undefined) throw new Error("README's Quick start has no block with the requests");
    const requests = quick
      .replace(/\\\n\s*/g, '')
      .split('\n')
      .filter((line) => line.includes('localhost:8080'))
      .map((line) => line.replaceAll('localhost:8080', '$GATEWAY'));
    expect(requests).toHaveLength(5);
    const script = [`GATEWAY=${address}`, ...requests.flatMap((line) => [line, 'printf "\\n@@@\\n"']), 'printf "@TOKEN=%s" "$TOKEN"'].join('\n');
    const answers = await k.shell(script);
    expect(answers.code, answers.stderr).toBe(0);
    const [register, me, anonymous, admin] = answers.stdout.split('\n@@@\n').filter((_, i) => i !== 1);
    aliceToken = /@TOKEN=(\S+)/.exec(answers.stdout)?.[1] ?? '';
    expect(register).toContain('"username":"alice"');
    expect(me).toContain('"x-user-id"');
    expect(anonymous).toMatch(/^HTTP\/1\.1 401/);
    expect(admin).toMatch(/^HTTP\/1\.1 403/);
    log(`README requests through ${gateway}: register 201, login, /api/v1/users/me 200 with X-User-ID, 401 without a token, 403 on the admin route`);

    // Users for the load below: each counts against the rate limit on its own.
    for (const user of ['load-1', 'load-2']) {
      const body = JSON.stringify({ username: user, password: 'password123', email: `${user}@example.com` });
      const post = (p: string, b: string): Promise<Response> => fetch(`${gateway}${p}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: b });
      expect((await post('/auth/register', body)).status).toBe(201);
      const login = (await (await post('/auth/login', JSON.stringify({ username: user, password: 'password123' }))).json()) as { token: string };
      tokens.push(login.token);
    }
  }, 120_000);

  it('kubectl switchyard, linked as README says, explains a request and shows the routes and the data planes', async () => {
    const run = await k.shell(readmeBlock('plugin').replace(/\\\n\s*/g, ''), { TOKEN: aliceToken });
    expect(run.code, `${run.stderr}${run.stdout}`).toBe(0);
    // explain names the route that serves; routes lists the GatewayRoutes; status names the leader.
    expect(run.stdout).toContain('shop/user');
    expect(run.stdout).toMatch(/GatewayRoute\/user\b/);
    expect(run.stdout).toMatch(/operator leader\s+switchyard-operator-\d/);
    log(`kubectl switchyard explain, routes and status through the API server's aggregation layer:\n${run.stdout.split('\n').slice(0, 12).join('\n')}`);
  }, 120_000);

  it('enforces the restricted Pod Security Standard on the release namespace: the chart runs under it, a violating pod is refused', async () => {
    // kubectl prints a warning for every existing pod that the new level would refuse.
    const label = await k.shell(`kubectl label namespace ${NS} pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/enforce-version=latest --overwrite`);
    expect(label.code, label.stderr).toBe(0);
    expect(label.stderr).not.toMatch(/violate/i);

    const privileged = await k.shell(`kubectl -n ${NS} run psa-check --image=switchyard/dataplane:dev --image-pull-policy=Never --restart=Never --privileged --command -- sleep 1`);
    expect(privileged.code).not.toBe(0);
    expect(privileged.stderr).toMatch(/violates PodSecurity "restricted/);

    // runAsNonRoot is the kubelet's to enforce: a container that would run as root does not start.
    await k.kubectl(['apply', '-f', '-'], `apiVersion: v1
kind: Pod
metadata: {name: runs-as-root, namespace: shop}
spec:
  automountServiceAccountToken: false
  containers:
    - name: c
      image: switchyard/dataplane:dev
      imagePullPolicy: Never
      securityContext: {runAsNonRoot: true, runAsUser: 0}
`);
    const waiting = await waitFor(
      'the kubelet to refuse the root container',
      async () => {
        const [pod] = (await k.getJson<List<Pod>>(['pods', '-n', 'shop', '--field-selector', 'metadata.name=runs-as-root'])).items;
        const reason = pod?.status.containerStatuses?.[0]?.state?.waiting;
        return reason?.reason === 'CreateContainerConfigError' ? reason : undefined;
      },
      60_000,
    );
    expect(waiting.message).toMatch(/non-root/);
    await k.kubectl(['delete', 'pod', 'runs-as-root', '-n', 'shop', '--wait=false']);

    // What the securityContext asks for holds in the running containers.
    const uid = await k.kubectl(['-n', NS, 'exec', `deploy/${DATAPLANE}`, '--', 'id', '-u']);
    expect(uid.trim()).toBe('1000');
    const write = await k.shell(`kubectl -n ${NS} exec deploy/${DATAPLANE} -- touch /app/written`);
    expect(write.code).not.toBe(0);
    expect(write.stderr).toContain('Read-only file system');
    log('Pod Security restricted: the chart\'s pods raise no warning, a privileged pod is refused at admission, a root container by the kubelet; containers run as uid 1000 on a read-only root');
  }, 180_000);

  it('rolls the gateway Deployment under load without losing a request', async () => {
    const before = (await pods(NS, component('dataplane'))).map((p) => p.metadata.name);
    const traffic = load('/api/v1/users/me', 240_000);
    await new Promise((r) => setTimeout(r, 3000));
    const started = Date.now();
    await k.kubectl(['-n', NS, 'rollout', 'restart', `deployment/${DATAPLANE}`]);
    await k.kubectl(['-n', NS, 'rollout', 'status', `deployment/${DATAPLANE}`, '--timeout=240s']);
    const after = await readyPods(NS, component('dataplane'), 3);
    const rolled = (Date.now() - started) / 1000;
    await new Promise((r) => setTimeout(r, 3000));
    const stats = await traffic.stop();
    expect(after.map((p) => p.metadata.name).filter((n) => before.includes(n))).toEqual([]);
    log(`gateway rolled (3 new pods, admitted under restricted) in ${rolled.toFixed(1)} s`);
    expectNoLoss('rolling restart of the gateway', stats, RATE * 10);
  }, 300_000);

  it('helm upgrade with a changed value rolls the gateway under load without losing a request', async () => {
    const before = (await pods(NS, component('dataplane'))).map((p) => p.metadata.name);
    const traffic = load('/api/v1/users/me', 300_000);
    await new Promise((r) => setTimeout(r, 3000));
    const started = Date.now();
    await k.helm(['upgrade', RELEASE, 'charts/switchyard', '-n', NS, '--reset-then-reuse-values', '--set', 'dataplane.config.middleware.rate_limiting.default_limit=2000', '--wait', '--timeout', '5m']);
    const after = await readyPods(NS, component('dataplane'), 3);
    const took = (Date.now() - started) / 1000;
    await new Promise((r) => setTimeout(r, 3000));
    const stats = await traffic.stop();
    expect(after.map((p) => p.metadata.name).filter((n) => before.includes(n))).toEqual([]);
    const config = await k.kubectl(['-n', NS, 'get', 'configmap', DATAPLANE, '-o', 'jsonpath={.data.gateway\\.yaml}']);
    expect(config).toMatch(/default_limit: 2000/);
    log(`helm upgrade (rate_limiting.default_limit 1000 → 2000) rolled the gateway in ${took.toFixed(1)} s`);
    expectNoLoss('helm upgrade', stats, RATE * 10);
  }, 360_000);

  it('scales user-service 1 → 3 → 1 under load: no request lost, the new pods get traffic within seconds', async () => {
    const selector = 'app=user-service';
    await k.kubectl(['-n', 'shop', 'scale', 'deployment/user-service', '--replicas=1']);
    const [first] = await readyPods('shop', selector, 1);
    if (first === undefined) throw new Error('no user-service pod');
    // Until the table holds only the remaining pod, some requests still reach the others.
    await new Promise((r) => setTimeout(r, 5000));

    const traffic = load('/api/v1/users/me', 240_000);
    await waitFor('the first pod to answer', async () => (traffic.stats.instances.has(first.metadata.name) ? true : undefined), 30_000, 200);
    await k.kubectl(['-n', 'shop', 'scale', 'deployment/user-service', '--replicas=3']);
    const three = await readyPods('shop', selector, 3, 120_000);
    const added = three.filter((p) => p.metadata.name !== first.metadata.name);
    const spread = await waitFor(
      'requests on every new pod',
      async () => {
        const seen = added.map((p) => traffic.stats.instances.get(p.metadata.name));
        if (seen.some((s) => s === undefined)) return undefined;
        return added.map((p, i) => ({ pod: p.metadata.name, seconds: ((seen[i]?.firstAt ?? 0) - readySince(p)) / 1000 }));
      },
      60_000,
      200,
    );
    for (const s of spread) log(`user-service ${s.pod}: first request ${s.seconds.toFixed(1)} s after it became Ready`);

    await k.kubectl(['-n', 'shop', 'scale', 'deployment/user-service', '--replicas=1']);
    const [left] = await waitFor(
      'user-service back to one pod',
      async () => {
        const all = await pods('shop', selector);
        return all.length === 1 && all.every(ready) ? all : undefined;
      },
      120_000,
    );
    // Keep the load on while the table drops the removed pods, and until the run has sent what
    // the check below asks for (scaling can take less than ten seconds on a quiet node).
    await new Promise((r) => setTimeout(r, 5000));
    await waitFor('enough requests through the scaling', async () => (traffic.stats.sent >= RATE * 10 ? true : undefined), 60_000, 200);
    const stats = await traffic.stop();
    const perPod = [...stats.instances].map(([pod, s]) => `${pod} ${s.count}`).join(', ');
    log(`scale 1 → 3 → 1: requests per pod: ${perPod}; one left: ${left?.metadata.name ?? ''}`);
    expect(spread).toHaveLength(2);
    // Each new pod took traffic once Ready (waited for above); how soon is logged, not asserted.
    for (const s of spread) expect(stats.instances.get(s.pod)?.count ?? 0, `requests served by ${s.pod}`).toBeGreaterThan(0);
    expectNoLoss('scaling user-service 1 → 3 → 1', stats, RATE * 10);
  }, 360_000);

  it('loses no request when the leader operator pod is deleted; the other replica takes the Lease and a new route becomes Programmed', async () => {
    const before = await leaseHolder();
    const operators = (await readyPods(NS, component('operator'), 2)).map((p) => p.metadata.name);
    expect(operators).toContain(before.holder);
    const other = operators.find((n) => n !== before.holder) ?? '';

    const traffic = load('/api/v1/users/me', 240_000);
    await new Promise((r) => setTimeout(r, 3000));
    const deleted = Date.now();
    await k.kubectl(['-n', NS, 'delete', 'pod', before.holder, '--wait=false']);
    const after = await waitFor(
      'the other replica to take the Lease',
      async () => {
        const now = await leaseHolder();
        return now.holder === other && now.transitions > before.transitions ? now : undefined;
      },
      120_000,
      250,
    );
    const tookOver = (Date.now() - deleted) / 1000;

    // Status keeps being written: by the new leader, for a route it has never seen.
    const applied = Date.now();
    await k.kubectl(['apply', '-f', '-'], `apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: {name: after-failover, namespace: shop}
spec:
  path: {type: Exact, value: /api/v1/after-failover}
  methods: [GET]
  upstream: user-service
  auth: {required: false}
`);
    await waitFor(
      'the new route Programmed',
      async () => {
        const route = await k.getJson<{ metadata: { generation: number }; status?: { conditions?: (Condition & { observedGeneration?: number })[] } }>(['gatewayroute', 'after-failover', '-n', 'shop']);
        const programmed = route.status?.conditions?.find((c) => c.type === 'Programmed');
        return programmed?.status === 'True' && programmed.observedGeneration === route.metadata.generation ? true : undefined;
      },
      120_000,
      500,
    );
    const programmedIn = (Date.now() - applied) / 1000;
    const served = await fetch(`${gateway}/api/v1/after-failover`);
    expect(served.status).toBe(200);
    await readyPods(NS, component('operator'), 2);
    await new Promise((r) => setTimeout(r, 3000));
    const stats = await traffic.stop();
    log(`leader ${before.holder} deleted: ${after.holder} took the Lease after ${tookOver.toFixed(1)} s (transitions ${before.transitions} → ${after.transitions}); a new route was Programmed ${programmedIn.toFixed(1)} s after it was applied`);
    expectNoLoss('loss of the leader operator', stats, RATE * 5);
  }, 300_000);

  it('accepts the NetworkPolicies as rendered (not enforced on this node: the bridge CNI plugin implements none)', async () => {
    await k.helm(['upgrade', RELEASE, 'charts/switchyard', '-n', NS, '--reset-then-reuse-values', '--set', 'networkPolicy.enabled=true', '--wait', '--timeout', '5m']);
    const manifest = parseObjects(await k.helm(['get', 'manifest', RELEASE, '-n', NS])).filter((o) => o.kind === 'NetworkPolicy');
    expect(manifest.map((o) => o.metadata.name).sort()).toEqual([DATAPLANE, OPERATOR]);
    for (const rendered of manifest) {
      const stored = await k.getJson<{ spec: unknown }>(['networkpolicy', rendered.metadata.name, '-n', NS]);
      expect(stored.spec).toEqual(rendered.spec);
    }
    const still = await fetch(`${gateway}/api/v1/users/me`, { headers: { authorization: `Bearer ${tokens[0] ?? ''}` } });
    expect(still.status).toBe(200);
    log('NetworkPolicies for the gateway and the operator accepted as rendered; traffic unchanged');
  }, 360_000);

  it('helm uninstall removes everything but the CRDs', async () => {
    const installed = parseObjects(await k.helm(['get', 'manifest', RELEASE, '-n', NS]));
    await k.helm(['uninstall', RELEASE, '-n', NS, '--wait', '--timeout', '5m']);
    const left: string[] = [];
    for (const o of installed) {
      // kubectl ignores the namespace for cluster-scoped kinds.
      const found = (await k.kubectl(['get', `${o.kind}/${o.metadata.name}`, '-n', o.metadata.namespace ?? NS, '--ignore-not-found', '-o', 'name'])).trim();
      if (found) left.push(found);
    }
    expect(left).toEqual([]);
    await waitFor('the release pods gone', async () => ((await pods(NS, `app.kubernetes.io/instance=${RELEASE}`)).length === 0 ? true : undefined), 120_000);
    const crds = await k.kubectl(['get', 'crd', '-o', 'name']);
    expect(crds).toContain('gatewayroutes.switchyard.dev');
    expect(crds).toContain('upstreams.switchyard.dev');
    const remaining = (await k.kubectl(['-n', NS, 'get', 'all,configmap,secret,serviceaccount,role,rolebinding,networkpolicy,poddisruptionbudget,lease', '-o', 'name'])).trim();
    log(`helm uninstall removed ${installed.length} objects; the CRDs stay; left in ${NS}: ${remaining.split('\n').join(', ') || 'nothing'}`);
  }, 300_000);
});
