/**
 * A real redis-server per test file, on a free loopback port, without
 * persistence. It can be killed and started again on the same port, and
 * paused (SIGSTOP) to play a Redis that accepts connections but never answers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';

/** A running redis-server started by a test. */
export interface TestRedis {
  port: number;
  url: string;
  /** Kills the server (SIGKILL: no goodbye to clients) and waits until it is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port and waits until it answers. */
  restart(): Promise<void>;
  /** SIGSTOP: connections stay open, nothing is answered. */
  pause(): void;
  resume(): void;
  /** Sends one inline command and returns the raw reply. */
  command(line: string): Promise<string>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

function send(port: number, line: string, timeoutMs = 1_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let out = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`redis on ${port}: no answer to ${line}`));
    }, timeoutMs);
    socket.on('connect', () => socket.write(`${line}\r\n`));
    socket.on('data', (d) => {
      out += d.toString();
      if (out.endsWith('\r\n')) {
        clearTimeout(timer);
        socket.end();
        resolve(out);
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Starts redis-server; fails with what to install when it is missing. */
export async function startRedis(): Promise<TestRedis> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const onExit = (): void => {
    child?.kill('SIGKILL');
  };
  process.on('exit', onExit);

  const launch = async (): Promise<void> => {
    const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    child = proc;
    const failed = new Promise<never>((_, reject) => {
      proc.once('error', (err) => reject(new Error(`cannot start redis-server (apt-get install redis-server): ${err.message}`)));
      proc.once('exit', (code) => reject(new Error(`redis-server exited with ${code} before answering`)));
    });
    const deadline = Date.now() + 10_000;
    const ready = (async (): Promise<void> => {
      for (;;) {
        try {
          if ((await send(port, 'PING', 200)).startsWith('+PONG')) return;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer PING`);
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await Promise.race([ready, failed]);
    failed.catch(() => undefined);
  };

  const kill = async (): Promise<void> => {
    const proc = child;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill('SIGCONT');
    proc.kill('SIGKILL');
    await gone;
  };

  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    restart: launch,
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    command: (line) => send(port, line),
    stop: async () => {
      await kill();
      process.off('exit', onExit);
    },
  };
}
