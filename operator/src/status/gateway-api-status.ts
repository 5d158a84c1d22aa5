/**
 * Gateway API statuses as they are written: compile's verdict merged with
 * what the object already says. Pure, so the rules are tested without an API
 * server:
 *
 * - A condition keeps its `lastTransitionTime` while its status stays the
 *   same, and every condition carries the generation it was computed for.
 * - GatewayClass, Gateway and RoutePolicy status is Switchyard's alone, so
 *   conditions it no longer sets are dropped.
 * - An HTTPRoute's `status.parents` is shared with other controllers: only
 *   entries with Switchyard's controllerName are replaced or removed.
 */
import type { GatewayAddress } from '../compile/snapshot.ts';
import type { GatewayApiStatus, RouteParentStatus } from '../compile/index.ts';
import { canonicalJson } from '../../../dataplane/src/contract/index.ts';
import type { Condition, ConditionInput } from './conditions.ts';

/** `status` of a GatewayClass as the API holds it. */
export interface GatewayClassStatusBody {
  conditions?: Condition[];
  supportedFeatures?: { name: string }[];
}

/** `status` of a Gateway as the API holds it. */
export interface GatewayStatusBody {
  addresses?: GatewayAddress[];
  conditions?: Condition[];
  listeners?: { name: string; supportedKinds: { group: string; kind: string }[]; attachedRoutes: number; conditions: Condition[] }[];
}

/** One entry of an HTTPRoute's `status.parents` as the API holds it. */
export interface RouteParentStatusBody {
  parentRef: RouteParentStatus['parentRef'];
  controllerName: string;
  conditions: Condition[];
}

/** `status` of an HTTPRoute as the API holds it. */
export interface HTTPRouteStatusBody {
  parents?: RouteParentStatusBody[];
}

/** `status` of a RoutePolicy as the API holds it. */
export interface RoutePolicyStatusBody {
  conditions?: Condition[];
  observedGeneration?: number;
}

/** Any of the status bodies above. */
export type StatusBody = GatewayClassStatusBody | GatewayStatusBody | HTTPRouteStatusBody | RoutePolicyStatusBody;

/**
 * Exactly `next`, stamped with `generation`; each condition keeps the
 * `lastTransitionTime` of an existing one of its type with the same status.
 */
export function replaceConditions(existing: readonly Condition[] | undefined, next: readonly ConditionInput[], generation: number, now: string): Condition[] {
  const before = new Map((existing ?? []).map((c) => [c.type, c]));
  return next.map((c) => {
    const old = before.get(c.type);
    return { type: c.type, status: c.status, reason: c.reason, message: c.message, observedGeneration: generation, lastTransitionTime: old !== undefined && old.status === c.status ? old.lastTransitionTime : now };
  });
}

/** Whether two parentRefs name the same parent (unset fields are compared as unset). */
function sameParent(a: RouteParentStatus['parentRef'], b: RouteParentStatus['parentRef']): boolean {
  return a.group === b.group && a.kind === b.kind && a.name === b.name && a.namespace === b.namespace && a.sectionName === b.sectionName && a.port === b.port;
}

/** The status to write for `desired`, given the object's current status. */
export function mergeStatus(current: StatusBody | undefined, desired: GatewayApiStatus, now: string): StatusBody {
  const g = desired.generation;
  switch (desired.kind) {
    case 'GatewayClass': {
      const cur = (current ?? {}) as GatewayClassStatusBody;
      return { conditions: replaceConditions(cur.conditions, desired.conditions, g, now), supportedFeatures: desired.supportedFeatures };
    }
    case 'Gateway': {
      const cur = (current ?? {}) as GatewayStatusBody;
      return {
        addresses: desired.addresses,
        conditions: replaceConditions(cur.conditions, desired.conditions, g, now),
        listeners: desired.listeners.map((l) => ({
          name: l.name,
          supportedKinds: l.supportedKinds,
          attachedRoutes: l.attachedRoutes,
          conditions: replaceConditions(cur.listeners?.find((x) => x.name === l.name)?.conditions, l.conditions, g, now),
        })),
      };
    }
    case 'HTTPRoute': {
      const cur = (current ?? {}) as HTTPRouteStatusBody;
      // Other controllers' entries stay as they are, in their place; Switchyard's follow.
      const others = (cur.parents ?? []).filter((p) => p.controllerName !== desired.controllerName);
      const mine = desired.parents.map((p) => {
        const old = (cur.parents ?? []).find((x) => x.controllerName === p.controllerName && sameParent(x.parentRef, p.parentRef));
        return { parentRef: p.parentRef, controllerName: p.controllerName, conditions: replaceConditions(old?.conditions, p.conditions, g, now) };
      });
      return { parents: [...others, ...mine] };
    }
    case 'RoutePolicy': {
      const cur = (current ?? {}) as RoutePolicyStatusBody;
      return { conditions: replaceConditions(cur.conditions, desired.conditions, g, now), observedGeneration: g };
    }
  }
}

/**
 * Whether two statuses say the same. Fields the API server may omit when
 * empty (an empty list) compare equal to absent ones, so that a status read
 * back never looks changed.
 */
export function statusEqual(a: StatusBody | undefined, b: StatusBody | undefined): boolean {
  const prune = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(prune);
    if (v !== null && typeof v === 'object') {
      return Object.fromEntries(
        Object.entries(v)
          .filter(([, x]) => x !== undefined && !(Array.isArray(x) && x.length === 0))
          .map(([k, x]) => [k, prune(x)]),
      );
    }
    return v;
  };
  return canonicalJson(prune(a ?? {})) === canonicalJson(prune(b ?? {}));
}
