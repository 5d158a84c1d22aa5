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
