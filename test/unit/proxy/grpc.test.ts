/** The pure parts of gRPC handling: recognising a call, its deadline, and the statuses of the gateway's own answers. */
import { describe, expect, it } from 'vitest';
import { encodeGrpcMessage, GRPC_STATUS, grpcStatusFor, isGrpcContentType, parseGrpcTimeout } from '../../../dataplane/src/proxy/grpc.ts';

describe('gRPC', () => {
  it.each([
    ['application/grpc', true],
    ['application/grpc+proto', true],
    ['Application/GRPC+json', true],
    ['application/grpc;charset=utf-8', true],
    ['application/grpc-web', false],
    ['application/grpc-web+proto', false],
    ['application/grpcx', false],
    ['application/json', false],
    [undefined, false],
  ])('%s is a gRPC call: %s', (type, expected) => {
    expect(isGrpcContentType(type)).toBe(expected);
  });

  it.each([
    ['1H', 3_600_000],
    ['2M', 120_000],
    ['3S', 3000],
    ['250m', 250],
    ['1500u', 1.5],
    ['99999999n', 99.999999],
  ])('grpc-timeout %s is %d ms', (value, ms) => {
    expect(parseGrpcTimeout(value)).toBeCloseTo(ms, 9);
  });

  it.each(['', '10', 'm', '123456789S', '1.5S', '-1S', '10s', '10 S'])('ignores a malformed grpc-timeout %j', (value) => {
    expect(parseGrpcTimeout(value)).toBeUndefined();
  });

  it('maps the gateway error codes to the statuses gRPC clients expect', () => {
    expect(grpcStatusFor('unauthorized')).toBe(GRPC_STATUS.UNAUTHENTICATED);
    expect(grpcStatusFor('forbidden')).toBe(GRPC_STATUS.PERMISSION_DENIED);
    expect(grpcStatusFor('rate_limited')).toBe(GRPC_STATUS.RESOURCE_EXHAUSTED);
    expect(grpcStatusFor('no_healthy_upstream')).toBe(GRPC_STATUS.UNAVAILABLE);
    expect(grpcStatusFor('circuit_open')).toBe(GRPC_STATUS.UNAVAILABLE);
    expect(grpcStatusFor('bad_gateway')).toBe(GRPC_STATUS.UNAVAILABLE);
    expect(grpcStatusFor('upstream_timeout')).toBe(GRPC_STATUS.DEADLINE_EXCEEDED);
    expect(grpcStatusFor('route_not_found')).toBe(GRPC_STATUS.UNIMPLEMENTED);
    expect(grpcStatusFor('something_new')).toBe(GRPC_STATUS.INTERNAL);
  });

  it('percent-encodes grpc-message outside printable ASCII, and "%" itself', () => {
    expect(encodeGrpcMessage('no route for POST /a.B/C')).toBe('no route for POST /a.B/C');
    expect(encodeGrpcMessage('100% dé\n')).toBe('100%25 d%C3%A9%0A');
  });
});
