/**
 * Prints a data plane bootstrap config (gateway.yaml without routes) made from
 * the Helm chart's own values (`dataplane.config` in charts/switchyard/values.yaml),
 * for data planes that run on this machine instead of from the chart: the same
 * auth, gateway-wide rate limit and CORS, timeouts and logging a `helm install`
 * gives, with listeners on 127.0.0.1.
 *
 *     node hack/chart-bootstrap.ts > gateway.yaml
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse, stringify } from 'yaml';

const values = parse(readFileSync(path.join(import.meta.dirname, '../charts/switchyard/values.yaml'), 'utf8')) as { dataplane: { config: Record<string, unknown> } };
const config = structuredClone(values.dataplane.config);
config.server = { ...(config.server as Record<string, unknown> | undefined), bind_address: '127.0.0.1' };
process.stdout.write(`# The chart's dataplane.config (charts/switchyard/values.yaml), listening on 127.0.0.1.\n# The route table comes from the operator.\n${stringify(config)}`);
