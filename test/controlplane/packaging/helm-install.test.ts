/**
 * `helm install` of the chart into a real kube-apiserver (test/support/control-plane.ts):
 * every object is created and accepted; RBAC is checked both ways, with
 * `kubectl auth can-i` for what must and must not be allowed, and by running the
 * real operator as the chart's ServiceAccount with the chart's own arguments; the
 * pod templates pass the `restricted` Pod Security Standard; upgrades keep the
 * generated Secrets; bad values fail before anything is created.
 *
 * There is no kubelet or scheduler: the Deployment and StatefulSet stay without
 * pods, as expected. The operator and data plane run here as processes instead.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { startControlPlane, type ControlPlane } from '../../support/control-plane.ts';
import { CHART, find, helm, helmBinary, helmOk, parseObjects, runTool, type K8sObject } from '../../support/helm.ts';
import { eventually, kubeFor, waitCondition, type Kube } from '../../support/kube.ts';
import { freePort, startProcess, type Proc } from '../../support/processes.ts';
import { echo, startUpstream, type TestUpstream } from '../../support/upstreams.ts';

const NS = 'switchyard-system';
const RELEASE = 'switchyard';
const OPERATOR_SA = `system:serviceaccount:${NS}:switchyard-operator`;
const DATAPLANE_SA = `system:serviceaccount:${NS}:switchyard-dataplane`;

describe('helm install into a real API server', () => {
  let cp: ControlPlane;
  let kube: Kube;
  let manifest: K8sObject[];
  const procs: Proc[] = [];
  const dir = mkdtempSync(path.join(tmpdir(), 'switchyard-helm-install-'));

  const helmIn = (args: string[]): ReturnType<typeof helm> => helm(args, { kubeconfig: cp.kubeconfigPath });
  /** `kubectl auth can-i`: true for yes, false for no. */
  const can = async (as: string, ...args: string[]): Promise<boolean> => {
    const r = await runTool(cp.kubectl, ['--kubeconfig', cp.kubeconfigPath, 'auth', 'can-i', `--as=${as}`, ...args]);
    const answer = r.stdout.trim();
    if (answer !== 'yes' && answer !== 'no') throw new Error(`kubectl auth can-i ${args.join(' ')}: ${r.stdout}${r.stderr}`);
    return answer === 'yes';
  };
  const secretValue = async (name: string, key: string): Promise<string> => Buffer.from(await kube.kubectl(['get', 'secret', name, '-n', NS, '-o', `jsonpath={.data.${key}}`]), 'base64').toString('utf8');

  beforeAll(async () => {
    await helmBinary();
    cp = await startControlPlane();
    kube = kubeFor(cp);
    // The release namespace enforces the restricted Pod Security Standard.
    await kube.apply(`apiVersion: v1
kind: Namespace
metadata:
  name: ${NS}
  labels:
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/enforce-version: latest
`);
    await kube.kubectl(['create', 'namespace', 'shop']);
  }, 900_000);

  afterAll(async () => {
    for (const p of procs) await p.kill('SIGKILL');
    await cp?.stop();
  });

  it('installs: every object of the release is created and accepted', async () => {
    const out = await helmOk(['install', RELEASE, CHART, '--namespace', NS], { kubeconfig: cp.kubeconfigPath });
    expect(out).toContain('STATUS: deployed');
    expect(out).toContain('kubectl get gwr -A');
    manifest = parseObjects(await helmOk(['get', 'manifest', RELEASE, '--namespace', NS], { kubeconfig: cp.kubeconfigPath }));
    const kinds = manifest.map((o) => o.kind).sort();
    for (const kind of ['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Role', 'RoleBinding', 'Secret', 'Service', 'ServiceAccount', 'StatefulSet']) expect(kinds).toContain(kind);
    for (const o of manifest) {
      const args = ['get', `${o.kind.toLowerCase()}.${o.apiVersion.includes('/') ? (o.apiVersion.split('/')[0] as string) : ''}`.replace(/\.$/, ''), o.metadata.name, '-o', 'json'];
      if (o.metadata.namespace) args.push('-n', o.metadata.namespace);
      const live = JSON.parse(await kube.kubectl(args)) as K8sObject;
      expect(live.metadata.labels?.['app.kubernetes.io/managed-by'], `${o.kind}/${o.metadata.name}`).toBe('Helm');
    }
    // The CRDs come from the chart's crds/ directory and are served.
    await kube.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/gatewayroutes.switchyard.dev', 'crd/upstreams.switchyard.dev']);
    expect(await kube.kubectl(['get', 'gwr', '-A'])).toBe('');
  });

  it('lets the operator watch its resources, patch their status, record events and hold its Lease', async () => {
    for (const resource of ['gatewayroutes.switchyard.dev', 'upstreams.switchyard.dev', 'services', 'endpointslices.discovery.k8s.io']) {
      for (const verb of ['get', 'list', 'watch']) expect(await can(OPERATOR_SA, verb, resource, '--all-namespaces'), `${verb} ${resource}`).toBe(true);
    }
    for (const resource of ['gatewayroutes.switchyard.dev', 'upstreams.switchyard.dev']) {
      expect(await can(OPERATOR_SA, 'patch', resource, '--subresource=status', '-n', 'shop'), `patch ${resource}/status`).toBe(true);
    }
    // Upstreams' CA bundles and client certificates: list and watch only (the operator asks for kubernetes.io/tls Secrets alone).
    for (const resource of ['secrets', 'configmaps']) {
      for (const verb of ['list', 'watch']) expect(await can(OPERATOR_SA, verb, resource, '--all-namespaces'), `${verb} ${resource}`).toBe(true);
    }
    expect(await can(OPERATOR_SA, 'create', 'events', '-n', 'shop')).toBe(true);
    expect(await can(OPERATOR_SA, 'create', 'leases.coordination.k8s.io', '-n', NS)).toBe(true);
    expect(await can(OPERATOR_SA, 'get', 'leases.coordination.k8s.io/switchyard-operator', '-n', NS)).toBe(true);
    expect(await can(OPERATOR_SA, 'update', 'leases.coordination.k8s.io/switchyard-operator', '-n', NS)).toBe(true);
  });

  it('denies the operator everything else: getting or writing Secrets and ConfigMaps, workloads, specs, other Leases', async () => {
    const denied: string[][] = [
      ['get', 'secrets', '-n', NS],
      ['get', 'secrets', '-n', 'shop'],
      ['create', 'secrets', '-n', 'shop'],
      ['get', 'configmaps', '-n', NS],
      ['update', 'configmaps', '-n', 'shop'],
      ['create', 'deployments.apps', '-n', NS],
      ['patch', 'deployments.apps', '-n', 'shop'],
      ['update', 'statefulsets.apps', '-n', NS],
      ['create', 'pods', '-n', 'shop'],
      ['delete', 'pods', '-n', NS],
      ['update', 'gatewayroutes.switchyard.dev', '-n', 'shop'],
      ['delete', 'upstreams.switchyard.dev', '-n', 'shop'],
      ['create', 'gatewayroutes.switchyard.dev', '-n', 'shop'],
      ['patch', 'services', '-n', 'shop'],
      ['create', 'leases.coordination.k8s.io', '-n', 'shop'],
      ['update', 'leases.coordination.k8s.io/kube-scheduler', '-n', NS],
      ['create', 'clusterrolebindings.rbac.authorization.k8s.io'],
      ['impersonate', 'serviceaccounts', '-n', NS],
      ['create', 'serviceaccounts/token', '-n', NS],
    ];
    for (const args of denied) expect(await can(OPERATOR_SA, ...args), args.join(' ')).toBe(false);
  });

  it('gives the data plane no permission and no API token', async () => {
    const checks: string[][] = [
      ['get', 'gatewayroutes.switchyard.dev', '-n', NS],
      ['list', 'services', '--all-namespaces'],
      ['list', 'endpointslices.discovery.k8s.io', '-n', NS],
      ['get', 'secrets', '-n', NS],
      ['get', 'configmaps', '-n', NS],
      ['get', 'leases.coordination.k8s.io', '-n', NS],
      ['create', 'events', '-n', NS],
    ];
    for (const args of checks) expect(await can(DATAPLANE_SA, ...args), args.join(' ')).toBe(false);
    const sa = JSON.parse(await kube.kubectl(['get', 'serviceaccount', 'switchyard-dataplane', '-n', NS, '-o', 'json'])) as { automountServiceAccountToken?: boolean };
    expect(sa.automountServiceAccountToken).toBe(false);
    const deployment = JSON.parse(await kube.kubectl(['get', 'deployment', 'switchyard-dataplane', '-n', NS, '-o', 'json'])) as { spec: { template: { spec: { automountServiceAccountToken?: boolean } } } };
    expect(deployment.spec.template.spec.automountServiceAccountToken).toBe(false);
  });

  it('has pod templates that the restricted Pod Security Standard admits', async () => {
    for (const [kind, name] of [['deployment', 'switchyard-dataplane'], ['statefulset', 'switchyard-operator']] as const) {
      const workload = JSON.parse(await kube.kubectl(['get', kind, name, '-n', NS, '-o', 'json'])) as { spec: { template: { metadata: object; spec: Record<string, unknown> } } };
      const pod = { apiVersion: 'v1', kind: 'Pod', metadata: { name: `${name}-psa-check`, namespace: NS }, spec: workload.spec.template.spec };
      // A server-side dry run goes through admission, Pod Security included, and stores nothing.
      const out = await kube.kubectl(['create', '--dry-run=server', '-o', 'name', '-f', '-'], JSON.stringify(pod));
      expect(out.trim()).toBe(`pod/${name}-psa-check`);
      // The check has teeth: the same pod without its security context is refused.
      const loose = structuredClone(pod) as unknown as { spec: { securityContext?: unknown; containers: { securityContext?: unknown }[] } };
      delete loose.spec.securityContext;
      for (const c of loose.spec.containers) delete c.securityContext;
      await expect(kube.kubectl(['create', '--dry-run=server', '-f', '-'], JSON.stringify(loose))).rejects.toThrow(/violates PodSecurity "restricted/);
    }
  });

  it('runs the real operator as its ServiceAccount with the chart\'s arguments: RBAC is enough', async () => {
    const sts = find(manifest, 'StatefulSet', '-operator') as K8sObject & { spec: { template: { spec: { containers: { args: string[] }[] } } } };
    const deployment = find(manifest, 'Deployment', '-dataplane') as K8sObject & { spec: { template: { spec: { containers: { args: string[] }[] } } } };
    const configMap = find(manifest, 'ConfigMap', '-dataplane') as K8sObject & { data: Record<string, string> };

    // A kubeconfig holding the operator ServiceAccount's own token, as in a pod.
    const token = (await kube.kubectl(['create', 'token', 'switchyard-operator', '-n', NS, '--duration=1h'])).trim();
    const admin = parse(cp.kubeconfig) as { clusters: { cluster: { server: string; 'certificate-authority-data': string } }[] };
    const cluster = admin.clusters[0]?.cluster;
    const kubeconfig = path.join(dir, 'operator.kubeconfig');
    writeFileSync(kubeconfig, stringify({ apiVersion: 'v1', kind: 'Config', clusters: [{ name: 'c', cluster }], users: [{ name: 'operator', user: { token } }], contexts: [{ name: 'c', context: { cluster: 'c', user: 'operator' } }], 'current-context': 'c' }));
    const tokenFile = path.join(dir, 'token');
    writeFileSync(tokenFile, await secretValue('switchyard-operator-token', 'token'));

    const configPort = await freePort();
    const metricsPort = await freePort();
    const observePort = await freePort();
    // The aggregated API's certificate, as the chart generated it into its Secret.
    const observeCert = path.join(dir, 'observe.crt');
    const observeKey = path.join(dir, 'observe.key');
    writeFileSync(observeCert, await secretValue('switchyard-operator-observe-tls', 'tls\\.crt'));
    writeFileSync(observeKey, await secretValue('switchyard-operator-observe-tls', 'tls\\.key'));
    // The config stream's certificate from the chart's Secret, and only its CA (from the ConfigMap) for the data plane.
    const configCert = path.join(dir, 'config.crt');
    const configKey = path.join(dir, 'config.key');
    writeFileSync(configCert, await secretValue('switchyard-operator-config-tls', 'tls\\.crt'));
    writeFileSync(configKey, await secretValue('switchyard-operator-config-tls', 'tls\\.key'));
    const operatorCa = path.join(dir, 'operator-ca.crt');
    writeFileSync(operatorCa, Buffer.from(await kube.kubectl(['get', 'configmap', 'switchyard-operator-config-ca', '-n', NS, '-o', 'jsonpath={.binaryData.ca\\.crt}']), 'base64'));
    const opArgs = (sts.spec.template.spec.containers[0]?.args ?? []).map((a) =>
      a.startsWith('--listen-cert-file=') ? `--listen-cert-file=${configCert}` : a.startsWith('--listen-key-file=') ? `--listen-key-file=${configKey}` :
      a.startsWith('--listen=') ? `--listen=127.0.0.1:${configPort}` : a.startsWith('--metrics=') ? `--metrics=127.0.0.1:${metricsPort}` : a.startsWith('--token-file=') ? `--token-file=${tokenFile}` : a.startsWith('--api-listen=') ? `--api-listen=127.0.0.1:${observePort}` : a.startsWith('--api-cert-file=') ? `--api-cert-file=${observeCert}` : a.startsWith('--api-key-file=') ? `--api-key-file=${observeKey}` : a,
    );
    const operator = startProcess('operator/bin/switchyard-operator.ts', [...opArgs, `--kubeconfig=${kubeconfig}`, '--identity=switchyard-operator-0'], { POD_NAMESPACE: NS });
    procs.push(operator);
    await eventually(async () => ((await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).ok ? true : undefined), 60_000, 'the operator to list everything (/readyz)');
    await eventually(async () => {
      const lease = JSON.parse(await kube.kubectl(['get', 'lease', 'switchyard-operator', '-n', NS, '-o', 'json'])) as { spec: { holderIdentity?: string } };
      return lease.spec.holderIdentity === 'switchyard-operator-0' ? true : undefined;
    }, 60_000, 'the operator to take the Lease in the release namespace');
    // Its RoleBinding in kube-system is enough to read the front proxy's CA, and it serves observe.switchyard.dev.
    await operator.waitForLog('"event":"observe_listening"');

    // The data plane with the chart's bootstrap config, token and arguments.
    const configFile = path.join(dir, 'gateway.yaml');
    writeFileSync(configFile, configMap.data['gateway.yaml'] as string);
    const stateDir = mkdtempSync(path.join(dir, 'state-'));
    const httpPort = await freePort();
    const adminPort = await freePort();
    const dpArgs = (deployment.spec.template.spec.containers[0]?.args ?? []).map((a) =>
      a.startsWith('--config=') ? `--config=${configFile}` : a.startsWith('--operator=') ? `--operator=https://127.0.0.1:${configPort}` : a.startsWith('--operator-ca=') ? `--operator-ca=${operatorCa}` : a.startsWith('--token-file=') ? `--token-file=${tokenFile}` : a.startsWith('--state-dir=') ? `--state-dir=${stateDir}` : a,
    );
    // Reached at 127.0.0.1, the operator is verified by the name the chart's URLs give it.
    const operatorName = new URL((deployment.spec.template.spec.containers[0]?.args ?? []).find((a) => a.startsWith('--operator='))?.slice('--operator='.length).split(',')[0] as string).hostname;
    const dataplane = startProcess('dataplane/bin/switchyard-dataplane.ts', [...dpArgs, '--dataplane-id=switchyard-dataplane-0', `--operator-server-name=${operatorName}`], {
      JWT_SECRET: await secretValue('switchyard-jwt', 'secret'),
      GATEWAY_SERVER_BIND_ADDRESS: '127.0.0.1',
      GATEWAY_SERVER_HTTP_PORT: String(httpPort),
      GATEWAY_SERVER_ADMIN_PORT: String(adminPort),
      GATEWAY_SERVER_METRICS_PORT: '0',
    });
    procs.push(dataplane);
    await eventually(async () => ((await fetch(`http://127.0.0.1:${httpPort}/ready`)).ok ? true : undefined), 60_000, 'the data plane to get its first table (/ready)');

    // A route the operator watches, compiles, serves and reports on.
    await kube.apply(`apiVersion: v1
kind: Service
metadata: { name: echo, namespace: shop }
spec: { ports: [{ name: http, port: 80 }] }
---
apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: echo, namespace: shop }
spec: { service: { name: echo, port: http } }
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: echo, namespace: shop }
spec:
  path: { type: Prefix, value: /echo }
  upstream: echo
`);
    await waitCondition(kube, 'gatewayroutes', 'shop', 'echo', 'Accepted', 'True', undefined, 60_000);
    await waitCondition(kube, 'gatewayroutes', 'shop', 'echo', 'Programmed', 'True', undefined, 60_000);
    await waitCondition(kube, 'upstreams', 'shop', 'echo', 'ResolvedRefs', 'True', undefined, 60_000);
    // No endpoints behind the Service: the route answers 503, it is matched.
    const res = await fetch(`http://127.0.0.1:${httpPort}/echo`);
    expect(res.status).toBe(503);
    expect(operator.logs.join('\n')).not.toMatch(/forbidden/i);
    expect(await kube.kubectl(['get', 'gwr', '-n', 'shop'])).toMatch(/echo\s+\/echo\s+echo\s+True\s+True/);

    // The chart's gateway-wide policy (dataplane.config.middleware: default_limit 1000 per minute, CORS for any origin)
    // applies to GatewayRoutes that set none, and a route's own rateLimit and cors replace it.
    const values = parse(configMap.data['gateway.yaml'] as string) as { middleware: { rate_limiting: { default_limit: number }; cors: { allowed_origins: string[]; max_age: number } } };
    expect(values.middleware.rate_limiting.default_limit).toBe(1000);
    const backend: TestUpstream = await startUpstream(echo('backend'));
    try {
      await kube.apply(`apiVersion: switchyard.dev/v1alpha1
kind: Upstream
metadata: { name: backend, namespace: shop }
spec: { static: { endpoints: ["${backend.url}"] } }
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: plain, namespace: shop }
spec: { path: { type: Prefix, value: /plain }, upstream: backend }
---
apiVersion: switchyard.dev/v1alpha1
kind: GatewayRoute
metadata: { name: own, namespace: shop }
spec:
  path: { type: Prefix, value: /own }
  upstream: backend
  rateLimit: { requests: 5 }
  cors: { allowedOrigins: ["https://shop.example"] }
`);
      for (const name of ['plain', 'own']) await waitCondition(kube, 'gatewayroutes', 'shop', name, 'Programmed', 'True', undefined, 60_000);
      const plain = await fetch(`http://127.0.0.1:${httpPort}/plain/x`, { headers: { origin: 'https://anywhere.example' } });
      expect(plain.status).toBe(200);
      expect(plain.headers.get('ratelimit-limit')).toBe('1000');
      expect(plain.headers.get('ratelimit-policy')).toBe('1000;w=60');
      expect(plain.headers.get('access-control-allow-origin')).toBe('*');
      const preflight = await fetch(`http://127.0.0.1:${httpPort}/plain/x`, { method: 'OPTIONS', headers: { origin: 'https://anywhere.example', 'access-control-request-method': 'PUT' } });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-max-age')).toBe(String(values.middleware.cors.max_age));
      const own = await fetch(`http://127.0.0.1:${httpPort}/own/x`, { headers: { origin: 'https://shop.example' } });
      expect(own.headers.get('ratelimit-limit')).toBe('5');
      expect(own.headers.get('access-control-allow-origin')).toBe('https://shop.example');
      const foreign = await fetch(`http://127.0.0.1:${httpPort}/own/x`, { headers: { origin: 'https://anywhere.example' } });
      expect(foreign.headers.get('access-control-allow-origin')).toBeNull();
      // The admin API shows the effective policy and where it came from.
      const table = (await (await fetch(`http://127.0.0.1:${adminPort}/table`)).json()) as { routes: { id: string; rateLimit?: { limit: number }; policySources: { rateLimit: string | null; cors: string | null } }[] };
      expect(table.routes.find((r) => r.id === 'shop/plain')).toMatchObject({ rateLimit: { limit: 1000 }, policySources: { rateLimit: 'middleware.rate_limiting.default_limit', cors: 'middleware.cors' } });
      expect(table.routes.find((r) => r.id === 'shop/own')).toMatchObject({ rateLimit: { limit: 5 }, policySources: { rateLimit: 'route', cors: 'route over middleware.cors' } });
    } finally {
      await backend.close();
    }
  });

  it('keeps the generated Secrets across an upgrade', async () => {
    const token = await secretValue('switchyard-operator-token', 'token');
    const jwt = await secretValue('switchyard-jwt', 'secret');
    const configKey = await secretValue('switchyard-operator-config-tls', 'tls\\.key');
    const configCa = await kube.kubectl(['get', 'configmap', 'switchyard-operator-config-ca', '-n', NS, '-o', 'jsonpath={.binaryData.ca\\.crt}']);
    expect(configKey).toContain('PRIVATE KEY');
    expect(token).toMatch(/^[A-Za-z0-9]{48}$/);
    expect(jwt).toMatch(/^[A-Za-z0-9]{48}$/);
    const out = await helmOk(['upgrade', RELEASE, CHART, '--namespace', NS, '--set', 'dataplane.replicas=4'], { kubeconfig: cp.kubeconfigPath });
    expect(out).toContain('REVISION: 2');
    expect(await secretValue('switchyard-operator-token', 'token')).toBe(token);
    expect(await secretValue('switchyard-jwt', 'secret')).toBe(jwt);
    // The config stream's key and CA too: data planes keep trusting the operator through an upgrade.
    expect(await secretValue('switchyard-operator-config-tls', 'tls\\.key')).toBe(configKey);
    expect(await kube.kubectl(['get', 'configmap', 'switchyard-operator-config-ca', '-n', NS, '-o', 'jsonpath={.binaryData.ca\\.crt}'])).toBe(configCa);
    expect(await kube.kubectl(['get', 'deployment', 'switchyard-dataplane', '-n', NS, '-o', 'jsonpath={.spec.replicas}'])).toBe('4');
  });

  it('fails an install with a bad value, with the schema\'s message, creating nothing', async () => {
    await kube.kubectl(['create', 'namespace', 'bad']);
    const r = await helmIn(['install', 'bad', CHART, '--namespace', 'bad', '--set', 'dataplane.service.type=Public', '--set', 'operator.replicas=0']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("values don't meet the specifications of the schema(s)");
    expect(r.stderr).toContain("at '/dataplane/service/type': value must be one of 'ClusterIP', 'NodePort', 'LoadBalancer'");
    expect(r.stderr).toContain("at '/operator/replicas': minimum: got 0, want 1");
    expect(await kube.kubectl(['get', 'all,secrets,configmaps', '-n', 'bad', '-l', 'app.kubernetes.io/instance=bad', '-o', 'name'])).toBe('');
    expect((await helmOk(['list', '--all-namespaces', '-q'], { kubeconfig: cp.kubeconfigPath })).trim()).toBe(RELEASE);
  });

  it('confines an operator that watches listed namespaces to them', async () => {
    await kube.kubectl(['create', 'namespace', 'scoped']);
    // One release per cluster serves observe.switchyard.dev (an APIService is cluster-wide); this one leaves it to the first.
    await helmOk(['install', 'scoped', CHART, '--namespace', 'scoped', '--set', 'operator.watchNamespaces={shop}', '--set', 'operator.observe.enabled=false'], { kubeconfig: cp.kubeconfigPath });
    const sa = 'system:serviceaccount:scoped:scoped-switchyard-operator';
    expect(await can(sa, 'watch', 'gatewayroutes.switchyard.dev', '-n', 'shop')).toBe(true);
    expect(await can(sa, 'list', 'endpointslices.discovery.k8s.io', '-n', 'shop')).toBe(true);
    expect(await can(sa, 'patch', 'upstreams.switchyard.dev', '--subresource=status', '-n', 'shop')).toBe(true);
    expect(await can(sa, 'list', 'gatewayroutes.switchyard.dev', '--all-namespaces')).toBe(false);
    expect(await can(sa, 'list', 'services', '-n', 'default')).toBe(false);
    expect(await can(sa, 'create', 'events', '-n', 'default')).toBe(false);
    expect(await can(sa, 'update', 'leases.coordination.k8s.io/switchyard-operator', '-n', 'scoped')).toBe(true);
    expect(await kube.kubectl(['get', 'clusterroles,clusterrolebindings', '-l', 'app.kubernetes.io/instance=scoped', '-o', 'name'])).toBe('');
    const sts = JSON.parse(await kube.kubectl(['get', 'statefulset', 'scoped-switchyard-operator', '-n', 'scoped', '-o', 'json'])) as { spec: { template: { spec: { containers: { args: string[] }[] } } } };
    expect(sts.spec.template.spec.containers[0]?.args).toContain('--namespaces=shop');
    await helmOk(['uninstall', 'scoped', '--namespace', 'scoped'], { kubeconfig: cp.kubeconfigPath });
  });

  it('uninstalls everything but the CRDs', async () => {
    await helmOk(['uninstall', RELEASE, '--namespace', NS], { kubeconfig: cp.kubeconfigPath });
    expect(await kube.kubectl(['get', 'deployments,statefulsets,services,secrets,configmaps,serviceaccounts,roles,rolebindings', '-n', NS, '-l', `app.kubernetes.io/instance=${RELEASE}`, '-o', 'name'])).toBe('');
    expect(await kube.kubectl(['get', 'clusterroles', '-l', `app.kubernetes.io/instance=${RELEASE}`, '-o', 'name'])).toBe('');
    expect(await kube.kubectl(['get', 'crd', 'gatewayroutes.switchyard.dev', '-o', 'name'])).toContain('gatewayroutes.switchyard.dev');
  });
});
