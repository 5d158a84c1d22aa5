/** Breaker admission and the one verdict per attempt, against the real breaker and a recording upstream, without a socket. */
import { afterEach, describe, expect, it } from 'vitest';
import { AttemptGuard, type GuardedUpstream } from '../../../dataplane/src/upstream/attempt-guard.ts';
import { UpstreamBreaker, type AttemptVerdict, type BreakerPermit } from '../../../dataplane/src/upstream/breaker.ts';

/** An upstream whose reports are recorded, with a real breaker when given one; reports reach the breaker as UpstreamRuntime.report does. */
function upstream(breaker?: UpstreamBreaker): GuardedUpstream<string> & { reports: [string, BreakerPermit | undefined, AttemptVerdict][] } {
  const reports: [string, BreakerPermit | undefined, AttemptVerdict][] = [];
  return {
    breaker,
    reports,
    report(endpoint, permit, verdict) {
      reports.push([endpoint, permit, verdict]);
      if (permit !== undefined) breaker?.record(permit, verdict);
    },
  };
}

describe('attempt guard', () => {
  const breakers: UpstreamBreaker[] = [];
  const breaker = (failureThreshold: number): UpstreamBreaker => {
    const b = new UpstreamBreaker('u', { failureThreshold, openMs: 60_000, successThreshold: 1, halfOpenRequests: 1 });
    breakers.push(b);
    return b;
  };
  afterEach(() => {
    for (const b of breakers.splice(0)) b.dispose();
  });

  it('admits every attempt without a breaker and reports the answer once, with the endpoint', () => {
    const u = upstream();
    const g = AttemptGuard.admit(u) as AttemptGuard<string>;
    expect(g.permit).toBeUndefined();
    g.sendTo('10.0.0.1:80');
    expect(g.answered(200)).toBe('ok');
    // The end of the same attempt does not report again.
    expect(g.ended(true)).toBe('ok');
    expect(u.reports).toEqual([['10.0.0.1:80', undefined, 'ok']]);
  });

  it('a 5xx answer fails; no answer fails when the upstream is to blame and is neutral when the client left', () => {
    const u = upstream();
    const a = AttemptGuard.admit(u) as AttemptGuard<string>;
    a.sendTo('a');
    a.answered(503);
    const b = AttemptGuard.admit(u) as AttemptGuard<string>;
    b.sendTo('b');
    b.ended(true);
    const c = AttemptGuard.admit(u) as AttemptGuard<string>;
    c.sendTo('c');
    c.ended(false);
    expect(u.reports.map((r) => [r[0], r[2]])).toEqual([['a', 'fail'], ['b', 'fail'], ['c', 'neutral']]);
  });

  it('opens the breaker after its failure threshold, and then admits nothing', () => {
    const br = breaker(2);
    const u = upstream(br);
    for (let i = 0; i < 2; i++) {
      const g = AttemptGuard.admit(u) as AttemptGuard<string>;
      expect(g.permit).toBe('pass');
      g.sendTo('e');
      g.ended(true);
    }
    expect(br.state).toBe('open');
    expect(AttemptGuard.admit(u)).toBeUndefined();
  });

  it('gives the permit back as neutral when there is no endpoint: abandoned attempts never open the breaker', () => {
    const br = breaker(1);
    const u = upstream(br);
    for (let i = 0; i < 5; i++) (AttemptGuard.admit(u) as AttemptGuard<string>).abandon();
    expect(br.state).toBe('closed');
    expect(u.reports).toEqual([]);
  });
});
