/**
 * `kubectl switchyard`: the gateway as the cluster sees it, through the
 * Kubernetes API server and nothing else. The operator serves the aggregated
 * API observe.switchyard.dev (operator/src/observe/api.ts); this plugin asks it
 * with the kubeconfig's credentials, so RBAC on those resources decides what
 * each user may see (docs/observability.md, "kubectl switchyard").
 *
 * It imports, of the rest of the project, only the route table's contract and
 * the explanation's JSON shape and printer (eslint.config.js enforces it).
 */
import https from 'node:https';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import type { Route } from '../../dataplane/src/contract/index.ts';
import { explanationExitCode, formatExplanation, type Explanation } from '../../dataplane/src/observability/explain-format.ts';

const API = '/apis/observe.switchyard.dev/v1alpha1';
/** Headers of the explained request that are credentials: sent apart from the body (see the API's doc). */
const CREDENTIALS = new Set(['authorization', 'cookie', 'proxy-authorization']);

const HELP = `Usage: kubectl switchyard <command> [options]

The Switchyard gateway as the cluster sees it, through the API server (observe.switchyard.dev).

Commands:
  explain <METHOD> <target>   which route serves the request and why, the near misses, the stages
                              (auth, roles, rate limit, CORS) and the upstream, answered by a data plane
                              from its live state; only routes of the namespace are shown in full
      -H, --header <line>     a request header, "Name: value" (repeatable); a token is verified, never printed
          --host <host>       the Host header; --client <address> for a per-address rate limit;
          --listener <name>   http (default) or https; --dataplane <id> to ask one data plane
  routes                      the effective route table, each route with the resource it came from
      -A, --all-namespaces    every namespace (needs list on routes cluster-wide)
  status                      the operator leader, the table version, each data plane and the version it serves

Options:
  -n, --namespace <ns>        default: the kubeconfig context's namespace, else "default"
      --kubeconfig <file>     default: KUBECONFIG, then ~/.kube/config
      --context <name>        a context of the kubeconfig
  -o, --output <format>       text (default) or json
  -h, --help

Exit status: 0; for explain, 1 when the gateway would answer the request itself (404, 401, 429, ...);
2 for a usage error; 3 when the cluster could not answer.
`;

/** An answer of the API server. */
interface Answer {
  status: number;
  body: unknown;
}

/** Sends one request to the API server with the kubeconfig's credentials. */
async function call(kc: KubeConfig, method: 'GET' | 'POST', path: string, body?: unknown, headers: Record<string, string | string[]> = {}): Promise<Answer> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster');
  const url = new URL(path, cluster.server);
  const options: https.RequestOptions = { method, headers: { accept: 'application/json', ...headers } };
  await kc.applyToHTTPSOptions(options);
  const text = body === undefined ? undefined : JSON.stringify(body);
  if (text !== undefined) options.headers = { ...options.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) };
  return new Promise((resolve, reject) => {
    const req = https.request(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        let parsed: unknown = raw;
        try {
          parsed = JSON.parse(raw);
        } catch {
          // Not JSON: the text is the message.
        }
        resolve({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('the API server did not answer within 30 s')));
    req.end(text);
  });
}

/** Only the operator leader serves data planes; a request that reached another replica is asked again. */
async function callLeader(kc: KubeConfig, method: 'GET' | 'POST', path: string, body?: unknown, headers?: Record<string, string | string[]>): Promise<Answer> {
  let answer = await call(kc, method, path, body, headers);
  for (let i = 0; i < 10 && answer.status === 503; i++) {
    await new Promise((r) => setTimeout(r, 300));
    answer = await call(kc, method, path, body, headers);
  }
  return answer;
}

/** The message of an error answer, as kubectl would say it. */
function problem(a: Answer, what: string): string {
  const message = typeof a.body === 'object' && a.body !== null && 'message' in a.body ? String((a.body as { message: unknown }).message) : String(a.body).trim();
  if (a.status === 403) return `${what}: forbidden: ${message} (see docs/observability.md for the RBAC that kubectl switchyard needs)`;
  if (a.status === 404 && /the server could not find the requested resource/i.test(message)) return `${what}: the cluster does not serve observe.switchyard.dev: is the operator installed with its APIService?`;
  return `${what}: ${a.status} ${message}`;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  return `${rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd((widths[i] as number) + 3))).join('').trimEnd()).join('\n')}\n`;
}

/** Runs the plugin; resolves with the exit status. */
export async function main(argv: string[], out: (t: string) => void = (t) => process.stdout.write(t), err: (t: string) => void = (t) => process.stderr.write(t)): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        namespace: { type: 'string', short: 'n' },
        'all-namespaces': { type: 'boolean', short: 'A' },
        kubeconfig: { type: 'string' },
        context: { type: 'string' },
        output: { type: 'string', short: 'o' },
        header: { type: 'string', short: 'H', multiple: true },
        host: { type: 'string' },
        client: { type: 'string' },
        listener: { type: 'string' },
        dataplane: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (e) {
    err(`kubectl switchyard: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values: o, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (o.help || command === undefined || command === 'help') {
    (command === undefined && !o.help ? err : out)(HELP);
    return command === undefined && !o.help ? 2 : 0;
  }
  const usage = (message: string): number => {
    err(`kubectl switchyard ${command}: ${message}\n\n${HELP}`);
    return 2;
  };
  const output = o.output ?? 'text';
  if (output !== 'text' && output !== 'json') return usage('--output is text or json');

  const kc = new KubeConfig();
  try {
    if (o.kubeconfig) kc.loadFromFile(o.kubeconfig);
    else kc.loadFromDefault();
    if (o.context) kc.setCurrentContext(o.context);
  } catch (e) {
    err(`kubectl switchyard: cannot load the kubeconfig: ${(e as Error).message}\n`);
    return 2;
  }
  const namespace = o.namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';

  try {
    if (command === 'explain') {
      if (rest.length !== 2) return usage('give the method and the request target, e.g. GET /api/v1/users/42');
      const [method, target] = rest as [string, string];
      const headers: Record<string, string[]> = {};
      const credentials: string[] = [];
      for (const line of o.header ?? []) {
        const colon = line.indexOf(':');
        if (colon <= 0) return usage(`header "${line.slice(0, 40)}" must be "Name: value"`);
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (CREDENTIALS.has(name.toLowerCase())) credentials.push(`${name}: ${value}`);
        else (headers[name] ??= []).push(value);
      }
      const spec = { method, path: target, ...(o.host ? { host: o.host } : {}), headers, ...(o.client ? { client: o.client } : {}), ...(o.listener ? { listener: o.listener } : {}), ...(o.dataplane ? { dataplane: o.dataplane } : {}) };
      const a = await callLeader(kc, 'POST', `${API}/namespaces/${encodeURIComponent(namespace)}/explanations`, { apiVersion: 'observe.switchyard.dev/v1alpha1', kind: 'Explanation', spec }, credentials.length ? { 'x-switchyard-credential': credentials } : {});
      if (a.status !== 201) {
        err(`kubectl switchyard explain: ${problem(a, 'cannot explain')}\n`);
        return 3;
      }
      const status = (a.body as { status: { dataplane: string; explanation: Explanation } }).status;
      const e: Explanation = { ...status.explanation, answeredBy: `data plane ${status.dataplane}` };
      out(output === 'json' ? `${JSON.stringify(e, null, 2)}\n` : formatExplanation(e));
      return explanationExitCode(e);
    }
    if (command === 'routes') {
      if (rest.length > 0) return usage('takes no arguments');
      const a = await call(kc, 'GET', o['all-namespaces'] ? `${API}/routes` : `${API}/namespaces/${encodeURIComponent(namespace)}/routes`);
      if (a.status !== 200) {
        err(`kubectl switchyard routes: ${problem(a, 'cannot list routes')}\n`);
        return 3;
      }
      const list = a.body as { metadata: { tableVersion: string }; items: Array<{ spec: Route }> };
      if (output === 'json') {
        out(`${JSON.stringify(list, null, 2)}\n`);
        return 0;
      }
      const rows = [['NAMESPACE', 'FROM', 'ROUTE', 'MATCH', 'BACKENDS', 'AUTH', 'RATE LIMIT']];
      for (const { spec: r } of list.items) {
        const match = `${r.methods.length ? r.methods.join(',') : '*'} ${r.path.type} ${r.path.value}${r.hosts.length ? ` on ${r.hosts.join(',')}` : ''}${r.headers?.length ? ` when ${r.headers.map((h) => `${h.name}${h.value !== undefined ? `=${h.value}` : ''}`).join(',')}` : ''}`;
        const backends = r.redirect ? `redirect ${r.redirect.statusCode}` : r.backends.map((b) => `${b.upstream}${r.backends.length > 1 ? `(${b.weight})` : ''}`).join(',');
        const auth = r.auth.roles.length || r.auth.permissions.length ? [...r.auth.roles.map((x) => `role:${x}`), ...r.auth.permissions.map((x) => `perm:${x}`)].join(',') : r.auth.required ? 'token' : 'public';
        const from = r.source ? `${r.source.kind}/${r.source.name}` : '-';
        rows.push([r.source?.namespace ?? '-', from, r.id, match, backends || '-', auth, r.rateLimit ? `${r.rateLimit.limit}${r.rateLimit.windowMs ? `/${r.rateLimit.windowMs / 1000}s` : ''}` : '-']);
      }
      out(`table ${list.metadata.tableVersion}: ${list.items.length} route${list.items.length === 1 ? '' : 's'}${o['all-namespaces'] ? '' : ` in ${namespace}`} (rate limits shown are the routes' own; each data plane lays its gateway-wide defaults under them)\n`);
      if (list.items.length > 0) out(table(rows));
      return 0;
    }
    if (command === 'status') {
      if (rest.length > 0) return usage('takes no arguments');
      const a = await callLeader(kc, 'GET', `${API}/dataplanes`);
      if (a.status !== 200) {
        err(`kubectl switchyard status: ${problem(a, 'cannot read the status')}\n`);
        return 3;
      }
      const list = a.body as { metadata: { leader: string; tableVersion: string | null }; items: Array<{ metadata: { name: string }; status: { connectedAt: string; appliedVersion: string | null; lastAck: { version: string; applied: boolean; error?: string } | null } }> };
      if (output === 'json') {
        out(`${JSON.stringify(list, null, 2)}\n`);
        return 0;
      }
      const current = list.metadata.tableVersion;
      out(`operator leader   ${list.metadata.leader}\ntable version     ${current ?? '(none compiled yet)'}\ndata planes       ${list.items.length} connected, ${list.items.filter((d) => d.status.appliedVersion === current).length} serving it\n\n`);
      const rows = [['DATA PLANE', 'SERVES', 'CURRENT', 'CONNECTED', 'LAST ACK']];
      for (const d of list.items) {
        const ack = d.status.lastAck === null ? '-' : d.status.lastAck.applied ? `applied ${d.status.lastAck.version}` : `rejected ${d.status.lastAck.version}: ${d.status.lastAck.error ?? ''}`;
        rows.push([d.metadata.name, d.status.appliedVersion ?? '-', d.status.appliedVersion === current ? 'yes' : 'no', d.status.connectedAt, ack]);
      }
      if (list.items.length > 0) out(table(rows));
      return 0;
    }
    return usage(`unknown command "${command}"`);
  } catch (e) {
    err(`kubectl switchyard ${command}: cannot reach the cluster: ${(e as Error).message}\n`);
    return 3;
  }
}
