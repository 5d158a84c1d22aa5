/**
 * Gateways of Switchyard's classes: which listeners the data planes can
 * serve, their certificates, and the status of each.
 *
 * Every Gateway of these classes is served by the one data plane fleet the
 * Helm chart runs, behind its one Service (docs/adr/0003): a listener on port
 * 80 with protocol HTTP is the data planes' `http` listener, one on port 443
 * with protocol HTTPS their `https` listener, and no other port exists there.
 * Listeners of different Gateways on the same port share that socket; routes
 * stay apart by hostname and by the listener they attach to.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { Certificate, TrafficListener } from '../../../../dataplane/src/contract/index.ts';
import { GATEWAY_API_GROUP, selects, type GatewaySpec, type Listener } from '../../api/gateway-api.ts';
import { condition, type ConditionInput } from '../../status/conditions.ts';
import { GwCondition, GwReason } from '../../status/gateway-api.ts';
import { keyOf, type GatewayAddress, type GatewayApiSnapshot, type ObjectMeta, type Parsed } from '../snapshot.ts';
import type { ClassResult } from './gateway-classes.ts';
import type { ReferenceGrants } from './reference-grants.ts';

/** The route kinds a listener of Switchyard can hold. */
const HTTP_ROUTE_KIND = { group: GATEWAY_API_GROUP, kind: 'HTTPRoute' } as const;

/** Gateway listener protocol → the data planes' traffic listener. */
const TRAFFIC: Readonly<Record<string, TrafficListener>> = { HTTP: 'http', HTTPS: 'https' };

/** Compile's verdict on one listener. */
export interface ListenerResult {
  name: string;
  port: number;
  protocol: string;
  hostname: string | undefined;
  /** The data planes' listener it is served on; undefined when it is not served. */
  traffic: TrafficListener | undefined;
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
  listeners: ListenerResult[];
  conditions: ConditionInput[];
  addresses: GatewayAddress[];
}

/** Why a certificate and key cannot be served, or undefined. */
function certificateProblem(certificatePem: string | undefined, privateKeyPem: string | undefined): string | undefined {
  if (!certificatePem || !privateKeyPem) return 'it needs both tls.crt and tls.key';
  try {
    const cert = new X509Certificate(certificatePem);
    if (!cert.checkPrivateKey(createPrivateKey(privateKeyPem))) return 'tls.key does not belong to the certificate in tls.crt';
  } catch (err) {
    return `it does not hold a PEM certificate and key (${(err as Error).message})`;
  }
  return undefined;
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

function compileListener(meta: ObjectMeta, l: Listener, conflict: ConditionInput | undefined, api: GatewayApiSnapshot, grants: ReferenceGrants): ListenerResult {
  const namespaceLabels = (ns: string): Record<string, string> => api.namespaces.find((n) => n.name === ns)?.labels ?? {};
  const from = l.allowedRoutes.namespaces;
  const allowsNamespace = (ns: string): boolean =>
    from.from === 'All' ? true : from.from === 'Same' ? ns === meta.namespace : api.namespaces.some((n) => n.name === ns) && selects(from.selector, namespaceLabels(ns));
  const base = { name: l.name, port: l.port, protocol: l.protocol, hostname: l.hostname, allowsNamespace, attachedRoutes: 0, certificate: undefined };
  const notServed = (reason: string, message: string, kinds: { group: string; kind: string }[] = []): ListenerResult => ({
    ...base,
    traffic: undefined,
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
  const listener = TRAFFIC[l.protocol];
  if (listener === undefined) return notServed(GwReason.UnsupportedProtocol, `protocol ${l.protocol} is not supported; Switchyard serves HTTP and HTTPS`);
  const traffic = { listener, port: api.ports[listener] };

  const requested = l.allowedRoutes.kinds;
  const supportedKinds = requested === undefined ? [{ ...HTTP_ROUTE_KIND }] : requested.filter((k) => k.group === HTTP_ROUTE_KIND.group && k.kind === HTTP_ROUTE_KIND.kind).map((k) => ({ group: k.group, kind: k.kind }));
  const badKinds = (requested ?? []).filter((k) => !(k.group === HTTP_ROUTE_KIND.group && k.kind === HTTP_ROUTE_KIND.kind));

  if (conflict !== undefined) return notServed(conflict.reason, `conflicts with another listener of this Gateway: ${conflict.message}`, supportedKinds);
  if (traffic.port === undefined) {
    return notServed(GwReason.PortUnavailable, `${api.addressSource} has no port named "${listener}": ${l.protocol} listeners cannot be served (the chart adds it when gatewayAPI.enabled is set)`, supportedKinds);
  }
  if (l.port !== traffic.port) {
    const ports = Object.entries(api.ports).map(([name, port]) => `${name === 'http' ? 'HTTP' : 'HTTPS'} on ${port}`).join(', ');
    return notServed(GwReason.PortUnavailable, `${l.protocol} listeners must use port ${traffic.port}: every Gateway of this class is served at ${api.addressSource}, which serves ${ports}`, supportedKinds);
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
    traffic: traffic.listener,
    accepted: true,
    programmed,
    supportedKinds,
    certificate,
    conditions: [
      condition(GwCondition.Accepted, true, GwReason.Accepted, `served on the data planes' ${traffic.listener} listener`),
      programmed ? condition(GwCondition.Programmed, true, GwReason.Programmed, 'the data planes serve this listener') : condition(GwCondition.Programmed, false, GwReason.Invalid, 'references are not resolved'),
      refs,
      condition(GwCondition.Conflicted, false, GwReason.NoConflicts, 'no conflicts'),
    ],
  };
}

/** Compiles the Gateways of Switchyard's classes, oldest first (the order their certificates are preferred in). */
export function compileGateways(api: GatewayApiSnapshot, classes: ReadonlyMap<string, ClassResult>, grants: ReferenceGrants): GatewayResult[] {
  const ours = api.gateways.filter((g) => g.spec !== undefined && classes.has(g.spec.gatewayClassName)) as Extract<Parsed<GatewaySpec>, { spec: GatewaySpec }>[];
  ours.sort((a, b) => (a.meta.creationTimestamp < b.meta.creationTimestamp ? -1 : a.meta.creationTimestamp > b.meta.creationTimestamp ? 1 : keyOf(a.meta) < keyOf(b.meta) ? -1 : 1));
  const results = ours.map((g): GatewayResult => {
    const cls = classes.get(g.spec.gatewayClassName) as ClassResult;
    const conflicted = conflicts(g.spec.listeners);
    const listeners = g.spec.listeners.map((l) => compileListener(g.meta, l, conflicted.get(l.name), api, grants));
    const key = keyOf(g.meta);
    const rejected = (reason: string, message: string): GatewayResult => ({
      key,
      meta: g.meta,
      accepted: false,
      listeners: listeners.map((l) => ({
        ...l,
        accepted: false,
        programmed: false,
        conditions: l.conditions.map((c) => (c.type === GwCondition.Programmed ? condition(GwCondition.Programmed, false, GwReason.Invalid, 'the Gateway is not accepted') : c)),
      })),
      addresses: [],
      conditions: [condition(GwCondition.Accepted, false, reason, message), condition(GwCondition.Programmed, false, GwReason.Invalid, 'the Gateway is not accepted')],
    });
    if (!cls.accepted) return rejected(GwReason.Invalid, `GatewayClass "${cls.name}" is not accepted`);
    if ((g.spec.addresses ?? []).length > 0) {
      return rejected(GwReason.UnsupportedAddress, `spec.addresses cannot be honoured: every Gateway of this class is reached at the data planes' Service (${api.addressSource}); remove spec.addresses`);
    }
    if (g.spec.tls !== undefined) return rejected(GwReason.Invalid, 'spec.tls (client certificate validation, backend client certificates) is not supported');
    const valid = listeners.filter((l) => l.accepted).length;
    const accepted = valid > 0;
    const acceptedCondition =
      valid === listeners.length
        ? condition(GwCondition.Accepted, true, GwReason.Accepted, 'the Gateway is valid')
        : condition(GwCondition.Accepted, accepted, GwReason.ListenersNotValid, `${listeners.length - valid} of ${listeners.length} listeners are not valid; see status.listeners`);
    const programmed = accepted && api.addresses.length > 0 && listeners.some((l) => l.programmed);
    const programmedCondition = programmed
      ? condition(GwCondition.Programmed, true, GwReason.Programmed, `served by the data planes at ${api.addressSource}`)
      : !accepted
        ? condition(GwCondition.Programmed, false, GwReason.Invalid, 'no listener is valid')
        : api.addresses.length === 0
          ? condition(GwCondition.Programmed, false, GwReason.AddressNotAssigned, `${api.addressSource} has no address yet`)
          : condition(GwCondition.Programmed, false, GwReason.Invalid, 'no listener is programmed; see status.listeners');
    return { key, meta: g.meta, accepted, listeners, conditions: [acceptedCondition, programmedCondition], addresses: accepted ? api.addresses : [] };
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
 * HTTPS listeners whose hostnames overlap, across every Gateway: they share the
 * data planes' one TLS socket, so a client's SNI may pick the other's
 * certificate, and connection reuse may carry a request across (the API's
 * OverlappingTLSConfig, which is informational).
 */
function markOverlappingTls(gateways: GatewayResult[]): void {
  const https = gateways.flatMap((g) => g.listeners.filter((l) => l.programmed && l.traffic === 'https').map((l) => ({ g, l })));
  for (const a of https) {
    const others = https.filter((b) => b !== a && overlap(a.l.hostname, b.l.hostname));
    if (others.length === 0) continue;
    const named = others.slice(0, 3).map((b) => `${b.g.key}/${b.l.name}${b.l.hostname ? ` (${b.l.hostname})` : ''}`);
    a.l.conditions.push(condition(GwCondition.OverlappingTLSConfig, true, GwReason.OverlappingHostnames, `hostnames overlap with ${named.join(', ')}${others.length > 3 ? ` and ${others.length - 3} more` : ''}`));
  }
}

/**
 * The table's certificates: one per programmed HTTPS listener, oldest Gateway
 * first. A hostname an earlier listener already presents a certificate for
 * stays with it, and only the first listener without a hostname provides the
 * fallback, so each SNI name has exactly one certificate.
 */
export function tableCertificates(gateways: readonly GatewayResult[]): Certificate[] {
  const out: Certificate[] = [];
  const claimed = new Set<string>();
  let fallback = false;
  for (const g of gateways) {
    for (const l of g.listeners) {
      if (!l.programmed || l.certificate === undefined) continue;
      const host = l.hostname?.toLowerCase();
      if (host === undefined ? fallback : claimed.has(host)) continue;
      if (host === undefined) fallback = true;
      else claimed.add(host);
      out.push({ name: `${g.key}/${l.name}`, hosts: host === undefined ? [] : [host], ...l.certificate });
    }
  }
  return out;
}
