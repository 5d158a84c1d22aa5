/**
 * What `explain` answers, as JSON and as text: the shape the admin
 * `/explain`, `switchyard-dataplane explain` and `kubectl switchyard explain`
 * share. Imports nothing, so that a client that only receives the JSON (the
 * kubectl plugin) can print it without the data plane's internals.
 */

/** A route as explain shows it; a route the asker may not see (another namespace) is only a placeholder. */
export type ShownRoute =
  | {
      id: string;
      /** The resource the route came from (GatewayRoute, HTTPRoute); absent for gateway.yaml routes. */
      source?: { kind: string; namespace?: string | undefined; name: string } | undefined;
      hosts: string[];
      path: { type: string; value: string };
      methods: string[];
    }
  | { hidden: true };

/** One part of the request a route did not take. */
export interface ShownMiss {
  what: 'host' | 'path' | 'method' | 'header' | 'query';
  detail: string;
}

/** How a stage would treat the request: `not reached` when an earlier stage already answered. */
export type StageVerdict = 'pass' | 'fail' | 'skip' | 'not reached' | 'unknown';

/** One stage of the route's pipeline, in request order. */
export type StageExplanation =
  | { stage: 'cors'; result: StageVerdict; detail: string; source: string | null }
  | {
      stage: 'authenticate';
      result: StageVerdict;
      detail: string;
      required: boolean;
      /** Where the request carries a token (never the token). */
      token: string | null;
      identity?: { subject: string; roles: string[]; permissions: string[] };
    }
  | { stage: 'authorize'; result: StageVerdict; detail: string; roles: string[]; permissions: string[]; missingRoles?: string[]; missingPermissions?: string[] }
  | {
      stage: 'rate-limit';
      result: StageVerdict;
      detail: string;
      limit: number;
      windowMs: number;
      source: string | null;
      /** The counter this request is counted in; null when it depends on something the request did not say (the client address). */
      bucket: string | null;
      /** Requests counted in the sliding window now (the previous window weighted); null when not looked up. */
      used: number | null;
      remaining: number | null;
      store?: string;
    };

/** One endpoint of an upstream and whether it takes traffic now. */
export interface EndpointExplanation {
  origin: string;
  name?: string;
  weight: number;
  eligible: boolean;
  /** The active health check: `passing`, `failing`, `no check`, or `unknown` when no check ran (offline). */
  health: string;
  lastProbeError?: string;
  /** Outlier detection: `in rotation`, `ejected`, `off`, or `unknown` (offline). */
  outlier: string;
  ejectedForMs?: number;
  inFlight?: number;
}

/** One backend of the route: the upstream, its share of requests and what it would do with one now. */
export interface BackendExplanation {
  upstream: string;
  weight: number;
  /** Share of the route's requests, 0 to 1. */
  share: number;
  /** `ok`, `panic` (no endpoint healthy, sent to all anyway), or why it answers itself. */
  verdict: 'ok' | 'panic' | 'circuit open' | 'no eligible endpoint' | 'unresolved';
  detail: string;
  circuitBreaker: { state: string; retryAfterSeconds?: number } | null;
  whenAllUnhealthy: 'panic' | 'fail';
  endpoints: EndpointExplanation[];
  eligible: number;
  /** Where the request would go: an eligible endpoint and the path after any rewrite; null when it goes nowhere. */
  url: string | null;
}

/** The answer the request gets. */
export interface Outcome {
  /** The status the gateway answers with itself; null when the upstream answers. */
  status: number | null;
  /** The gateway's error code (`rate_limited`, …); null when it is no error. */
  code: string | null;
  by: 'gateway' | 'upstream';
  message: string;
}

/** Everything explain says about one request. */
export interface Explanation {
  request: {
    method: string;
    host: string;
    path: string;
    query: string;
    listener: 'http' | 'https';
    /** The client address used for the rate-limit bucket, if given. */
    client: string | null;
    /** Where the request carries a token, never the token itself. */
    token: string | null;
  };
  table: { version: string; source: string } | null;
  /** Whether endpoint states and counters are a running gateway's (false from a file, offline). */
  live: boolean;
  outcome: Outcome;
  route: ShownRoute | null;
  match: {
    result: 'match' | 'not-found' | 'method-not-allowed' | 'bad-request' | 'no-table';
    /** Set for a CORS preflight: it was matched for the method it asks about. */
    preflightFor?: string;
    tier: string | null;
    rule: string;
    params?: Record<string, string>;
    matchedPrefix?: string;
    allow?: string[];
    outranked: Array<{ route: ShownRoute; rule: string }>;
    outrankedCount: number;
    nearMisses: Array<{ route: ShownRoute; failed: ShownMiss[] }>;
    nearMissCount: number;
  };
  stages: StageExplanation[];
  upstream: { path: string; backends: BackendExplanation[] } | null;
  /** Which data plane answered (set by whoever relays the question). */
  answeredBy?: string;
}

/** The exit status for scripts: 0 when the request reaches an upstream (or a redirect), 1 when the gateway refuses it. */
export function explanationExitCode(e: Explanation): number {
  return e.outcome.by === 'upstream' || (e.outcome.status !== null && e.outcome.status < 400) ? 0 : 1;
}

function routeName(r: ShownRoute | null): string {
  if (r === null) return '(none)';
  if ('hidden' in r) return '(a route in another namespace)';
  const src = r.source ? ` (${r.source.kind} ${r.source.namespace ? `${r.source.namespace}/` : ''}${r.source.name})` : '';
  return `${r.id}${src}`;
}

function routeShape(r: ShownRoute): string {
  if ('hidden' in r) return '';
  const hosts = r.hosts.length ? ` on ${r.hosts.join(', ')}` : '';
  return `${r.path.type} ${r.path.value}  ${r.methods.length ? r.methods.join(', ') : 'any method'}${hosts}`;
}

function pad(text: string, width: number): string {
  return text.length >= width ? `${text} ` : text + ' '.repeat(width - text.length);
}

/** The explanation as a terminal reads it. */
export function formatExplanation(e: Explanation): string {
  const out: string[] = [];
  const r = e.request;
  const status = e.outcome.status === null ? 'the upstream answers' : `${e.outcome.status}${e.outcome.code ? ` ${e.outcome.code}` : ''}`;
  out.push(`${r.method} ${r.path}${r.query} on ${r.host || '(no host)'} (${r.listener}) → ${status}`);
  out.push(`  ${e.outcome.message}`);
  if (e.table) out.push(`table ${e.table.version} from ${e.table.source}${e.live ? '' : ' (offline: no health checks or counters)'}${e.answeredBy ? `, answered by ${e.answeredBy}` : ''}`);
  out.push('');
  const m = e.match;
  if (e.route) {
    out.push(`route     ${routeName(e.route)}`);
    const shape = routeShape(e.route);
    if (shape) out.push(`          ${shape}`);
  }
  if (m.preflightFor) out.push(`preflight matched for ${m.preflightFor}`);
  out.push(`why       ${m.rule}`);
  if (m.params && Object.keys(m.params).length > 0) out.push(`params    ${Object.entries(m.params).map(([k, v]) => `${k}=${v}`).join(' ')}`);
  for (const o of m.outranked) out.push(`  beat    ${routeName(o.route)}: ${o.rule}`);
  if (m.outrankedCount > m.outranked.length) out.push(`  … and ${m.outrankedCount - m.outranked.length} more`);
  if (m.nearMisses.length > 0) {
    out.push(`near misses (${m.nearMissCount})`);
    for (const n of m.nearMisses) {
      out.push(`  ${routeName(n.route)}`);
      for (const f of n.failed) out.push(`      ${pad(f.what, 7)}${f.detail}`);
    }
    if (m.nearMissCount > m.nearMisses.length) out.push(`  … and ${m.nearMissCount - m.nearMisses.length} more`);
  }
  if (e.stages.length > 0) {
    out.push('stages');
    for (const s of e.stages) out.push(`  ${pad(s.stage, 14)}${pad(s.result, 12)}${s.detail}`);
  }
  if (e.upstream) {
    out.push(`upstream  path ${e.upstream.path}`);
    for (const b of e.upstream.backends) {
      const share = e.upstream.backends.length > 1 ? ` ${Math.round(b.share * 1000) / 10}%` : '';
      out.push(`  ${b.upstream}${share}: ${b.verdict}; ${b.detail}`);
      for (const ep of b.endpoints) {
        const extra = [ep.lastProbeError ? `last probe: ${ep.lastProbeError}` : '', ep.ejectedForMs !== undefined ? `back in ${Math.ceil(ep.ejectedForMs / 1000)}s` : ''].filter((x) => x !== '').join(', ');
        out.push(`      ${pad(ep.origin, 28)}${pad(ep.eligible ? 'eligible' : 'not eligible', 14)}health ${ep.health}, outlier ${ep.outlier}${extra ? ` (${extra})` : ''}`);
      }
      if (b.url) out.push(`      → ${b.url}`);
    }
  }
  return `${out.join('\n')}\n`;
}
