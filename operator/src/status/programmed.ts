/**
 * `Programmed`: a route is live once every data plane has applied a table that
 * contains the route at its current generation: every connected one, and every
 * ready pod of the data plane Service when the operator knows them (a data plane
 * serves its last table while it reconnects, to a new leader say, so one that has
 * not connected yet is one that may not serve the route). Pure: the fleet, the
 * expected data planes and the recent table history come in as data.
 */
import { condition, ConditionType, Reason, type ConditionInput } from './conditions.ts';

/** A data plane as the leader sees it. */
export interface FleetMember {
  id: string;
  appliedVersion: string | undefined;
  ack: { version: string; applied: boolean; error?: string } | undefined;
}

/** For each recent table version, the generation of each route in it. */
export type VersionHistory = ReadonlyMap<string, ReadonlyMap<string, number>>;

/** The Programmed condition of one accepted route. */
export function programmedCondition(
  routeKey: string,
  generation: number,
  currentVersion: string,
  fleet: readonly FleetMember[],
  history: VersionHistory,
  expected: readonly string[] = [],
): ConditionInput {
  const connected = new Set(fleet.map((d) => d.id));
  const away = expected.filter((id) => !connected.has(id));
  if (fleet.length === 0 && away.length === 0) return condition(ConditionType.Programmed, false, Reason.NoDataplanes, 'no data plane is connected to the operator');
  const carries = (version: string | undefined): boolean => {
    if (version === undefined) return false;
    const g = history.get(version)?.get(routeKey);
    return g !== undefined && g >= generation;
  };
  const rejecting = fleet.filter((d) => d.ack && !d.ack.applied && d.ack.version === currentVersion);
  if (rejecting.length > 0) {
    const first = rejecting[0] as FleetMember;
    return condition(ConditionType.Programmed, false, Reason.Rejected, `data plane "${first.id}" rejected table ${currentVersion}: ${first.ack?.error ?? 'no reason given'}${rejecting.length > 1 ? ` (and ${rejecting.length - 1} more)` : ''}`);
  }
  const behind = fleet.filter((d) => !carries(d.appliedVersion));
  if (away.length > 0) {
    const total = fleet.length + away.length;
    return condition(ConditionType.Programmed, false, Reason.Pending, `waiting for ${behind.length + away.length} of ${total} data planes to apply generation ${generation} (not connected: ${away.slice(0, 3).join(', ')}${away.length > 3 ? ` and ${away.length - 3} more` : ''})`);
  }
  if (behind.length > 0) {
    return condition(ConditionType.Programmed, false, Reason.Pending, `waiting for ${behind.length} of ${fleet.length} data planes to apply generation ${generation}`);
  }
  return condition(ConditionType.Programmed, true, Reason.Programmed, `applied by ${fleet.length} data plane${fleet.length === 1 ? '' : 's'}`);
}
