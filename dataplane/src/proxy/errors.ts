/**
 * Every answer the gateway gives on its own behalf: one code, one status, one
 * JSON shape `{"error":{"code","message","requestId"}}`. Clients and dashboards
 * key on `code`, which never changes meaning.
 *
 * This module imports nothing: anything may raise these errors, and writing
 * one as a response is the server's part (server/respond.ts).
 */

/** The stable error codes and the HTTP status each maps to. */
const ERROR_STATUS = {
  bad_request: 400,
  unauthorized: 401,
  forbidden: 403,
  upgrade_not_allowed: 403,
  route_not_found: 404,
  method_not_allowed: 405,
  request_timeout: 408,
  payload_too_large: 413,
  uri_too_long: 414,
  rate_limited: 429,
  request_header_fields_too_large: 431,
  internal_error: 500,
  backend_unresolved: 500,
  bad_gateway: 502,
  route_unavailable: 503,
  no_healthy_upstream: 503,
  circuit_open: 503,
  upstream_timeout: 504,
} as const;
export type ErrorCode = keyof typeof ERROR_STATUS;

/** An error the gateway answers itself, with optional extra response headers. */
export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly headers: Record<string, string> | undefined;
  constructor(code: ErrorCode, message: string, headers?: Record<string, string>) {
    super(message);
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.headers = headers;
  }
}

/** The JSON body for an error; shared by every listener. */
export function errorBody(code: ErrorCode, message: string, requestId: string | undefined): string {
  return JSON.stringify({ error: { code, message, ...(requestId ? { requestId } : {}) } });
}
