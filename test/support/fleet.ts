/**
 * Operators and data planes as the processes users run (the real CLIs), with
 * their metrics ports, for tests that break the control plane under them.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Watch, type KubeConfig } from '@kubernetes/client-node';
import { request } from 'undici';
import { freePort, startProcess, tempFile, type Proc } from './processes.ts';

/** The token the fleet shares. */
export const FLEET_TOKEN = 'fleet-token-0123456789abcdef';

/** An operator process. */
export interface OperatorProc {
  identity: string;
  proc: Proc;
  /** The config server, for data planes. */
  url: string;
  metricsUrl: string;
  /** GET /metrics as text. */
  metrics(): Promise<string>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** A data plane process. */
export interface DataplaneProc {
  id: string;
  proc: Proc;
  url: string;
  metricsUrl: string;
  stateDir: string | undefined;
  metrics(): Promise<string>;
  /** The version /ready reports (undefined before the first table). */
  version(): Promise<string | undefined>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Lease timings short enough for tests: a 4 s lease, renewed within 3 s, tried every 500 ms. */
export const TEST_LEASE = { duration: '4s', renewDeadline: '3s', retryPeriod: '500ms' };

let tokenFile: string | undefined;
const tokenPath = (): string => (tokenFile ??= tempFile('token', `${FLEET_TOKEN}\n`));

const metricsOf = async (url: string): Promise<string> => {
  const res = await request(`${url}/metrics`);
  return res.body.text();
};

/** Starts `switchyard-operator` and waits until its config server listens. */
export async function startOperatorProc(options: {
  kubeconfig: string;
  identity: string;
  /** The Lease's namespace; undefined runs without leader election. */
  leaseNamespace: string | undefined;
  namespaces?: string[];
  port?: number;
}): Promise<OperatorProc> {
  const port = options.port ?? (await freePort());
  const metricsPort = await freePort();
  const args = ['--kubeconfig', options.kubeconfig, '--listen', `127.0.0.1:${port}`, '--metrics', `127.0.0.1:${metricsPort}`, '--token-file', tokenPath(), '--identity', options.identity];
  if (options.leaseNamespace === undefined) args.push('--no-leader-elect');
  else args.push('--lease-namespace', options.leaseNamespace, '--lease-duration', TEST_LEASE.duration, '--renew-deadline', TEST_LEASE.renewDeadline, '--retry-period', TEST_LEASE.retryPeriod);
  if (options.namespaces) args.push('--namespaces', options.namespaces.join(','));
  const proc = startProcess('operator/bin/switchyard-operator.ts', args);
  await proc.waitForLog('"event":"listening"');
  const metricsUrl = `http://127.0.0.1:${metricsPort}`;
  return { identity: options.identity, proc, url: `http://127.0.0.1:${port}`, metricsUrl, metrics: () => metricsOf(metricsUrl), stop: (signal = 'SIGTERM') => proc.kill(signal) };
}

/** Starts `switchyard-dataplane` subscribed to `operatorUrls`, with a state directory unless `stateDir` is false. */
export async function startDataplaneProc(options: { id: string; operatorUrls: string[]; stateDir?: string | false; bootstrap?: string }): Promise<DataplaneProc> {
  const port = await freePort();
  const metricsPort = await freePort();
  const stateDir = options.stateDir === false ? undefined : (options.stateDir ?? mkdtempSync(path.join(tmpdir(), 'switchyard-state-')));
  const bootstrap = tempFile('bootstrap.yaml', options.bootstrap ?? 'server: { bind_address: 127.0.0.1 }\nobservability: { logging: { access_log: false } }\n');
  const args = ['--config', bootstrap, '--operator', options.operatorUrls.join(','), '--token-file', tokenPath(), '--dataplane-id', options.id];
  if (stateDir) args.push('--state-dir', stateDir);
  const proc = startProcess('dataplane/bin/switchyard-dataplane.ts', args, {
    GATEWAY_SERVER_HTTP_PORT: String(port),
    GATEWAY_SERVER_ADMIN_PORT: '0',
    GATEWAY_SERVER_METRICS_PORT: String(metricsPort),
  });
  await proc.waitForLog('"event":"listening"');
  const url = `http://127.0.0.1:${port}`;
  const metricsUrl = `http://127.0.0.1:${metricsPort}`;
  return {
    id: options.id,
    proc,
    url,
    metricsUrl,
    stateDir,
    metrics: () => metricsOf(metricsUrl),
    version: async () => {
      const res = await request(`${url}/ready`);
      const body = (await res.body.json()) as { version?: string | null };
      return body.version ?? undefined;
    },
    stop: (signal = 'SIGTERM') => proc.kill(signal),
  };
}

/** The value of one sample in Prometheus text, or undefined: `metric(text, 'name', { kind: 'Upstream' })`. */
export function metric(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

/** The sum of every sample of `name` whose labels include `labels`. */
export function metricSum(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(m[3]);
  }
  return sum;
}

/** The table version the operator serves (switchyard_operator_table_info), from its metrics. */
export function operatorTableVersion(text: string): string | undefined {
  return /switchyard_operator_table_info\{version="([^"]+)"\} 1/.exec(text)?.[1];
}

/** One state of the operators' Lease. */
export interface LeaseRecord {
  holder: string;
  transitions: number;
}

/** Records every state the Lease goes through (a watch), for asserting hand-overs. */
export async function watchLease(kc: KubeConfig, namespace: string, name = 'switchyard-operator'): Promise<{ records: LeaseRecord[]; stop(): void }> {
  const records: LeaseRecord[] = [];
  const controller = await new Watch(kc).watch(
    `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`,
    { fieldSelector: `metadata.name=${name}` },
    (phase: string, obj: { spec?: { holderIdentity?: string; leaseTransitions?: number } }) => {
      if (phase !== 'ADDED' && phase !== 'MODIFIED') return;
      const record = { holder: obj.spec?.holderIdentity ?? '', transitions: obj.spec?.leaseTransitions ?? 0 };
      const last = records.at(-1);
      // Renewals change only the renew time: one record per holder and term.
      if (last?.holder !== record.holder || last.transitions !== record.transitions) records.push(record);
    },
    () => undefined,
  );
  return { records, stop: () => controller.abort() };
}

/** Samples every operator's leader gauge for `ms`: throws unless exactly one leads, the same one, throughout. */
export async function exactlyOneLeader(operators: OperatorProc[], ms = 3_000): Promise<OperatorProc> {
  let leader: OperatorProc | undefined;
  const until = Date.now() + ms;
  do {
    const leading = [];
    for (const op of operators) if (metric(await op.metrics(), 'switchyard_operator_leader') === 1) leading.push(op);
    if (leading.length !== 1) throw new Error(`${leading.length} replicas lead: ${leading.map((o) => o.identity).join(', ') || 'none'}`);
    if (leader && leading[0] !== leader) throw new Error(`the leader changed from ${leader.identity} to ${leading[0]?.identity}`);
    leader = leading[0];
    await new Promise((r) => setTimeout(r, 250));
  } while (Date.now() < until);
  return leader as OperatorProc;
}

/** What a replica answers a data plane that subscribes: 200 (it serves tables) or 503 with Retry-After. */
export async function subscribeAnswer(operator: OperatorProc, dataplane = 'probe'): Promise<{ status: number; retryAfter: string | undefined }> {
  const res = await request(`${operator.url}/v1/tables/watch?dataplane=${dataplane}`, { headers: { authorization: `Bearer ${FLEET_TOKEN}` } });
  const retryAfter = res.headers['retry-after'];
  // A 200 is a stream that never ends: stop reading (and being a data plane) at once.
  res.body.on('error', () => undefined);
  res.body.destroy();
  return { status: res.statusCode, retryAfter: typeof retryAfter === 'string' ? retryAfter : undefined };
}

/** When a log line with `event` was written after line `from` (its own time field), or undefined. */
export function loggedAt(proc: Proc, event: string, from = 0): number | undefined {
  const line = proc.logs.slice(from).find((l) => l.includes(`"event":"${event}"`));
  return line === undefined ? undefined : Date.parse((JSON.parse(line) as { time: string }).time);
}
