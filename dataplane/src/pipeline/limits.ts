/**
 * Limits on what a client may send, so hostile input costs little:
 *
 * - request line and headers over `max_header_size` bytes: 431, refused by
 *   Node's parser before any of our code runs (clientErrorHandler answers);
 * - more than `max_headers_count` header lines: 431 (Node would silently drop
 *   the extra lines; the server is told one more than the limit so we see it);
 * - a request target over `max_url_length`: 414;
 * - a Content-Length over `max_body_size`: 413 at once, before any byte of the
 *   body is read or anything is sent upstream;
 * - a chunked body is counted as it streams; when it passes the limit the
 *   client gets 413 and both connections are closed, so the upstream sees an
 *   unfinished request and never a complete, silently truncated one;
 * - slow clients: `client_header_timeout` for the headers and a bound on the
 *   whole request (server options in server/gateway.ts);
 * - malformed or ambiguous framing (Content-Length with Transfer-Encoding,
 *   two Content-Lengths, bad chunk sizes, bare LF, obs-fold, ...) is refused
 *   by Node's strict parser with 400 before routing; a request without Host
 *   too (requireHostHeader), and one with two Host lines here.
 */
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { GatewayConfig } from '../config/schema.ts';
import type { GatewayMetrics } from '../observability/metrics.ts';
import { GatewayError, errorBody, type ErrorCode } from '../proxy/errors.ts';
import { respondWithError } from '../server/respond.ts';
import type { RequestContext, Stage } from './context.ts';

const UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** Parses a byte size: a number of bytes, or "512KiB", "10MiB", "1MB", "2G". Undefined when it is not one. */
export function parseSize(value: number | string): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(value);
  if (!m) return undefined;
  const unit = UNITS[(m[2] as string).toLowerCase() || 'b'];
  return unit === undefined ? undefined : Math.floor(Number(m[1]) * unit);
}

/** The limits the request stage enforces. */
export interface RequestLimits {
  /** Undefined: no body limit (`max_body_size: 0`). */
  maxBodyBytes: number | undefined;
  maxUrlLength: number;
  maxHeadersCount: number;
}

/** Reads `server.limits`; a size that cannot be parsed is reported with its field name. */
export function requestLimits(server: GatewayConfig['server']): RequestLimits | string {
  const size = parseSize(server.limits.max_body_size);
  if (size === undefined) return 'server.limits.max_body_size: expected a size such as 10MiB, 512KiB or a number of bytes';
  return { maxBodyBytes: size === 0 ? undefined : size, maxUrlLength: server.limits.max_url_length, maxHeadersCount: server.limits.max_headers_count };
}

type PushFn = (chunk: unknown, encoding?: BufferEncoding) => boolean;

/**
 * Bytes a chunked body may take on the wire besides its data: chunk sizes,
 * line ends and chunk extensions, at most this much plus FRAMING_PER_DATA_BYTE
 * per byte of data. Node caps one chunk's extensions at 16 KiB
 * (CVE-2024-22019) but not their sum, so without this a body of one-byte
 * chunks could carry 16 KiB of extensions for every byte the body limit
 * counts. Honest framing is a few bytes per chunk; the allowance also covers
 * one socket read of up to 64 KiB that is counted before its data is.
 */
const FRAMING_ALLOWANCE = 128 * 1024;
const FRAMING_PER_DATA_BYTE = 8;

/**
 * Counts a streamed body at the source: the parser hands each chunk to
 * `req.push`, whoever reads the request and however. Past the limit (of data,
 * or of framing on the wire, see FRAMING_ALLOWANCE) the client is answered
 * 413, nothing more is passed on (not even the end of the body), and the
 * request is destroyed once the answer is out, which aborts the upstream
 * request.
 */
function capStreamedBody(ctx: RequestContext, max: number): GatewayError | undefined {
  const req = ctx.req as IncomingMessage & { push: PushFn };
  let seen = req.readableLength;
  const tooLarge = (): GatewayError => new GatewayError('payload_too_large', `the request body is larger than ${max} bytes`, { connection: 'close' });
  if (seen > max) return tooLarge();
  const socket = req.socket;
  const h2 = req.httpVersionMajor === 2;
  const wireStart = h2 ? 0 : socket.bytesRead;
  const dataStart = seen;
  const push = req.push;
  let tripped = false;
  const trip = (err: GatewayError): false => {
    tripped = true;
    if (ctx.res.headersSent) ctx.res.destroy();
    else {
      respondWithError(ctx, err);
      ctx.res.once('finish', () => req.destroy());
    }
    return false;
  };
  req.push = function (this: IncomingMessage, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (tripped) return false;
    if (chunk !== null && chunk !== undefined) {
      seen += (chunk as Buffer).length;
      if (seen > max) return trip(tooLarge());
      const data = seen - dataStart;
      const framing = socket.bytesRead - wireStart - data;
      // HTTP/2 frames carry no chunk extensions; the session's bytes are other streams' too.
      if (!h2 && framing > FRAMING_ALLOWANCE + FRAMING_PER_DATA_BYTE * data) {
        return trip(new GatewayError('payload_too_large', `the chunked request body carries ${framing} bytes of chunk framing and extensions for ${data} bytes of data`, { connection: 'close' }));
      }
    }
    return push.call(this, chunk, encoding);
  };
  return undefined;
}

/**
 * Checks of the request head that do not depend on the route: URL length, header
 * count, a single Host. They run before matching, so that an overlong or
 * ambiguous request is refused as such and never routed on a guess.
 */
export function requestHeadCheck(limits: RequestLimits): (req: IncomingMessage) => GatewayError | undefined {
  const { maxUrlLength, maxHeadersCount } = limits;
  return (req) => {
    if ((req.url ?? '').length > maxUrlLength) return new GatewayError('uri_too_long', `the request target is longer than ${maxUrlLength} characters`);
    const rawHeaders = req.rawHeaders;
    if (rawHeaders.length / 2 > maxHeadersCount) {
      return new GatewayError('request_header_fields_too_large', `the request has more than ${maxHeadersCount} header fields`, { connection: 'close' });
    }
    // RFC 9112 3.2: more than one Host is a 400. Node keeps the first for routing but both raw lines would be forwarded.
    let hosts = 0;
    for (let i = 0; i < rawHeaders.length; i += 2) if ((rawHeaders[i] as string).length === 4 && (rawHeaders[i] as string).toLowerCase() === 'host') hosts++;
    if (hosts > 1) return new GatewayError('bad_request', 'the request has more than one Host header', { connection: 'close' });
    return undefined;
  };
}

/** The first stage of every route: the body size limit. */
export function requestLimitsStage(limits: RequestLimits): Stage {
  const { maxBodyBytes } = limits;
  return (ctx) => {
    const req = ctx.req;
    if (maxBodyBytes === undefined) return undefined;
    const length = req.headers['content-length'];
    if (length !== undefined) {
      // Node's parser has already refused a non-numeric or conflicting Content-Length.
      return Number(length) > maxBodyBytes ? new GatewayError('payload_too_large', `the request body is larger than ${maxBodyBytes} bytes`, { connection: 'close' }) : undefined;
    }
    // HTTP/2 bodies without Content-Length stream in DATA frames, as chunked ones do in HTTP/1.1.
    if (req.headers['transfer-encoding'] !== undefined || req.httpVersionMajor === 2) return capStreamedBody(ctx, maxBodyBytes);
    return undefined;
  };
}

function classifyClientError(err: Error & { code?: string }): [number, ErrorCode, string] {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'request_header_fields_too_large', 'the request line and headers are too large'];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'ERR_HTTP_HEADERS_TIMEOUT':
      return [408, 'request_timeout', 'the request was not received in time'];
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return [413, 'payload_too_large', 'chunk extensions are too large'];
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
      return [400, 'bad_request', 'malformed HTTP request: Content-Length together with Transfer-Encoding'];
    default:
      return [400, 'bad_request', `malformed HTTP request${err.code?.startsWith('HPE_') ? ` (${err.code})` : ''}`];
  }
}

/**
 * The traffic listeners' 'clientError' handler: requests Node's parser refused
 * get the same JSON error shape as everything else, then the connection closes.
 */
export function clientErrorHandler(metrics: GatewayMetrics): (err: Error & { code?: string }, socket: Duplex) => void {
  return (err, socket) => {
    const pending = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || pending?.headersSent) {
      socket.destroy();
      return;
    }
    const [status, code, message] = classifyClientError(err);
    metrics.rejectedRequests.inc({ code });
    const body = errorBody(code, message, undefined);
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`,
    );
  };
}
