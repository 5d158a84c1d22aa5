/**
 * What a route asks to change on the way through: the path and Host the
 * upstream receives, request and response headers, and redirects answered
 * instead of proxying. Pure functions over header lists and the request
 * context, built for the Gateway API's HTTPRoute filters and usable by any
 * route in the table.
 */
import type { HeaderModifier, Redirect } from '../contract/schema.ts';
export { requestHeaderModifiable, responseHeaderModifiable } from '../contract/headers.ts';
import type { RequestContext } from '../pipeline/context.ts';

/**
 * Applies a modifier to a flat `[name, value, name, value, …]` list: removes
 * the `remove` and `set` names, then appends `set`, then `add`. Names the
 * `allowed` check refuses are left as they are (the producer refuses them too).
 */
export function applyHeaderModifier(list: string[], mod: HeaderModifier, allowed: (lower: string) => boolean): string[] {
  const drop = new Set<string>();
  for (const n of mod.remove ?? []) drop.add(n.toLowerCase());
  for (const h of mod.set ?? []) drop.add(h.name.toLowerCase());
  for (const n of [...drop]) if (!allowed(n)) drop.delete(n);
  const out: string[] = [];
  for (let i = 0; i < list.length; i += 2) {
    if (!drop.has((list[i] as string).toLowerCase())) out.push(list[i] as string, list[i + 1] as string);
  }
  for (const h of mod.set ?? []) if (allowed(h.name.toLowerCase())) out.push(h.name, h.value);
  for (const h of mod.add ?? []) if (allowed(h.name.toLowerCase())) out.push(h.name, h.value);
  return out;
}

/**
 * `rest` appended to `base`: the part after a matched prefix keeps its own
 * leading slash, and a base ending in `/` does not double it, so `/one` +
 * `/two` is `/one/two` and `/` + `/two` is `/two`.
 */
function joinPath(base: string, rest: string): string {
  if (rest === '') return base;
  if (base.endsWith('/')) return base + (rest.startsWith('/') ? rest.slice(1) : rest);
  return rest.startsWith('/') ? base + rest : `${base}/${rest}`;
}

/** The path (with query) the upstream receives: the request's, or the route's rewrite of it. */
export function upstreamPath(ctx: Pick<RequestContext, 'route' | 'path' | 'query' | 'matchedPrefix'>): string {
  const route = ctx.route;
  if (route.rewriteFullPath !== undefined) return route.rewriteFullPath + ctx.query;
  const rewrite = route.rewritePath;
  if (rewrite === undefined) return ctx.path + ctx.query;
  if (route.path.type === 'Exact') return rewrite + ctx.query;
  // Prefix and trailing-* routes replace only the part that matched.
  return joinPath(rewrite, ctx.path.slice(ctx.matchedPrefix.length)) + ctx.query;
}

const DEFAULT_PORT: Readonly<Record<string, number>> = { http: 80, https: 443 };

/** The host and port of a Host header (`a.test:8080`, `[::1]:80`); the port is undefined when absent. */
function splitHost(host: string): { name: string; port: number | undefined } {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d{1,5}))?$/.exec(host);
  if (m === null) return { name: host, port: undefined };
  return { name: m[1] as string, port: m[2] === undefined ? undefined : Number(m[2]) };
}

/**
 * The Location of a redirect (Gateway API RequestRedirect). The scheme, host
 * and path are the request's unless the redirect names them; the query is
 * kept. The port is the redirect's; else the default port of its scheme when
 * it names one; else the port the client addressed (its Host header, which
 * carries the listener's port whenever that is not the scheme's default).
 * A default port is left out.
 */
export function redirectLocation(ctx: Pick<RequestContext, 'route' | 'path' | 'query' | 'matchedPrefix' | 'tls' | 'host'>, r: Redirect): string {
  const scheme = r.scheme ?? (ctx.tls ? 'https' : 'http');
  const requested = splitHost(ctx.host);
  const host = r.hostname ?? requested.name;
  const port = r.port ?? (r.scheme !== undefined ? DEFAULT_PORT[r.scheme] : requested.port);
  let path = ctx.path;
  if (r.path?.type === 'Full') path = r.path.value;
  else if (r.path?.type === 'Prefix') path = ctx.route.path.type === 'Exact' ? r.path.value : joinPath(r.path.value, ctx.path.slice(ctx.matchedPrefix.length));
  const portPart = port === undefined || port === DEFAULT_PORT[scheme] ? '' : `:${port}`;
  return `${scheme}://${host}${portPart}${path}${ctx.query}`;
}
