/** Real HTTP servers on 127.0.0.1 standing in for upstream services. */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** What an upstream saw of one request. */
export interface SeenRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

/** A test upstream: records requests, answers with `handler` or an echo. */
export interface TestUpstream {
  url: string;
  port: number;
  seen: SeenRequest[];
  server: http.Server;
  /** Sockets currently open to this upstream. */
  sockets: Set<Socket>;
  close(): Promise<void>;
}

export type UpstreamHandler = (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void;

/** Echoes method, url, headers and body length as JSON, with `x-upstream` naming the server. */
export const echo =
  (name: string): UpstreamHandler =>
  (req, res, body) => {
    const text = JSON.stringify({ name, method: req.method, url: req.url, headers: req.headers, bodyLength: body.length });
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': name });
    res.end(text);
  };

/** Starts an upstream that buffers each request body (fine for tests) then calls `handler`. */
export async function startUpstream(handler: UpstreamHandler = echo('upstream'), options: { raw?: boolean; port?: number } = {}): Promise<TestUpstream> {
  const seen: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  const server = http.createServer((req, res) => {
    if (options.raw) {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.alloc(0) });
      handler(req, res, Buffer.alloc(0));
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body });
      handler(req, res, body);
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(options.port ?? 0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    seen,
    server,
    sockets,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A port with nothing listening on it (connection refused). */
export { freePort as closedPort } from './processes.ts';
