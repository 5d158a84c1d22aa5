/**
 * Authorization: what a verified caller may do on a route, and whether the
 * identity can be vouched for to the upstream at all.
 *
 * The upstream learns the caller from `X-User-ID`, `X-User-Roles` and
 * `X-User-Permissions` (roles and permissions comma-separated). Those headers
 * are only as trustworthy as their spelling is unambiguous, so an identity is
 * refused (400) rather than forwarded when a value:
 * - holds a control character, CR or LF (header injection; undici would throw);
 * - holds anything outside printable ASCII: such bytes travel as Latin-1 and an
 *   upstream decoding UTF-8 may map different subjects to the same string;
 * - starts or ends with whitespace, which HTTP strips (" admin" would arrive
 *   as "admin");
 * - is a role or permission containing a comma, which would read as two
 *   entries of the list ("user,admin").
 */
import { GatewayError } from '../proxy/errors.ts';
import type { Identity, Stage } from './context.ts';
import type { Route } from '../contract/schema.ts';

const PRINTABLE_ASCII = /^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/;

/** Why an identity cannot be forwarded in headers, or undefined when it can. */
export function identityHeaderProblem(identity: Identity): string | undefined {
  if (!PRINTABLE_ASCII.test(identity.subject)) return 'the token subject (sub) cannot be forwarded safely: use printable ASCII without leading or trailing spaces';
  for (const [what, list] of [['role', identity.roles], ['permission', identity.permissions]] as const) {
    for (const v of list) {
      if (!PRINTABLE_ASCII.test(v) || v.includes(',')) return `a ${what} in the token cannot be forwarded safely: use printable ASCII without commas or surrounding spaces`;
    }
  }
  return undefined;
}

function forbidden(message: string): GatewayError {
  // RFC 6750 3.1: a valid token without enough privileges is "insufficient_scope".
  return new GatewayError('forbidden', message, { 'www-authenticate': `Bearer error="insufficient_scope", error_description="${message.replace(/["\\]/g, '')}"` });
}

/** The check of a route's `roles` (any of) and `permissions` (all of); undefined when the route asks for neither. */
export function authorizeStage(policy: Route['auth']): Stage | undefined {
  if (policy.roles.length === 0 && policy.permissions.length === 0) return undefined;
  return (ctx) => authorizationFailure(policy, ctx.identity);
}

/** The 403 a caller gets on a route with this policy (any of `roles`, all of `permissions`), or undefined when it may pass. */
export function authorizationFailure(policy: Route['auth'], id: Identity | undefined): GatewayError | undefined {
  const { roles, permissions } = policy;
  if (roles.length === 0 && permissions.length === 0) return undefined;
  if (!id) return forbidden('this route requires an authenticated caller');
  if (roles.length > 0 && !roles.some((r) => id.roles.includes(r))) return forbidden(`this route requires one of the roles: ${roles.join(', ')}`);
  const missing = permissions.filter((p) => !id.permissions.includes(p));
  if (missing.length > 0) return forbidden(`this route requires the permissions: ${missing.join(', ')}`);
  return undefined;
}
