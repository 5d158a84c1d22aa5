/**
 * CORS (Fetch standard, "CORS protocol"): the gateway answers preflights for
 * routes with a CORS policy and adds the response headers to actual requests.
 *
 * - A preflight (OPTIONS with Origin and Access-Control-Request-Method) is
 *   answered by the gateway, before authentication and before method
 *   matching, for the route that would serve the requested method; it never
 *   reaches the upstream. Allowed: 204 with the allowed methods, headers and
 *   max age. Not allowed: 403 without any Access-Control-Allow-* header.
 * - An actual request from an allowed origin gets Access-Control-Allow-Origin
 *   (and -Credentials, -Expose-Headers); from any other origin it gets none.
 *   Cross-origin requests are not refused: the browser enforces CORS, and the
 *   route's own rules (auth, rate limits) apply either way.
 * - `*` allows any origin only without credentials. With credentials the
 *   answer is always the one listed origin, never `*` and never an echo of an
 *   origin that is not listed.
 * - Whenever the answer depends on the Origin, the response says
 *   `Vary: Origin`, so caches do not hand one origin's answer to another.
 *
 * Origins are compared as browsers serialize them: scheme://host[:port],
 * lower case, no default port, no path. `https://*.example.com` allows any
 * subdomain (not example.com itself) over https on the default port.
 */
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import type { RequestContext, Stage } from './context.ts';
import { GatewayError } from '../proxy/errors.ts';
import { respondWithError } from '../server/respond.ts';
import type { CorsPolicy } from '../contract/policy.ts';

/** A policy prepared for matching. */
export interface CompiledCors {
  anyOrigin: boolean;
  origins: ReadonlySet<string>;
  /** `scheme://*.suffix[:port]` entries: scheme and the ".suffix[:port]" tail. */
  wildcards: readonly { scheme: string; tail: string }[];
  methods: readonly string[];
  anyHeader: boolean;
  headers: ReadonlySet<string>;
  headersValue: string;
  exposed: string;
  credentials: boolean;
  maxAgeSeconds: number;
}

/** Methods a browser sends cross-origin without asking for them (Fetch: CORS-safelisted methods). */
const SAFELISTED_METHODS = new Set(['GET', 'HEAD', 'POST']);
/** Request headers a browser never asks about, or asks about only for values we could not tell apart here. */
const SAFELISTED_HEADERS = new Set(['accept', 'accept-language', 'content-language', 'content-type', 'range']);

/** The serialized origin of a configured entry: lower case, default port dropped, no trailing slash. */
export function normalizeOrigin(entry: string): string {
  const trimmed = entry.trim().replace(/\/+$/, '');
  if (trimmed === '*' || trimmed.toLowerCase() === 'null') return trimmed.toLowerCase();
  const wildcard = /^([a-z][a-z0-9+.-]*):\/\/\*\.(.+)$/i.exec(trimmed);
  if (wildcard) {
    const probe = safeOrigin(`${wildcard[1] as string}://x.${wildcard[2] as string}`);
    return probe ? probe.replace('://x.', '://*.') : trimmed.toLowerCase();
  }
  return safeOrigin(trimmed) ?? trimmed.toLowerCase();
}

function safeOrigin(text: string): string | undefined {
  try {
    const origin = new URL(text).origin;
    return origin === 'null' ? undefined : origin;
  } catch {
    return undefined;
  }
}

const compiledPolicies = new WeakMap<CorsPolicy, CompiledCors>();

/** Prepares a route's policy once; the same table object always gives the same compiled policy. */
export function compileCors(policy: CorsPolicy): CompiledCors {
  let compiled = compiledPolicies.get(policy);
  if (compiled) return compiled;
  const origins = new Set<string>();
  const wildcards: { scheme: string; tail: string }[] = [];
  let anyOrigin = false;
  for (const entry of policy.allowedOrigins) {
    const o = normalizeOrigin(entry);
    if (o === '*') anyOrigin = true;
    else if (o.includes('://*.')) {
      const [scheme, rest] = o.split('://*') as [string, string];
      wildcards.push({ scheme, tail: rest });
    } else origins.add(o);
  }
  const headerNames = policy.allowedHeaders.map((h) => h.trim()).filter((h) => h !== '');
  compiled = {
    // "*" with credentials would let every site read responses made with the user's cookies: it allows nothing then.
    anyOrigin: anyOrigin && !policy.allowCredentials,
    origins,
    wildcards,
    methods: policy.allowedMethods.map((m) => m.toUpperCase()),
    anyHeader: headerNames.includes('*'),
    headers: new Set(headerNames.map((h) => h.toLowerCase())),
    headersValue: headerNames.filter((h) => h !== '*').join(', '),
    exposed: policy.exposedHeaders.join(', '),
    credentials: policy.allowCredentials,
    maxAgeSeconds: policy.maxAgeSeconds,
  };
  compiledPolicies.set(policy, compiled);
  return compiled;
}

/** Whether a request's Origin header value is allowed by the policy. */
export function originAllowed(c: CompiledCors, origin: string): boolean {
  if (c.anyOrigin) return true;
  const o = origin.toLowerCase();
  if (c.origins.has(o)) return true;
  for (const w of c.wildcards) {
    if (!o.startsWith(`${w.scheme}://`) || !o.endsWith(w.tail)) continue;
    const label = o.slice(w.scheme.length + 3, o.length - w.tail.length);
    // At least one label, and only host characters: "https://evil.com/.example.com" never matches.
    if (/^[a-z0-9-]+(\.[a-z0-9-]+)*$/.test(label)) return true;
  }
  return false;
}

/** Adds tokens to the Vary header already set on the response, without repeating any. */
function addVary(res: ServerResponse, tokens: string): void {
  const existing = res.getHeader('vary');
  const list = typeof existing === 'string' ? existing.split(',').map((s) => s.trim()).filter((s) => s !== '') : [];
  for (const t of tokens.split(', ')) if (!list.some((v) => v.toLowerCase() === t.toLowerCase())) list.push(t);
  res.setHeader('vary', list.join(', '));
}

/** Whether the request is a CORS preflight. */
export function isPreflight(method: string, headers: IncomingHttpHeaders): boolean {
  return method === 'OPTIONS' && typeof headers.origin === 'string' && typeof headers['access-control-request-method'] === 'string';
}

/** The stage that adds CORS headers to actual (non-preflight) requests. */
export function corsStage(policy: CorsPolicy): Stage {
  const c = compileCors(policy);
  return (ctx) => {
    const headers = (ctx.responseHeaders ??= {});
    if (c.anyOrigin) {
      // The same answer for every origin: no Vary needed.
      headers['access-control-allow-origin'] = '*';
      if (c.exposed !== '') headers['access-control-expose-headers'] = c.exposed;
      return undefined;
    }
    // Set directly so that an upstream's own Vary (e.g. Accept-Encoding) is not replaced by ours.
    addVary(ctx.res, 'Origin');
    const origin = ctx.req.headers.origin;
    if (typeof origin !== 'string' || !originAllowed(c, origin)) return undefined;
    headers['access-control-allow-origin'] = origin;
    if (c.credentials) headers['access-control-allow-credentials'] = 'true';
    if (c.exposed !== '') headers['access-control-expose-headers'] = c.exposed;
    return undefined;
  };
}

function refuse(ctx: RequestContext, message: string): void {
  respondWithError(ctx, new GatewayError('forbidden', `CORS preflight refused: ${message}`));
}

/**
 * Answers a preflight for `policy` (the policy of the route that would serve
 * the requested method). Always ends the response.
 */
export function answerPreflight(ctx: RequestContext, policy: CorsPolicy): void {
  addVary(ctx.res, 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers');
  const verdict = preflightVerdict(policy, ctx.req.headers);
  if (!verdict.allowed) return refuse(ctx, verdict.reason);
  ctx.res.writeHead(204, { ...verdict.headers, 'x-request-id': ctx.requestId });
  ctx.res.end();
}

/** The answer to a preflight (its Origin, Access-Control-Request-Method and -Headers) under a policy: the headers of a 204, or why it is refused. */
export function preflightVerdict(policy: CorsPolicy, reqHeaders: IncomingHttpHeaders): { allowed: true; headers: Record<string, string> } | { allowed: false; reason: string } {
  const c = compileCors(policy);
  const origin = reqHeaders.origin as string;
  const method = reqHeaders['access-control-request-method'] as string;
  if (!originAllowed(c, origin)) return { allowed: false, reason: `origin ${JSON.stringify(origin.slice(0, 200))} is not allowed` };
  if (!SAFELISTED_METHODS.has(method) && !c.methods.includes(method)) return { allowed: false, reason: `method ${method} is not allowed` };
  const requested = (reqHeaders['access-control-request-headers'] ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h !== '');
  if (!c.anyHeader) {
    const denied = requested.filter((h) => !c.headers.has(h) && !SAFELISTED_HEADERS.has(h));
    if (denied.length > 0) return { allowed: false, reason: `request header${denied.length > 1 ? 's' : ''} ${denied.join(', ').slice(0, 200)} not allowed` };
  }
  const headers: Record<string, string> = {
    'access-control-allow-origin': c.anyOrigin ? '*' : origin,
    'access-control-allow-methods': c.methods.join(', '),
  };
  if (c.credentials) headers['access-control-allow-credentials'] = 'true';
  // A literal "*" means "any header" only without credentials; with them, echo what was asked (already checked above).
  const allowHeaders = c.anyHeader ? (c.credentials ? requested.join(', ') : '*') : c.headersValue;
  if (allowHeaders !== '') headers['access-control-allow-headers'] = allowHeaders;
  if (c.maxAgeSeconds > 0) headers['access-control-max-age'] = String(c.maxAgeSeconds);
  return { allowed: true, headers };
}
