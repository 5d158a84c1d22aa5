/** The operator and data plane as real processes (the CLIs users run), for failover and restart tests. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** A child process with its JSON log lines. */
export interface Proc {
  child: ChildProcess;
  logs: string[];
  /** Resolves when a log line contains `text`. */
  waitForLog(text: string, timeoutMs?: number): Promise<string>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

const all = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of all) if (c.exitCode === null) c.kill('SIGKILL');
});

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

/** Starts `node <script> args` and collects its stdout lines. */
export function startProcess(script: string, args: string[], env: NodeJS.ProcessEnv = {}, wrap: string[] = []): Proc {
  const argv = [...wrap, process.execPath, path.join(ROOT, script), ...args];
  const child = spawn(argv[0] as string, argv.slice(1), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  all.add(child);
  const logs: string[] = [];
  const waiters: { text: string; resolve: (line: string) => void }[] = [];
  let buffer = '';
  const onData = (d: Buffer): void => {
    buffer += d.toString();
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    for (const line of lines) {
      logs.push(line);
      for (const w of [...waiters]) {
        if (line.includes(w.text)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    child,
    logs,
    waitForLog: (text, timeoutMs = 30_000) => {
      const found = logs.find((l) => l.includes(text));
      if (found) return Promise.resolve(found);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`no log line with ${JSON.stringify(text)} within ${timeoutMs} ms; last lines:\n${logs.slice(-15).join('\n')}`)), timeoutMs);
        waiters.push({ text, resolve: (l) => (clearTimeout(t), resolve(l)) });
      });
    },
    kill: async (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const code = await exited;
      all.delete(child);
      return code;
    },
  };
}

/** Writes a file in a fresh temporary directory and returns its path. */
export function tempFile(name: string, content: string): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'switchyard-')), name);
  writeFileSync(file, content);
  return file;
}
