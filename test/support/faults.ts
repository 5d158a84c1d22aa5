/**
 * Upstreams that misbehave on command, for the fault suite: real HTTP servers on
 * 127.0.0.1 (and a real child process that can be killed), never mocks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { request, type Agent } from 'undici';
import { startUpstream, type TestUpstream } from './upstreams.ts';

/** How a faulty upstream answers: normally, 5xx, by resetting the connection, never, slowly, or held until released. */
export type Mode = 'ok' | 'error' | 'reset' | 'hang' | 'slow' | 'hold';

/** A test upstream whose behaviour the test switches at will. */
export interface FaultyUpstream extends TestUpstream {
  name: string;
  /** How traffic (every path but the health path) is answered. */
  mode: Mode;
  /** How `/health` is answered; follows `mode` when undefined. */
  healthMode: Mode | undefined;
  /** Status for `error` mode. */
  errorStatus: number;
  slowMs: number;
  /** Traffic requests received (health probes not included). */
  hits: number;
  healthHits: number;
  /** Answers the requests held in `hold` mode. */
  release(): void;
  /** Held or hanging responses, with whether their client went away. */
  held: { res: ServerResponse; closed: boolean }[];
  /** Stops listening (connections are cut) and starts again on the same port. */
  restart(): Promise<void>;
}

/** Starts a faulty upstream on 127.0.0.1 (on `port` when given). */
export async function startFaultyUpstream(name: string, options: { port?: number; mode?: Mode } = {}): Promise<FaultyUpstream> {
  let up: TestUpstream;
  const state = {
    name,
    mode: options.mode ?? 'ok',
    healthMode: undefined as Mode | undefined,
    errorStatus: 503,
    slowMs: 150,
    hits: 0,
    healthHits: 0,
    held: [] as { res: ServerResponse; closed: boolean }[],
  };
  const ok = (res: ServerResponse): void => {
    if (res.destroyed) return;
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': name });
    res.end(JSON.stringify({ name }));
  };
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const health = req.url === '/health';
    if (health) state.healthHits++;
    else state.hits++;
    const mode = health ? (state.healthMode ?? state.mode) : state.mode;
    switch (mode) {
      case 'ok':
        return ok(res);
      case 'error':
        res.writeHead(state.errorStatus, { 'content-type': 'application/json', 'x-upstream': name });
        res.end(JSON.stringify({ upstreamError: name }));
        return;
      case 'reset':
        req.socket.destroy();
        return;
      case 'slow':
        setTimeout(() => ok(res), state.slowMs);
        return;
      case 'hang':
      case 'hold': {
        const entry = { res, closed: false };
        res.on('close', () => (entry.closed = !res.writableFinished));
        state.held.push(entry);
        return;
      }
    }
  };
  up = await startUpstream(handler, { raw: true, port: options.port });
  const faulty = Object.assign(state, {
    get url() {
      return up.url;
    },
    get port() {
      return up.port;
    },
    get seen() {
      return up.seen;
    },
    get server() {
      return up.server;
    },
    get sockets() {
      return up.sockets;
    },
    close: () => up.close(),
    release: () => {
      for (const h of state.held.splice(0)) ok(h.res);
    },
    restart: async () => {
      const port = up.port;
      await up.close();
      up = await startUpstream(handler, { raw: true, port });
    },
  });
  return faulty as unknown as FaultyUpstream;
}

/** An upstream in its own process: answers `/health` and `/x`, and on `/stream` sends one chunk and waits (to be killed). */
export interface ChildUpstream {
  url: string;
  port: number;
  child: ChildProcess;
  kill(): Promise<void>;
}

const CHILD_SCRIPT = `
const http = require('node:http');
const port = Number(process.argv[1]);
http.createServer((req, res) => {
  if (req.url === '/stream') { res.writeHead(200, { 'content-type': 'text/plain', 'x-upstream': 'child' }); res.write('first chunk\\n'); return; }
  res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'child' });
  res.end(JSON.stringify({ name: 'child' }));
}).listen(port, '127.0.0.1', () => process.stdout.write('listening\\n'));
`;

/** Starts the child-process upstream on `port` and waits until it listens. */
export async function startChildUpstream(port: number): Promise<ChildUpstream> {
  const child = spawn(process.execPath, ['-e', CHILD_SCRIPT, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`child upstream exited with ${code}`)));
    child.stdout?.on('data', (d: Buffer) => d.toString().includes('listening') && resolve());
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    child,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** Polls `check` until it holds; fails (naming `what`) only if it never does, so the test asserts "did not hang", not speed. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One request through `agent`; status, the JSON body (or text) and the headers. */
export async function hit(agent: Agent, url: string, init: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; body: Record<string, unknown>; text: string; headers: Record<string, string | string[] | undefined> }> {
  const res = await request(url, { dispatcher: agent, method: (init.method ?? 'GET') as 'GET', headers: init.headers, body: init.body });
  const text = await res.body.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = {};
  }
  return { status: res.statusCode, body, text, headers: res.headers };
}

/** Open TCP sockets of this process (client and server side). */
export function openSockets(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
}
