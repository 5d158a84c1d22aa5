/**
 * Request mirroring (the Gateway API's RequestMirror): a copy of the request
 * goes to another upstream and its answer is thrown away. A mirror must never
 * slow or fail the request it copies: its copy of the body is dropped when it
 * falls too far behind, and its errors are ignored.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { RequestContext } from '../pipeline/context.ts';
import type { UpstreamRuntime } from '../upstream/upstream.ts';

/** What the upstream receives: the path with its query, and the header list. */
export interface UpstreamRequest {
  path: string;
  headers: string[];
}

/** How far a mirror's copy of a body may fall behind the primary before the copy is dropped. */
const MIRROR_BUFFER_BYTES = 1024 * 1024;
/** A mirror gets this long to answer; nobody waits for it. */
const MIRROR_TIMEOUT_MS = 10_000;

/**
 * The request body split into the stream the primary request sends and one
 * copy per mirror. Backpressure follows the primary alone.
 */
export function teeBody(req: Readable, copies: number): { primary: PassThrough; copies: PassThrough[] } {
  const primary = new PassThrough();
  const list = Array.from({ length: copies }, () => new PassThrough());
  req.on('data', (chunk: Buffer) => {
    for (const c of list) {
      if (c.destroyed) continue;
      if (c.writableLength > MIRROR_BUFFER_BYTES) c.destroy();
      else c.write(chunk);
    }
    if (!primary.write(chunk)) req.pause();
  });
  primary.on('drain', () => req.resume());
  req.once('end', () => {
    primary.end();
    for (const c of list) if (!c.destroyed) c.end();
  });
  req.once('close', () => {
    // A body cut short must not look complete to the upstream.
    if ((req as { complete?: boolean }).complete === false) {
      primary.destroy(new Error('client disconnected'));
      for (const c of list) c.destroy();
    }
  });
  return { primary, copies: list };
}

/** Reads and drops a mirror's answer. */
class DiscardAnswer implements Dispatcher.DispatchHandler {
  private readonly done: () => void;
  constructor(done: () => void) {
    this.done = done;
  }
  onRequestStart(): void {}
  onResponseStart(_controller: Dispatcher.DispatchController, _status: number, _headers: IncomingHttpHeaders): void {}
  onResponseData(): void {}
  onResponseEnd(): void {
    this.done();
  }
  onResponseError(): void {
    this.done();
  }
}

/** Sends a copy of the request to one endpoint of `upstream` and forgets it. */
export function mirrorRequest(ctx: RequestContext, upstream: UpstreamRuntime, request: UpstreamRequest, body: Readable | undefined): void {
  const endpoint = upstream.pick(undefined);
  if (!endpoint) {
    body?.destroy();
    return;
  }
  endpoint.inFlight++;
  let finished = false;
  const done = (): void => {
    if (finished) return;
    finished = true;
    endpoint.inFlight--;
  };
  const timeout = upstream.def.timeoutMs ?? MIRROR_TIMEOUT_MS;
  try {
    endpoint.pool.dispatch(
      { path: request.path, method: ctx.method as Dispatcher.HttpMethod, headers: request.headers, body: body ?? null, headersTimeout: timeout, bodyTimeout: timeout, idempotent: false },
      new DiscardAnswer(done),
    );
  } catch {
    done();
    body?.destroy();
  }
}
