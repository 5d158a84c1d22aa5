/** Helpers for tests against the real control plane: kubectl, typed clients, polling. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CoreV1Api, CustomObjectsApi, DiscoveryV1Api } from '@kubernetes/client-node';
import { PooledKubeConfig } from '../../operator/src/kube/config.ts';
import type { ControlPlane } from './control-plane.ts';

const run = promisify(execFile);

/** kubectl and API clients bound to one control plane. */
export interface Kube {
  kc: PooledKubeConfig;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  discovery: DiscoveryV1Api;
  /** Runs kubectl; rejects with its stderr on failure. */
  kubectl(args: string[], stdin?: string): Promise<string>;
  /** `kubectl apply -f -` with the given YAML. */
  apply(yaml: string): Promise<string>;
}

/** Builds the helpers for a started control plane. */
export function kubeFor(cp: ControlPlane): Kube {
  // The operator's own KubeConfig, so the in-process operator in these tests runs as it does in a pod.
  const kc = new PooledKubeConfig();
  kc.loadFromString(cp.kubeconfig);
  const kubectl = async (args: string[], stdin?: string): Promise<string> => {
    const child = run(cp.kubectl, ['--kubeconfig', cp.kubeconfigPath, ...args], { maxBuffer: 16 * 1024 * 1024 });
    if (stdin !== undefined) {
      child.child.stdin?.end(stdin);
    }
    try {
      return (await child).stdout;
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`kubectl ${args.join(' ')} failed: ${e.stderr ?? e.message}`);
    }
  };
  return {
    kc,
    core: kc.makeApiClient(CoreV1Api),
    custom: kc.makeApiClient(CustomObjectsApi),
    discovery: kc.makeApiClient(DiscoveryV1Api),
    kubectl,
    apply: (yaml) => kubectl(['apply', '-f', '-'], yaml),
  };
}

/** Applies the project's CRDs (crds/) and waits until the API server serves them; then creates `namespaces`. */
export async function installCrds(kube: Kube, ...namespaces: string[]): Promise<void> {
  await kube.kubectl(['apply', '-f', 'crds/']);
  await kube.kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/gatewayroutes.switchyard.dev', 'crd/upstreams.switchyard.dev']);
  for (const ns of namespaces) await kube.kubectl(['create', 'namespace', ns]);
}

/** Polls `check` until it returns a value that is not undefined; fails after `timeoutMs` with the last error. */
export async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

/** A status condition as the API returns it. */
export interface ApiCondition {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration: number;
  lastTransitionTime: string;
}

/** Reads a custom object. */
export async function getObject(kube: Kube, plural: 'gatewayroutes' | 'upstreams', namespace: string, name: string): Promise<{ metadata: { generation: number; uid: string }; status?: { conditions?: ApiCondition[]; observedGeneration?: number; readyEndpoints?: number; totalEndpoints?: number } }> {
  return (await kube.custom.getNamespacedCustomObject({ group: 'switchyard.dev', version: 'v1alpha1', namespace, plural, name })) as never;
}

/** Waits until an object's condition has the given status (and reason, if given) for its current generation. */
export async function waitCondition(kube: Kube, plural: 'gatewayroutes' | 'upstreams', namespace: string, name: string, type: string, status: string, reason?: string, timeoutMs = 30_000): Promise<ApiCondition> {
  return eventually(
    async () => {
      const obj = await getObject(kube, plural, namespace, name);
      const c = obj.status?.conditions?.find((x) => x.type === type);
      return c && c.status === status && (reason === undefined || c.reason === reason) && c.observedGeneration === obj.metadata.generation ? c : undefined;
    },
    timeoutMs,
    `${plural} ${namespace}/${name} ${type}=${status}${reason ? ` (${reason})` : ''}`,
  );
}

/**
 * Acts as the kubelet (there is none): sets a Pod's IP and its readiness, which
 * is all the EndpointSlice controller looks at. These are API objects only; the
 * address gets traffic only if a test runs a server there itself.
 */
export async function setPodReady(kube: Kube, namespace: string, pod: string, ip: string, ready: boolean): Promise<void> {
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const status = ready ? 'True' : 'False';
  const patch = {
    status: {
      phase: 'Running',
      podIP: ip,
      podIPs: [{ ip }],
      conditions: [
        { type: 'PodScheduled', status: 'True', lastTransitionTime: now },
        { type: 'Initialized', status: 'True', lastTransitionTime: now },
        { type: 'ContainersReady', status, lastTransitionTime: now },
        { type: 'Ready', status, lastTransitionTime: now },
      ],
    },
  };
  await kube.kubectl(['patch', 'pod', pod, '-n', namespace, '--subresource=status', '--type=merge', '-p', JSON.stringify(patch)]);
}
