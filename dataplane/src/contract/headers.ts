/**
 * Which headers a route's header modifiers may change. The table producers
 * refuse modifiers that name others, and the data plane leaves them alone
 * whatever a table says.
 */

/**
 * Request headers a route may not change: the gateway vouches for identity
 * (`X-User-*`), forwarding and request-id headers, and owns framing. A route
 * that could set them would let one namespace's HTTPRoute speak for callers
 * the gateway authenticated, or desynchronise message framing. The Host header
 * changes only through a rewrite.
 */
const PROTECTED_REQUEST = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'te', 'trailer', 'keep-alive', 'proxy-connection', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-real-ip', 'forwarded', 'x-request-id']);
/** Response headers a route may not change: framing and the gateway's own request id. */
const PROTECTED_RESPONSE = new Set(['content-length', 'transfer-encoding', 'connection', 'upgrade', 'trailer', 'keep-alive', 'x-request-id']);

/** Whether a route may change this request header (any case). */
export function requestHeaderModifiable(name: string): boolean {
  const lower = name.toLowerCase();
  return !PROTECTED_REQUEST.has(lower) && !lower.startsWith('x-user-');
}

/** Whether a route may change this response header (any case). */
export function responseHeaderModifiable(name: string): boolean {
  return !PROTECTED_RESPONSE.has(name.toLowerCase());
}
