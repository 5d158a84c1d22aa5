/**
 * HTTP/2 on the traffic listeners: h2 by ALPN on TLS listeners, h2c with prior
 * knowledge on the cleartext one, both into the same request handler as
 * HTTP/1.1 (through Node's compatibility API), with limits against the known
 * HTTP/2 attacks:
 *
 * - concurrent streams: SETTINGS_MAX_CONCURRENT_STREAMS (Node's default is
 *   unbounded); a client that opens more gets them refused, and one that keeps
 *   doing so (maxSessionRejectedStreams) loses the connection;
 * - header list size and pairs: SETTINGS_MAX_HEADER_LIST_SIZE and
 *   maxHeaderListPairs; a stream over either is reset (ENHANCE_YOUR_CALM);
 * - rapid reset (CVE-2023-44487): streams reset before they ended normally
 *   are counted per connection; past `max_resets` within `reset_window` the
 *   connection gets GOAWAY ENHANCE_YOUR_CALM and is closed. nghttp2's own
 *   reset rate limit (streamResetBurst/Rate) stays on below that;
 * - CONTINUATION floods (CVE-2024-27316 class): nghttp2 stops a header block
 *   after a few CONTINUATION frames and counts its decoded size against the
 *   header list limit, and Node bounds a session's memory
 *   (maxSessionMemory), so an endless header block ends the connection.
 */
import type http from 'node:http';
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';

const { NGHTTP2_NO_ERROR, NGHTTP2_ENHANCE_YOUR_CALM } = http2.constants;

/** `server.http2`, in the units the listeners use. */
export interface Http2Settings {
  /** h2 offered by ALPN on TLS listeners. */
  enabled: boolean;
  /** h2c with prior knowledge on the cleartext listener. */
  cleartext: boolean;
  maxConcurrentStreams: number;
  /** Bytes of decoded header names and values (plus 32 per field, RFC 9113 6.5.2). */
  maxHeaderListSize: number;
  /** Header fields per request, pseudo-headers included. */
  maxHeaderListPairs: number;
  /** Streams reset before they ended normally, per connection, within `resetWindowMs`. */
  maxResets: number;
  resetWindowMs: number;
  /** A connection with no open stream and no frame for this long gets GOAWAY (`server.timeouts.keepalive_timeout`). */
  idleTimeoutMs: number;
}

/** The session options of every HTTP/2 listener. */
export function http2SessionOptions(s: Http2Settings): http2.ServerOptions {
  return {
    settings: { maxConcurrentStreams: s.maxConcurrentStreams, maxHeaderListSize: s.maxHeaderListSize, enablePush: false },
    maxHeaderListPairs: s.maxHeaderListPairs,
    // Node's defaults, written down here because the attack tests rely on them.
    maxSessionRejectedStreams: 100,
    maxSessionInvalidFrames: 1000,
    maxSessionMemory: 10,
  };
}

/** What HTTP/2 connections did that the gateway counts. */
export interface Http2Events {
  /** A connection was closed for resetting too many streams. */
  onRapidReset(peer: string | undefined, resets: number): void;
}

/**
 * The HTTP/2 sessions of the traffic listeners: guarded against rapid reset,
 * drained with GOAWAY on shutdown, and the peer address of h2c connections
 * (whose socket is wrapped, see `sniffH2c`).
 */
export class Http2Sessions {
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private readonly peers = new WeakMap<http2.Http2Session, string>();
  private pendingPeer: string | undefined;
  private readonly settings: Http2Settings;
  private readonly events: Http2Events;

  constructor(settings: Http2Settings, events: Http2Events) {
    this.settings = settings;
    this.events = events;
  }

  /** Follows every session `server` accepts. */
  attach(server: http2.Http2Server | http2.Http2SecureServer): void {
    server.on('session', (session: http2.ServerHttp2Session) => this.track(session));
  }

  private track(session: http2.ServerHttp2Session): void {
    if (this.pendingPeer !== undefined) this.peers.set(session, this.pendingPeer);
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    // A protocol error ends the session; Node has sent GOAWAY already, and an unhandled 'error' must not end the process.
    session.on('error', () => session.destroy());
    const { maxResets, resetWindowMs, idleTimeoutMs } = this.settings;
    let resets = 0;
    let windowStart = performance.now();
    let open = 0;
    // Idle as HTTP/1.1 keep-alive is: no stream and no frame for the keep-alive time. A quiet stream (a gRPC watch) keeps its connection.
    session.setTimeout(idleTimeoutMs, () => {
      if (open === 0 && !session.closed) session.close();
    });
    session.on('stream', (stream: http2.ServerHttp2Stream) => {
      open++;
      stream.once('close', () => {
        open--;
        // A stream that ended normally closes with NO_ERROR; a reset one (by the client, or by the gateway after an upstream failed mid-answer) with its code.
        if (stream.rstCode === NGHTTP2_NO_ERROR || stream.rstCode === undefined) return;
        const now = performance.now();
        if (now - windowStart > resetWindowMs) {
          windowStart = now;
          resets = 0;
        }
        if (++resets <= maxResets || session.destroyed) return;
        this.events.onRapidReset(this.peerOf(session), resets);
        // GOAWAY carries the code; the session's 'error' that follows is handled above.
        session.destroy(new Error(`reset ${resets} streams`), NGHTTP2_ENHANCE_YOUR_CALM);
      });
    });
  }

  /** The client's address on an HTTP/2 request, for h2c connections too. */
  peerOf(session: http2.Http2Session | undefined): string | undefined {
    if (session === undefined) return undefined;
    return this.peers.get(session) ?? session.socket?.remoteAddress;
  }

  /**
   * Hands a cleartext connection that opened with the HTTP/2 preface to
   * `server`. Its first bytes were already read, and an HTTP/2 session reads
   * its socket's handle directly, so the session gets a stream that replays
   * them and then relays the socket.
   */
  acceptCleartext(server: http2.Http2Server, socket: Socket, first: Buffer): void {
    const relay = socketRelay(socket, first);
    this.pendingPeer = socket.remoteAddress;
    try {
      server.emit('connection', relay);
    } finally {
      this.pendingPeer = undefined;
    }
  }

  /** GOAWAY to every session: streams in flight finish, no new ones start. */
  drain(): void {
    for (const s of this.sessions) if (!s.closed) s.close();
  }

  /** Closes every session now. */
  destroyAll(): void {
    for (const s of this.sessions) s.destroy();
  }

  get size(): number {
    return this.sessions.size;
  }
}

/** A duplex over `socket` whose readable side starts with `first`. */
function socketRelay(socket: Socket, first: Buffer): Duplex {
  const relay = new Duplex({
    read(): void {
      socket.resume();
    },
    write(chunk: Buffer, _encoding, cb): void {
      socket.write(chunk, cb);
    },
    final(cb): void {
      socket.end(cb);
    },
    destroy(err, cb): void {
      socket.destroy(err ?? undefined);
      cb(err);
    },
  });
  relay.push(first);
  socket.on('data', (chunk: Buffer) => {
    if (!relay.push(chunk)) socket.pause();
  });
  socket.once('end', () => relay.push(null));
  socket.once('close', () => relay.destroy());
  socket.on('error', (err) => relay.destroy(err));
  return relay;
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** Whether the first bytes of a connection can be the start of the HTTP/2 client preface. */
export function startsLikeH2(first: Buffer): boolean {
  const n = Math.min(first.length, PREFACE.length);
  return n > 0 && first.subarray(0, n).equals(PREFACE.subarray(0, n));
}

/**
 * Lets the cleartext HTTP/1.1 server also take h2c with prior knowledge: the
 * server's own connection listener is kept and called for connections that
 * do not open with the HTTP/2 preface (their first bytes are put back), the
 * others go to `h2`. A client that sends nothing within `firstByteTimeoutMs`
 * is disconnected, as the HTTP/1.1 header timeout would.
 */
export function sniffH2c(h1: http.Server, h2: http2.Http2Server, sessions: Http2Sessions, firstByteTimeoutMs: number): void {
  const listeners = h1.listeners('connection') as ((socket: Socket) => void)[];
  const http1 = listeners[0];
  if (http1 === undefined) throw new Error('the HTTP/1.1 server has no connection listener');
  h1.removeListener('connection', http1);
  h1.prependListener('connection', (socket: Socket) => {
    const timer = setTimeout(() => socket.destroy(), firstByteTimeoutMs);
    const onError = (): void => {
      clearTimeout(timer);
      socket.destroy();
    };
    socket.once('error', onError);
    socket.once('data', (first: Buffer) => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.pause();
      if (startsLikeH2(first)) {
        sessions.acceptCleartext(h2, socket, first);
        return;
      }
      socket.unshift(first);
      http1.call(h1, socket);
      socket.resume();
    });
  });
}

/**
 * Makes an HTTP/2 compatibility request look like an HTTP/1.1 one to the
 * request path: pseudo-headers leave `rawHeaders` (they are not fields and
 * must not be forwarded), `:authority` becomes Host when the client sent
 * none (RFC 9113 8.3.1), and the response gets the `destroyed` flag that
 * the proxy reads.
 */
export function adaptHttp2Request(req: http2.Http2ServerRequest, res: http2.Http2ServerResponse, sessions: Http2Sessions): void {
  const raw = req.rawHeaders;
  const plain: string[] = [];
  let authority: string | undefined;
  let host = false;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.charCodeAt(0) === 58) {
      if (name === ':authority') authority = raw[i + 1];
      continue;
    }
    if (name === 'host') host = true;
    plain.push(name, raw[i + 1] as string);
  }
  if (!host && authority !== undefined) {
    plain.push('host', authority);
    req.headers.host = authority;
  }
  Object.defineProperty(req, 'rawHeaders', { value: plain });
  const stream = res.stream;
  Object.defineProperty(res, 'destroyed', { get: () => stream.destroyed });
  // An h2c session runs over a relay that has no address of its own.
  const socket = req.socket;
  if (socket.remoteAddress === undefined) {
    const peer = sessions.peerOf(stream.session as http2.Http2Session);
    if (peer !== undefined) Object.defineProperty(req, 'socket', { value: new Proxy(socket, { get: (t, p) => (p === 'remoteAddress' ? peer : Reflect.get(t, p) as unknown) }) });
  }
}

/** Wraps a request listener so that HTTP/2 requests reach it looking as `adaptHttp2Request` says. */
export function withHttp2(sessions: Http2Sessions, handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): (req: http.IncomingMessage | http2.Http2ServerRequest, res: http.ServerResponse | http2.Http2ServerResponse) => void {
  return (req, res) => {
    if (isHttp2(req)) adaptHttp2Request(req, res as http2.Http2ServerResponse, sessions);
    // The compatibility API has the same surface as far as the request path reads it.
    handler(req as http.IncomingMessage, res as http.ServerResponse);
  };
}

/** Whether a request arrived over HTTP/2. */
export function isHttp2(req: http.IncomingMessage | http2.Http2ServerRequest): req is http2.Http2ServerRequest {
  return req.httpVersionMajor === 2;
}
