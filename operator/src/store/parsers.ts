/** Spec parsers backed by the CRDs' own zod schemas (CEL rules included), for compile's snapshot. */
import type { z } from 'zod';
import { formatFieldPath } from '../../../dataplane/src/contract/index.ts';
import { GatewayRouteSpecSchema } from '../api/gatewayroute.ts';
import { UpstreamSpecSchema } from '../api/upstream.ts';
import type { SpecParser, SpecParsers } from './convert.ts';

function zodParser<S extends z.ZodType>(schema: S): SpecParser<z.output<S>> {
  return (spec) => {
    const r = schema.safeParse(spec);
    if (r.success) return { ok: true, spec: r.data };
    return {
      ok: false,
      error: r.error.issues.map((i) => (i.path.length === 0 ? `spec: ${i.message}` : `spec.${formatFieldPath(i.path)}: ${i.message}`)).join('; '),
    };
  };
}

/** The parsers the operator uses. */
export const PARSERS: SpecParsers = {
  route: zodParser(GatewayRouteSpecSchema),
  upstream: zodParser(UpstreamSpecSchema),
};
