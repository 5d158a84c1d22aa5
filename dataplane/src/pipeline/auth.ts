/**
 * Authentication and authorization stages. A route that requires
 * authentication is never served to an unauthenticated caller: without a
 * token verifier configured, such a route answers 401.
 */
import { GatewayError } from '../proxy/errors.ts';
import type { Identity, Stage } from './context.ts';
import type { Route } from '../table/schema.ts';

/** Checks a bearer token; rejects with a GatewayError (401) when it is not acceptable. */
export interface TokenVerifier {
  verify(token: string): Promise<Identity>;
  /** Where tokens are read from besides `Authorization: Bearer`. */
  readonly cookie?: string | undefined;
  readonly header?: string | undefined;
}

function challenge(message: string, error?: string): GatewayError {
  const params = error ? `Bearer error="${error}", error_description="${message.replace(/["\\]/g, '')}"` : 'Bearer';
  return new GatewayError('unauthorized', message, { 'www-authenticate': params });
}

/** The token the client presented, or undefined. */
export function extractToken(headers: Record<string, string | string[] | undefined>, verifier: TokenVerifier | undefined): string | undefined {
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

/** Builds the auth stage for a route, or nothing when the route is public. */
export function authStages(route: Route, verifier: TokenVerifier | undefined): Stage[] {
  const policy = route.auth;
  if (!policy.required) return [];
  if (!verifier) {
    return [() => challenge('this route requires authentication, and no token verification is configured (auth.jwt)', 'invalid_token')];
  }
  const roles = policy.roles;
  const permissions = policy.permissions;
  return [
    async (ctx) => {
      const token = extractToken(ctx.req.headers, verifier);
      if (token === undefined) return challenge('a bearer token is required');
      try {
        ctx.identity = await verifier.verify(token);
      } catch (err) {
        if (err instanceof GatewayError) return err;
        return challenge('the token could not be verified', 'invalid_token');
      }
      const id = ctx.identity;
      if (roles.length > 0 && !roles.some((r) => id.roles.includes(r))) {
        return new GatewayError('forbidden', `this route requires one of the roles: ${roles.join(', ')}`);
      }
      const missing = permissions.filter((p) => !id.permissions.includes(p));
      if (missing.length > 0) return new GatewayError('forbidden', `this route requires the permissions: ${missing.join(', ')}`);
      return undefined;
    },
  ];
}
