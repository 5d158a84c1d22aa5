/**
 * Whether to retry, as a pure function of the route's policy, the request and
 * what the last attempt came to. The loop in proxy.ts asks; it keeps the
 * state (attempt count, the retry budget's slot, the backoff it drew) and
 * this module keeps the rules. undici's interceptor/retry.js has the same
 * split: its `retry` option is a function from the error and state to a
 * decision.
 *
 * A retry needs: the route's policy to name the failure (or status), an
 * idempotent method (or the policy's opt-in), no streamed request body (it
 * cannot be sent twice), attempts left, a client still there, and time for
 * the backoff and another try before the route's deadline. The retry budget
 * is the loop's last check, because taking a slot has an effect.
 */
import type { Route } from '../contract/schema.ts';

/** A route's retry policy as the table gives it. */
export type RetryPolicy = NonNullable<Route['retries']>;

/** Methods a retry may repeat without the policy's opt-in (RFC 9110 section 9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);

/** A policy's `on` list, parsed once per policy object. */
export interface RetryConditions {
  connectFailure: boolean;
  reset: boolean;
  statuses: ReadonlySet<number>;
}

const conditionsCache = new WeakMap<RetryPolicy, RetryConditions>();

/** The conditions of a policy (cached by object: a table's policy objects live as long as the table). */
export function conditionsOf(policy: RetryPolicy): RetryConditions {
  let c = conditionsCache.get(policy);
  if (!c) {
    c = {
      connectFailure: policy.on.includes('connect-failure'),
      reset: policy.on.includes('reset'),
      statuses: new Set(policy.on.filter((o) => /^\d+$/.test(o)).map(Number)),
    };
    conditionsCache.set(policy, c);
  }
  return c;
}

/** How many retries a request may make at most under `policy`: 0 without one, for a streamed body, or a non-idempotent method the policy does not opt in. */
export function retriesAllowed(policy: RetryPolicy | undefined, method: string, hasBody: boolean): number {
  if (policy === undefined || hasBody) return 0;
  return IDEMPOTENT.has(method) || policy.nonIdempotent ? policy.attempts : 0;
}

/** What an attempt came to, as far as retrying goes: an answer's status, or a transport failure. */
export type AttemptResult = { status: number } | { failure: 'connect-failure' | 'reset' | 'timeout' | 'other' };

/** Everything a retry decision reads; `now`, `deadline` and `delayMs` in the same clock's milliseconds. */
export interface RetryInput {
  policy: RetryPolicy | undefined;
  method: string;
  hasBody: boolean;
  /** 0 for the first attempt. */
  attempt: number;
  result: AttemptResult;
  /** The backoff drawn for the retry that would follow. */
  delayMs: number;
  now: number;
  deadline: number;
  /** The client closed its side: nobody would get the retried answer. */
  clientGone: boolean;
}

/** Why a request is not retried. */
export type NoRetryReason = 'no-policy' | 'attempts-exhausted' | 'not-named' | 'client-gone' | 'deadline';

export type RetryDecision = { retry: true } | { retry: false; reason: NoRetryReason };

/** Whether the policy names this result. */
export function namedByPolicy(conditions: RetryConditions, result: AttemptResult): boolean {
  if ('status' in result) return conditions.statuses.has(result.status);
  return result.failure === 'connect-failure' ? conditions.connectFailure : result.failure === 'reset' ? conditions.reset : false;
}

/** The decision after an attempt; the budget is not consulted here (see the module comment). */
export function decideRetry(input: RetryInput): RetryDecision {
  const max = retriesAllowed(input.policy, input.method, input.hasBody);
  if (max === 0) return { retry: false, reason: 'no-policy' };
  if (input.attempt >= max) return { retry: false, reason: 'attempts-exhausted' };
  if (!namedByPolicy(conditionsOf(input.policy as RetryPolicy), input.result)) return { retry: false, reason: 'not-named' };
  if (input.clientGone) return { retry: false, reason: 'client-gone' };
  // The backoff must fit too: an answer is discarded only when a retry can follow it in time.
  if (input.now >= input.deadline - input.delayMs) return { retry: false, reason: 'deadline' };
  return { retry: true };
}
