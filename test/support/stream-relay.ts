/**
 * An HTTP relay on 127.0.0.1 between data planes and an operator's config
 * server, for tests of what the stream protocol does when messages go
 * missing, come out of order or come twice. Everything is forwarded as it
 * is, except that each NDJSON line of a table watch passes through `filter`,
 * which says what to send in its place (nothing, the line, other lines).
 * The operator and the data planes on either side are the real ones.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** What a filter sees of one line: its text and its `type`. */
export interface RelayedLine {
  text: string;
  type: string;
}

/** A relay that can be retargeted and whose streams can be cut. */
export interface StreamRelay {
  url: string;
  /** The operator to relay to (changeable: a restarted operator listens elsewhere). */
  target: string;
  /** Decides what each watch line becomes; the default sends it unchanged. */
  filter: (line: RelayedLine) => string[];
  /** Every watch line that came from the operator, in order. */
  readonly seen: RelayedLine[];
  /** Ends every open watch stream (the data planes reconnect). */
  cutStreams(): void;
  close(): Promise<void>;
}

/** Starts a relay to the operator at `target` (its base URL). */
export async function startStreamRelay(target: string): Promise<StreamRelay> {
  const open = new Set<http.ServerResponse>();
  const relay: StreamRelay = {
    url: '',
    target,
    filter: (line) => [line.text],
    seen: [],
    cutStreams: () => {
      for (const res of open) res.destroy();
      open.clear();
    },
    close: async () => {
      relay.cutStreams();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server = http.createServer((req, res) => {
    const upstream = new URL(req.url ?? '/', relay.target);
    const out = http.request(upstream, { method: req.method, headers: { ...req.headers, host: upstream.host } }, (answer) => {
      const watch = req.url?.startsWith('/v1/tables/watch') === true && answer.statusCode === 200;
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      if (!watch) {
        answer.pipe(res);
        return;
      }
      open.add(res);
      let buffer = '';
      answer.on('data', (chunk: Buffer) => {
        buffer += chunk.toString('utf8');
        let nl = buffer.indexOf('\n');
        while (nl >= 0) {
          const text = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          const line = { text, type: String((JSON.parse(text) as { type?: unknown }).type) };
          relay.seen.push(line);
          for (const l of relay.filter(line)) if (!res.destroyed) res.write(`${l}\n`);
          nl = buffer.indexOf('\n');
        }
      });
      answer.on('end', () => res.end());
      res.on('close', () => {
        open.delete(res);
        answer.destroy();
      });
    });
    out.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(out);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  relay.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return relay;
}
