/**
 * The one Event a status write records, and which statuses the writer holds back
 * while the data planes apply them.
 */
import { describe, expect, it } from 'vitest';
import { condition, isProgrammedPending, mergeConditions, transitionEvent, type Condition } from '../../../operator/src/status/conditions.ts';

const NOW = '2026-01-01T00:00:00Z';
const conditions = (...list: ReturnType<typeof condition>[]): Condition[] => mergeConditions(undefined, list, 1, NOW);

const accepted = condition('Accepted', true, 'Accepted', 'the route is valid');
const resolved = condition('ResolvedRefs', true, 'ResolvedRefs', 'all references resolved');
const programmed = condition('Programmed', true, 'Programmed', 'applied by 2 data planes');
const pending = condition('Programmed', false, 'Pending', 'waiting for 1 of 2 data planes to apply generation 1');

describe('transitionEvent', () => {
  it('names every condition of a new route in one Normal Event, in the order they are decided', () => {
    expect(transitionEvent(undefined, conditions(programmed, resolved, accepted))).toEqual({
      warning: false,
      reason: 'Programmed',
      message: 'Accepted=True: the route is valid; ResolvedRefs=True: all references resolved; Programmed=True: applied by 2 data planes',
    });
  });

  it('lists only what changed, and nothing when nothing did', () => {
    const before = conditions(accepted, resolved, pending);
    expect(transitionEvent(before, conditions(accepted, resolved, programmed))).toEqual({ warning: false, reason: 'Programmed', message: 'Programmed=True: applied by 2 data planes' });
    // A new message with the same status and reason is not a transition.
    expect(transitionEvent(before, conditions(accepted, resolved, { ...pending, message: 'waiting for 2 of 2 data planes to apply generation 1' }))).toBeUndefined();
  });

  it('is a Warning with the reason of the condition that turned False', () => {
    const conflicted = condition('Accepted', false, 'Conflicted', 'GET /x is already served by "shop/first"');
    const e = transitionEvent(conditions(accepted, resolved, programmed), conditions(conflicted, condition('ResolvedRefs', false, 'NotAccepted', 'the route is not accepted'), condition('Programmed', false, 'NotAccepted', 'the route is not accepted')));
    expect(e?.warning).toBe(true);
    expect(e?.reason).toBe('Conflicted');
    expect(e?.message.startsWith('Accepted=False: GET /x is already served by "shop/first"; ResolvedRefs=False')).toBe(true);
  });

  it('counts Pending as Normal: waiting on the data planes is not a fault', () => {
    expect(transitionEvent(conditions(accepted, resolved, programmed), conditions(accepted, resolved, pending))).toMatchObject({ warning: false, reason: 'Pending' });
  });

  it('sums an Upstream up by Ready', () => {
    const e = transitionEvent(undefined, conditions(condition('Ready', true, 'Ready', '2 of 2 endpoints ready'), condition('Accepted', true, 'Accepted', 'the spec is valid'), condition('ResolvedRefs', true, 'ResolvedRefs', 'static endpoints')));
    expect(e?.reason).toBe('Ready');
  });

  it('keeps a long message within what an Event carries', () => {
    const e = transitionEvent(undefined, conditions(condition('Accepted', false, 'Invalid', 'x'.repeat(5000))));
    expect(e?.message.length).toBe(1024);
    expect(e?.message.endsWith('…')).toBe(true);
  });
});

describe('isProgrammedPending', () => {
  it('holds only a status that waits on the data planes', () => {
    expect(isProgrammedPending([accepted, resolved, pending])).toBe(true);
    expect(isProgrammedPending([accepted, resolved, programmed])).toBe(false);
    expect(isProgrammedPending([accepted, resolved, condition('Programmed', false, 'NoDataplanes', 'no data plane is connected to the operator')])).toBe(false);
    expect(isProgrammedPending([condition('Accepted', true, 'Accepted', 'the spec is valid')])).toBe(false);
  });
});
