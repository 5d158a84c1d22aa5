/**
 * The admin port's live dashboard: `/dashboard` (a page and its script and
 * style, all shipped in this directory, so it works offline) and
 * `/dashboard/api/state`, which the page polls.
 *
 * Nothing here counts anything. Request rates, error shares and p99 latency
 * come from the Prometheus metrics the request path already keeps
 * (`switchyard_requests_total`, `switchyard_request_duration_seconds`,
 * `switchyard_rejected_requests_total`): while someone polls, their
 * cumulative values are sampled at most once a second, and each figure is
 * the difference across the last ten seconds of samples, as `rate()` and
 * `histogram_quantile()` would compute it. Endpoint states are read from the
 * upstreams' own objects, the table's from the holder. With no one watching,
 * no sample is taken.
 *
 * Built for tables of thousands of routes: the page asks for one page of
 * routes and one of upstreams, filtered and sorted here.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import type { TableHolder } from '../table/holder.ts';
import type { GatewayMetrics } from './metrics.ts';

/** What the dashboard reads. */
export interface DashboardSource {
  readonly holder: TableHolder;
  readonly metrics: GatewayMetrics;
}

/** The window rates are computed over. */
const WINDOW_MS = 10_000;
/** Samples are taken at most this often, however many pages poll. */
const SAMPLE_EVERY_MS = 1_000;

/** Cumulative counts of one route at one instant. */
interface RouteCounts {
  total: number;
  c4xx: number;
  c5xx: number;
  /** Cumulative histogram buckets, in `bounds` order, +Inf last. */
  buckets: number[];
}

interface Sample {
  at: number;
  routes: Map<string, RouteCounts>;
  rejected: Map<string, number>;
}

/** Live figures of one route over the window. */
export interface RouteRates {
  rps: number;
  /** Shares of answers in the window, 0 to 1; null without requests. */
  share4xx: number | null;
  share5xx: number | null;
  /** Seconds; null without requests in the window. */
  p99: number | null;
}

const ASSETS: Record<string, string> = { '/dashboard': 'index.html', '/dashboard/': 'index.html', '/dashboard/app.js': 'app.js', '/dashboard/app.css': 'app.css' };
const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };
const ASSET_DIR = path.join(import.meta.dirname, 'dashboard');
// The page loads only its own script and style, and talks only to this listener.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The p-quantile of the observations between two cumulative histograms, interpolated within its bucket as histogram_quantile() does. */
export function quantile(p: number, bounds: readonly number[], before: readonly number[] | undefined, after: readonly number[]): number | null {
  const count = (i: number): number => (after[i] ?? 0) - (before?.[i] ?? 0);
  const total = count(bounds.length);
  if (total <= 0) return null;
  const rank = p * total;
  let prevCount = 0;
  let prevBound = 0;
  for (let i = 0; i < bounds.length; i++) {
    const c = count(i);
    const bound = bounds[i] as number;
    if (c >= rank) return c === prevCount ? bound : prevBound + ((bound - prevBound) * (rank - prevCount)) / (c - prevCount);
    prevCount = c;
    prevBound = bound;
  }
  // In the +Inf bucket: the largest finite bound is all that can be said.
  return bounds[bounds.length - 1] ?? null;
}

/** The dashboard's handler and its sampler. */
export class Dashboard {
  private readonly source: DashboardSource;
  private readonly assets = new Map<string, Buffer>();
  private samples: Sample[] = [];
  private sampling: Promise<void> | undefined;
  private bounds: number[] = [];

  constructor(source: DashboardSource) {
    this.source = source;
  }

  /** Answers the dashboard's paths; false for any other path. */
  handle(req: IncomingMessage, res: ServerResponse, url: URL): boolean {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const asset = ASSETS[url.pathname];
    if (asset !== undefined) {
      this.sendAsset(res, asset);
      return true;
    }
    if (url.pathname !== '/dashboard/api/state') return false;
    this.state(url.searchParams).then(
      (body) => send(res, 200, 'application/json', JSON.stringify(body)),
      (err: unknown) => send(res, 500, 'application/json', JSON.stringify({ error: { code: 'internal_error', message: (err as Error).message } })),
    );
    return true;
  }

  private sendAsset(res: ServerResponse, name: string): void {
    let body = this.assets.get(name);
    if (body === undefined) {
      body = readFileSync(path.join(ASSET_DIR, name));
      this.assets.set(name, body);
    }
    send(res, 200, TYPES[name.split('.').pop() as string] as string, body);
  }

  /** Takes a sample if the last one is older than SAMPLE_EVERY_MS; concurrent callers share one. */
  private async sample(): Promise<void> {
    const last = this.samples[this.samples.length - 1];
    if (last !== undefined && Date.now() - last.at < SAMPLE_EVERY_MS) return;
    this.sampling ??= this.takeSample().finally(() => (this.sampling = undefined));
    await this.sampling;
  }

  private async takeSample(): Promise<void> {
    const { metrics } = this.source;
    const [requests, durations, rejected] = await Promise.all([metrics.requests.get(), metrics.requestDuration.get(), metrics.rejectedRequests.get()]);
    const routes = new Map<string, RouteCounts>();
    const entry = (route: string): RouteCounts => {
      let e = routes.get(route);
      if (e === undefined) routes.set(route, (e = { total: 0, c4xx: 0, c5xx: 0, buckets: [] }));
      return e;
    };
    for (const v of requests.values) {
      const e = entry(String(v.labels.route));
      e.total += v.value;
      if (v.labels.status_class === '4xx') e.c4xx += v.value;
      else if (v.labels.status_class === '5xx') e.c5xx += v.value;
    }
    const bounds: number[] = [];
    for (const v of durations.values) {
      if (!v.metricName?.endsWith('_bucket')) continue;
      // Bucket series carry the `le` label besides the metric's own.
      const le = (v.labels as Record<string, string | number>).le;
      const e = entry(String(v.labels.route));
      e.buckets.push(v.value);
      if (le !== '+Inf' && e.buckets.length > bounds.length) bounds.push(Number(le));
    }
    this.bounds = bounds;
    const now = Date.now();
    this.samples.push({ at: now, routes, rejected: new Map(rejected.values.map((v) => [String(v.labels.code), v.value])) });
    // Keep what the window needs and one sample before it.
    while (this.samples.length > 2 && (this.samples[1] as Sample).at <= now - WINDOW_MS) this.samples.shift();
  }

  /** The newest sample and the one the window starts at (undefined while there is only one). */
  private window(): { now: Sample; then: Sample | undefined; seconds: number } {
    const now = this.samples[this.samples.length - 1] as Sample;
    const then = this.samples.length > 1 ? (this.samples[0] as Sample) : undefined;
    return { now, then, seconds: then ? (now.at - then.at) / 1000 : 0 };
  }

  /** The live figures of one route over the window. */
  private rates(routeId: string): RouteRates {
    const { now, then, seconds } = this.window();
    const a = now.routes.get(routeId);
    const b = then?.routes.get(routeId);
    if (a === undefined || then === undefined || seconds <= 0) return { rps: 0, share4xx: null, share5xx: null, p99: null };
    const total = a.total - (b?.total ?? 0);
    if (total <= 0) return { rps: 0, share4xx: null, share5xx: null, p99: null };
    return {
      rps: total / seconds,
      share4xx: (a.c4xx - (b?.c4xx ?? 0)) / total,
      share5xx: (a.c5xx - (b?.c5xx ?? 0)) / total,
      p99: quantile(0.99, this.bounds, b?.buckets, a.buckets),
    };
  }

  private async state(params: URLSearchParams): Promise<unknown> {
    await this.sample();
    const { holder, metrics } = this.source;
    const rt = holder.current;
    const attempt = holder.lastAttempt;
    const { now, then, seconds } = this.window();
    const int = (name: string, fallback: number, max: number): number => {
      const n = Number(params.get(name));
      return Number.isInteger(n) && n >= 0 ? Math.min(n, max) : fallback;
    };

    const q = (params.get('q') ?? '').toLowerCase();
    const sort = params.get('sort') ?? 'rps';
    const offset = int('offset', 0, 1e9);
    const limit = int('limit', 50, 500) || 50;
    const allRoutes = (rt?.routes ?? []).map((r) => {
      const d = r.def;
      const source = d.source ? `${d.source.kind} ${d.source.namespace ? `${d.source.namespace}/` : ''}${d.source.name}` : null;
      return { r, source, upstreams: d.backends.map((b) => b.upstream) };
    });
    const matches = q === '' ? allRoutes : allRoutes.filter(({ r, source, upstreams }) => [r.id, r.path.value, ...r.hosts, ...upstreams, source ?? ''].some((s) => s.toLowerCase().includes(q)));
    const withRates = matches.map((m) => ({ ...m, rates: this.rates(m.r.id) }));
    const key: Record<string, (x: (typeof withRates)[number]) => number> = {
      rps: (x) => -x.rates.rps,
      errors: (x) => -(x.rates.share5xx ?? -1),
      p99: (x) => -(x.rates.p99 ?? -1),
    };
    const by = key[sort];
    // A stable sort keeps table order among equals, so rows do not jump between polls.
    if (by !== undefined) withRates.sort((a, b) => by(a) - by(b));
    else if (sort === 'name') withRates.sort((a, b) => (a.r.id < b.r.id ? -1 : a.r.id > b.r.id ? 1 : 0));
    const routes = withRates.slice(offset, offset + limit).map(({ r, source, upstreams, rates }) => ({
      id: r.id,
      source,
      path: r.path,
      methods: r.methods,
      hosts: r.hosts,
      upstreams,
      ...(r.def.invalid !== undefined ? { invalid: r.def.invalid } : {}),
      ...rates,
    }));

    const uq = (params.get('uq') ?? '').toLowerCase();
    const uoffset = int('uoffset', 0, 1e9);
    const ulimit = int('ulimit', 20, 200) || 20;
    const allUpstreams = [...(rt?.upstreams.values() ?? [])];
    const upstreamMatches = uq === '' ? allUpstreams : allUpstreams.filter((u) => u.name.toLowerCase().includes(uq) || u.endpoints.some((e) => e.origin.includes(uq)));
    // Upstreams with an endpoint out of rotation first: they are what someone opens this page for.
    const down = (u: (typeof allUpstreams)[number]): number => (u.endpoints.some((e) => !e.healthy) || u.breaker?.state === 'open' ? 0 : 1);
    upstreamMatches.sort((a, b) => down(a) - down(b));
    const upstreams = upstreamMatches.slice(uoffset, uoffset + ulimit).map((u) => ({
      name: u.name,
      loadBalancer: u.def.loadBalancer,
      circuitBreaker: u.breaker ? u.breaker.state : null,
      healthCheck: u.def.healthCheck !== undefined,
      outlierDetection: u.outlier !== undefined,
      whenAllUnhealthy: u.def.whenAllUnhealthy ?? 'panic',
      endpoints: u.endpoints.map((e) => ({
        origin: e.origin,
        eligible: e.healthy,
        health: u.def.healthCheck ? (e.health.checkPassing ? 'passing' : 'failing') : 'no check',
        outlier: u.outlier ? (e.health.ejected ? 'ejected' : 'in rotation') : 'off',
        inFlight: e.inFlight,
        ...(e.health.lastProbeError ? { lastProbeError: e.health.lastProbeError } : {}),
      })),
    }));

    const rejections = [...now.rejected].map(([code, total]) => ({ code, total, recent: then ? total - (then.rejected.get(code) ?? 0) : 0 })).sort((a, b) => b.recent - a.recent || b.total - a.total);
    let total = 0;
    let total5xx = 0;
    for (const [id, c] of now.routes) {
      const b = then?.routes.get(id);
      total += c.total - (b?.total ?? 0);
      total5xx += c.c5xx - (b?.c5xx ?? 0);
    }
    const inFlight = (await metrics.inFlight.get()).values[0]?.value ?? 0;
    const loadedAt = (await metrics.tableLoadedAt.get()).values[0]?.value;
    return {
      at: now.at,
      windowSeconds: seconds,
      table: rt ? { version: rt.version, source: rt.source, routes: rt.routes.length, upstreams: rt.upstreams.size, loadedAt: loadedAt ? loadedAt * 1000 : null } : null,
      lastAttempt: attempt ? { at: attempt.at, source: attempt.source, ...attempt.result } : null,
      totals: { rps: seconds > 0 ? total / seconds : 0, share5xx: total > 0 ? total5xx / total : null, inFlight },
      routes: { total: allRoutes.length, matching: matches.length, offset, limit, items: routes },
      upstreams: { total: allUpstreams.length, matching: upstreamMatches.length, offset: uoffset, limit: ulimit, items: upstreams },
      rejections,
    };
  }
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', 'content-security-policy': CSP, 'x-content-type-options': 'nosniff' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
