/**
 * ReferenceGrant: whether an object may refer to one in another namespace.
 * A grant lives in the namespace of the target and lists who may refer
 * (group, kind, namespace) to what (group, kind, optionally a name). A
 * reference within one namespace needs no grant.
 */
import type { Parsed } from '../snapshot.ts';
import type { ReferenceGrantSpec } from '../../api/gateway-api.ts';

/** One end of a reference. */
export interface RefEnd {
  group: string;
  kind: string;
  namespace: string;
}

/** The grants of a snapshot, indexed by the namespace they grant access to. */
export class ReferenceGrants {
  private readonly byNamespace = new Map<string, ReferenceGrantSpec[]>();

  constructor(grants: readonly Parsed<ReferenceGrantSpec>[]) {
    for (const g of grants) {
      if (g.spec === undefined) continue;
      const list = this.byNamespace.get(g.meta.namespace) ?? [];
      list.push(g.spec);
      this.byNamespace.set(g.meta.namespace, list);
    }
  }

  /** Whether `from` may refer to the object `to` named `name`. */
  permits(from: RefEnd, to: RefEnd, name: string): boolean {
    if (from.namespace === to.namespace) return true;
    return (this.byNamespace.get(to.namespace) ?? []).some(
      (g) =>
        g.from.some((f) => f.group === from.group && f.kind === from.kind && f.namespace === from.namespace) &&
        g.to.some((t) => t.group === to.group && t.kind === to.kind && (t.name === undefined || t.name === '' || t.name === name)),
    );
  }
}
