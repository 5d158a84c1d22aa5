/** Raw HTTP/1.1 over a TCP socket, for requests that a client library would refuse to send or would repair. */
import net from 'node:net';

/** Sends raw bytes; resolves with everything the server wrote until it closed the connection (or `waitMs` passed). */
export function rawRequest(port: number, text: string | Buffer, waitMs = 3_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(text));
    let out = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(out);
    }, waitMs);
    socket.on('data', (d) => (out += d.toString('latin1')));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') resolve(out);
      else reject(err);
    });
  });
}

/** The status code of the first response in a raw answer, or 0 when there is none. */
export const statusOf = (response: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(response)?.[1] ?? 0);

/** The `error.code` of the gateway's JSON error body in a raw answer. */
export const codeOf = (response: string): string | undefined => /"code":"([a-z_]+)"/.exec(response)?.[1];
