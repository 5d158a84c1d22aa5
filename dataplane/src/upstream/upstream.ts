/** An upstream as served: its endpoints with their live state, and how to choose among them. */
import type { Pool } from 'undici';
import type { Upstream } from '../table/schema.ts';
import { createBalancer, type Balancer } from './balancer.ts';
import type { PoolRegistry } from './pools.ts';

/** One endpoint and the state that outlives a table swap (counters, health). */
export class EndpointRuntime {
  readonly origin: string;
  readonly weight: number;
  readonly name: string | undefined;
  readonly pool: Pool;
  inFlight = 0;
  /** False while health checks or outlier detection keep it out of rotation. */
  healthy = true;

  constructor(origin: string, weight: number, name: string | undefined, pool: Pool) {
    this.origin = origin;
    this.weight = weight;
    this.name = name;
    this.pool = pool;
  }
}

/** An upstream of the live table. */
export class UpstreamRuntime {
  readonly name: string;
  readonly def: Upstream;
  readonly endpoints: readonly EndpointRuntime[];
  private readonly balancer: Balancer<EndpointRuntime>;

  constructor(def: Upstream, endpoints: readonly EndpointRuntime[]) {
    this.name = def.name;
    this.def = def;
    this.endpoints = endpoints;
    this.balancer = createBalancer<EndpointRuntime>(def.loadBalancer);
  }

  /** An endpoint for the next attempt, avoiding `exclude` if possible; undefined when none can take traffic. */
  pick(exclude?: EndpointRuntime): EndpointRuntime | undefined {
    const eps = this.endpoints;
    let allHealthy = true;
    for (let i = 0; i < eps.length; i++) if (!(eps[i] as EndpointRuntime).healthy) allHealthy = false;
    return this.balancer.pick(allHealthy ? eps : eps.filter((e) => e.healthy), exclude);
  }
}

/**
 * Builds the upstreams of a new table, reusing endpoint state from the previous
 * table where the upstream, origin and pool settings are unchanged.
 */
export function buildUpstreams(defs: readonly Upstream[], pools: PoolRegistry, previous?: ReadonlyMap<string, UpstreamRuntime>): Map<string, UpstreamRuntime> {
  const out = new Map<string, UpstreamRuntime>();
  for (const def of defs) {
    const before = previous?.get(def.name);
    const endpoints = def.endpoints.map((ep) => {
      const origin = new URL(ep.url).origin;
      const pool = pools.get(origin, def);
      const kept = before?.endpoints.find((e) => e.origin === origin && e.pool === pool && e.weight === ep.weight);
      return kept ?? new EndpointRuntime(origin, ep.weight, ep.name, pool);
    });
    out.set(def.name, new UpstreamRuntime(def, endpoints));
  }
  return out;
}
