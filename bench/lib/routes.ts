/**
 * Synthetic route tables for the scale benchmarks: the same shapes at every
 * size, so that a change in cost comes from the size and not the mix.
 */

/** One generated route, in terms both the config file and the CRD can express. */
export interface GeneratedRoute {
  /** DNS-label-safe name. */
  name: string;
  type: 'Exact' | 'Prefix' | 'Template';
  path: string;
  methods: string[];
  hosts: string[];
}

/**
 * Route i has one of four shapes, a quarter each: an Exact path with a method,
 * a Prefix with any method, a Template with a parameter and two methods, and a
 * Template with a parameter and a trailing `*` with any method. Every tenth
 * route is bound to one of twenty host names. `tag` keeps two tables apart.
 */
export function generateRoutes(n: number, tag = 'r'): GeneratedRoute[] {
  const out: GeneratedRoute[] = [];
  for (let i = 0; i < n; i++) {
    const hosts = i % 10 === 9 ? [`h${i % 20}.example.com`] : [];
    const name = `${tag}-${i}`;
    switch (i % 4) {
      case 0:
        out.push({ name, type: 'Exact', path: `/${tag}/svc${i}/health`, methods: ['GET'], hosts });
        break;
      case 1:
        out.push({ name, type: 'Prefix', path: `/${tag}/static${i}`, methods: [], hosts });
        break;
      case 2:
        out.push({ name, type: 'Template', path: `/${tag}/api/v1/svc${i}/items/{id}`, methods: ['GET', 'PUT'], hosts });
        break;
      default:
        out.push({ name, type: 'Template', path: `/${tag}/api/v1/svc${i}/users/{uid}/orders/*`, methods: [], hosts });
    }
  }
  return out;
}

/** A request that `route` serves. */
export function requestFor(route: GeneratedRoute, k: number): { host: string; method: string; path: string } {
  const host = route.hosts[0] ?? 'api.example.com';
  const method = route.methods[0] ?? 'GET';
  let path = route.path;
  if (route.type === 'Prefix') path = `${route.path}/asset${k}.js`;
  else if (route.type === 'Template') path = route.path.replace('{id}', `item${k}`).replace('{uid}', `u${k}`).replace('*', `o${k}/lines`);
  return { host, method, path };
}

/** A deterministic pseudo-random sequence (mulberry32), so every run asks the same questions. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
