/**
 * Authentication: the token a client presents, checked by a TokenVerifier,
 * becomes `ctx.identity`; authorization (authorize.ts) follows.
 *
 * A route that requires authentication is never served to an unauthenticated
 * caller: without a token verifier configured, such a route answers 401. A
 * route that names roles or permissions requires authentication even if
 * `auth_required` was left false. Public routes do not look at tokens at all,
 * so a token presented there is neither checked nor turned into X-User-*
 * headers (and the client's own X-User-* headers are dropped everywhere).
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { GatewayError } from '../proxy/errors.ts';
import type { Identity, Stage } from './context.ts';
import type { Route } from '../contract/schema.ts';
import { authorizeStage, identityHeaderProblem } from './authorize.ts';

/** Checks a bearer token; rejects with a GatewayError (401) when it is not acceptable. */
export interface TokenVerifier {
  verify(token: string): Promise<Identity>;
  /** Where tokens are read from besides `Authorization: Bearer`. */
  readonly cookie?: string | undefined;
  readonly header?: string | undefined;
}

/** A 401 with the RFC 6750 challenge; `error` is e.g. "invalid_token". */
export function challenge(message: string, error?: string): GatewayError {
  const params = error ? `Bearer error="${error}", error_description="${message.replace(/["\\]/g, '')}"` : 'Bearer';
  return new GatewayError('unauthorized', message, { 'www-authenticate': params });
}

/** The token the client presented, or undefined. */
function extractToken(headers: Record<string, string | string[] | undefined>, verifier: TokenVerifier | undefined): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer[ ]+([^ ]+)[ ]*$/i.exec(auth);
    if (m) return m[1];
  }
  if (verifier?.header) {
    const v = headers[verifier.header.toLowerCase()];
    if (typeof v === 'string' && v !== '') return v;
  }
  if (verifier?.cookie && typeof headers.cookie === 'string') {
    for (const part of headers.cookie.split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq).trim() === verifier.cookie) return part.slice(eq + 1).trim();
    }
  }
  return undefined;
}

/**
 * Why a request offers more than one credential to a route that verifies
 * tokens, or undefined. Only one of them would be verified, and all of them
 * would be forwarded: an upstream that reads another one (a second cookie of
 * the same name, the Authorization header next to the cookie) would trust a
 * credential nobody checked. An Authorization header of any scheme counts.
 * The answer names where the credentials were, never their content.
 */
export function credentialConflict(rawHeaders: readonly string[], verifier: Pick<TokenVerifier, 'cookie' | 'header'>): string | undefined {
  const header = verifier.header?.toLowerCase();
  const found: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase();
    if (name === 'authorization') found.push('Authorization header');
    else if (header !== undefined && name === header) found.push(`${verifier.header as string} header`);
    else if (verifier.cookie !== undefined && name === 'cookie') {
      for (const part of (rawHeaders[i + 1] as string).split(';')) {
        const eq = part.indexOf('=');
        if (eq > 0 && part.slice(0, eq).trim() === verifier.cookie) found.push(`cookie "${verifier.cookie}"`);
      }
    }
  }
  return found.length > 1 ? `the request carries more than one credential (${found.join(', ')}); send exactly one` : undefined;
}

/** Whether a route needs a verified caller. */
export function requiresAuth(policy: Route['auth']): boolean {
  return policy.required || policy.roles.length > 0 || policy.permissions.length > 0;
}

/**
 * The verified caller of a request to a route that requires authentication,
 * or the answer the route gives instead: 400 for more than one credential or
 * an identity that cannot be forwarded, 401 for a missing or bad token.
 */
export async function authenticateRequest(req: Pick<IncomingMessage, 'headers' | 'rawHeaders'>, verifier: TokenVerifier): Promise<Identity | GatewayError> {
  const conflict = credentialConflict(req.rawHeaders, verifier);
  if (conflict !== undefined) return new GatewayError('bad_request', conflict);
  const token = extractToken(req.headers, verifier);
  if (token === undefined) return challenge('a bearer token is required');
  let identity: Identity;
  try {
    identity = await verifier.verify(token);
  } catch (err) {
    if (err instanceof GatewayError) return err;
    return challenge('the token could not be verified', 'invalid_token');
  }
  const problem = identityHeaderProblem(identity);
  if (problem !== undefined) return new GatewayError('bad_request', problem);
  return identity;
}

/** Where the request carries a token for the verifier, without the token: undefined when it carries none. */
export function tokenLocation(headers: IncomingHttpHeaders, verifier: TokenVerifier | undefined): string | undefined {
  if (extractToken(headers, verifier) === undefined) return undefined;
  if (typeof headers.authorization === 'string' && /^Bearer[ ]+[^ ]+[ ]*$/i.test(headers.authorization)) return 'Authorization header';
  if (verifier?.header && typeof headers[verifier.header.toLowerCase()] === 'string') return `${verifier.header} header`;
  return `cookie ${verifier?.cookie ?? ''}`.trim();
}

/** Builds the authentication and authorization stages for a route, or nothing when the route is public. */
export function authStages(route: Pick<Route, 'auth'>, verifier: TokenVerifier | undefined): Stage[] {
  const policy = route.auth;
  if (!requiresAuth(policy)) return [];
  if (!verifier) {
    return [() => challenge('this route requires authentication, and no token verification is configured (auth.jwt)', 'invalid_token')];
  }
  const authenticate: Stage = async (ctx) => {
    const caller = await authenticateRequest(ctx.req, verifier);
    if (caller instanceof GatewayError) return caller;
    ctx.identity = caller;
    return undefined;
  };
  const authorize = authorizeStage(policy);
  return authorize ? [authenticate, authorize] : [authenticate];
}
