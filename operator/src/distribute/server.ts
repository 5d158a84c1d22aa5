/**
 * The config server: data planes subscribe to a long-lived NDJSON stream and
 * get the current table at once, then every new version, plus heartbeats.
 * They acknowledge each version they applied or rejected.
 *
 *   GET  /v1/tables/watch?dataplane=<id>[&applied=<version>][&lease=<uid>&term=<n>][&protocol=2]
 *        → 200 application/x-ndjson, one JSON object per line:
 *        {"type":"table","table":{…},"seq","epoch","leader":{"lease","term","identity"}}
 *        | {"type":"delta","from","to","routes"?,"upstreams"?,"listeners"?,"certificates"?,"seq","epoch","leader"}  (protocol 2 only)
 *        | {"type":"heartbeat","version":"…"}
 *   POST /v1/acks   {"dataplane","version","applied","error"?}  → 204
 *   POST /v1/explanations {"dataplane","id","explanation"}         → 204 (the answer to {"type":"explain","id","request"} on the stream)
 *   GET  /healthz                                                → 200 (no auth)
 *
 * Every other request needs `Authorization: Bearer <token>`, compared in
 * constant time; without it the answer is 401 and nothing else. Only the
 * leader serves streams and takes acks (it is the one writing status); other
 * replicas answer 503 with Retry-After, and data planes try again.
 *
 * `leader` is the fencing token of the leadership that sent the table (the
 * Lease's UID and transition count). A data plane that already has a table from
 * a later term of the same Lease is talking to a deposed leader: it gets 503 here,
 * and refuses such a table itself if one reaches it.
 *
 * Protocol 2 (a data plane that asks with `protocol=2`): after the whole table
 * that opens every stream, each new version goes out as a delta from the one
 * sent before (`diffTables`), when that is the version the stream was last
 * sent; otherwise as a whole table. `seq` numbers the messages of this
 * server (`epoch`, random at start): a data plane never takes a message
 * numbered below one it applied from the same epoch. A data plane that
 * asks without `protocol` gets whole tables only, as before.
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { DELTA_PROTOCOL, diffTables, type RouteTable } from '../../../dataplane/src/contract/index.ts';
import type { LeaderTerm } from '../kube/leader.ts';

/** Why an explanation could not be relayed: the HTTP status to answer with, and a message. */
export class ExplainRelayError extends Error {
  override readonly name = 'ExplainRelayError';
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** What the leader knows about one data plane. */
export interface DataplaneState {
  id: string;
  connectedAt: number;
  /** The version last sent on its stream. */
  sentVersion: string | undefined;
  /** Its last acknowledgement. */
  ack: { version: string; applied: boolean; error?: string } | undefined;
  /** The last version it applied successfully. */
  appliedVersion: string | undefined;
  /** The stream protocol it asked for: 1 (whole tables) or 2 (deltas). */
  protocol: number;
  /** Whole tables and deltas sent on its stream. */
  sent: { tables: number; deltas: number };
}

/** Events the operator reacts to (status recomputation). */
export interface ConfigServerEvents {
  onFleetChange(): void;
  onAck?(applied: boolean): void;
}

/** Options of the config server. */
export interface ConfigServerOptions {
  token: string;
  /** The serving certificate and key (PEM): data planes then connect over TLS, verifying it against the CA they are given. Absent: plain HTTP. */
  tls?: { cert: string | Buffer; key: string | Buffer } | undefined;
  heartbeatMs?: number;
  isLeader: () => boolean;
  events: ConfigServerEvents;
  log: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/** Serves tables to data planes and collects their acknowledgements. */
export class ConfigServer {
  private readonly server: http.Server | https.Server;
  private readonly options: ConfigServerOptions;
  private readonly tokenDigest: Buffer;
  private table: RouteTable | undefined;
  private term: LeaderTerm | undefined;
  private tableLine = '';
  /** The delta from the table published before this one, as a line; built when a stream needs it. */
  private deltaLine: { from: string; line: string } | undefined;
  private previous: RouteTable | undefined;
  /** Numbers the tables this server publishes, within `epoch`. */
  private seq = 0;
  private readonly epoch = randomUUID();
  private readonly streams = new Map<string, { res: http.ServerResponse; state: DataplaneState }>();
  /** Explanations asked of data planes and not answered yet, by id. */
  private readonly explaining = new Map<string, { dataplane: string; resolve: (explanation: unknown) => void }>();
  private readonly heartbeat: NodeJS.Timeout;

  constructor(options: ConfigServerOptions) {
    this.options = options;
    // Hashing both sides first gives equal-length buffers, so the comparison time says nothing about the token.
    this.tokenDigest = digest(options.token);
    const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => this.handle(req, res);
    this.server = options.tls ? https.createServer({ cert: options.tls.cert, key: options.tls.key, minVersion: 'TLSv1.2' }, handler) : http.createServer(handler);
    this.heartbeat = setInterval(() => this.beat(), options.heartbeatMs ?? 10_000);
    this.heartbeat.unref();
  }

  /** A renewed serving certificate, for new connections; streams already open keep theirs. */
  setTls(tls: { cert: string | Buffer; key: string | Buffer }): void {
    if (!(this.server instanceof https.Server)) throw new Error('the config server was started without TLS');
    this.server.setSecureContext({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' });
  }

  /** Starts listening; resolves with the bound port. */
  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => resolve((this.server.address() as AddressInfo).port));
    });
  }

  /** Sets the leadership term that tables are sent under (undefined without leader election). */
  setTerm(term: LeaderTerm | undefined): void {
    this.term = term;
    if (this.table) this.tableLine = this.lineFor(this.table);
  }

  private lineFor(table: RouteTable): string {
    return `${JSON.stringify({ type: 'table', table, seq: this.seq, epoch: this.epoch, ...(this.term ? { leader: this.term } : {}) })}\n`;
  }

  /** The delta line from the previous table to the current one (built once per version). */
  private deltaFrom(previous: RouteTable, table: RouteTable): string {
    if (this.deltaLine?.from !== previous.version) {
      const line = `${JSON.stringify({ type: 'delta', ...diffTables(previous, table), seq: this.seq, epoch: this.epoch, ...(this.term ? { leader: this.term } : {}) })}\n`;
      this.deltaLine = { from: previous.version, line };
    }
    return this.deltaLine.line;
  }

  /** Publishes a new table to every subscriber: a delta to those that take them and have the version before, else the whole table. */
  publish(table: RouteTable): void {
    if (this.table?.version === table.version) return;
    this.previous = this.table;
    this.table = table;
    this.seq++;
    this.deltaLine = undefined;
    this.tableLine = this.lineFor(table);
    for (const { res, state } of this.streams.values()) {
      const previous = this.previous;
      if (state.protocol >= DELTA_PROTOCOL && previous !== undefined && state.sentVersion === previous.version) {
        res.write(this.deltaFrom(previous, table));
        state.sent.deltas++;
      } else {
        res.write(this.tableLine);
        state.sent.tables++;
      }
      state.sentVersion = table.version;
    }
  }

  /**
   * Asks a connected data plane to explain a request (the `explain` message on
   * its stream; it answers with POST /v1/explanations): `dataplane` names it,
   * else the first, by name, that applied the table this replica serves.
   * Rejects with an ExplainRelayError when none is connected or none answers
   * within `timeoutMs`.
   */
  explain(request: unknown, options: { dataplane?: string | undefined; namespace?: string | undefined; timeoutMs?: number } = {}): Promise<{ dataplane: string; explanation: unknown }> {
    const fleet = this.fleet();
    const chosen = options.dataplane !== undefined ? fleet.find((d) => d.id === options.dataplane) : (fleet.find((d) => d.appliedVersion !== undefined && d.appliedVersion === this.table?.version) ?? fleet[0]);
    const entry = chosen ? this.streams.get(chosen.id) : undefined;
    if (!chosen || !entry) {
      return Promise.reject(new ExplainRelayError(404, options.dataplane !== undefined ? `no data plane "${options.dataplane}" is connected to the leader` : 'no data plane is connected to the leader'));
    }
    const id = randomUUID();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.explaining.delete(id);
        reject(new ExplainRelayError(504, `data plane "${chosen.id}" did not answer within ${options.timeoutMs ?? 5000} ms`));
      }, options.timeoutMs ?? 5000);
      this.explaining.set(id, { dataplane: chosen.id, resolve: (explanation) => (clearTimeout(timer), resolve({ dataplane: chosen.id, explanation })) });
      entry.res.write(`${JSON.stringify({ type: 'explain', id, request, ...(options.namespace !== undefined ? { namespace: options.namespace } : {}) })}\n`);
    });
  }

  /** The data planes connected to this replica. */
  fleet(): DataplaneState[] {
    return [...this.streams.values()].map((s) => s.state).sort((a, b) => (a.id < b.id ? -1 : 1));
  }

  /** Ends every stream (leadership lost, or shutting down): data planes reconnect elsewhere. */
  disconnectAll(): void {
    for (const { res } of this.streams.values()) res.end();
    this.streams.clear();
    this.options.events.onFleetChange();
  }

  /** Stops serving. */
  async close(): Promise<void> {
    clearInterval(this.heartbeat);
    this.disconnectAll();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private authorized(req: http.IncomingMessage): boolean {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer (.+)$/.exec(header);
    return m !== null && timingSafeEqual(digest(m[1] as string), this.tokenDigest);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://operator');
    if (req.method === 'GET' && url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (!this.authorized(req)) {
      req.resume();
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer' }).end('{"error":"unauthorized"}\n');
      return;
    }
    if (!this.options.isLeader()) {
      req.resume();
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' }).end('{"error":"not the leader; try another replica"}\n');
      return;
    }
    if (req.method === 'GET' && url.pathname === '/v1/tables/watch') return this.watch(req, res, url);
    if (req.method === 'POST' && url.pathname === '/v1/acks') return this.ack(req, res);
    if (req.method === 'POST' && url.pathname === '/v1/explanations') return this.explained(req, res);
    req.resume();
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}\n');
  }

  private watch(req: http.IncomingMessage, res: http.ServerResponse, url: URL): void {
    const id = url.searchParams.get('dataplane') ?? '';
    if (!/^[A-Za-z0-9._:-]{1,253}$/.test(id)) {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"the dataplane query parameter must name the data plane"}\n');
      return;
    }
    const theirs = { lease: url.searchParams.get('lease'), term: Number(url.searchParams.get('term')) };
    if (this.term && theirs.lease === this.term.lease && theirs.term > this.term.term) {
      // Its table came from a later leadership than this one: this replica was deposed and does not know yet.
      this.options.log.warn({ event: 'dataplane_ahead', dataplane: id, term: this.term.term, theirs: theirs.term }, 'a data plane has a table from a later leader; not serving it');
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' }).end('{"error":"a later leader exists; try another replica"}\n');
      return;
    }
    // A data plane that reconnects replaces its old stream.
    this.streams.get(id)?.res.end();
    const applied = url.searchParams.get('applied') ?? undefined;
    // Unknown or absent: whole tables, which every data plane takes.
    const protocol = url.searchParams.get('protocol') === String(DELTA_PROTOCOL) ? DELTA_PROTOCOL : 1;
    const state: DataplaneState = { id, connectedAt: Date.now(), sentVersion: undefined, ack: undefined, appliedVersion: applied, protocol, sent: { tables: 0, deltas: 0 } };
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    res.socket?.setNoDelay(true);
    const entry = { res, state };
    this.streams.set(id, entry);
    if (this.table) {
      // Every stream starts with the whole table: a data plane that reconnects, restarted from its saved table or missed a delta resyncs here.
      res.write(this.tableLine);
      state.sentVersion = this.table.version;
      state.sent.tables++;
    } else {
      res.write(`${JSON.stringify({ type: 'heartbeat', version: null })}\n`);
    }
    this.options.log.info({ event: 'dataplane_connected', dataplane: id, applied: applied ?? null, protocol }, 'data plane subscribed');
    this.options.events.onFleetChange();
    res.on('close', () => {
      if (this.streams.get(id) === entry) {
        this.streams.delete(id);
        this.options.log.info({ event: 'dataplane_disconnected', dataplane: id }, 'data plane disconnected');
        this.options.events.onFleetChange();
      }
    });
  }

  private ack(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 64 * 1024) chunks.push(c);
    });
    req.on('end', () => {
      let body: { dataplane?: unknown; version?: unknown; applied?: unknown; error?: unknown };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"expected a JSON body"}\n');
        return;
      }
      const entry = typeof body.dataplane === 'string' ? this.streams.get(body.dataplane) : undefined;
      if (!entry || typeof body.version !== 'string' || typeof body.applied !== 'boolean') {
        res.writeHead(409, { 'content-type': 'application/json' }).end('{"error":"no stream for this data plane on this replica; subscribe first"}\n');
        return;
      }
      const error = typeof body.error === 'string' ? body.error.slice(0, 2048) : undefined;
      entry.state.ack = { version: body.version, applied: body.applied, ...(error ? { error } : {}) };
      if (body.applied) entry.state.appliedVersion = body.version;
      else this.options.log.warn({ event: 'table_rejected_by_dataplane', dataplane: entry.state.id, version: body.version, error }, 'a data plane rejected a table');
      res.writeHead(204).end();
      this.options.events.onAck?.(body.applied);
      this.options.events.onFleetChange();
    });
  }

  /** A data plane's answer to an `explain` message: `{dataplane, id, explanation}`. */
  private explained(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 4 * 1024 * 1024) chunks.push(c);
    });
    req.on('end', () => {
      let body: { dataplane?: unknown; id?: unknown; explanation?: unknown };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"expected a JSON body"}\n');
        return;
      }
      const waiting = typeof body.id === 'string' ? this.explaining.get(body.id) : undefined;
      // Only the data plane that was asked may answer.
      if (!waiting || waiting.dataplane !== body.dataplane) {
        res.writeHead(409, { 'content-type': 'application/json' }).end('{"error":"no such explanation is awaited from this data plane"}\n');
        return;
      }
      this.explaining.delete(body.id as string);
      waiting.resolve(body.explanation);
      res.writeHead(204).end();
    });
  }

  private beat(): void {
    const line = `${JSON.stringify({ type: 'heartbeat', version: this.table?.version ?? null })}\n`;
    for (const { res } of this.streams.values()) res.write(line);
  }
}
