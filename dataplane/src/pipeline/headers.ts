/**
 * Route-independent rules about request header names, checked before
 * matching (with the URL length, header count and Host checks of limits.ts).
 *
 * Header names with "_". CGI (RFC 3875 4.1.18), WSGI, Rack and PHP turn a
 * header name into a variable by upper-casing it and replacing "-" with "_",
 * so `X_User_ID` and `X-User-ID` become the same `HTTP_X_USER_ID`, and which
 * one wins depends on the framework. `server.headers_with_underscores` says
 * what happens to such names, as Envoy's `headers_with_underscores_action`
 * and nginx's `underscores_in_headers` do: "reject" refuses the request here;
 * "drop" and "allow" are applied where the upstream request is built
 * (proxy/forward.ts).
 *
 * More than one Authorization header. Only one could be verified, and all of
 * them would be forwarded, so such a request is refused on every route (RFC
 * 9110 11.6.2 defines one credential per field; a list makes no sense for it).
 * Routes that verify tokens also refuse a token in more than one place
 * (pipeline/auth.ts, credentialConflict).
 */
import type { IncomingMessage } from 'node:http';
import { GatewayError } from '../proxy/errors.ts';

/** `server.headers_with_underscores`. */
export type UnderscoreHeaderAction = 'drop' | 'reject' | 'allow';

/** What the header rules need from the config. */
export interface HeaderRuleOptions {
  headersWithUnderscores: UnderscoreHeaderAction;
}

/** The first header name in `rawHeaders` that contains "_", or undefined. */
export function firstUnderscoreHeader(rawHeaders: readonly string[]): string | undefined {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (name.includes('_')) return name;
  }
  return undefined;
}

/** The check run on each request head before routing; undefined lets the request continue. */
export function headerRulesCheck(options: HeaderRuleOptions): (req: IncomingMessage) => GatewayError | undefined {
  const rejectUnderscores = options.headersWithUnderscores === 'reject';
  return (req) => {
    let authorization = 0;
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] as string;
      if (name.length === 13 && name.toLowerCase() === 'authorization' && ++authorization > 1) {
        return new GatewayError('bad_request', 'the request has more than one Authorization header; send exactly one');
      }
    }
    if (rejectUnderscores) {
      const name = firstUnderscoreHeader(req.rawHeaders);
      if (name !== undefined) {
        return new GatewayError('bad_request', `header "${name}" contains "_"; this gateway refuses header names with underscores (server.headers_with_underscores: reject)`);
      }
    }
    return undefined;
  };
}
