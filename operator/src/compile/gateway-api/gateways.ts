/**
 * Gateways of Switchyard's classes: which listeners the data planes serve,
 * where, with which certificates, and the status of each.
 *
 * Every Gateway is served by the release's one data plane fleet
 * (docs/adr/0003). By default a Gateway has sockets of its own there, one per
 * listener port, on container ports allocated here, and a Service of its own
 * that the operator keeps (`service`): its routes answer at its address only.
 * A Gateway whose `spec.addresses` names the data plane Service (NamedAddress)
 * shares that Service and the data planes' own `http` and `https` listeners
 * with GatewayRoutes instead, on the Service's ports.
 */
import { createHash } from 'node:crypto';
import type { Certificate, Listener as TableListener } from '../../../../dataplane/src/contract/index.ts';
import { GATEWAY_API_GROUP, selects, type GatewaySpec, type Listener } from '../../api/gateway-api.ts';
import { condition, type ConditionInput } from '../../status/conditions.ts';
import { GwCondition, GwReason } from '../../status/gateway-api.ts';
import { certificateProblem } from '../pem.ts';
import { keyOf, type GatewayAddress, type GatewayApiSnapshot, type ObjectMeta, type Parsed, type ServiceTemplate } from '../snapshot.ts';
import type { ClassResult } from './gateway-classes.ts';
import type { ReferenceGrants } from './reference-grants.ts';

/** The route kinds a listener of Switchyard can hold. */
const HTTP_ROUTE_KIND = { group: GATEWAY_API_GROUP, kind: 'HTTPRoute' } as const;

/** Gateway listener protocols and what the data planes speak on them. */
const PROTOCOLS: Readonly<Record<string, 'http' | 'https'>> = { HTTP: 'http', HTTPS: 'https' };

/**
 * The container ports of Gateways' own sockets. Far from the data planes' own
 * ports (8080, 8443, 8081, 9090) and from the ephemeral range; the chart's
 * NetworkPolicy opens the same range.
 */
export const GATEWAY_PORT_RANGE = { first: 20000, count: 10000 } as const;

/** The label on each Gateway's own Service: the controller (hashed) whose Service it is, so orphans can be found. */
export const GATEWAY_SERVICE_LABEL = 'switchyard.dev/gateway-service-of';

/** A Service the operator keeps for a Gateway, in the data plane Service's namespace. */
export interface DesiredService {
  namespace: string;
  name: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  spec: {
    type: string;
    selector: Record<string, string>;
    ports: { name: string; port: number; targetPort: number; protocol: 'TCP' }[];
    externalTrafficPolicy?: string;
    loadBalancerClass?: string;
    loadBalancerSourceRanges?: string[];
  };
}

const hash = (text: string, length: number): string => createHash('sha256').update(text).digest('hex').slice(0, length);

/** The label value naming a controller: its name hashed, since label values cannot hold a slash. */
export const controllerLabel = (controllerName: string): string => hash(controllerName, 16);

/** The name of a Gateway's own Service: readable, and unique by a hash of namespace/name (a DNS-1035 label). */
export function gatewayServiceName(namespace: string, name: string): string {
  const part = (v: string): string => v.replaceAll('.', '-').slice(0, 20).replace(/-+$/, '');
  return `gw-${part(namespace)}-${part(name)}-${hash(`${namespace}/${name}`, 8)}`;
}

/** The data plane listener of a Gateway's own socket for one port. */
const socketName = (gatewayKey: string, port: number): string => `gateway:${gatewayKey}:${port}`;

/** Compile's verdict on one listener. */
export interface ListenerResult {
  name: string;
  port: number;
  protocol: string;
  hostname: string | undefined;
  /** The data plane listener that serves it (`http`, `https`, or a Gateway's own socket); undefined when it is not served. */
  socket: string | undefined;
  /** `http` or `https`, when the protocol is supported. */
  speaks: 'http' | 'https' | undefined;
  /** Supported and not conflicted: routes may attach. */
  accepted: boolean;
  /** Accepted with every reference resolved: the data planes serve it. */
  programmed: boolean;
  supportedKinds: { group: string; kind: string }[];
  /** Which namespaces' routes may attach. */
  allowsNamespace: (namespace: string) => boolean;
  /** Routes attached (set by the HTTPRoute compile). */
  attachedRoutes: number;
  /** Without the conditions that depend on other Gateways (OverlappingTLSConfig). */
  conditions: ConditionInput[];
  certificate: { certificatePem: string; privateKeyPem: string } | undefined;
}

/** Compile's verdict on one Gateway of Switchyard's classes. */
export interface GatewayResult {
  key: string;
  meta: ObjectMeta;
  accepted: boolean;
  /** Served at the data plane Service, on the data planes' own listeners, with GatewayRoutes (its spec.addresses names that Service). */
  shared: boolean;
  listeners: ListenerResult[];
  conditions: ConditionInput[];
  addresses: GatewayAddress[];
  /** Its own sockets, one per port (none when shared). */
  sockets: TableListener[];
  /** Its own Service (none when shared, or without a data plane Service to model it on). */
  service: DesiredService | undefined;
}

/** Resolves an HTTPS listener's certificate; the ResolvedRefs condition says what is wrong. */
function resolveCertificate(
  meta: ObjectMeta,
  l: Listener,
  api: GatewayApiSnapshot,
  grants: ReferenceGrants,
): { certificate?: { certificatePem: string; privateKeyPem: string }; refs: ConditionInput } {
  const refs = l.tls?.certificateRefs ?? [];
  if (refs.length === 0) return { refs: condition(GwCondition.ResolvedRefs, false, GwReason.InvalidCertificateRef, 'an HTTPS listener needs a certificateRef') };
  // The first reference is served; more (other key types) are checked the same way.
  let certificate: { certificatePem: string; privateKeyPem: string } | undefined;
  for (const ref of refs) {
    const namespace = ref.namespace ?? meta.namespace;
    const what = `${ref.kind} "${namespace}/${ref.name}"`;
    if (ref.group !== '' || ref.kind !== 'Secret') {
      return { refs: condition(GwCondition.ResolvedRefs, false, GwReason.InvalidCertificateRef, `certificateRef ${ref.group === '' ? '' : `${ref.group}/`}${ref.kind} "${ref.name}": only core Secrets hold certificates`) };
    }
    if (!grants.permits({ group: GATEWAY_API_GROUP, kind: 'Gateway', namespace: meta.namespace }, { group: '', kind: 'Secret', namespace }, ref.name)) {
      return { refs: condition(GwCondition.ResolvedRefs, false, GwReason.RefNotPermitted, `${what} is in another namespace and no ReferenceGrant there allows Gateways from "${meta.namespace}" to use it`) };
    }
    const secret = api.secrets.find((s) => s.namespace === namespace && s.name === ref.name);
    if (secret === undefined) return { refs: condition(GwCondition.ResolvedRefs, false, GwReason.InvalidCertificateRef, `${what} not found`) };
    if (secret.type !== 'kubernetes.io/tls') return { refs: condition(GwCondition.ResolvedRefs, false, GwReason.InvalidCertificateRef, `${what} is of type "${secret.type}", not kubernetes.io/tls`) };
    const problem = certificateProblem(secret.certificatePem, secret.privateKeyPem);
    if (problem !== undefined) return { refs: condition(GwCondition.ResolvedRefs, false, GwReason.InvalidCertificateRef, `${what}: ${problem}`) };
    certificate ??= { certificatePem: secret.certificatePem as string, privateKeyPem: secret.privateKeyPem as string };
  }
  return { certificate, refs: condition(GwCondition.ResolvedRefs, true, GwReason.ResolvedRefs, 'the certificate is resolved') };
}

/** Listeners of one Gateway that cannot coexist: the same port with two protocols, or the same port, protocol and hostname twice. */
function conflicts(listeners: readonly Listener[]): Map<string, ConditionInput> {
  const out = new Map<string, ConditionInput>();
  for (const l of listeners) {
    const samePort = listeners.filter((o) => o !== l && o.port === l.port);
    const protocol = samePort.find((o) => o.protocol !== l.protocol);
    const hostname = samePort.find((o) => o.protocol === l.protocol && (o.hostname ?? '') === (l.hostname ?? ''));
    if (protocol) out.set(l.name, condition(GwCondition.Conflicted, true, GwReason.ProtocolConflict, `listener "${protocol.name}" uses port ${l.port} with protocol ${protocol.protocol}`));
    else if (hostname) out.set(l.name, condition(GwCondition.Conflicted, true, GwReason.HostnameConflict, `listener "${hostname.name}" has the same port, protocol and hostname${l.hostname ? ` (${l.hostname})` : ' (none)'}`));
  }
  return out;
}

/** How a Gateway is served: at the data plane Service (shared) or on sockets of its own. */
type Placement = { shared: true } | { shared: false; sockets: ReadonlyMap<number, { name: string; containerPort: number }> };

function compileListener(meta: ObjectMeta, l: Listener, conflict: ConditionInput | undefined, placement: Placement, api: GatewayApiSnapshot, grants: ReferenceGrants): ListenerResult {
  const namespaceLabels = (ns: string): Record<string, string> => api.namespaces.find((n) => n.name === ns)?.labels ?? {};
  const from = l.allowedRoutes.namespaces;
  const allowsNamespace = (ns: string): boolean =>
    from.from === 'All' ? true : from.from === 'Same' ? ns === meta.namespace : api.namespaces.some((n) => n.name === ns) && selects(from.selector, namespaceLabels(ns));
  const base = { name: l.name, port: l.port, protocol: l.protocol, hostname: l.hostname, allowsNamespace, attachedRoutes: 0, certificate: undefined };
  const notServed = (reason: string, message: string, kinds: { group: string; kind: string }[] = []): ListenerResult => ({
    ...base,
    socket: undefined,
    speaks: PROTOCOLS[l.protocol],
    accepted: false,
    programmed: false,
    supportedKinds: kinds,
    conditions: [
      condition(GwCondition.Accepted, false, reason, message),
      condition(GwCondition.Programmed, false, GwReason.Invalid, 'the listener is not accepted'),
      condition(GwCondition.ResolvedRefs, true, GwReason.ResolvedRefs, 'no references to resolve'),
      conflict ?? condition(GwCondition.Conflicted, false, GwReason.NoConflicts, 'no conflicts'),
    ],
  });
  const speaks = PROTOCOLS[l.protocol];
  if (speaks === undefined) return notServed(GwReason.UnsupportedProtocol, `protocol ${l.protocol} is not supported; Switchyard serves HTTP and HTTPS`);

  const requested = l.allowedRoutes.kinds;
  const supportedKinds = requested === undefined ? [{ ...HTTP_ROUTE_KIND }] : requested.filter((k) => k.group === HTTP_ROUTE_KIND.group && k.kind === HTTP_ROUTE_KIND.kind).map((k) => ({ group: k.group, kind: k.kind }));
  const badKinds = (requested ?? []).filter((k) => !(k.group === HTTP_ROUTE_KIND.group && k.kind === HTTP_ROUTE_KIND.kind));

  if (conflict !== undefined) return notServed(conflict.reason, `conflicts with another listener of this Gateway: ${conflict.message}`, supportedKinds);
  let socket: string;
  let where: string;
  if (placement.shared) {
    const port = api.ports[speaks];
    if (port === undefined) {
      return notServed(GwReason.PortUnavailable, `${api.addressSource} has no port named "${speaks}": ${l.protocol} listeners cannot be served there (the chart adds it when gatewayAPI.enabled is set)`, supportedKinds);
    }
    if (l.port !== port) {
      const ports = Object.entries(api.ports).map(([name, p]) => `${name === 'http' ? 'HTTP' : 'HTTPS'} on ${p}`).join(', ');
      return notServed(GwReason.PortUnavailable, `${l.protocol} listeners of a Gateway at ${api.addressSource} must use port ${port}: that Service serves ${ports}`, supportedKinds);
    }
    socket = speaks;
    where = `the data planes' ${speaks} listener, at ${api.addressSource}`;
  } else {
    const own = placement.sockets.get(l.port);
    if (own === undefined) return notServed(GwReason.PortUnavailable, `no container port left for port ${l.port}`, supportedKinds);
    socket = own.name;
    where = `the data planes' container port ${own.containerPort}`;
  }
  if (l.protocol === 'HTTPS' && (l.tls?.mode ?? 'Terminate') !== 'Terminate') {
    return notServed(GwReason.UnsupportedValue, `tls.mode ${l.tls?.mode}: HTTPS listeners terminate TLS`, supportedKinds);
  }
  if (l.tls?.options !== undefined && Object.keys(l.tls.options).length > 0) {
    return notServed(GwReason.UnsupportedValue, `tls.options ${Object.keys(l.tls.options).join(', ')}: Switchyard supports no TLS options`, supportedKinds);
  }

  let refs = condition(GwCondition.ResolvedRefs, true, GwReason.ResolvedRefs, 'all references resolved');
  let certificate: ListenerResult['certificate'];
  if (l.protocol === 'HTTPS') {
    const resolved = resolveCertificate(meta, l, api, grants);
    refs = resolved.refs;
    certificate = resolved.certificate;
  }
  if (badKinds.length > 0) {
    refs = condition(GwCondition.ResolvedRefs, false, GwReason.InvalidRouteKinds, `route kinds ${badKinds.map((k) => `${k.group}/${k.kind}`).join(', ')} are not supported; listeners hold HTTPRoutes`);
  }
  // Routes attach even while references are unresolved; the data planes serve the listener once they resolve.
  const programmed = refs.status === 'True';
  return {
    ...base,
    socket,
    speaks,
    accepted: true,
    programmed,
    supportedKinds,
    certificate,
    conditions: [
      condition(GwCondition.Accepted, true, GwReason.Accepted, `served on ${where}`),
      programmed ? condition(GwCondition.Programmed, true, GwReason.Programmed, 'the data planes serve this listener') : condition(GwCondition.Programmed, false, GwReason.Invalid, 'references are not resolved'),
      refs,
      condition(GwCondition.Conflicted, false, GwReason.NoConflicts, 'no conflicts'),
    ],
  };
}

/** Whether a Gateway's spec.addresses names the data plane Service: then it shares that Service. */
function namesDataplaneService(addresses: GatewaySpec['addresses'], api: GatewayApiSnapshot): 'shared' | 'own' | 'unsupported' {
  if (addresses === undefined || addresses.length === 0) return 'own';
  const t = api.template;
  const named = (v: string | undefined): boolean => t !== undefined && (v === t.name || v === `${t.namespace}/${t.name}`);
  return addresses.every((a) => a.type === 'NamedAddress' && named(a.value)) ? 'shared' : 'unsupported';
}

/**
 * Container ports for every Gateway's own sockets, oldest Gateway first: each
 * (Gateway, port) starts from a hash of its name, so that it keeps its
 * container port as other Gateways come and go, and moves to the next free
 * one only when an older Gateway holds it.
 */
function allocatePorts(wanted: readonly { key: string; port: number }[]): Map<string, number> {
  const taken = new Set<number>();
  const out = new Map<string, number>();
  for (const w of wanted) {
    const id = `${w.key}:${w.port}`;
    const start = Number.parseInt(hash(id, 8), 16) % GATEWAY_PORT_RANGE.count;
    for (let i = 0; i < GATEWAY_PORT_RANGE.count; i++) {
      const candidate = GATEWAY_PORT_RANGE.first + ((start + i) % GATEWAY_PORT_RANGE.count);
      if (taken.has(candidate)) continue;
      taken.add(candidate);
      out.set(id, candidate);
      break;
    }
  }
  return out;
}

/** The Service the operator keeps for a Gateway: the data plane Service's type, selector and load balancer settings, the Gateway's ports. */
function gatewayService(meta: ObjectMeta, ports: readonly { port: number; containerPort: number }[], t: ServiceTemplate, controllerName: string): DesiredService {
  return {
    namespace: t.namespace,
    name: gatewayServiceName(meta.namespace, meta.name),
    labels: { 'app.kubernetes.io/managed-by': 'switchyard-operator', [GATEWAY_SERVICE_LABEL]: controllerLabel(controllerName) },
    annotations: { ...t.annotations, 'switchyard.dev/gateway': keyOf(meta) },
    spec: {
      type: t.type,
      selector: t.selector,
      ports: ports.map((p) => ({ name: `port-${p.port}`, port: p.port, targetPort: p.containerPort, protocol: 'TCP' as const })),
      ...(t.externalTrafficPolicy !== undefined && t.type !== 'ClusterIP' ? { externalTrafficPolicy: t.externalTrafficPolicy } : {}),
      ...(t.loadBalancerClass !== undefined && t.type === 'LoadBalancer' ? { loadBalancerClass: t.loadBalancerClass } : {}),
      ...(t.loadBalancerSourceRanges !== undefined && t.type === 'LoadBalancer' ? { loadBalancerSourceRanges: t.loadBalancerSourceRanges } : {}),
    },
  };
}

/** Compiles the Gateways of Switchyard's classes, oldest first (the order their certificates and container ports are given in). */
export function compileGateways(api: GatewayApiSnapshot, classes: ReadonlyMap<string, ClassResult>, grants: ReferenceGrants): GatewayResult[] {
  const ours = api.gateways.filter((g) => g.spec !== undefined && classes.has(g.spec.gatewayClassName)) as Extract<Parsed<GatewaySpec>, { spec: GatewaySpec }>[];
  ours.sort((a, b) => (a.meta.creationTimestamp < b.meta.creationTimestamp ? -1 : a.meta.creationTimestamp > b.meta.creationTimestamp ? 1 : keyOf(a.meta) < keyOf(b.meta) ? -1 : 1));
  const placements = new Map(ours.map((g) => [keyOf(g.meta), namesDataplaneService(g.spec.addresses, api)]));
  const containerPorts = allocatePorts(
    // A Gateway refused for its addresses gets ports too, so that its listeners are judged as they would be served.
    ours.flatMap((g) => (placements.get(keyOf(g.meta)) !== 'shared' ? [...new Set(g.spec.listeners.filter((l) => PROTOCOLS[l.protocol] !== undefined).map((l) => l.port))].sort((x, y) => x - y).map((port) => ({ key: keyOf(g.meta), port })) : [])),
  );
  const results = ours.map((g): GatewayResult => {
    const cls = classes.get(g.spec.gatewayClassName) as ClassResult;
    const key = keyOf(g.meta);
    const mode = placements.get(key) as 'shared' | 'own' | 'unsupported';
    const sockets = new Map(
      g.spec.listeners.flatMap((l) => {
        const containerPort = containerPorts.get(`${key}:${l.port}`);
        return containerPort === undefined ? [] : [[l.port, { name: socketName(key, l.port), containerPort }] as const];
      }),
    );
    const placement: Placement = mode === 'shared' ? { shared: true } : { shared: false, sockets };
    const conflicted = conflicts(g.spec.listeners);
    const listeners = g.spec.listeners.map((l) => compileListener(g.meta, l, conflicted.get(l.name), placement, api, grants));
    const rejected = (reason: string, message: string): GatewayResult => ({
      key,
      meta: g.meta,
      accepted: false,
      shared: false,
      listeners: listeners.map((l) => ({
        ...l,
        accepted: false,
        programmed: false,
        conditions: l.conditions.map((c) => (c.type === GwCondition.Programmed ? condition(GwCondition.Programmed, false, GwReason.Invalid, 'the Gateway is not accepted') : c)),
      })),
      addresses: [],
      sockets: [],
      service: undefined,
      conditions: [condition(GwCondition.Accepted, false, reason, message), condition(GwCondition.Programmed, false, GwReason.Invalid, 'the Gateway is not accepted')],
    });
    if (!cls.accepted) return rejected(GwReason.Invalid, `GatewayClass "${cls.name}" is not accepted`);
    if (mode === 'unsupported') {
      return rejected(
        GwReason.UnsupportedAddress,
        `spec.addresses can only name the data plane Service (type NamedAddress, value "${api.template?.name ?? '<the data plane Service>'}"), to share it with GatewayRoutes; leave it out for an address of the Gateway's own`,
      );
    }
    if (g.spec.tls !== undefined) return rejected(GwReason.Invalid, 'spec.tls (client certificate validation, backend client certificates) is not supported');
    const valid = listeners.filter((l) => l.accepted).length;
    const accepted = valid > 0;
    const acceptedCondition =
      valid === listeners.length
        ? condition(GwCondition.Accepted, true, GwReason.Accepted, 'the Gateway is valid')
        : condition(GwCondition.Accepted, accepted, GwReason.ListenersNotValid, `${listeners.length - valid} of ${listeners.length} listeners are not valid; see status.listeners`);

    // Where clients reach it: the data plane Service, or the Gateway's own Service once it has an address.
    const servedPorts = [...new Set(listeners.filter((l) => l.accepted).map((l) => l.port))].sort((x, y) => x - y);
    const ownSockets = mode === 'own' ? servedPorts.map((port) => sockets.get(port)).filter((x): x is { name: string; containerPort: number } => x !== undefined) : [];
    const tableSockets: TableListener[] = ownSockets.map((x) => ({ name: x.name, port: x.containerPort, protocol: listeners.find((l) => l.socket === x.name)?.speaks as 'http' | 'https' }));
    const service =
      mode === 'own' && accepted && api.template !== undefined
        ? gatewayService(g.meta, servedPorts.map((port) => ({ port, containerPort: (sockets.get(port) as { containerPort: number }).containerPort })), api.template, api.controllerName)
        : undefined;
    const addresses = !accepted ? [] : mode === 'shared' ? api.addresses : service === undefined ? [] : (api.serviceAddresses[service.name] ?? []);
    const source = mode === 'shared' ? api.addressSource : service === undefined ? 'its own Service (no data plane Service to model it on: --gateway-service)' : `its Service "${service.namespace}/${service.name}"`;
    const programmed = accepted && addresses.length > 0 && listeners.some((l) => l.programmed);
    const programmedCondition = programmed
      ? condition(GwCondition.Programmed, true, GwReason.Programmed, `served by the data planes at ${source}`)
      : !accepted
        ? condition(GwCondition.Programmed, false, GwReason.Invalid, 'no listener is valid')
        : addresses.length === 0
          ? condition(GwCondition.Programmed, false, GwReason.AddressNotAssigned, `${source} has no address yet`)
          : condition(GwCondition.Programmed, false, GwReason.Invalid, 'no listener is programmed; see status.listeners');
    return { key, meta: g.meta, accepted, shared: mode === 'shared', listeners, conditions: [acceptedCondition, programmedCondition], addresses, sockets: tableSockets, service };
  });
  markOverlappingTls(results);
  return results;
}

/** Whether two listener hostnames can name the same host (no hostname names every host). */
function overlap(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined || a === b) return true;
  const covers = (w: string, h: string): boolean => w.startsWith('*.') && h.endsWith(w.slice(1)) && h.length > w.length - 1;
  return covers(a, b) || covers(b, a);
}

/**
 * HTTPS listeners on one socket whose hostnames overlap: a client's SNI may
 * pick the other's certificate, and connection reuse may carry a request
 * across (the API's OverlappingTLSConfig, which is informational). Gateways
 * sharing the data plane Service share its socket.
 */
function markOverlappingTls(gateways: GatewayResult[]): void {
  const https = gateways.flatMap((g) => g.listeners.filter((l) => l.programmed && l.speaks === 'https').map((l) => ({ g, l })));
  for (const a of https) {
    const others = https.filter((b) => b !== a && b.l.socket === a.l.socket && overlap(a.l.hostname, b.l.hostname));
    if (others.length === 0) continue;
    const named = others.slice(0, 3).map((b) => `${b.g.key}/${b.l.name}${b.l.hostname ? ` (${b.l.hostname})` : ''}`);
    a.l.conditions.push(condition(GwCondition.OverlappingTLSConfig, true, GwReason.OverlappingHostnames, `hostnames overlap with ${named.join(', ')}${others.length > 3 ? ` and ${others.length - 3} more` : ''}`));
  }
}

/**
 * The table's certificates: one per programmed HTTPS listener, for its
 * socket, oldest Gateway first. A hostname an earlier listener on the same
 * socket already presents a certificate for stays with it, and only the first
 * listener without a hostname provides the socket's fallback, so each SNI name
 * has exactly one certificate per socket.
 */
export function tableCertificates(gateways: readonly GatewayResult[]): Certificate[] {
  const out: Certificate[] = [];
  const claimed = new Set<string>();
  for (const g of gateways) {
    for (const l of g.listeners) {
      if (!l.programmed || l.certificate === undefined || l.socket === undefined) continue;
      const host = l.hostname?.toLowerCase();
      const claim = `${l.socket} ${host ?? '*'}`;
      if (claimed.has(claim)) continue;
      claimed.add(claim);
      out.push({ name: `${g.key}/${l.name}`, listener: l.socket, hosts: host === undefined ? [] : [host], ...l.certificate });
    }
  }
  return out;
}
