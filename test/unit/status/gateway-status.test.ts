/**
 * Gateway API status writing without an API server: the pure merge
 * (timestamps, other controllers' HTTPRoute parents, stale conditions) and the
 * StatusUpdater over an in-memory client (leader only, no-ops, conflicts,
 * retries, generations).
 */
import { describe, expect, it } from 'vitest';
import type { GatewayApiStatus, GatewayStatus, HTTPRouteStatus } from '../../../operator/src/compile/index.ts';
import { StatusUpdater } from '../../../operator/src/kube/status-updater.ts';
import type { ConditionInput } from '../../../operator/src/status/conditions.ts';
import { mergeStatus, statusEqual, type GatewayStatusBody, type HTTPRouteStatusBody } from '../../../operator/src/status/gateway-api-status.ts';
import { silentLogger } from '../../../dataplane/src/observability/logger.ts';
import { MemoryStatusClient } from '../../support/memory-status-client.ts';

const CONTROLLER = 'switchyard.dev/gateway-controller';
const T0 = '2026-01-01T00:00:00Z';
const T1 = '2026-01-01T00:01:00Z';

const ok = (type: string, reason = type, message = 'fine'): ConditionInput => ({ type, status: 'True', reason, message });
const bad = (type: string, reason: string, message = 'broken'): ConditionInput => ({ type, status: 'False', reason, message });

function gateway(generation: number, conditions: ConditionInput[] = [ok('Accepted'), ok('Programmed')]): GatewayStatus {
  return {
    kind: 'Gateway',
    namespace: 'infra',
    name: 'edge',
    generation,
    conditions,
    addresses: [{ type: 'IPAddress', value: '198.19.0.10' }],
    listeners: [{ name: 'http', supportedKinds: [{ group: 'gateway.networking.k8s.io', kind: 'HTTPRoute' }], attachedRoutes: 1, conditions: [ok('Accepted'), ok('Programmed')] }],
  };
}

function route(parents: HTTPRouteStatus['parents'], generation = 1): HTTPRouteStatus {
  return { kind: 'HTTPRoute', namespace: 'shop', name: 'web', generation, controllerName: CONTROLLER, parents };
}

const parentRef = { group: 'gateway.networking.k8s.io', kind: 'Gateway', namespace: 'infra', name: 'edge' };

describe('mergeStatus', () => {
  it('keeps lastTransitionTime while a condition keeps its status, and stamps the generation on every condition', () => {
    const first = mergeStatus(undefined, gateway(1), T0) as GatewayStatusBody;
    expect(first.conditions?.map((c) => [c.type, c.lastTransitionTime, c.observedGeneration])).toEqual([
      ['Accepted', T0, 1],
      ['Programmed', T0, 1],
    ]);
    const second = mergeStatus(first, gateway(2, [ok('Accepted', 'Accepted', 'other words'), bad('Programmed', 'AddressNotAssigned')]), T1) as GatewayStatusBody;
    expect(second.conditions?.map((c) => [c.type, c.lastTransitionTime, c.observedGeneration, c.message])).toEqual([
      ['Accepted', T0, 2, 'other words'],
      ['Programmed', T1, 2, 'broken'],
    ]);
    expect(second.listeners?.[0]?.conditions.map((c) => c.lastTransitionTime)).toEqual([T0, T0]);
  });

  it('drops conditions Switchyard no longer sets on objects it owns', () => {
    const before = mergeStatus(undefined, gateway(1, [ok('Accepted'), ok('Programmed'), ok('OverlappingTLSConfig', 'OverlappingHostnames')]), T0) as GatewayStatusBody;
    const after = mergeStatus(before, gateway(1), T1) as GatewayStatusBody;
    expect(after.conditions?.map((c) => c.type)).toEqual(['Accepted', 'Programmed']);
  });

  it("replaces Switchyard's HTTPRoute parents and leaves other controllers' entries in place", () => {
    const theirs = { parentRef: { ...parentRef, name: 'mesh' }, controllerName: 'example.com/mesh', conditions: [{ ...ok('Accepted'), observedGeneration: 1, lastTransitionTime: T0 }] };
    const current: HTTPRouteStatusBody = { parents: [theirs, { parentRef, controllerName: CONTROLLER, conditions: [{ ...ok('Accepted'), observedGeneration: 1, lastTransitionTime: T0 }] }] };
    const next = mergeStatus(current, route([{ parentRef, controllerName: CONTROLLER, conditions: [ok('Accepted'), bad('ResolvedRefs', 'BackendNotFound')] }]), T1) as HTTPRouteStatusBody;
    expect(next.parents?.[0]).toEqual(theirs);
    expect(next.parents?.[1]?.conditions.map((c) => [c.type, c.lastTransitionTime])).toEqual([
      ['Accepted', T0],
      ['ResolvedRefs', T1],
    ]);
    // Detached: Switchyard's entry goes, the other controller's stays.
    expect((mergeStatus(next, route([]), T1) as HTTPRouteStatusBody).parents).toEqual([theirs]);
  });

  it('treats empty lists and absent fields as equal, so a status read back is not rewritten', () => {
    expect(statusEqual({ parents: [] }, {})).toBe(true);
    expect(statusEqual({ conditions: [] }, { conditions: undefined })).toBe(true);
    expect(statusEqual({ parents: [] }, { parents: [{ parentRef, controllerName: CONTROLLER, conditions: [] }] })).toBe(false);
  });
});

describe('StatusUpdater over an in-memory API', () => {
  const setup = (): { client: MemoryStatusClient; updater: StatusUpdater } => {
    const client = new MemoryStatusClient();
    client.put('Gateway', { metadata: { namespace: 'infra', name: 'edge', generation: 1 }, status: { conditions: [{ type: 'Accepted', status: 'Unknown', reason: 'Pending', message: 'Waiting for controller', observedGeneration: 1, lastTransitionTime: '1970-01-01T00:00:00Z' }] } });
    client.put('HTTPRoute', { metadata: { namespace: 'shop', name: 'web', generation: 1 } });
    let tick = 0;
    const updater = new StatusUpdater(client, { log: silentLogger(), now: () => `2026-01-01T00:00:${String(tick++).padStart(2, '0')}Z`, retryMs: () => 5 });
    return { client, updater };
  };
  const desired = (...statuses: GatewayApiStatus[]): Map<string, GatewayApiStatus> => new Map(statuses.map((s) => [`${s.kind}/${s.namespace}/${s.name}`, s]));

  it('writes nothing until it leads, then writes what differs', async () => {
    const { client, updater } = setup();
    updater.send(desired(gateway(1)));
    await updater.drained();
    expect(client.writes).toBe(0);
    updater.setEnabled(true);
    await updater.drained();
    expect(client.writes).toBe(1);
    expect((client.status('Gateway', 'infra', 'edge') as GatewayStatusBody).conditions?.map((c) => c.status)).toEqual(['True', 'True']);
  });

  it('does not write, or even read, a status it already settled; a changed one is written once', async () => {
    const { client, updater } = setup();
    updater.setEnabled(true);
    updater.send(desired(gateway(1)));
    await updater.drained();
    const reads = client.reads;
    for (let i = 0; i < 5; i++) updater.send(desired(gateway(1)));
    await updater.drained();
    expect([client.writes, client.reads]).toEqual([1, reads]);
    updater.send(desired(gateway(1, [ok('Accepted'), bad('Programmed', 'AddressNotAssigned')])));
    await updater.drained();
    expect(client.writes).toBe(2);
  });

  it('finds an already correct status unchanged (a new leader re-checks without rewriting)', async () => {
    const { client, updater } = setup();
    updater.setEnabled(true);
    updater.send(desired(gateway(1)));
    await updater.drained();
    const next = new StatusUpdater(client, { log: silentLogger() });
    next.send(desired(gateway(1)));
    next.setEnabled(true);
    await next.drained();
    expect(client.writes).toBe(1);
    expect(next.counters).toMatchObject({ written: 0, unchanged: 1 });
  });

  it('re-reads and re-applies on a conflict, keeping what the concurrent writer added', async () => {
    const { client, updater } = setup();
    let interfered = false;
    client.beforeReplace = (key) => {
      if (interfered || key !== 'HTTPRoute/shop/web') return;
      interfered = true;
      client.put('HTTPRoute', { metadata: { namespace: 'shop', name: 'web', generation: 1 }, status: { parents: [{ parentRef: { ...parentRef, name: 'other' }, controllerName: 'example.com/other', conditions: [] }] } });
    };
    updater.setEnabled(true);
    updater.send(desired(route([{ parentRef, controllerName: CONTROLLER, conditions: [ok('Accepted')] }])));
    await updater.drained();
    const parents = (client.status('HTTPRoute', 'shop', 'web') as HTTPRouteStatusBody).parents ?? [];
    expect(parents.map((p) => p.controllerName)).toEqual(['example.com/other', CONTROLLER]);
    expect(updater.counters).toMatchObject({ conflicts: 1, written: 1 });
  });

  it('retries after an API error', async () => {
    const { client, updater } = setup();
    let failures = 2;
    client.beforeReplace = () => {
      if (failures-- > 0) throw new Error('connection refused');
    };
    updater.setEnabled(true);
    updater.send(desired(gateway(1)));
    await new Promise((r) => setTimeout(r, 100));
    await updater.drained();
    expect(client.writes).toBe(1);
    expect(updater.counters.failed).toBe(2);
  });

  it('skips a status compiled from an older generation, and an object that is gone', async () => {
    const { client, updater } = setup();
    client.put('Gateway', { metadata: { namespace: 'infra', name: 'edge', generation: 2 } });
    updater.setEnabled(true);
    updater.send(desired(gateway(1), { ...gateway(1), name: 'deleted' }));
    await updater.drained();
    expect(client.writes).toBe(0);
  });

  it('stops writing when it stops leading', async () => {
    const { client, updater } = setup();
    updater.setEnabled(true);
    updater.setEnabled(false);
    updater.send(desired(gateway(1)));
    await updater.drained();
    expect(client.writes).toBe(0);
  });
});
