/** The retry decision alone: policy, method, body, attempts, client and deadline, without a socket. */
import { describe, expect, it } from 'vitest';
import { conditionsOf, decideRetry, namedByPolicy, retriesAllowed, type RetryInput, type RetryPolicy } from '../../../dataplane/src/proxy/retry.ts';

const policy = (over: Partial<RetryPolicy> = {}): RetryPolicy => ({ attempts: 2, on: ['connect-failure', 'reset', '503'], nonIdempotent: false, backoffMs: 25, ...over });
const input = (over: Partial<RetryInput> = {}): RetryInput => ({
  policy: policy(),
  method: 'GET',
  hasBody: false,
  attempt: 0,
  result: { failure: 'connect-failure' },
  delayMs: 25,
  now: 1000,
  deadline: 2000,
  clientGone: false,
  ...over,
});

describe('retry decision', () => {
  it('retries a named failure of an idempotent request with attempts and time left', () => {
    expect(decideRetry(input())).toEqual({ retry: true });
    expect(decideRetry(input({ result: { failure: 'reset' } }))).toEqual({ retry: true });
    expect(decideRetry(input({ result: { status: 503 } }))).toEqual({ retry: true });
  });

  it('does not retry what the policy does not name', () => {
    expect(decideRetry(input({ result: { status: 500 } }))).toEqual({ retry: false, reason: 'not-named' });
    expect(decideRetry(input({ result: { failure: 'timeout' } }))).toEqual({ retry: false, reason: 'not-named' });
    expect(decideRetry(input({ result: { failure: 'other' } }))).toEqual({ retry: false, reason: 'not-named' });
    expect(decideRetry(input({ policy: policy({ on: ['503'] }), result: { failure: 'reset' } }))).toEqual({ retry: false, reason: 'not-named' });
  });

  it('never retries without a policy, with a streamed body, or a non-idempotent method unless the policy opts in', () => {
    expect(decideRetry(input({ policy: undefined }))).toEqual({ retry: false, reason: 'no-policy' });
    expect(decideRetry(input({ hasBody: true }))).toEqual({ retry: false, reason: 'no-policy' });
    expect(decideRetry(input({ method: 'POST' }))).toEqual({ retry: false, reason: 'no-policy' });
    expect(decideRetry(input({ method: 'POST', policy: policy({ nonIdempotent: true }) }))).toEqual({ retry: true });
    expect(decideRetry(input({ method: 'POST', hasBody: true, policy: policy({ nonIdempotent: true }) }))).toEqual({ retry: false, reason: 'no-policy' });
    for (const m of ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']) expect(retriesAllowed(policy(), m, false)).toBe(2);
    expect(retriesAllowed(policy(), 'PATCH', false)).toBe(0);
  });

  it('stops after the policy attempts', () => {
    expect(decideRetry(input({ attempt: 1 }))).toEqual({ retry: true });
    expect(decideRetry(input({ attempt: 2 }))).toEqual({ retry: false, reason: 'attempts-exhausted' });
    expect(decideRetry(input({ policy: policy({ attempts: 0 }) }))).toEqual({ retry: false, reason: 'no-policy' });
  });

  it('needs a client still there and time for the backoff before the deadline', () => {
    expect(decideRetry(input({ clientGone: true }))).toEqual({ retry: false, reason: 'client-gone' });
    expect(decideRetry(input({ now: 1974, delayMs: 25 }))).toEqual({ retry: true });
    expect(decideRetry(input({ now: 1975, delayMs: 25 }))).toEqual({ retry: false, reason: 'deadline' });
    expect(decideRetry(input({ now: 2500 }))).toEqual({ retry: false, reason: 'deadline' });
  });

  it('parses a policy once and names statuses exactly', () => {
    const p = policy({ on: ['502', '503', 'reset'] });
    expect(conditionsOf(p)).toBe(conditionsOf(p));
    const c = conditionsOf(p);
    expect(namedByPolicy(c, { status: 502 })).toBe(true);
    expect(namedByPolicy(c, { status: 504 })).toBe(false);
    expect(namedByPolicy(c, { failure: 'connect-failure' })).toBe(false);
    expect(namedByPolicy(c, { failure: 'reset' })).toBe(true);
  });
});
