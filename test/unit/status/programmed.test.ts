/**
 * The Programmed condition of a GatewayRoute, from the fleet, the data planes the
 * operator expects (the ready pods of the data plane Service) and the table history.
 */
import { describe, expect, it } from 'vitest';
import { programmedCondition, type FleetMember, type VersionHistory } from '../../../operator/src/status/programmed.ts';

const ROUTE = 'shop/users';
// v1 has the route at generation 1, v2 at generation 2.
const history: VersionHistory = new Map([
  ['v1', new Map([[ROUTE, 1]])],
  ['v2', new Map([[ROUTE, 2]])],
]);
const at = (id: string, version: string | undefined): FleetMember => ({ id, appliedVersion: version, ack: version === undefined ? undefined : { version, applied: true } });

describe('programmedCondition', () => {
  it('is True once every connected data plane applied the route at its generation, with no pod list to compare', () => {
    const c = programmedCondition(ROUTE, 2, 'v2', [at('gw-a', 'v2'), at('gw-b', 'v2')], history);
    expect(c).toMatchObject({ status: 'True', reason: 'Programmed', message: 'applied by 2 data planes' });
  });

  it('waits for a data plane still on an older generation', () => {
    const c = programmedCondition(ROUTE, 2, 'v2', [at('gw-a', 'v2'), at('gw-b', 'v1')], history);
    expect(c).toMatchObject({ status: 'False', reason: 'Pending', message: 'waiting for 1 of 2 data planes to apply generation 2' });
  });

  it('waits for a ready data plane pod that has not connected yet (it serves its last table meanwhile, as after a leader change)', () => {
    const c = programmedCondition(ROUTE, 2, 'v2', [at('gw-a', 'v2')], history, ['gw-a', 'gw-b', 'gw-c']);
    expect(c).toMatchObject({ status: 'False', reason: 'Pending', message: 'waiting for 2 of 3 data planes to apply generation 2 (not connected: gw-b, gw-c)' });
  });

  it('is Pending, not NoDataplanes, when no data plane has connected but pods are ready', () => {
    const c = programmedCondition(ROUTE, 1, 'v1', [], history, ['gw-a']);
    expect(c).toMatchObject({ status: 'False', reason: 'Pending', message: 'waiting for 1 of 1 data planes to apply generation 1 (not connected: gw-a)' });
  });

  it('is True when every expected pod is connected and applied it; a connected data plane outside the list counts too', () => {
    expect(programmedCondition(ROUTE, 1, 'v2', [at('gw-a', 'v2'), at('gw-b', 'v1')], history, ['gw-a', 'gw-b'])).toMatchObject({ status: 'True', message: 'applied by 2 data planes' });
    expect(programmedCondition(ROUTE, 2, 'v2', [at('gw-a', 'v2'), at('gw-old', 'v1')], history, ['gw-a'])).toMatchObject({ status: 'False', reason: 'Pending' });
  });

  it('says NoDataplanes when none is connected or expected', () => {
    expect(programmedCondition(ROUTE, 1, 'v1', [], history, [])).toMatchObject({ status: 'False', reason: 'NoDataplanes' });
  });

  it('names a data plane that rejected the current table', () => {
    const rejecting: FleetMember = { id: 'gw-b', appliedVersion: 'v1', ack: { version: 'v2', applied: false, error: 'bad table' } };
    expect(programmedCondition(ROUTE, 2, 'v2', [at('gw-a', 'v2'), rejecting], history, ['gw-a', 'gw-b', 'gw-c'])).toMatchObject({ status: 'False', reason: 'Rejected', message: 'data plane "gw-b" rejected table v2: bad table' });
  });
});
