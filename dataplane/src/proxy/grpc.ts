/**
 * gRPC over the gateway: recognising a gRPC call, its deadline, and the
 * status codes the gateway's own answers carry (gRPC clients read
 * `grpc-status`, not the HTTP status). Pure: no I/O.
 *
 * The mapping follows the gRPC status code definitions
 * (https://grpc.github.io/grpc/core/md_doc_statuscodes.html).
 */

/** gRPC status codes the gateway answers with. */
export const GRPC_STATUS = {
  OK: 0,
  CANCELLED: 1,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/** The gRPC status for each of the gateway's error codes (proxy/errors.ts); unknown codes are INTERNAL. */
const BY_ERROR_CODE: Record<string, number> = {
  bad_request: GRPC_STATUS.INVALID_ARGUMENT,
  unauthorized: GRPC_STATUS.UNAUTHENTICATED,
  forbidden: GRPC_STATUS.PERMISSION_DENIED,
  route_not_found: GRPC_STATUS.UNIMPLEMENTED,
  method_not_allowed: GRPC_STATUS.UNIMPLEMENTED,
  request_timeout: GRPC_STATUS.DEADLINE_EXCEEDED,
  payload_too_large: GRPC_STATUS.RESOURCE_EXHAUSTED,
  uri_too_long: GRPC_STATUS.INVALID_ARGUMENT,
  rate_limited: GRPC_STATUS.RESOURCE_EXHAUSTED,
  request_header_fields_too_large: GRPC_STATUS.RESOURCE_EXHAUSTED,
  internal_error: GRPC_STATUS.INTERNAL,
  backend_unresolved: GRPC_STATUS.UNAVAILABLE,
  bad_gateway: GRPC_STATUS.UNAVAILABLE,
  route_unavailable: GRPC_STATUS.UNAVAILABLE,
  no_healthy_upstream: GRPC_STATUS.UNAVAILABLE,
  circuit_open: GRPC_STATUS.UNAVAILABLE,
  upstream_timeout: GRPC_STATUS.DEADLINE_EXCEEDED,
};

/** The gRPC status for a gateway error code. */
export function grpcStatusFor(code: string): number {
  return BY_ERROR_CODE[code] ?? GRPC_STATUS.INTERNAL;
}

/** Whether a request is a gRPC call: `application/grpc`, `application/grpc+proto`, `application/grpc-web...` excluded (that is HTTP/1.1 framing). */
export function isGrpcContentType(contentType: string | undefined): boolean {
  if (contentType === undefined || contentType.length < 16) return false;
  const lower = contentType.toLowerCase();
  if (!lower.startsWith('application/grpc')) return false;
  const next = lower.charCodeAt(16);
  // End, "+proto"/"+json", or ";" parameters; not "-web".
  return Number.isNaN(next) || next === 43 || next === 59;
}

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/**
 * `grpc-timeout` in milliseconds: at most 8 digits and a unit (H, M, S, m,
 * u, n), per the gRPC over HTTP/2 spec. Undefined when absent or malformed
 * (a malformed one is ignored, as gRPC servers do).
 */
export function parseGrpcTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (m === null) return undefined;
  return Number(m[1]) * (UNIT_MS[m[2] as string] as number);
}

/** `grpc-message`: percent-encoded outside printable ASCII, as the spec asks. */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
