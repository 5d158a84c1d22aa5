/**
 * Writing the gateway's own answers. The error classes and their JSON shape
 * live in proxy/errors.ts, which imports nothing; putting them on the wire is
 * the server's job, wherever on the request path the error arose.
 */
import type { ServerResponse } from 'node:http';
import type { RequestContext } from '../pipeline/context.ts';
import { errorBody, type GatewayError } from '../proxy/errors.ts';
import { encodeGrpcMessage, grpcStatusFor, isGrpcContentType } from '../proxy/grpc.ts';

/** Writes a GatewayError as the response, unless headers already went out; returns the body bytes sent. */
function sendError(res: ServerResponse, err: GatewayError, requestId: string | undefined): number {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return 0;
  }
  if (isGrpcContentType(res.req.headers['content-type'])) return sendGrpcError(res, err, requestId);
  const body = errorBody(err.code, err.message, requestId);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...err.headers,
  };
  if (requestId) headers['x-request-id'] = requestId;
  // HTTP/2 has no connection-specific headers (RFC 9113 8.2.2); closing is the session's business there.
  if (res.req.httpVersionMajor === 2) delete headers.connection;
  res.writeHead(err.status, headers);
  if (res.req.method === 'HEAD') {
    res.end();
    return 0;
  }
  res.end(body);
  return Buffer.byteLength(body);
}

/**
 * A gRPC client reads the outcome from `grpc-status`: the answer is a
 * Trailers-Only response (HTTP 200, one HEADERS frame that ends the stream)
 * with the status for the error's code and its message.
 */
function sendGrpcError(res: ServerResponse, err: GatewayError, requestId: string | undefined): number {
  res.statusCode = 200;
  res.setHeader('content-type', 'application/grpc');
  res.setHeader('grpc-status', String(grpcStatusFor(err.code)));
  res.setHeader('grpc-message', encodeGrpcMessage(err.message));
  if (err.headers) for (const [k, v] of Object.entries(err.headers)) if (k !== 'connection') res.setHeader(k, v);
  if (requestId) res.setHeader('x-request-id', requestId);
  // No writeHead: ending without one sends the headers with END_STREAM, which is what makes it Trailers-Only.
  res.end();
  return 0;
}

/** Answers a request with an error, with the headers stages added (CORS, rate limits), and records it. */
export function respondWithError(ctx: RequestContext, err: GatewayError): void {
  ctx.errorCode = err.code;
  const extra = ctx.responseHeaders;
  if (extra && !ctx.res.headersSent) for (const k of Object.keys(extra)) ctx.res.setHeader(k, extra[k] as string);
  ctx.bytesOut = sendError(ctx.res, err, ctx.requestId);
}

/** Answers with a redirect to `location`, with the headers stages added. */
export function respondRedirect(ctx: RequestContext, status: number, location: string): void {
  const res = ctx.res;
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const extra = ctx.responseHeaders;
  if (extra) for (const k of Object.keys(extra)) res.setHeader(k, extra[k] as string);
  res.writeHead(status, { location, 'content-length': 0, 'x-request-id': ctx.requestId });
  res.end();
  ctx.bytesOut = 0;
}
