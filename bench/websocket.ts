/**
 * WebSocket messages per second through the gateway and straight to the
 * upstream (`ws` echoing, bench/peers/ws-echo.ts), same clients, same
 * upstream, one run. Each connection sends a message and waits for its echo
 * before the next (ping-pong), so the number is round trips per second, and
 * the latency is one round trip. Bounded: a fixed number of connections, each
 * round a fixed time, and every connection closed at its end.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { cpuPlan, freePort, launch, ROOT, sleep, waitForPort, type Child } from './lib/processes.ts';
import { int, median, ms, percentile, ratio, round } from './lib/stats.ts';

/** One subject's numbers, medians over the rounds. */
export interface WebSocketSubject {
  id: 'direct' | 'switchyard';
  messagesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  /** Connections that closed before their round ended (none should). */
  closedEarly: number;
}

/** The section's result. */
export interface WebSocketResult {
  connections: number;
  messageBytes: number;
  durationS: number;
  rounds: number;
  pinned: boolean;
  subjects: WebSocketSubject[];
  /** switchyard ÷ direct, messages per second. */
  ratio: number;
}

/** Options of the section. */
export interface WebSocketOptions {
  quick: boolean;
  log: (line: string) => void;
}

/** Opens `count` connections to `url`, then has each ping-pong until `durationMs` is over. */
async function round_(url: string, count: number, bytes: number, durationMs: number): Promise<{ messages: number; rtts: number[]; lost: number }> {
  const sockets = await Promise.all(
    Array.from({ length: count }, () => new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false });
      ws.once('open', () => resolve(ws));
      ws.once('error', reject);
    })),
  );
  const payload = Buffer.alloc(bytes, 0x61);
  const rtts: number[] = [];
  let messages = 0;
  let lost = 0;
  const end = performance.now() + durationMs;
  await Promise.all(
    sockets.map(
      (ws) =>
        new Promise<void>((resolve) => {
          let sentAt = 0;
          const send = (): void => {
            if (performance.now() >= end) {
              resolve();
              return;
            }
            sentAt = performance.now();
            ws.send(payload);
          };
          ws.on('message', () => {
            messages++;
            // Every 16th round trip is kept for the percentiles: enough samples, little memory.
            if (messages % 16 === 0) rtts.push(performance.now() - sentAt);
            send();
          });
          ws.once('close', () => {
            lost++;
            resolve();
          });
          send();
        }),
    ),
  );
  for (const ws of sockets) {
    ws.removeAllListeners('close');
    ws.terminate();
  }
  return { messages, rtts, lost };
}

/** Runs the section: the upstream and the gateway as processes, the clients in this one. */
export async function runWebSocket(options: WebSocketOptions): Promise<WebSocketResult> {
  const { quick, log } = options;
  const connections = quick ? 8 : 32;
  const messageBytes = 64;
  const durationS = quick ? 2 : 5;
  const rounds = quick ? 1 : 3;
  const plan = cpuPlan();
  const children: Child[] = [];
  try {
    const upstreamPort = await freePort();
    const upstream = launch('ws-echo', process.execPath, [path.join(ROOT, 'bench/peers/ws-echo.ts'), String(upstreamPort)], { cpu: plan.load });
    children.push(upstream);
    await waitForPort(upstreamPort, upstream);

    const gatewayPort = await freePort();
    const dir = mkdtempSync(path.join(tmpdir(), 'switchyard-bench-ws-'));
    const config = path.join(dir, 'gateway.yaml');
    writeFileSync(
      config,
      [
        'server:',
        `  http_port: ${gatewayPort}`,
        `  admin_port: ${await freePort()}`,
        `  metrics_port: ${await freePort()}`,
        '  bind_address: 127.0.0.1',
        'observability:',
        '  logging: { level: warn }',
        'routes:',
        '  - { path: /ws, upstream: echo }',
        'upstreams:',
        `  echo: { discovery: { type: Static, endpoints: ["http://127.0.0.1:${upstreamPort}"] } }`,
        '',
      ].join('\n'),
    );
    const gateway = launch('switchyard', process.execPath, [path.join(ROOT, 'dataplane/bin/switchyard-dataplane.ts'), '--config', config, '--no-watch'], { cpu: plan.subject, stdout: 'ignore' });
    children.push(gateway);
    await waitForPort(gatewayPort, gateway);

    const targets = { direct: `ws://127.0.0.1:${upstreamPort}/ws`, switchyard: `ws://127.0.0.1:${gatewayPort}/ws` } as const;
    const samples: Record<'direct' | 'switchyard', { rate: number[]; rtts: number[]; lost: number }> = { direct: { rate: [], rtts: [], lost: 0 }, switchyard: { rate: [], rtts: [], lost: 0 } };
    // A short warm-up through each, so the first round does not pay for JIT and connection set-up.
    for (const id of ['direct', 'switchyard'] as const) await round_(targets[id], connections, messageBytes, 500);
    for (let r = 0; r < rounds; r++) {
      // Alternating which goes first spreads any drift of the machine over both.
      const order = r % 2 === 0 ? (['direct', 'switchyard'] as const) : (['switchyard', 'direct'] as const);
      for (const id of order) {
        const out = await round_(targets[id], connections, messageBytes, durationS * 1000);
        samples[id].rate.push(out.messages / durationS);
        samples[id].rtts.push(...out.rtts);
        samples[id].lost += out.lost;
        log(`websocket: ${id} round ${r + 1}/${rounds}: ${int(out.messages / durationS)} messages/s`);
        await sleep(200);
      }
    }
    const subjects: WebSocketSubject[] = (['direct', 'switchyard'] as const).map((id) => ({
      id,
      messagesPerSecond: round(median(samples[id].rate), 0),
      p50Ms: round(percentile(samples[id].rtts, 50), 3),
      p99Ms: round(percentile(samples[id].rtts, 99), 3),
      closedEarly: samples[id].lost,
    }));
    const [direct, gw] = subjects as [WebSocketSubject, WebSocketSubject];
    return { connections, messageBytes, durationS, rounds, pinned: plan.pinned, subjects, ratio: round(gw.messagesPerSecond / direct.messagesPerSecond, 3) };
  } finally {
    for (const c of children.reverse()) await c.stop();
  }
}

/** The section in the report. */
export function webSocketTable(r: WebSocketResult): string[] {
  const out: string[] = [];
  out.push(
    `${r.connections} connections, each sending a ${r.messageBytes}-byte binary message and waiting for its echo before the next; ${r.rounds} × ${r.durationS} s, medians over the rounds; upstream \`ws\` echo (bench/peers/ws-echo.ts)${r.pinned ? ', the gateway pinned to its own CPU' : ''}.`,
    '',
  );
  out.push('| subject | messages/s | p50 ms | p99 ms | closed early | ÷ direct |', '| --- | --- | --- | --- | --- | --- |');
  const direct = r.subjects.find((s) => s.id === 'direct');
  for (const s of r.subjects) out.push(`| ${s.id} | ${int(s.messagesPerSecond)} | ${ms(s.p50Ms)} | ${ms(s.p99Ms)} | ${s.closedEarly} | ${direct ? ratio(s.messagesPerSecond / direct.messagesPerSecond) : ''} |`);
  out.push('');
  return out;
}
