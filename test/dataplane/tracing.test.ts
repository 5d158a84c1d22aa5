/**
 * Tracing against a real OTLP/HTTP receiver: an HTTP server in the test that
 * parses the exporter's OTLP JSON. Checks the spans' parent/child links and
 * attributes, the traceparent each upstream attempt carried, sampling, and that
 * a gateway without tracing leaves trace headers alone.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from 'undici';
import { stringify } from 'yaml';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { hit, waitFor } from '../support/faults.ts';
import { freePort, startProcess, tempFile } from '../support/processes.ts';
import { startUpstream, type TestUpstream } from '../support/upstreams.ts';

interface OtlpValue {
  stringValue?: string;
  intValue?: number | string;
  boolValue?: boolean;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: OtlpValue }[];
  status?: { code?: number };
}
interface ReceivedSpan extends Omit<OtlpSpan, 'attributes'> {
  attributes: Record<string, string | number | boolean | undefined>;
  service: string | undefined;
}

const SERVER = 2;
const CLIENT = 3;
const STATUS_ERROR = 2;

function flatten(attrs: { key: string; value: OtlpValue }[] = []): Record<string, string | number | boolean | undefined> {
  const out: Record<string, string | number | boolean | undefined> = {};
  for (const a of attrs) out[a.key] = a.value.stringValue ?? (a.value.intValue !== undefined ? Number(a.value.intValue) : a.value.boolValue);
  return out;
}

/** A minimal OTLP/HTTP trace receiver on 127.0.0.1 that keeps what it was sent. */
async function startReceiver(): Promise<{ url: string; spans: ReceivedSpan[]; contentTypes: Set<string>; close(): Promise<void> }> {
  const spans: ReceivedSpan[] = [];
  const contentTypes = new Set<string>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      contentTypes.add(req.headers['content-type'] ?? '');
      const body = JSON.parse(Buffer.concat(chunks).toString()) as {
        resourceSpans: { resource?: { attributes?: { key: string; value: OtlpValue }[] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
      };
      for (const rs of body.resourceSpans) {
        const service = flatten(rs.resource?.attributes)['service.name'] as string | undefined;
        for (const ss of rs.scopeSpans) for (const s of ss.spans) spans.push({ ...s, attributes: flatten(s.attributes), service });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    contentTypes,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CLIENT_SPAN = '00f067aa0ba902b7';
const traceparent = (flags: '01' | '00'): string => `00-${TRACE_ID}-${CLIENT_SPAN}-${flags}`;
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$/;

let receiver: Awaited<ReturnType<typeof startReceiver>>;
let agent: Agent;
let flaky: TestUpstream;
let failNext = 0;
const gateways: TestGateway[] = [];

beforeAll(async () => {
  receiver = await startReceiver();
  agent = new Agent();
  // Fails the next `failNext` requests with 503, then answers 200: one retry, two attempts, on one endpoint.
  flaky = await startUpstream((req, res) => {
    const status = failNext > 0 ? (failNext--, 503) : 200;
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ traceparent: req.headers.traceparent ?? null }));
  });
});
afterEach(async () => {
  for (const gw of gateways.splice(0)) await gw.stop();
  receiver.spans.length = 0;
  flaky.seen.length = 0;
});
afterAll(async () => {
  await agent.close();
  await flaky.close();
  await receiver.close();
});

async function tracedGateway(tracing: Record<string, unknown>): Promise<TestGateway> {
  const gw = await startGateway({
    routes: [{ path: '/traced/{id}', upstream: 'flaky', retries: { attempts: 1, on: ['503'], backoff: '1ms' } }],
    upstreams: { flaky: { discovery: { type: 'Static', endpoints: [flaky.url] } } },
    observability: { tracing },
  });
  gateways.push(gw);
  return gw;
}

describe('tracing', () => {
  it('exports a server span per request and a client span per attempt, linked to the client trace, and sends each attempt its traceparent', async () => {
    const gw = await tracedGateway({ enabled: true, backend: { type: 'OTLP', endpoint: receiver.url }, sampling_rate: 1, service_name: 'edge-gw' });
    failNext = 1;
    const res = await hit(agent, `${gw.url}/traced/42?secret=1`, { headers: { traceparent: traceparent('01'), tracestate: 'vendor=abc' } });
    expect(res.status).toBe(200);
    await gw.gw.tracing?.flush();
    await waitFor('three spans reach the receiver', () => receiver.spans.length >= 3);
    expect([...receiver.contentTypes]).toEqual(['application/json']);

    const server = receiver.spans.find((s) => s.kind === SERVER);
    const clients = receiver.spans.filter((s) => s.kind === CLIENT);
    expect(server).toBeDefined();
    expect(clients).toHaveLength(2);
    expect(server).toMatchObject({ traceId: TRACE_ID, parentSpanId: CLIENT_SPAN, name: 'GET /traced/{id}', service: 'edge-gw' });
    expect(server?.attributes).toMatchObject({
      'http.request.method': 'GET',
      'http.route': '/traced/{id}',
      'http.response.status_code': 200,
      'url.path': '/traced/42',
      'url.scheme': 'http',
      'switchyard.route': '/traced/{id}',
      'switchyard.upstream': 'flaky',
      'switchyard.attempts': 2,
      'switchyard.request_id': res.headers['x-request-id'],
    });
    for (const c of clients) expect(c).toMatchObject({ traceId: TRACE_ID, parentSpanId: server?.spanId, name: 'GET' });
    const [first, second] = clients.sort((a, b) => Number(a.attributes['http.request.resend_count'] ?? 0) - Number(b.attributes['http.request.resend_count'] ?? 0));
    expect(first?.attributes).toMatchObject({ 'http.response.status_code': 503, 'server.address': '127.0.0.1', 'url.full': `${flaky.url}/traced/42`, 'error.type': '503' });
    expect(first?.status?.code).toBe(STATUS_ERROR);
    expect(second?.attributes).toMatchObject({ 'http.response.status_code': 200, 'http.request.resend_count': 1 });

    // The upstream saw one traceparent per attempt: the client's trace, each attempt's own span as parent.
    const seen = flaky.seen.map((s) => s.headers.traceparent);
    expect(seen).toEqual([`00-${TRACE_ID}-${first?.spanId}-01`, `00-${TRACE_ID}-${second?.spanId}-01`]);
    expect(flaky.seen.map((s) => s.headers.tracestate)).toEqual(['vendor=abc', 'vendor=abc']);
    expect(flaky.seen.every((s) => s.rawHeaders.filter((h) => h.toLowerCase() === 'traceparent').length === 1)).toBe(true);
  });

  it('samples new traces at sampling_rate but follows a sampled parent, and always propagates the decision', async () => {
    const gw = await tracedGateway({ enabled: true, backend: { type: 'OTLP', endpoint: receiver.url }, sampling_rate: 0 });
    const unsampled = await hit(agent, `${gw.url}/traced/1`);
    expect(unsampled.status).toBe(200);
    const propagated = TRACEPARENT.exec(String(flaky.seen[0]?.headers.traceparent));
    expect(propagated?.[3]).toBe('00');
    const sampled = await hit(agent, `${gw.url}/traced/2`, { headers: { traceparent: traceparent('01') } });
    expect(sampled.status).toBe(200);
    expect(TRACEPARENT.exec(String(flaky.seen[1]?.headers.traceparent))?.[3]).toBe('01');
    await gw.gw.tracing?.flush();
    await waitFor('the sampled request reaches the receiver', () => receiver.spans.length >= 2);
    expect(new Set(receiver.spans.map((s) => s.traceId))).toEqual(new Set([TRACE_ID]));
    // A client that says "not sampled" is followed too.
    await hit(agent, `${gw.url}/traced/3`, { headers: { traceparent: traceparent('00') } });
    expect(TRACEPARENT.exec(String(flaky.seen[2]?.headers.traceparent))?.slice(1)).toEqual([TRACE_ID, expect.not.stringMatching(CLIENT_SPAN), '00']);
    await gw.gw.tracing?.flush();
    expect(receiver.spans.every((s) => s.attributes['url.path'] !== '/traced/3' && s.attributes['url.full'] !== `${flaky.url}/traced/3`)).toBe(true);
  });

  it('when off, builds nothing and passes the client trace headers through untouched', async () => {
    const gw = await tracedGateway({ enabled: false });
    expect(gw.gw.tracing).toBeUndefined();
    await hit(agent, `${gw.url}/traced/1`, { headers: { traceparent: traceparent('01'), tracestate: 'vendor=abc' } });
    await hit(agent, `${gw.url}/traced/2`);
    expect(flaky.seen[0]?.headers.traceparent).toBe(traceparent('01'));
    expect(flaky.seen[0]?.headers.tracestate).toBe('vendor=abc');
    expect(flaky.seen[1]?.headers.traceparent).toBeUndefined();
  });
});

describe('tracing in the real process', () => {
  it('logs the export URL at start and the trace id in the access log', async () => {
    const [http_port, admin_port, metrics_port] = [await freePort(), await freePort(), await freePort()];
    const file = tempFile(
      'gateway.yaml',
      stringify({
        server: { http_port, admin_port, metrics_port, bind_address: '127.0.0.1' },
        routes: [{ path: '/p', upstream: 'flaky' }],
        upstreams: { flaky: { discovery: { type: 'Static', endpoints: [flaky.url] } } },
        observability: { tracing: { enabled: true, backend: { type: 'OTLP', endpoint: `${receiver.url}/` }, sampling_rate: 1 } },
      }),
    );
    const proc = startProcess('dataplane/bin/switchyard-dataplane.ts', ['--config', file], { OTEL_BSP_SCHEDULE_DELAY: '50' });
    try {
      const started = JSON.parse(await proc.waitForLog('"event":"tracing_started"')) as { url: string };
      expect(started.url).toBe(`${receiver.url}/v1/traces`);
      await proc.waitForLog('"event":"listening"');
      const res = await hit(agent, `http://127.0.0.1:${http_port}/p`, { headers: { traceparent: traceparent('01') } });
      expect(res.status).toBe(200);
      const access = JSON.parse(await proc.waitForLog('"event":"access"')) as { traceId: string };
      expect(access.traceId).toBe(TRACE_ID);
      await waitFor('the span is exported', () => receiver.spans.some((s) => s.kind === SERVER && s.traceId === TRACE_ID && s.service === 'switchyard-gateway'));
    } finally {
      expect(await proc.kill('SIGTERM')).toBe(0);
    }
  });
});
