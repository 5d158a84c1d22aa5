/**
 * Choosing an endpoint. Balancers see only endpoints that are available now
 * (healthy, breaker closed); they never hold per-request state beyond counters.
 */

/** What a balancer needs to know about an endpoint. */
export interface Balanceable {
  readonly weight: number;
  /** Requests sent to this endpoint that have not finished. */
  inFlight: number;
}

/** Picks one of the candidates, skipping those in `exclude` while another is available (retries go elsewhere). */
export interface Balancer<E extends Balanceable> {
  pick(candidates: readonly E[], exclude?: readonly E[]): E | undefined;
}

function filtered<E>(candidates: readonly E[], exclude: readonly E[] | undefined): readonly E[] {
  if (exclude === undefined || exclude.length === 0 || candidates.length < 2) return candidates;
  const rest = candidates.filter((c) => !exclude.includes(c));
  return rest.length > 0 ? rest : candidates;
}

/**
 * Smooth weighted round robin (as nginx does it): with equal weights it is a
 * plain rotation; with weights 9:1 the light endpoint is spread out, not bunched.
 */
class RoundRobinBalancer<E extends Balanceable> implements Balancer<E> {
  private readonly current = new WeakMap<E, number>();
  private cursor = 0;

  pick(candidates: readonly E[], exclude?: readonly E[]): E | undefined {
    const list = filtered(candidates, exclude);
    if (list.length <= 1) return list[0];
    const first = list[0] as E;
    if (list.every((e) => e.weight === first.weight)) {
      this.cursor = (this.cursor + 1) % 0x7fffffff;
      return list[this.cursor % list.length];
    }
    let total = 0;
    let best: E | undefined;
    let bestScore = -Infinity;
    for (const e of list) {
      const score = (this.current.get(e) ?? 0) + e.weight;
      this.current.set(e, score);
      total += e.weight;
      if (score > bestScore) {
        bestScore = score;
        best = e;
      }
    }
    if (best) this.current.set(best, bestScore - total);
    return best;
  }
}

/**
 * Fewest requests in flight. Up to 4 candidates it scans them all; beyond that it
 * compares two random choices, which avoids herding on one endpoint (Envoy does the same).
 */
class LeastRequestBalancer<E extends Balanceable> implements Balancer<E> {
  private readonly tieBreak = new RoundRobinBalancer<E>();
  private readonly random: () => number;
  constructor(random: () => number = Math.random) {
    this.random = random;
  }

  pick(candidates: readonly E[], exclude?: readonly E[]): E | undefined {
    const list = filtered(candidates, exclude);
    if (list.length <= 1) return list[0];
    if (list.length <= 4) {
      let min = Infinity;
      for (const e of list) min = Math.min(min, e.inFlight / e.weight);
      return this.tieBreak.pick(list.filter((e) => e.inFlight / e.weight === min));
    }
    const a = list[Math.floor(this.random() * list.length)] as E;
    let b = list[Math.floor(this.random() * list.length)] as E;
    if (b === a) b = list[(list.indexOf(a) + 1) % list.length] as E;
    return a.inFlight / a.weight <= b.inFlight / b.weight ? a : b;
  }
}

/** Weighted random choice. */
class RandomBalancer<E extends Balanceable> implements Balancer<E> {
  private readonly random: () => number;
  constructor(random: () => number = Math.random) {
    this.random = random;
  }

  pick(candidates: readonly E[], exclude?: readonly E[]): E | undefined {
    const list = filtered(candidates, exclude);
    if (list.length <= 1) return list[0];
    let total = 0;
    for (const e of list) total += e.weight;
    let r = this.random() * total;
    for (const e of list) {
      r -= e.weight;
      if (r < 0) return e;
    }
    return list[list.length - 1];
  }
}

/** The balancer named in the table. */
export function createBalancer<E extends Balanceable>(kind: 'RoundRobin' | 'LeastRequest' | 'Random'): Balancer<E> {
  switch (kind) {
    case 'LeastRequest':
      return new LeastRequestBalancer<E>();
    case 'Random':
      return new RandomBalancer<E>();
    default:
      return new RoundRobinBalancer<E>();
  }
}
