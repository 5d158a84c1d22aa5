/** Upstreams: resolve discovery (static or Service → EndpointSlices) into endpoints, with status. */
import { parseDuration, UPSTREAM_DEFAULTS, type Upstream } from '../../../dataplane/src/contract/index.ts';
import { condition, ConditionType, Reason, type ConditionInput } from '../status/conditions.ts';
import { caBundleProblem, certificateProblem } from './pem.ts';
import { keyOf, type EndpointSliceInfo, type ObjectMeta, type Snapshot, type UpstreamSpec } from './snapshot.ts';

/** Compile's verdict on one Upstream. */
export interface UpstreamResult {
  key: string;
  generation: number;
  /** The table entry, when the Upstream is valid. */
  upstream: Upstream | undefined;
  conditions: ConditionInput[];
  readyEndpoints: number;
  totalEndpoints: number;
}

/** Durations in a spec are validated by its schema, and its defaults are applied: the table takes milliseconds. */
const ms = (d: string): number => parseDuration(d) as number;
const hostPort = (address: string, port: number): string => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

/**
 * Endpoints a Service's slices offer on the named port. Ready endpoints take
 * traffic; when none is ready, endpoints that still serve while terminating do,
 * so a rollout's last pods drain instead of failing (as kube-proxy does).
 */
export function sliceEndpoints(slices: readonly EndpointSliceInfo[], portName: string | undefined, protocol: string): { ready: string[]; total: number } {
  const ready = new Set<string>();
  const draining = new Set<string>();
  const all = new Set<string>();
  for (const slice of slices) {
    if (slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6') continue;
    const port = slice.ports.find((p) => (p.name ?? '') === (portName ?? '') && (p.protocol ?? 'TCP') === 'TCP');
    if (port?.port === undefined) continue;
    for (const ep of slice.endpoints) {
      const c = ep.conditions ?? {};
      // The API defines an unset `ready` as ready.
      const isReady = c.ready !== false && c.terminating !== true;
      const isDraining = !isReady && c.serving === true && c.terminating === true;
      for (const address of ep.addresses) {
        const url = `${protocol}://${hostPort(address, port.port)}`;
        all.add(url);
        if (isReady) ready.add(url);
        else if (isDraining) draining.add(url);
      }
    }
  }
  const usable = ready.size > 0 ? ready : draining;
  return { ready: [...usable].sort(), total: all.size };
}

function resolveEndpoints(meta: ObjectMeta, spec: UpstreamSpec, snapshot: Snapshot): { urls: string[]; total: number; refs: ConditionInput } {
  const protocol = spec.protocol;
  if (spec.static) {
    const urls = [...new Set(spec.static.endpoints.map((e) => new URL(e).origin))].sort();
    return { urls, total: urls.length, refs: condition(ConditionType.ResolvedRefs, true, Reason.ResolvedRefs, 'static endpoints') };
  }
  const ref = spec.service;
  // The schema requires exactly one of static and service.
  if (ref === undefined) throw new Error('spec: one of static or service is required');
  const service = snapshot.services.find((s) => s.namespace === meta.namespace && s.name === ref.name);
  if (!service) {
    return { urls: [], total: 0, refs: condition(ConditionType.ResolvedRefs, false, Reason.ServiceNotFound, `Service "${ref.name}" not found in namespace "${meta.namespace}"`) };
  }
  const port = service.ports.find((p) => (typeof ref.port === 'number' ? p.port === ref.port : p.name === ref.port) && (p.protocol ?? 'TCP') === 'TCP');
  if (!port) {
    const have = service.ports.map((p) => (p.name ? `${p.name}/${p.port}` : String(p.port))).join(', ') || 'none';
    return { urls: [], total: 0, refs: condition(ConditionType.ResolvedRefs, false, Reason.PortNotFound, `Service "${ref.name}" has no TCP port ${JSON.stringify(ref.port)} (it has: ${have})`) };
  }
  const slices = snapshot.endpointSlices.filter((s) => s.namespace === meta.namespace && s.serviceName === ref.name);
  const { ready, total } = sliceEndpoints(slices, port.name, protocol);
  return { urls: ready, total, refs: condition(ConditionType.ResolvedRefs, true, Reason.ResolvedRefs, `Service "${ref.name}" port ${port.port}`) };
}

type TableTls = NonNullable<Upstream['tls']>;

/**
 * `spec.tls` with the PEM its references name, read from the snapshot's
 * Secrets and ConfigMaps in the Upstream's namespace; or the ResolvedRefs
 * condition that says which object or key is missing or malformed.
 */
export function resolveTls(meta: ObjectMeta, tls: NonNullable<UpstreamSpec['tls']>, snapshot: Snapshot): { tls: TableTls } | { refs: ConditionInput } {
  const out: TableTls = { serverName: tls.serverName, insecureSkipVerify: tls.insecureSkipVerify };
  const bad = (message: string) => ({ refs: condition(ConditionType.ResolvedRefs, false, Reason.InvalidCertificateRef, message) });
  const ca = tls.caCertificateRef;
  if (ca !== undefined) {
    const what = `tls.caCertificateRef: ${ca.kind} "${ca.name}" in namespace "${meta.namespace}"`;
    const obj = (ca.kind === 'Secret' ? snapshot.secrets : snapshot.configMaps)?.find((o) => o.namespace === meta.namespace && o.name === ca.name);
    // Only kubernetes.io/tls Secrets are read, so another type looks the same as none.
    if (obj === undefined) return bad(`${what} not found${ca.kind === 'Secret' ? ' (only Secrets of type kubernetes.io/tls are read; put a CA alone in a ConfigMap)' : ''}`);
    const pem = obj.data[ca.key];
    if (pem === undefined) return bad(`${what} has no key "${ca.key}"`);
    const problem = caBundleProblem(pem);
    if (problem !== undefined) return bad(`${what}, key "${ca.key}": ${problem}`);
    out.caPem = pem;
  }
  const client = tls.clientCertificateRef;
  if (client !== undefined) {
    const what = `tls.clientCertificateRef: Secret "${client.name}" in namespace "${meta.namespace}"`;
    const secret = snapshot.secrets?.find((o) => o.namespace === meta.namespace && o.name === client.name);
    if (secret === undefined) return bad(`${what} not found (it must be of type kubernetes.io/tls)`);
    const problem = certificateProblem(secret.data['tls.crt'], secret.data['tls.key']);
    if (problem !== undefined) return bad(`${what}: ${problem}`);
    out.certPem = secret.data['tls.crt'];
    out.keyPem = secret.data['tls.key'];
  }
  return { tls: out };
}

/** Compiles every Upstream of the snapshot. */
export function compileUpstreams(snapshot: Snapshot): UpstreamResult[] {
  return snapshot.upstreams.map((u): UpstreamResult => {
    const key = keyOf(u.meta);
    const generation = u.meta.generation;
    if (u.spec === undefined) {
      return {
        key,
        generation,
        upstream: undefined,
        conditions: [condition(ConditionType.Accepted, false, Reason.Invalid, u.error), condition(ConditionType.ResolvedRefs, false, Reason.NotAccepted, 'the spec is invalid'), condition(ConditionType.Ready, false, Reason.NotAccepted, 'the spec is invalid')],
        readyEndpoints: 0,
        totalEndpoints: 0,
      };
    }
    const spec = u.spec;
    let resolved: ReturnType<typeof resolveEndpoints>;
    try {
      resolved = resolveEndpoints(u.meta, spec, snapshot);
    } catch (err) {
      return { key, generation, upstream: undefined, conditions: [condition(ConditionType.Accepted, false, Reason.Invalid, (err as Error).message)], readyEndpoints: 0, totalEndpoints: 0 };
    }
    const { urls, total } = resolved;
    let refs = resolved.refs;
    let tls: Upstream['tls'];
    if (spec.tls !== undefined) {
      const r = resolveTls(u.meta, spec.tls, snapshot);
      // Broken TLS settings leave the Upstream out of the table: its routes answer 503 and are not Programmed, others serve.
      if ('refs' in r) refs = r.refs;
      else tls = r.tls;
    }
    const hc = spec.healthCheck;
    const cb = spec.circuitBreaker;
    const od = spec.outlierDetection;
    const upstream: Upstream = {
      name: key,
      endpoints: urls.map((url) => ({ url, weight: 1 })),
      loadBalancer: spec.loadBalancer,
      healthCheck: hc && { path: hc.path, intervalMs: ms(hc.interval), timeoutMs: ms(hc.timeout), healthyThreshold: hc.healthyThreshold, unhealthyThreshold: hc.unhealthyThreshold },
      circuitBreaker: cb && { failureThreshold: cb.failureThreshold, openMs: ms(cb.timeout), successThreshold: cb.successThreshold, halfOpenRequests: cb.halfOpenRequests },
      outlierDetection: od && {
        consecutiveFailures: od.consecutiveFailures,
        baseEjectionMs: ms(od.baseEjectionTime),
        maxEjectionMs: ms(od.maxEjectionTime),
        maxEjectionPercent: od.maxEjectionPercent,
      },
      whenAllUnhealthy: spec.whenAllUnhealthy,
      retryBudget: spec.retryBudget && { percent: spec.retryBudget.percent, minConcurrent: spec.retryBudget.minConcurrent },
      timeoutMs: spec.timeout === undefined ? undefined : ms(spec.timeout),
      pool: spec.connectionPool
        ? {
            connectionsPerEndpoint: spec.connectionPool.maxConnections,
            keepAliveTimeoutMs: spec.connectionPool.idleTimeout === undefined ? undefined : ms(spec.connectionPool.idleTimeout),
            connectTimeoutMs: ms(spec.connectionPool.connectTimeout),
          }
        : { connectionsPerEndpoint: UPSTREAM_DEFAULTS.pool.connectionsPerEndpoint, connectTimeoutMs: UPSTREAM_DEFAULTS.pool.connectTimeoutMs },
      // http1 is the default and is left out, as gateway.yaml's compile does: the same intent gives the same table.
      protocol: spec.appProtocol === undefined || spec.appProtocol === 'http1' ? undefined : spec.appProtocol,
      tls,
      source: { kind: 'Upstream', namespace: u.meta.namespace, name: u.meta.name, generation },
    };
    const ready = refs.status === 'True' && urls.length > 0;
    return {
      key,
      generation,
      upstream: refs.reason === Reason.InvalidCertificateRef ? undefined : upstream,
      conditions: [
        condition(ConditionType.Accepted, true, Reason.Accepted, 'the spec is valid'),
        refs,
        condition(ConditionType.Ready, ready, ready ? Reason.Ready : Reason.NoReadyEndpoints, ready ? `${urls.length} of ${total} endpoints ready` : refs.status === 'True' ? `no ready endpoints (${total} known)` : 'references are not resolved'),
      ],
      readyEndpoints: urls.length,
      totalEndpoints: total,
    };
  });
}
