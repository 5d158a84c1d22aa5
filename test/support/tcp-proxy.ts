/**
 * A TCP relay on 127.0.0.1 in front of one address (the API server, for one
 * operator replica), that a test can cut like a network partition: bytes stop
 * flowing both ways on open connections, new connections are accepted and then
 * hang, and nothing is reset, so the client learns only from its own timeouts.
 * TLS passes through untouched (the API server's certificate names 127.0.0.1).
 */
import net from 'node:net';

/** A relay that can be cut and healed. */
export interface TcpProxy {
  /** host:port to give clients instead of the target's. */
  readonly address: string;
  /** Stops every byte: open connections stall, new ones hang. */
  cut(): void;
  /** Lets new connections through again; those open during the cut stay stalled. */
  healNew(): void;
  /** Lets everything through again, stalled connections included. */
  heal(): void;
  close(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  server: net.Socket | undefined;
  /** Bytes held back while stalled, per direction. */
  held: { up: Buffer[]; down: Buffer[] };
  stalled: boolean;
}

/** Starts a relay to `target` (host:port). */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<Pair>();
  let mode: 'open' | 'cut' | 'new-only' = 'open';

  const flush = (pair: Pair): void => {
    if (!pair.server) return;
    for (const b of pair.held.up.splice(0)) pair.server.write(b);
    for (const b of pair.held.down.splice(0)) pair.client.write(b);
  };
  const connect = (pair: Pair): void => {
    const server = net.connect(target.port, target.host);
    pair.server = server;
    server.on('data', (b: Buffer) => (pair.stalled ? pair.held.down.push(b) : pair.client.write(b)));
    server.on('error', () => pair.client.destroy());
    server.on('close', () => pair.client.destroy());
    flush(pair);
  };

  const server = net.createServer((client) => {
    const pair: Pair = { client, server: undefined, held: { up: [], down: [] }, stalled: mode === 'cut' };
    pairs.add(pair);
    client.on('data', (b: Buffer) => (pair.stalled || !pair.server ? pair.held.up.push(b) : pair.server.write(b)));
    client.on('error', () => pair.server?.destroy());
    client.on('close', () => {
      pair.server?.destroy();
      pairs.delete(pair);
    });
    // A connection opened during a cut reaches the target only when the cut heals.
    if (!pair.stalled) connect(pair);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;

  const release = (pair: Pair): void => {
    pair.stalled = false;
    if (!pair.server) connect(pair);
    else flush(pair);
  };

  return {
    address: `127.0.0.1:${port}`,
    cut: () => {
      mode = 'cut';
      for (const p of pairs) p.stalled = true;
    },
    healNew: () => {
      mode = 'new-only';
    },
    heal: () => {
      mode = 'open';
      for (const p of pairs) if (p.stalled) release(p);
    },
    close: async () => {
      for (const p of pairs) {
        p.client.destroy();
        p.server?.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
