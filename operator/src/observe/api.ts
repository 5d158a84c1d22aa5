/**
 * The operator's aggregated API, `observe.switchyard.dev/v1alpha1`, which the
 * API server proxies to (an APIService): what `kubectl switchyard` asks.
 *
 *   GET  /apis/observe.switchyard.dev/v1alpha1/routes                      the effective table (RouteList)
 *   GET  /apis/observe.switchyard.dev/v1alpha1/namespaces/{ns}/routes      its routes from namespace ns
 *   GET  /apis/observe.switchyard.dev/v1alpha1/dataplanes                  the leader and the data planes it serves
 *   POST /apis/observe.switchyard.dev/v1alpha1/namespaces/{ns}/explanations  one request explained by a data plane
 *
 * The API server authenticates and authorizes each request (RBAC on these
 * resources, like any other) before proxying it here, so this server only
 * checks that the request came through it: a TLS client certificate signed by
 * the front proxy's CA, with one of its allowed names. Anything else is 401.
 *
 * An explanation is relayed to a connected data plane on its config stream
 * (distribute/server.ts), answered from that data plane's live state, and
 * shows only the routes of the namespace it was asked in: others appear as
 * placeholders. Credentials of the explained request (Authorization, Cookie)
 * travel in X-Switchyard-Credential headers, not the body, so an audit log
 * that records request bodies does not record them; they are never echoed.
 */
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { RouteTable } from '../../../dataplane/src/contract/index.ts';
import { ExplainRelayError, type DataplaneState } from '../distribute/server.ts';
import type { FrontProxyTrust } from '../kube/front-proxy.ts';

export const OBSERVE_GROUP = 'observe.switchyard.dev';
export const OBSERVE_VERSION = 'v1alpha1';
const GROUP_VERSION = `${OBSERVE_GROUP}/${OBSERVE_VERSION}`;
const BASE = `/apis/${GROUP_VERSION}`;

/** What the API reads of the operator. */
export interface ObserveSource {
  readonly table: RouteTable | undefined;
  readonly isLeader: boolean;
  /** This replica's name in the election. */
  readonly identity: string;
  readonly server: {
    fleet(): DataplaneState[];
    explain(request: unknown, options: { dataplane?: string | undefined; namespace?: string | undefined; timeoutMs?: number }): Promise<{ dataplane: string; explanation: unknown }>;
  };
}

/** How the API is served. */
export interface ObserveOptions {
  source: ObserveSource;
  /** The serving certificate and key (PEM), for the name the APIService's Service has. */
  tls: { cert: string | Buffer; key: string | Buffer };
  trust: FrontProxyTrust;
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

const RESOURCES = [
  { name: 'routes', singularName: 'route', namespaced: true, kind: 'Route', verbs: ['list'] },
  { name: 'dataplanes', singularName: 'dataplane', namespaced: false, kind: 'Dataplane', verbs: ['list'] },
  { name: 'explanations', singularName: 'explanation', namespaced: true, kind: 'Explanation', verbs: ['create'] },
];

/** Explained-request headers that carry credentials: taken only from X-Switchyard-Credential, never from the body. */
const CREDENTIAL_HEADERS = new Set(['authorization', 'cookie', 'proxy-authorization']);
const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

/** A Kubernetes Status, as clients expect errors from an API server. */
function failure(res: ServerResponse, code: number, reason: string, message: string): void {
  send(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
}

/**
 * The answer of a replica that is not the leader. The connection is closed
 * with it: the API server then opens a new one for the retry, which the
 * Service may give to another replica, where a kept-alive one would come back here.
 */
function notLeader(res: ServerResponse, identity: string, what: string): void {
  res.setHeader('connection', 'close');
  failure(res, 503, 'ServiceUnavailable', `operator replica "${identity}" is not the leader; only the leader ${what}: ask again`);
}

function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= limit) chunks.push(c);
    });
    req.on('end', () => resolve(size <= limit ? Buffer.concat(chunks).toString('utf8') : undefined));
    req.on('error', reject);
  });
}

/** The aggregated API server. */
export class ObserveServer {
  private readonly server: https.Server;
  private readonly options: ObserveOptions;

  constructor(options: ObserveOptions) {
    this.options = options;
    // The client certificate is asked for and checked per request: a probe without one gets a 401, not a TLS failure.
    this.server = https.createServer({ cert: options.tls.cert, key: options.tls.key, ca: options.trust.ca, requestCert: true, rejectUnauthorized: false }, (req, res) => this.handle(req, res));
  }

  /** Starts listening; resolves with the bound port. */
  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve((this.server.address() as AddressInfo).port));
    });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** Whether the request came through the API server's front proxy. */
  private fromFrontProxy(req: IncomingMessage): boolean {
    const socket = req.socket as TLSSocket;
    if (!socket.authorized) return false;
    const names = this.options.trust.allowedNames;
    if (names.length === 0) return true;
    const cn = socket.getPeerCertificate().subject?.CN;
    return typeof cn === 'string' && names.includes(cn);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'https://observe');
    if (req.method === 'GET' && (url.pathname === '/healthz' || url.pathname === '/readyz' || url.pathname === '/livez')) {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
      return;
    }
    if (!this.fromFrontProxy(req)) {
      req.resume();
      failure(res, 401, 'Unauthorized', 'this API is served through the Kubernetes API server: ask it there');
      return;
    }
    const path = url.pathname.replace(/\/+$/, '');
    const ns = /^\/apis\/observe\.switchyard\.dev\/v1alpha1\/namespaces\/([^/]+)\/(routes|explanations)$/.exec(path);
    if (req.method === 'GET' && path === '/apis') return send(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups: [this.group()] });
    if (req.method === 'GET' && path === `/apis/${OBSERVE_GROUP}`) return send(res, 200, this.group());
    if (req.method === 'GET' && path === BASE) return send(res, 200, { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: GROUP_VERSION, resources: RESOURCES });
    if (req.method === 'GET' && path === `${BASE}/routes`) return this.routes(res, undefined);
    if (req.method === 'GET' && path === `${BASE}/dataplanes`) return this.dataplanes(res);
    if (ns !== null && NAMESPACE.test(ns[1] as string)) {
      if (ns[2] === 'routes' && req.method === 'GET') return this.routes(res, ns[1]);
      if (ns[2] === 'explanations' && req.method === 'POST') return void this.explain(req, res, ns[1] as string).catch((err: unknown) => failure(res, 500, 'InternalError', (err as Error).message));
      req.resume();
      return failure(res, 405, 'MethodNotAllowed', `${req.method} is not supported on ${ns[2]}`);
    }
    req.resume();
    failure(res, 404, 'NotFound', `no resource at ${url.pathname}`);
  }

  private group(): object {
    const version = { groupVersion: GROUP_VERSION, version: OBSERVE_VERSION };
    return { kind: 'APIGroup', apiVersion: 'v1', name: OBSERVE_GROUP, versions: [version], preferredVersion: version };
  }

  /** The table's routes (from one namespace), each with the resource it came from. Every replica compiles the same table. */
  private routes(res: ServerResponse, namespace: string | undefined): void {
    const table = this.options.source.table;
    if (!table) return failure(res, 503, 'ServiceUnavailable', 'the operator has not compiled a route table yet');
    const items = table.routes
      .filter((r) => namespace === undefined || r.source?.namespace === namespace)
      .map((r) => ({ apiVersion: GROUP_VERSION, kind: 'Route', metadata: { name: r.id, ...(r.source?.namespace ? { namespace: r.source.namespace } : {}) }, spec: r }));
    send(res, 200, { apiVersion: GROUP_VERSION, kind: 'RouteList', metadata: { tableVersion: table.version }, items });
  }

  /** The leader, the table it serves, and each data plane connected to it with the version it applied. */
  private dataplanes(res: ServerResponse): void {
    const { source } = this.options;
    if (!source.isLeader) return notLeader(res, source.identity, 'serves data planes');
    const items = source.server.fleet().map((d) => ({
      apiVersion: GROUP_VERSION,
      kind: 'Dataplane',
      metadata: { name: d.id },
      status: { connectedAt: new Date(d.connectedAt).toISOString(), sentVersion: d.sentVersion ?? null, appliedVersion: d.appliedVersion ?? null, lastAck: d.ack ?? null },
    }));
    send(res, 200, { apiVersion: GROUP_VERSION, kind: 'DataplaneList', metadata: { leader: source.identity, tableVersion: source.table?.version ?? null }, items });
  }

  private async explain(req: IncomingMessage, res: ServerResponse, namespace: string): Promise<void> {
    const { source } = this.options;
    const text = await readBody(req, 64 * 1024);
    if (!source.isLeader) return notLeader(res, source.identity, 'reaches the data planes');
    let spec: Record<string, unknown>;
    try {
      const body = JSON.parse(text ?? '') as { spec?: unknown };
      if (typeof body.spec !== 'object' || body.spec === null) throw new Error('no spec');
      spec = body.spec as Record<string, unknown>;
    } catch {
      return failure(res, 400, 'BadRequest', 'expected an Explanation with a spec: {method, path, host, headers, client, listener, dataplane}');
    }
    const headers: Record<string, string[]> = {};
    for (const [name, value] of Object.entries((spec.headers as Record<string, unknown> | undefined) ?? {})) {
      if (CREDENTIAL_HEADERS.has(name.toLowerCase())) return failure(res, 400, 'BadRequest', `send the ${name} header of the explained request in X-Switchyard-Credential, not in the body`);
      headers[name.toLowerCase()] = (Array.isArray(value) ? value : [value]).map(String);
    }
    const credentials = req.headers['x-switchyard-credential'];
    for (const line of Array.isArray(credentials) ? credentials : credentials === undefined ? [] : [credentials]) {
      const colon = line.indexOf(':');
      if (colon <= 0) return failure(res, 400, 'BadRequest', 'X-Switchyard-Credential is "Name: value"');
      (headers[line.slice(0, colon).trim().toLowerCase()] ??= []).push(line.slice(colon + 1).trim());
    }
    const request = { method: spec.method, path: spec.path, host: spec.host, headers, client: spec.client, listener: spec.listener };
    const dataplane = typeof spec.dataplane === 'string' ? spec.dataplane : undefined;
    try {
      const answer = await source.server.explain(request, { dataplane, namespace });
      const { error } = answer.explanation as { error?: unknown };
      if (typeof error === 'string') return failure(res, 400, 'BadRequest', error);
      // The spec comes back with header names only: values may be credentials.
      const shownSpec = { ...spec, headers: Object.keys(headers) };
      send(res, 201, { apiVersion: GROUP_VERSION, kind: 'Explanation', metadata: { namespace, creationTimestamp: new Date().toISOString() }, spec: shownSpec, status: { dataplane: answer.dataplane, explanation: answer.explanation } });
    } catch (err) {
      if (err instanceof ExplainRelayError) return failure(res, err.status, err.status === 504 ? 'Timeout' : 'NotFound', err.message);
      throw err;
    }
  }
}
