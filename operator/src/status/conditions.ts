/**
 * Condition types and reasons as named constants, and the pure merge that
 * keeps `lastTransitionTime` unless a condition really changed.
 */

/** Condition types on GatewayRoute and Upstream. */
export const ConditionType = {
  Accepted: 'Accepted',
  ResolvedRefs: 'ResolvedRefs',
  Programmed: 'Programmed',
  Ready: 'Ready',
} as const;

/** Every reason the operator writes; clients may key on these. */
export const Reason = {
  Accepted: 'Accepted',
  Invalid: 'Invalid',
  Conflicted: 'Conflicted',
  ResolvedRefs: 'ResolvedRefs',
  BackendNotFound: 'BackendNotFound',
  BackendInvalid: 'BackendInvalid',
  ServiceNotFound: 'ServiceNotFound',
  PortNotFound: 'PortNotFound',
  InvalidCertificateRef: 'InvalidCertificateRef',
  Programmed: 'Programmed',
  Pending: 'Pending',
  Rejected: 'Rejected',
  NoDataplanes: 'NoDataplanes',
  NotAccepted: 'NotAccepted',
  Ready: 'Ready',
  NoReadyEndpoints: 'NoReadyEndpoints',
} as const;

/** A condition as compile produces it: no timestamps, no generation. */
export interface ConditionInput {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
}

/** A condition as written to the API (metav1.Condition). */
export interface Condition extends ConditionInput {
  observedGeneration: number;
  lastTransitionTime: string;
}

/** Builds a condition input. */
export function condition(type: string, ok: boolean, reason: string, message: string): ConditionInput {
  return { type, status: ok ? 'True' : 'False', reason, message };
}

/**
 * The conditions to write: `next` stamped with `generation`, keeping each
 * existing `lastTransitionTime` when the status did not change, and `now`
 * otherwise. Conditions of types not in `next` are kept as they were.
 */
export function mergeConditions(existing: readonly Condition[] | undefined, next: readonly ConditionInput[], generation: number, now: string): Condition[] {
  const out: Condition[] = [];
  const byType = new Map((existing ?? []).map((c) => [c.type, c]));
  for (const c of next) {
    const before = byType.get(c.type);
    byType.delete(c.type);
    out.push({ ...c, observedGeneration: generation, lastTransitionTime: before && before.status === c.status ? before.lastTransitionTime : now });
  }
  for (const rest of byType.values()) out.push(rest);
  return out.sort((a, b) => (a.type < b.type ? -1 : a.type > b.type ? 1 : 0));
}

/** Whether two condition lists say the same (ignoring order). */
export function sameConditions(a: readonly Condition[] | undefined, b: readonly Condition[]): boolean {
  if (!a || a.length !== b.length) return false;
  const key = (c: Condition): string => `${c.type}|${c.status}|${c.reason}|${c.message}|${c.observedGeneration}|${c.lastTransitionTime}`;
  const left = a.map(key).sort();
  const right = b.map(key).sort();
  return left.every((k, i) => k === right[i]);
}

/** Whether a status waits only on the data planes: Programmed=False with reason Pending. */
export function isProgrammedPending(conditions: readonly ConditionInput[]): boolean {
  return conditions.some((c) => c.type === ConditionType.Programmed && c.status === 'False' && c.reason === Reason.Pending);
}

const EVENT_ORDER: readonly string[] = [ConditionType.Accepted, ConditionType.ResolvedRefs, ConditionType.Programmed, ConditionType.Ready];
const eventOrder = (type: string): number => {
  const i = EVENT_ORDER.indexOf(type);
  return i < 0 ? EVENT_ORDER.length : i;
};

/** The longest Event message client-go's recorder sends; longer ones are cut there too. */
const EVENT_MESSAGE_MAX = 1024;

/**
 * The one Event for a status write: the conditions whose status or reason
 * changed, in one message ("Accepted=True: …; Programmed=True: …"). It is a
 * Warning when any of them turned False for a reason other than Pending, and
 * takes that condition's reason; otherwise the reason of the one that sums the
 * object up (Programmed for a route, Ready for an Upstream) when it changed.
 * The conditions are listed in the order they are decided: Accepted,
 * ResolvedRefs, then Programmed or Ready. Undefined when nothing changed.
 */
export function transitionEvent(before: readonly Condition[] | undefined, after: readonly Condition[]): { warning: boolean; reason: string; message: string } | undefined {
  const old = new Map((before ?? []).map((c) => [c.type, c]));
  const changed = after
    .filter((c) => {
      const o = old.get(c.type);
      return !(o && o.status === c.status && o.reason === c.reason);
    })
    .sort((a, b) => eventOrder(a.type) - eventOrder(b.type));
  const last = changed.at(-1);
  if (!last) return undefined;
  const warn = changed.find((c) => c.status === 'False' && !(c.type === ConditionType.Programmed && c.reason === Reason.Pending));
  let message = changed.map((c) => `${c.type}=${c.status}: ${c.message}`).join('; ');
  if (message.length > EVENT_MESSAGE_MAX) message = `${message.slice(0, EVENT_MESSAGE_MAX - 1)}…`;
  return { warning: warn !== undefined, reason: (warn ?? last).reason, message };
}
