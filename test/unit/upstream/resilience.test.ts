import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { compileConfig } from '../../../dataplane/src/config/compile.ts';
import { parseConfig } from '../../../dataplane/src/config/load.ts';
import { otlpTracesUrl } from '../../../dataplane/src/observability/tracing.ts';
import { UpstreamBreaker, type BreakerState } from '../../../dataplane/src/upstream/breaker.ts';
import { EndpointHealth } from '../../../dataplane/src/upstream/health.ts';
import { OutlierDetector } from '../../../dataplane/src/upstream/outlier.ts';
import { RetryBudget, backoffDelay } from '../../../dataplane/src/upstream/retry-budget.ts';
import { EndpointRuntime, buildUpstreams, type UpstreamRuntime } from '../../../dataplane/src/upstream/upstream.ts';
import { PoolRegistry } from '../../../dataplane/src/upstream/pools.ts';
import { UpstreamSchema, type Upstream } from '../../../dataplane/src/contract/schema.ts';

const upstream = (extra: Partial<Upstream> = {}, n = 2): Upstream =>
  UpstreamSchema.parse({ name: 'u', endpoints: Array.from({ length: n }, (_, i) => ({ url: `http://127.0.0.1:${10_001 + i}` })), ...extra });

describe('circuit breaker', () => {
  beforeEach(() => void vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] }));
  afterEach(() => void vi.useRealTimers());

  function breaker(settings: Partial<{ failureThreshold: number; openMs: number; successThreshold: number; halfOpenRequests: number }> = {}): { b: UpstreamBreaker; seen: BreakerState[] } {
    const b = new UpstreamBreaker('u', { failureThreshold: 3, openMs: 1_000, successThreshold: 2, ...settings });
    const seen: BreakerState[] = [];
    b.onStateChange = (_from, to) => seen.push(to);
    return { b, seen };
  }

  it('opens after failureThreshold consecutive failures; a success in between starts the count again', () => {
    const { b, seen } = breaker();
    for (const v of ['fail', 'fail', 'ok', 'fail', 'fail'] as const) b.record(b.tryPass() as 'pass', v);
    expect(b.state).toBe('closed');
    b.record(b.tryPass() as 'pass', 'fail');
    expect(b.state).toBe('open');
    expect(seen).toEqual(['open']);
    expect(b.tryPass()).toBeUndefined();
    expect(b.retryAfterSeconds()).toBe(1);
    b.dispose();
  });

  it('turns half-open after openMs, admits halfOpenRequests probes at a time, and closes after successThreshold successes', () => {
    const { b, seen } = breaker({ halfOpenRequests: 2 });
    for (let i = 0; i < 3; i++) b.record('pass', 'fail');
    vi.advanceTimersByTime(999);
    expect(b.state).toBe('open');
    vi.advanceTimersByTime(2);
    expect(b.state).toBe('half-open');
    const p1 = b.tryPass();
    const p2 = b.tryPass();
    expect([p1, p2]).toEqual(['probe', 'probe']);
    expect(b.tryPass()).toBeUndefined();
    b.record('probe', 'ok');
    expect(b.state).toBe('half-open');
    expect(b.tryPass()).toBe('probe');
    b.record('probe', 'ok');
    expect(b.state).toBe('closed');
    expect(seen).toEqual(['open', 'half-open', 'closed']);
    b.dispose();
  });

  it('opens again when a probe fails, and a probe whose client left frees its slot without a verdict', () => {
    const { b, seen } = breaker({ successThreshold: 1 });
    for (let i = 0; i < 3; i++) b.record('pass', 'fail');
    vi.advanceTimersByTime(1_001);
    expect(b.tryPass()).toBe('probe');
    b.record('probe', 'neutral');
    expect(b.state).toBe('half-open');
    expect(b.tryPass()).toBe('probe');
    b.record('probe', 'fail');
    expect(b.state).toBe('open');
    vi.advanceTimersByTime(1_001);
    expect(b.state).toBe('half-open');
    expect(seen).toEqual(['open', 'half-open', 'open', 'half-open']);
    b.dispose();
  });

  it('ignores attempts admitted while closed that finish after it opened, and everything after dispose', () => {
    const { b } = breaker({ failureThreshold: 1 });
    const late = b.tryPass() as 'pass';
    b.record('pass', 'fail');
    b.record(late, 'ok');
    expect(b.state).toBe('open');
    b.dispose();
    vi.advanceTimersByTime(5_000);
    expect(b.state).toBe('open');
  });
});

describe('outlier detection', () => {
  const peers = (n: number): { health: EndpointHealth }[] => Array.from({ length: n }, () => ({ health: new EndpointHealth() }));
  let clock = 1_000;
  const detector = (extra: Partial<ConstructorParameters<typeof OutlierDetector>[0]> = {}): OutlierDetector =>
    new OutlierDetector({ consecutiveFailures: 3, baseEjectionMs: 1_000, maxEjectionMs: 2_500, maxEjectionPercent: 50, ...extra }, () => clock);
  afterEach(() => {
    for (const p of all) p.health.dispose();
    all.length = 0;
  });
  const all: { health: EndpointHealth }[] = [];
  const track = <T extends { health: EndpointHealth }[]>(x: T): T => (all.push(...x), x);

  it('ejects after consecutive failures, for base × ejections, capped, and never past the share', () => {
    const d = detector();
    const eps = track(peers(4));
    const h = (eps[0] as { health: EndpointHealth }).health;
    d.failure(h, eps, () => undefined);
    d.failure(h, eps, () => undefined);
    d.success(h);
    d.failure(h, eps, () => undefined);
    d.failure(h, eps, () => undefined);
    expect(h.ejected).toBe(false);
    expect(d.failure(h, eps, () => undefined)).toBe(1_000);
    expect(h.available).toBe(false);
    // A second endpoint may go (2 of 4 = 50%), a third may not.
    const h1 = (eps[1] as { health: EndpointHealth }).health;
    const h2 = (eps[2] as { health: EndpointHealth }).health;
    for (let i = 0; i < 3; i++) d.failure(h1, eps, () => undefined);
    expect(h1.ejected).toBe(true);
    for (let i = 0; i < 5; i++) expect(d.failure(h2, eps, () => undefined)).toBeUndefined();
    expect(h2.ejected).toBe(false);
  });

  it('grows the ejection with repeat offences and forgives one per base interval spent in rotation', () => {
    const d = detector();
    const eps = track(peers(2));
    const h = (eps[0] as { health: EndpointHealth }).health;
    const eject = (): number | undefined => {
      let r: number | undefined;
      for (let i = 0; i < 3; i++) r = d.failure(h, eps, () => undefined);
      return r;
    };
    const comeBack = (): void => {
      h.dispose();
      h.ejected = false;
      h.returnedAt = clock;
    };
    expect(eject()).toBe(1_000);
    comeBack();
    expect(eject()).toBe(2_000);
    comeBack();
    expect(eject()).toBe(2_500);
    comeBack();
    clock += 2_000;
    expect(eject()).toBe(2_000);
  });

  it('never ejects the only endpoint with the default 50%', () => {
    const d = detector();
    const eps = track(peers(1));
    for (let i = 0; i < 10; i++) expect(d.failure((eps[0] as { health: EndpointHealth }).health, eps, () => undefined)).toBeUndefined();
  });
});

describe('active health state', () => {
  it('leaves rotation after unhealthyThreshold failed probes and returns after healthyThreshold passes', () => {
    const h = new EndpointHealth();
    const s = { path: '/h', intervalMs: 1000, timeoutMs: 100, healthyThreshold: 2, unhealthyThreshold: 3 };
    expect(h.recordProbe(false, s)).toBeUndefined();
    expect(h.recordProbe(false, s)).toBeUndefined();
    expect(h.recordProbe(true, s)).toBeUndefined();
    expect(h.recordProbe(false, s)).toBeUndefined();
    expect(h.recordProbe(false, s)).toBeUndefined();
    expect(h.recordProbe(false, s, 'ECONNREFUSED')).toBe(false);
    expect(h.available).toBe(false);
    expect(h.lastProbeError).toBe('ECONNREFUSED');
    expect(h.recordProbe(true, s)).toBeUndefined();
    expect(h.recordProbe(true, s)).toBe(true);
    expect(h.available).toBe(true);
  });
});

describe('retry budget and backoff', () => {
  it('allows max(minConcurrent, percent of requests in flight) retries at once', () => {
    const b = new RetryBudget({ percent: 20, minConcurrent: 3 });
    b.active = 40;
    let granted = 0;
    while (b.tryAcquire()) granted++;
    expect(granted).toBe(8);
    b.active = 2;
    for (let i = 0; i < 8; i++) b.release();
    expect([b.tryAcquire(), b.tryAcquire(), b.tryAcquire(), b.tryAcquire()]).toEqual([true, true, true, false]);
  });

  it('backs off exponentially with jitter, capped at ten times the base', () => {
    expect(backoffDelay(0, 3)).toBe(0);
    expect(backoffDelay(100, 0, () => 0)).toBe(50);
    expect(backoffDelay(100, 0, () => 1)).toBe(100);
    expect(backoffDelay(100, 2, () => 0.5)).toBe(300);
    expect(backoffDelay(100, 10, () => 1)).toBe(1_000);
  });
});

describe('endpoint choice', () => {
  const pools = new PoolRegistry();
  afterEach(async () => {
    await pools.closeAll(true);
  });

  function runtime(def: Upstream): UpstreamRuntime {
    return buildUpstreams([def], pools).get('u') as UpstreamRuntime;
  }

  it('skips unhealthy endpoints and endpoints already tried while another is available', () => {
    const u = runtime(upstream({}, 3));
    const [a, b, c] = u.endpoints as EndpointRuntime[];
    (b as EndpointRuntime).health.checkPassing = false;
    (b as EndpointRuntime).health.available = false;
    for (let i = 0; i < 10; i++) expect(u.pick()).not.toBe(b);
    expect(u.pick([a as EndpointRuntime])).toBe(c);
    expect(u.pick([a as EndpointRuntime, c as EndpointRuntime])).toBeDefined();
  });

  it('sends to all endpoints when none is healthy in panic mode (the default), and to none with "fail"', () => {
    const panics: string[] = [];
    const panic = runtime(upstream());
    panic.events = { ejected: () => undefined, returned: () => undefined, panic: (n) => panics.push(n) };
    for (const e of panic.endpoints) e.health.available = false;
    expect(panic.pick()).toBeInstanceOf(EndpointRuntime);
    expect(panics).toEqual(['u']);
    const strict = runtime(upstream({ whenAllUnhealthy: 'fail' }));
    for (const e of strict.endpoints) e.health.available = false;
    expect(strict.pick()).toBeUndefined();
  });

  it('keeps endpoint health, the breaker (same settings) and the retry budget across a table swap', () => {
    const def = upstream({ circuitBreaker: { failureThreshold: 1, openMs: 60_000, successThreshold: 1 } });
    const before = buildUpstreams([def], pools);
    const u0 = before.get('u') as UpstreamRuntime;
    (u0.endpoints[0] as EndpointRuntime).health.checkPassing = false;
    u0.breaker?.record('pass', 'fail');
    const after = buildUpstreams([{ ...def, loadBalancer: 'Random', endpoints: [...def.endpoints, { url: 'http://127.0.0.1:10009', weight: 1 }] }], pools, before).get('u') as UpstreamRuntime;
    expect(after.breaker).toBe(u0.breaker);
    expect(after.breaker?.state).toBe('open');
    expect(after.retryBudget).toBe(u0.retryBudget);
    expect((after.endpoints[0] as EndpointRuntime).health.checkPassing).toBe(false);
    // A weight change needs a new endpoint object but keeps its health.
    const reweighted = buildUpstreams([{ ...def, endpoints: [{ url: def.endpoints[0]?.url as string, weight: 5 }] }], pools, before).get('u') as UpstreamRuntime;
    expect(reweighted.endpoints[0]).not.toBe(u0.endpoints[0]);
    expect((reweighted.endpoints[0] as EndpointRuntime).health).toBe((u0.endpoints[0] as EndpointRuntime).health);
    const changed = buildUpstreams([{ ...def, circuitBreaker: { failureThreshold: 2, openMs: 60_000, successThreshold: 1 } }], pools, before).get('u') as UpstreamRuntime;
    expect(changed.breaker).not.toBe(u0.breaker);
    expect(changed.breaker?.state).toBe('closed');
    for (const b of [u0.breaker, changed.breaker]) b?.dispose();
  });
});

describe('tracing backend URL', () => {
  it('sends OTLP to <endpoint>/v1/traces and maps the seed Jaeger collector URL to Jaeger OTLP receiver', () => {
    expect(otlpTracesUrl({ type: 'OTLP', endpoint: 'http://otel-collector:4318' }).url).toBe('http://otel-collector:4318/v1/traces');
    expect(otlpTracesUrl({ type: 'OTLP', endpoint: 'http://otel-collector:4318/' }).url).toBe('http://otel-collector:4318/v1/traces');
    expect(otlpTracesUrl({ type: 'OTLP', endpoint: 'https://otel.example.com/v1/traces' }).url).toBe('https://otel.example.com/v1/traces');
    expect(otlpTracesUrl({ type: 'Jaeger', endpoint: 'http://jaeger:14268/api/traces' })).toEqual({ url: 'http://jaeger:4318/v1/traces', mappedFrom: 'http://jaeger:14268/api/traces' });
    expect(otlpTracesUrl({ type: 'Jaeger', endpoint: 'http://jaeger-collector:4318' })).toEqual({ url: 'http://jaeger-collector:4318/v1/traces' });
    expect(otlpTracesUrl({ type: 'Jaeger', endpoint: 'https://jaeger.example.com/api/traces' }).url).toBe('https://jaeger.example.com/v1/traces');
    expect(otlpTracesUrl(undefined).url).toBe('http://localhost:4318/v1/traces');
  });
});

describe('configuration', () => {
  const yaml = `
routes:
  - path: /x
    upstream: u
upstreams:
  u:
    discovery: { type: Static, endpoints: ["http://127.0.0.1:1"] }
    circuit_breaker: { failure_threshold: 5, timeout: 60s, success_threshold: 3, half_open_requests: 2 }
    outlier_detection: { consecutive_failures: 4, base_ejection_time: 10s }
    when_all_unhealthy: fail
    retry_budget: { percent: 25 }
  v:
    discovery: { type: Static, endpoints: ["http://127.0.0.1:2"] }
`;

  it('compiles outlier detection, the all-unhealthy policy, the retry budget and half-open probes into the table', () => {
    const { table } = compileConfig(parseConfig(yaml, 'gateway.yaml', {}).config);
    const [u, v] = table.upstreams;
    expect(u).toMatchObject({
      circuitBreaker: { failureThreshold: 5, openMs: 60_000, successThreshold: 3, halfOpenRequests: 2 },
      outlierDetection: { consecutiveFailures: 4, baseEjectionMs: 10_000, maxEjectionMs: 300_000, maxEjectionPercent: 50 },
      whenAllUnhealthy: 'fail',
      retryBudget: { percent: 25, minConcurrent: 3 },
    });
    // Absent sections stay absent: tables written before these fields hash as they did.
    expect(v?.outlierDetection).toBeUndefined();
    expect(v?.whenAllUnhealthy).toBeUndefined();
    expect(v?.retryBudget).toBeUndefined();
  });

  it('refuses a tracing endpoint that is not an http(s) URL, naming the field', () => {
    expect(() => parseConfig('observability:\n  tracing:\n    enabled: true\n    backend: { type: Jaeger, endpoint: "jaeger:14268" }\n', 'gateway.yaml', {})).toThrow(/observability\.tracing\.backend\.endpoint/);
  });
});
