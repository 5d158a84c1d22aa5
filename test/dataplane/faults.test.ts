/**
 * The fault suite: real upstreams on 127.0.0.1 that die, reset, hang, crawl,
 * fail in bursts and come back. For each fault: the status the client gets,
 * the breaker and health states, and the recovery. Nothing here asserts speed;
 * waits only fail when something never happens.
 */
import { spawnSync } from 'node:child_process';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Agent, request } from 'undici';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { closedPort } from '../support/upstreams.ts';
import { freePort } from '../support/processes.ts';
import { hit, openSockets, startChildUpstream, startFaultyUpstream, waitFor, type FaultyUpstream } from '../support/faults.ts';
import { UpstreamSchema } from '../../dataplane/src/contract/schema.ts';
import { HealthChecker } from '../../dataplane/src/upstream/health-check.ts';
import { PoolRegistry } from '../../dataplane/src/upstream/pools.ts';
import { buildUpstreams, type UpstreamRuntime } from '../../dataplane/src/upstream/upstream.ts';

const HEALTH = { path: '/health', interval: '100ms', timeout: '80ms', healthy_threshold: 2, unhealthy_threshold: 2 };
const static_ = (...urls: string[]): { type: 'Static'; endpoints: string[] } => ({ type: 'Static', endpoints: urls });

let agent: Agent;
const gateways: TestGateway[] = [];
const upstreams: FaultyUpstream[] = [];
let socketsBefore = 0;

async function gateway(config: Record<string, unknown>): Promise<TestGateway> {
  const gw = await startGateway(config);
  gateways.push(gw);
  return gw;
}

async function faulty(name: string, options: Parameters<typeof startFaultyUpstream>[1] = {}): Promise<FaultyUpstream> {
  const up = await startFaultyUpstream(name, options);
  upstreams.push(up);
  return up;
}

function upstreamOf(gw: TestGateway, name: string): UpstreamRuntime {
  const u = gw.gw.holder.current?.upstreams.get(name);
  if (!u) throw new Error(`no upstream ${name}`);
  return u;
}

function endpointOf(gw: TestGateway, name: string, url: string): UpstreamRuntime['endpoints'][number] {
  const e = upstreamOf(gw, name).endpoints.find((x) => x.origin === url);
  if (!e) throw new Error(`no endpoint ${url} in ${name}`);
  return e;
}

async function metricsText(gw: TestGateway): Promise<string> {
  return (await hit(agent, gw.metricsUrl)).text;
}

beforeAll(() => {
  socketsBefore = openSockets();
  agent = new Agent({ keepAliveTimeout: 1_000 });
});

afterEach(async () => {
  for (const u of upstreams) u.release();
  for (const gw of gateways.splice(0)) await gw.stop();
  // Every connection the gateway opened to an upstream (traffic and probes) is gone once it stopped.
  for (const u of upstreams) await waitFor(`${u.name} has no open connections`, () => u.sockets.size === 0);
  for (const u of upstreams.splice(0)) await u.close();
});

afterAll(async () => {
  await agent.close();
  await waitFor('the process has no more sockets open than before the suite', () => openSockets() <= socketsBefore);
});

describe('an upstream killed mid-response', () => {
  it('cuts that response, keeps serving from the other endpoint, takes the dead one out and back when it restarts', async () => {
    const port = await freePort();
    let child = await startChildUpstream(port);
    const b = await faulty('b');
    const gw = await gateway({
      routes: [
        { path: '/stream', upstream: 'only-child' },
        { path: '/x', upstream: 'u', retries: { attempts: 1, on: ['connect-failure', 'reset'] } },
      ],
      upstreams: {
        'only-child': { discovery: static_(child.url), health_check: HEALTH },
        u: { discovery: static_(child.url, b.url), health_check: HEALTH },
      },
    });
    try {
      const res = await request(`${gw.url}/stream`, { dispatcher: agent });
      expect(res.statusCode).toBe(200);
      const reader = res.body[Symbol.asyncIterator]();
      expect(String((await reader.next()).value)).toBe('first chunk\n');
      await child.kill();
      // The client learns the response is incomplete: its body fails, never a clean end.
      await expect((async () => {
        for (;;) if ((await reader.next()).done) return 'ended';
      })()).rejects.toThrow();

      // Requests keep succeeding: the dead endpoint's connection failures are retried on the other one.
      for (let i = 0; i < 10; i++) expect((await hit(agent, `${gw.url}/x`)).status).toBe(200);
      await waitFor('the dead endpoint leaves rotation', () => !endpointOf(gw, 'u', child.url).healthy);
      expect(await metricsText(gw)).toContain(`switchyard_upstream_endpoint_healthy{upstream="u",endpoint="${child.url}"} 0`);
      for (let i = 0; i < 6; i++) expect((await hit(agent, `${gw.url}/x`)).headers['x-upstream']).toBe('b');
      // Its only endpoint down, panic mode still tries it: connection refused is a 502.
      const down = await hit(agent, `${gw.url}/stream`);
      expect(down.status).toBe(502);
      expect(down.body).toMatchObject({ error: { code: 'bad_gateway' } });

      child = await startChildUpstream(port);
      await waitFor('the restarted endpoint returns', () => endpointOf(gw, 'u', child.url).healthy);
      const names = new Set<unknown>();
      for (let i = 0; i < 6; i++) names.add((await hit(agent, `${gw.url}/x`)).headers['x-upstream']);
      expect([...names].sort()).toEqual(['b', 'child']);
      expect((await hit(agent, `${gw.url}/health`)).status).toBe(200);
    } finally {
      await child.kill();
    }
  });
});

describe('an upstream that resets connections', () => {
  it('is a 502 without retries, is retried on another endpoint with them, and is ejected by outlier detection', async () => {
    const a = await faulty('a', { mode: 'reset' });
    const b = await faulty('b');
    const gw = await gateway({
      routes: [
        { path: '/plain', upstream: 'u' },
        { path: '/retry', upstream: 'u', retries: { attempts: 1, on: ['reset'] } },
      ],
      upstreams: { u: { discovery: static_(a.url, b.url), outlier_detection: { consecutive_failures: 3, base_ejection_time: '1m' } } },
    });
    let sawReset = false;
    for (let i = 0; i < 4 && !sawReset; i++) {
      const r = await hit(agent, `${gw.url}/plain`);
      if (r.status !== 200) {
        expect(r.status).toBe(502);
        expect(r.body).toMatchObject({ error: { code: 'bad_gateway', message: 'upstream closed the connection' } });
        sawReset = true;
      }
    }
    expect(sawReset).toBe(true);
    for (let i = 0; i < 6; i++) {
      const r = await hit(agent, `${gw.url}/retry`);
      expect(r.status).toBe(200);
      expect(r.headers['x-upstream']).toBe('b');
    }
    const ea = endpointOf(gw, 'u', a.url);
    expect(ea.health.ejected).toBe(true);
    expect(ea.health.ejections).toBe(1);
    const hitsAtEjection = a.hits;
    for (let i = 0; i < 6; i++) expect((await hit(agent, `${gw.url}/plain`)).status).toBe(200);
    expect(a.hits).toBe(hitsAtEjection);
    const text = await metricsText(gw);
    expect(text).toContain(`switchyard_upstream_endpoint_ejected{upstream="u",endpoint="${a.url}"} 1`);
    expect(text).toContain('switchyard_upstream_outlier_ejections_total{upstream="u"} 1');
    expect(text).toMatch(/switchyard_upstream_retries_total\{upstream="u",result="retried"\} [1-9]/);
  });

  it('never ejects more than the configured share: with both endpoints failing, one stays in', async () => {
    const a = await faulty('a', { mode: 'reset' });
    const b = await faulty('b', { mode: 'reset' });
    const gw = await gateway({
      routes: [{ path: '/x', upstream: 'u' }],
      upstreams: { u: { discovery: static_(a.url, b.url), outlier_detection: { consecutive_failures: 2, base_ejection_time: '1m' } } },
    });
    for (let i = 0; i < 12; i++) expect((await hit(agent, `${gw.url}/x`)).status).toBe(502);
    const ejected = upstreamOf(gw, 'u').endpoints.filter((e) => e.health.ejected);
    expect(ejected).toHaveLength(1);
  });
});

describe('an upstream that hangs, then comes back', () => {
  it('answers 504, fails its health check on the probe timeout, opens the breaker, and closes it once the upstream answers again', async () => {
    const a = await faulty('a', { mode: 'hang' });
    const gw = await gateway({
      routes: [{ path: '/x', upstream: 'u' }],
      upstreams: {
        u: { discovery: static_(a.url), timeout: '300ms', health_check: HEALTH, circuit_breaker: { failure_threshold: 2, timeout: '400ms', success_threshold: 1 } },
      },
    });
    const first = await hit(agent, `${gw.url}/x`);
    expect(first.status).toBe(504);
    expect(first.body).toMatchObject({ error: { code: 'upstream_timeout' } });
    expect((await hit(agent, `${gw.url}/x`)).status).toBe(504);
    expect(upstreamOf(gw, 'u').breaker?.state).toBe('open');
    const open = await hit(agent, `${gw.url}/x`);
    expect(open.status).toBe(503);
    expect(open.body).toMatchObject({ error: { code: 'circuit_open' } });
    expect(Number(open.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(a.hits).toBe(2);
    await waitFor('the hanging endpoint fails its health check', () => !endpointOf(gw, 'u', a.url).health.checkPassing);
    expect(endpointOf(gw, 'u', a.url).health.lastProbeError).toMatch(/no answer within 80 ms/);
    const admin = (await hit(agent, `${gw.adminUrl}/upstreams`)).text;
    expect(JSON.parse(admin)).toMatchObject([{ name: 'u', circuitBreaker: 'open', endpoints: [{ origin: a.url, checkPassing: false, lastProbeError: 'no answer within 80 ms', ejected: false }] }]);

    a.mode = 'ok';
    await waitFor('requests succeed again', async () => (await hit(agent, `${gw.url}/x`)).status === 200);
    expect(upstreamOf(gw, 'u').breaker?.state).toBe('closed');
    await waitFor('the endpoint passes its health check again', () => endpointOf(gw, 'u', a.url).healthy);
    const text = await metricsText(gw);
    expect(text).toContain('switchyard_circuit_breaker_state{upstream="u"} 0');
    for (const state of ['open', 'half-open', 'closed']) expect(text).toContain(`switchyard_circuit_breaker_transitions_total{upstream="u",state="${state}"} 1`);
  });
});

describe('an upstream that answers slowly', () => {
  it('is served within the timeouts without tripping anything, and is a 504 on a route whose deadline it misses', async () => {
    const a = await faulty('a', { mode: 'slow' });
    a.healthMode = 'ok';
    a.slowMs = 250;
    const gw = await gateway({
      routes: [
        { path: '/x', upstream: 'u' },
        { path: '/tight', upstream: 'u', timeout: '100ms' },
      ],
      upstreams: { u: { discovery: static_(a.url), timeout: '5s', health_check: HEALTH, circuit_breaker: { failure_threshold: 1, timeout: '1m' } } },
    });
    for (let i = 0; i < 3; i++) expect((await hit(agent, `${gw.url}/x`)).status).toBe(200);
    expect(upstreamOf(gw, 'u').breaker?.state).toBe('closed');
    // undici checks timeouts on a coarse clock, so the upstream has to be much slower than the deadline.
    a.slowMs = 2_000;
    const tight = await hit(agent, `${gw.url}/tight`);
    expect(tight.status).toBe(504);
    expect(tight.body).toMatchObject({ error: { code: 'upstream_timeout' } });
    expect(endpointOf(gw, 'u', a.url).healthy).toBe(true);
    a.slowMs = 0;
  });
});

describe('5xx bursts and the circuit breaker', () => {
  it('opens after failure_threshold 5xx answers, fails fast with Retry-After, lets one probe through half-open, and closes after success_threshold', async () => {
    const a = await faulty('a', { mode: 'error' });
    const gw = await gateway({
      routes: [{ path: '/x', upstream: 'u' }],
      upstreams: { u: { discovery: static_(a.url), circuit_breaker: { failure_threshold: 3, timeout: '300ms', success_threshold: 2, half_open_requests: 1 } } },
    });
    for (let i = 0; i < 3; i++) {
      const r = await hit(agent, `${gw.url}/x`);
      // The upstream's own 503 is relayed as it is.
      expect(r.status).toBe(503);
      expect(r.body).toEqual({ upstreamError: 'a' });
    }
    const fast = await hit(agent, `${gw.url}/x`);
    expect(fast.status).toBe(503);
    expect(fast.body).toMatchObject({ error: { code: 'circuit_open' } });
    expect(fast.headers['retry-after']).toBe('1');
    expect(a.hits).toBe(3);

    a.mode = 'hold';
    const breaker = upstreamOf(gw, 'u').breaker;
    await waitFor('the breaker turns half-open', () => breaker?.state === 'half-open');
    const probes = [hit(agent, `${gw.url}/x`), hit(agent, `${gw.url}/x`), hit(agent, `${gw.url}/x`)];
    await waitFor('the probe reaches the upstream', () => a.held.length === 1);
    a.mode = 'ok';
    a.release();
    const statuses = (await Promise.all(probes)).map((r) => r.status).sort();
    expect(statuses).toEqual([200, 503, 503]);
    expect(a.hits).toBe(4);
    expect(breaker?.state).toBe('half-open');
    expect((await hit(agent, `${gw.url}/x`)).status).toBe(200);
    expect(breaker?.state).toBe('closed');
    for (let i = 0; i < 3; i++) expect((await hit(agent, `${gw.url}/x`)).status).toBe(200);
  });

  it('keeps the breaker state across a table swap with unchanged settings, and starts afresh when they change', async () => {
    const a = await faulty('a', { mode: 'error' });
    const ups = (threshold: number): Record<string, unknown> => ({ u: { discovery: static_(a.url), circuit_breaker: { failure_threshold: threshold, timeout: '1m' } } });
    const gw = await gateway({ routes: [{ path: '/x', upstream: 'u' }], upstreams: ups(1) });
    await hit(agent, `${gw.url}/x`);
    expect((await hit(agent, `${gw.url}/x`)).body).toMatchObject({ error: { code: 'circuit_open' } });
    gw.writeConfig({ routes: [{ path: '/x', upstream: 'u' }, { path: '/y', upstream: 'u' }], upstreams: ups(1) });
    expect((await gw.gw.reload('test')).applied).toBe(true);
    expect((await hit(agent, `${gw.url}/y`)).body).toMatchObject({ error: { code: 'circuit_open' } });
    gw.writeConfig({ routes: [{ path: '/x', upstream: 'u' }], upstreams: ups(5) });
    expect((await gw.gw.reload('test')).applied).toBe(true);
    expect(upstreamOf(gw, 'u').breaker?.state).toBe('closed');
    expect((await hit(agent, `${gw.url}/x`)).body).toEqual({ upstreamError: 'a' });
  });
});

describe('retries', () => {
  it('retry a 503 on another endpoint without the client seeing it; non-idempotent methods only when the route opts in', async () => {
    const a = await faulty('a', { mode: 'error' });
    const b = await faulty('b');
    const gw = await gateway({
      routes: [
        { path: '/x', upstream: 'u', methods: ['GET', 'POST'], retries: { attempts: 2, on: ['503'], backoff: '5ms' } },
        { path: '/post', upstream: 'u', methods: ['POST'], retries: { attempts: 2, on: ['503'], non_idempotent: true } },
      ],
      upstreams: { u: { discovery: static_(a.url, b.url) } },
    });
    for (let i = 0; i < 6; i++) {
      const r = await hit(agent, `${gw.url}/x`);
      expect(r.status).toBe(200);
      expect(r.body).toEqual({ name: 'b' });
    }
    expect(a.hits).toBeGreaterThan(0);
    // POST is not idempotent: each request gets one attempt, so the 503s reach the client.
    const posts = await Promise.all(Array.from({ length: 6 }, () => hit(agent, `${gw.url}/x`, { method: 'POST' })));
    expect(posts.map((p) => p.status)).toContain(503);
    for (let i = 0; i < 6; i++) expect((await hit(agent, `${gw.url}/post`, { method: 'POST' })).status).toBe(200);
  });

  it('never retry once response bytes reached the client', async () => {
    const b = await faulty('b');
    const a = await startFaultyUpstream('a');
    upstreams.push(a);
    a.server.removeAllListeners('request');
    a.server.on('request', (_req: IncomingMessage, res: ServerResponse) => {
      a.hits++;
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const gw = await gateway({
      routes: [{ path: '/x', upstream: 'u', retries: { attempts: 3, on: ['reset', 'connect-failure'] } }],
      upstreams: { u: { discovery: static_(a.url, b.url), load_balancer: { type: 'RoundRobin' } } },
    });
    let cut = 0;
    for (let i = 0; i < 4; i++) {
      try {
        await hit(agent, `${gw.url}/x`);
      } catch {
        cut++;
      }
    }
    expect(cut).toBe(2);
    expect(a.hits).toBe(2);
    expect(b.hits).toBe(2);
  });

  it('the retry budget caps retries under a total outage', async () => {
    const count = async (budget: Record<string, number> | undefined): Promise<{ attempts: number; statuses: number[]; text: string }> => {
      const a = await faulty('a', { mode: 'hold' });
      const b = await faulty('b', { mode: 'hold' });
      const gw = await gateway({
        routes: [{ path: '/x', upstream: 'u', retries: { attempts: 3, on: ['503'], backoff: '10ms' } }],
        upstreams: { u: { discovery: static_(a.url, b.url), ...(budget ? { retry_budget: budget } : {}) } },
      });
      // Hold the first wave until all 40 requests are in flight, then fail them together; later attempts fail at once.
      const wave = Array.from({ length: 40 }, () => hit(agent, `${gw.url}/x`));
      await waitFor('all 40 requests reach the upstreams', () => a.held.length + b.held.length === 40);
      for (const u of [a, b]) {
        u.mode = 'error';
        for (const h of u.held.splice(0)) {
          h.res.writeHead(503).end('down');
        }
      }
      const statuses = (await Promise.all(wave)).map((r) => r.status);
      return { attempts: a.hits + b.hits, statuses, text: await metricsText(gw) };
    };
    const capped = await count(undefined);
    expect(capped.statuses.every((s) => s === 503)).toBe(true);
    // 40 first attempts; retries at most 20% of 40 at first, then at least 3 at a time: far below 40 × 4.
    expect(capped.attempts).toBeGreaterThanOrEqual(40);
    expect(capped.attempts).toBeLessThan(70);
    expect(capped.text).toMatch(/switchyard_upstream_retries_total\{upstream="u",result="budget_exhausted"\} [1-9]/);

    const unbounded = await count({ percent: 100, min_concurrent: 1000 });
    expect(unbounded.attempts).toBe(160);
  });

  it('a client that disconnects cancels the upstream request, and that says nothing against the upstream', async () => {
    const a = await faulty('a', { mode: 'hang' });
    const gw = await gateway({
      routes: [{ path: '/x', upstream: 'u' }],
      upstreams: { u: { discovery: static_(a.url), circuit_breaker: { failure_threshold: 1, timeout: '1m' }, outlier_detection: { consecutive_failures: 1, max_ejection_percent: 100 } } },
    });
    const controller = new AbortController();
    const pending = hit(agent, `${gw.url}/x`, {}).catch(() => 'aborted');
    void pending;
    const aborted = request(`${gw.url}/x`, { dispatcher: agent, signal: controller.signal }).catch(() => 'aborted');
    await waitFor('both requests reach the upstream', () => a.held.length === 2);
    controller.abort();
    expect(await aborted).toBe('aborted');
    await waitFor('the upstream sees its request cancelled', () => a.held.filter((h) => h.closed).length === 1);
    expect(upstreamOf(gw, 'u').breaker?.state).toBe('closed');
    expect(endpointOf(gw, 'u', a.url).health.ejected).toBe(false);
    a.release();
    expect(await pending).toMatchObject({ status: 200 });
  });
});

describe('when every endpoint is unhealthy', () => {
  it('panic mode (the default) still sends; "fail" answers 503 no_healthy_upstream', async () => {
    const a = await faulty('a');
    const b = await faulty('b');
    a.healthMode = 'error';
    b.healthMode = 'error';
    const gw = await gateway({
      routes: [
        { path: '/panic', upstream: 'p' },
        { path: '/strict', upstream: 's' },
      ],
      upstreams: {
        p: { discovery: static_(a.url, b.url), health_check: HEALTH },
        s: { discovery: static_(a.url, b.url), health_check: HEALTH, when_all_unhealthy: 'fail' },
      },
    });
    await waitFor('every endpoint fails its check', () => [...upstreamOf(gw, 'p').endpoints, ...upstreamOf(gw, 's').endpoints].every((e) => !e.healthy));
    expect((await hit(agent, `${gw.url}/panic`)).status).toBe(200);
    const strict = await hit(agent, `${gw.url}/strict`);
    expect(strict.status).toBe(503);
    expect(strict.body).toMatchObject({ error: { code: 'no_healthy_upstream' } });
    expect(await metricsText(gw)).toContain('switchyard_upstream_panic_requests_total{upstream="p"} 1');
    a.healthMode = 'ok';
    await waitFor('one endpoint passes again', () => endpointOf(gw, 's', a.url).healthy);
    expect((await hit(agent, `${gw.url}/strict`)).body).toEqual({ name: 'a' });
  });
});

describe('health checks follow the table', () => {
  it('never probes an endpoint that left the table, and a stopped gateway probes nothing', async () => {
    const a = await faulty('a');
    const b = await faulty('b');
    const cfg = (urls: string[]): Record<string, unknown> => ({ routes: [{ path: '/x', upstream: 'u' }], upstreams: { u: { discovery: static_(...urls), health_check: HEALTH } } });
    const gw = await gateway(cfg([a.url, b.url]));
    await waitFor('both endpoints are probed', () => a.healthHits >= 2 && b.healthHits >= 2);
    expect(gw.gw.resilience.checker.probing.sort()).toEqual([`u ${a.url}`, `u ${b.url}`].sort());
    gw.writeConfig(cfg([b.url]));
    expect((await gw.gw.reload('test')).applied).toBe(true);
    expect(gw.gw.resilience.checker.probing).toEqual([`u ${b.url}`]);
    const aAfter = a.healthHits;
    const bAfter = b.healthHits;
    await waitFor('the kept endpoint is probed again', () => b.healthHits >= bAfter + 3);
    expect(a.healthHits).toBe(aAfter);
    await gw.stop();
    const bStopped = b.healthHits;
    await new Promise((r) => setTimeout(r, 400));
    expect(b.healthHits).toBe(bStopped);
  });

  it('probes a fleet out of step: each endpoint is first probed after its own random share of the interval', async () => {
    const ups = await Promise.all(Array.from({ length: 6 }, (_, i) => faulty(`e${i}`)));
    const order: string[] = [];
    for (const u of ups) {
      u.server.prependListener('request', (req: IncomingMessage) => {
        if (req.url === '/health' && !order.includes(u.name)) order.push(u.name);
      });
    }
    // The draws that place each first probe in the interval (1 s): 100 ms apart at least.
    const draws = [0.8, 0.2, 0.5, 0.0, 0.65, 0.35];
    let next = 0;
    const random = (): number => (next < draws.length ? (draws[next++] as number) : 0.5);
    const def = UpstreamSchema.parse({ name: 'u', endpoints: ups.map((u) => ({ url: u.url })), healthCheck: { path: '/health', intervalMs: 1_000, timeoutMs: 80 } });
    const pools = new PoolRegistry();
    const checker = new HealthChecker({ probed: () => undefined, healthChanged: () => undefined }, random);
    try {
      checker.sync(buildUpstreams([def], pools).values());
      await waitFor('every endpoint was probed', () => order.length === ups.length);
      // In the order of the draws, not all at once nor in the table's order.
      expect(order).toEqual(['e3', 'e1', 'e5', 'e2', 'e4', 'e0']);
    } finally {
      checker.stop();
      await pools.closeAll(true);
    }
  });
});

describe('metrics for health, breakers, outliers and retries', () => {
  it('are exported with bounded labels and pass promtool', async () => {
    const a = await faulty('a', { mode: 'error' });
    const b = await faulty('b');
    const gw = await gateway({
      routes: [{ path: '/x', upstream: 'u', retries: { attempts: 1, on: ['503'] } }],
      upstreams: { u: { discovery: static_(a.url, b.url), health_check: HEALTH, circuit_breaker: { failure_threshold: 50, timeout: '1m' }, outlier_detection: { consecutive_failures: 2 } } },
    });
    for (let i = 0; i < 6; i++) await hit(agent, `${gw.url}/x`);
    await waitFor('a probe of each endpoint was counted', async () => /switchyard_upstream_health_checks_total\{upstream="u",result="failure"\} [1-9]/.test(await metricsText(gw)));
    const text = await metricsText(gw);
    for (const name of [
      'switchyard_upstream_endpoint_healthy',
      'switchyard_upstream_endpoint_ejected',
      'switchyard_upstream_health_checks_total',
      'switchyard_upstream_outlier_ejections_total',
      'switchyard_circuit_breaker_state',
      'switchyard_upstream_retries_total',
    ]) {
      expect(text).toContain(`# TYPE ${name}`);
    }
    expect(text).toContain('switchyard_circuit_breaker_state{upstream="u"} 0');
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.stderr + check.stdout).toBe('');
    expect(check.status).toBe(0);

    // An endpoint that leaves the table leaves the metrics too.
    gw.writeConfig({ routes: [{ path: '/x', upstream: 'u' }], upstreams: { u: { discovery: static_(b.url) } } });
    expect((await gw.gw.reload('test')).applied).toBe(true);
    const after = await metricsText(gw);
    expect(after).not.toContain(`endpoint="${a.url}"`);
    expect(after).not.toContain('switchyard_circuit_breaker_state{');
  });
});

describe('the gateway survives its upstreams', () => {
  it('answers every fault with a status and leaks no connection', async () => {
    const port = await closedPort();
    const a = await faulty('a', { mode: 'reset' });
    const gw = await gateway({
      routes: [
        { path: '/refused', upstream: 'refused' },
        { path: '/reset', upstream: 'reset' },
      ],
      upstreams: { refused: { discovery: static_(`http://127.0.0.1:${port}`) }, reset: { discovery: static_(a.url) } },
    });
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => hit(agent, `${gw.url}/${i % 2 ? 'reset' : 'refused'}`)));
    expect(results.every((r) => r.status === 502)).toBe(true);
    expect((await hit(agent, `${gw.url}/health`)).status).toBe(200);
    await gw.gw.stop(0);
    await waitFor('no connection to the upstream is left', () => a.sockets.size === 0);
  });
});
