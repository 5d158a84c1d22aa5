/**
 * The data plane side by side: the same nginx upstream, the same load
 * generator (wrk, one thread) and the same connection counts for a direct
 * connection, nginx, HAProxy, two Node.js proxies and the gateway in several
 * modes. Every subject runs at once (idle ones cost nothing); runs are
 * interleaved, one of each subject per round, and medians over the rounds are
 * reported.
 */
import path from 'node:path';
import { gatewayModes } from './lib/gateway-modes.ts';
import { cpuPlan, ROOT, tempDir } from './lib/processes.ts';
import { LARGE_BYTES, startGateway, startHaproxy, startNginxProxy, startNodePeer, startUpstream, type Server } from './lib/servers.ts';
import { cpuTicks, median, round, stolenSince } from './lib/stats.ts';
import { errorCount, runWrk, type WrkResult } from './lib/wrk.ts';

/** What kind of thing a subject is; ratios are taken against these groups. */
export type SubjectKind = 'limit' | 'native' | 'node' | 'gateway';

/** One measured run, kept small for the JSON. */
export interface RunRecord {
  rps: number;
  p50: number;
  p99: number;
  p999: number;
  errors: number;
  /** CPU time the hypervisor took for other guests during the run, in percent (see MachineInfo.stolenPercent). */
  stolenPercent?: number | undefined;
}

/** A subject's medians over its runs. */
export interface SubjectSummary {
  id: string;
  label: string;
  kind: SubjectKind;
  rps: number;
  latencyMs: { p50: number; p99: number; p999: number };
  /** MiB/s of response data (large-body case). */
  mibPerSecond: number;
  errors: number;
  runs: RunRecord[];
  /** Gateway subjects: median requests/s divided by the others'. */
  ratios?: { direct: number; nginx: number; fastestNode: number; fastestNodeId: string };
}

/** One load case (small body, large body, many connections). */
export interface CaseResult {
  id: string;
  title: string;
  path: string;
  connections: number;
  durationS: number;
  rounds: number;
  subjects: SubjectSummary[];
}

/** The section's result. */
export interface DataPlaneResult {
  cpu: { pinned: boolean; subject: string | undefined; load: string | undefined };
  cases: CaseResult[];
  /** Sanity checks on the full-featured gateway after its runs. */
  checks: string[];
}

interface Subject {
  id: string;
  label: string;
  kind: SubjectKind;
  origin: string;
  bearer: string | undefined;
}

interface CaseSpec {
  id: string;
  title: string;
  path: string;
  connections: number;
  durationS: number;
  rounds: number;
  warmupS: number;
  subjects: string[];
}

/** Options of the section. */
export interface DataPlaneOptions {
  quick: boolean;
  log: (line: string) => void;
}

/** Runs the section. */
export async function runDataPlane(options: DataPlaneOptions): Promise<DataPlaneResult> {
  const { quick, log } = options;
  const cpu = cpuPlan();
  const tmp = tempDir('dataplane');
  const servers: Server[] = [];
  const checks: string[] = [];
  try {
    const upstream = await startUpstream(path.join(tmp.dir, 'upstream'), cpu.load);
    servers.push(upstream);
    const subjects: Subject[] = [{ id: 'direct', label: 'direct to the upstream (the limit)', kind: 'limit', origin: upstream.origin, bearer: undefined }];
    const add = (s: Server, id: string, label: string, kind: SubjectKind, bearer?: string): void => {
      servers.push(s);
      subjects.push({ id, label, kind, origin: s.origin, bearer });
    };
    add(await startNginxProxy(path.join(tmp.dir, 'nginx'), upstream, cpu.subject), 'nginx', 'nginx (1 worker, keepalive upstream)', 'native');
    add(await startHaproxy(path.join(tmp.dir, 'haproxy'), upstream, cpu.subject), 'haproxy', 'HAProxy (1 thread, http-reuse always)', 'native');
    add(await startNodePeer('fastify-http-proxy', path.join(ROOT, 'bench/peers/fastify-proxy.ts'), upstream, cpu.subject), 'fastify-http-proxy', '@fastify/http-proxy', 'node');
    add(await startNodePeer('http-proxy', path.join(ROOT, 'bench/peers/node-http-proxy.ts'), upstream, cpu.subject), 'http-proxy', 'http-proxy', 'node');
    const nodeArgs = (process.env.BENCH_GATEWAY_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
    const modes = await gatewayModes(upstream.origin);
    let fullLog: string | undefined;
    let fullMetricsPort = 0;
    for (const mode of modes) {
      const dir = path.join(tmp.dir, mode.id);
      const logFile = mode.logToFile ? path.join(dir, 'stdout.log') : undefined;
      const gw = await startGateway({ name: mode.id, dir, config: mode.config, cpu: cpu.subject, logFile, nodeArgs, args: ['--no-watch'] });
      if (mode.id === 'gateway-full') {
        fullLog = logFile;
        fullMetricsPort = gw.metricsPort;
      }
      add(gw, mode.id, mode.label, 'gateway', mode.bearer);
    }
    await verifySubjects(subjects);

    const everyone = subjects.map((s) => s.id);
    const streaming = ['direct', 'nginx', 'haproxy', 'fastify-http-proxy', 'http-proxy', 'gateway-plain', 'gateway-full'];
    const specs: CaseSpec[] = [
      { id: 'small', title: 'Small response, 64 connections', path: '/bench', connections: 64, durationS: quick ? 2 : 6, rounds: quick ? 1 : 3, warmupS: quick ? 1 : 2, subjects: everyone },
      { id: 'large', title: `Large response (${LARGE_BYTES / 1024 / 1024} MiB, streamed), 16 connections`, path: '/large', connections: 16, durationS: quick ? 2 : 4, rounds: quick ? 1 : 3, warmupS: quick ? 0 : 1, subjects: streaming },
      { id: 'many', title: 'Small response, 1,000 keep-alive connections', path: '/bench', connections: 1000, durationS: quick ? 2 : 4, rounds: quick ? 1 : 3, warmupS: quick ? 0 : 1, subjects: streaming },
    ];
    // For investigations: BENCH_CASES=large BENCH_SUBJECTS=gateway-plain,http-proxy BENCH_ROUNDS=5 (the direct run is always kept).
    const onlyCases = process.env.BENCH_CASES?.split(',');
    const onlySubjects = process.env.BENCH_SUBJECTS?.split(',');
    const rounds = Number(process.env.BENCH_ROUNDS ?? 0);
    const cases: CaseResult[] = [];
    for (const spec of specs) {
      if (onlyCases && !onlyCases.includes(spec.id)) continue;
      if (onlySubjects) spec.subjects = spec.subjects.filter((id) => id === 'direct' || onlySubjects.includes(id));
      if (rounds > 0) spec.rounds = rounds;
      cases.push(await runCase(spec, subjects, cpu.load, log));
    }

    if (fullMetricsPort !== 0) checks.push(...(await checkFullGateway(fullMetricsPort, fullLog)));
    return { cpu, cases, checks };
  } finally {
    for (const s of servers.reverse()) await s.stop();
    tmp.remove();
  }
}

/** Every subject answers 200 with the upstream's body before any load. */
async function verifySubjects(subjects: Subject[]): Promise<void> {
  for (const s of subjects) {
    const res = await fetch(`${s.origin}/bench`, { headers: s.bearer ? { authorization: `Bearer ${s.bearer}` } : {} });
    const body = await res.text();
    if (res.status !== 200 || !body.includes('"ok"')) throw new Error(`${s.id}: GET /bench answered ${res.status}: ${body.slice(0, 200)}`);
  }
}

/** Each wrk run's share of CPU time stolen by the hypervisor. */
const stolenBy = new WeakMap<WrkResult, number | undefined>();

async function runCase(spec: CaseSpec, all: Subject[], loadCpu: string | undefined, log: (line: string) => void): Promise<CaseResult> {
  const subjects = spec.subjects.map((id) => all.find((s) => s.id === id) as Subject);
  const runs = new Map<string, WrkResult[]>(subjects.map((s) => [s.id, []]));
  if (spec.warmupS > 0) {
    log(`data plane: ${spec.title}: warm-up`);
    for (const s of subjects) await runWrk({ url: s.origin + spec.path, connections: spec.connections, durationS: spec.warmupS, cpu: loadCpu, bearer: s.bearer });
  }
  for (let round = 1; round <= spec.rounds; round++) {
    for (const s of subjects) {
      const ticks = cpuTicks();
      const r = await runWrk({ url: s.origin + spec.path, connections: spec.connections, durationS: spec.durationS, cpu: loadCpu, bearer: s.bearer });
      const stolen = stolenSince(ticks);
      runs.get(s.id)?.push(r);
      stolenBy.set(r, stolen);
      log(`data plane: ${spec.id} round ${round}/${spec.rounds} ${s.id}: ${Math.round(r.rps)} req/s, p99 ${r.latencyMs.p99.toFixed(2)} ms${errorCount(r) > 0 ? `, ${errorCount(r)} errors` : ''}${stolen === undefined ? '' : `, ${stolen} % CPU stolen`}`);
    }
  }
  const summaries = subjects.map((s) => summarize(s, runs.get(s.id) ?? []));
  const direct = summaries.find((s) => s.id === 'direct');
  const nginx = summaries.find((s) => s.id === 'nginx');
  const node = summaries.filter((s) => s.kind === 'node').sort((a, b) => b.rps - a.rps)[0];
  for (const s of summaries) {
    if (s.kind !== 'gateway') continue;
    s.ratios = {
      direct: round(s.rps / (direct?.rps ?? NaN), 3),
      nginx: round(s.rps / (nginx?.rps ?? NaN), 3),
      fastestNode: round(s.rps / (node?.rps ?? NaN), 3),
      fastestNodeId: node?.id ?? '',
    };
  }
  return { id: spec.id, title: spec.title, path: spec.path, connections: spec.connections, durationS: spec.durationS, rounds: spec.rounds, subjects: summaries };
}

function summarize(s: Subject, runs: WrkResult[]): SubjectSummary {
  return {
    id: s.id,
    label: s.label,
    kind: s.kind,
    rps: round(median(runs.map((r) => r.rps)), 0),
    latencyMs: {
      p50: round(median(runs.map((r) => r.latencyMs.p50)), 3),
      p99: round(median(runs.map((r) => r.latencyMs.p99)), 3),
      p999: round(median(runs.map((r) => r.latencyMs.p999)), 3),
    },
    mibPerSecond: round(median(runs.map((r) => r.bytesPerSecond)) / 1024 / 1024, 1),
    errors: runs.reduce((n, r) => n + errorCount(r), 0),
    runs: runs.map((r) => ({ rps: round(r.rps, 0), p50: round(r.latencyMs.p50, 3), p99: round(r.latencyMs.p99, 3), p999: round(r.latencyMs.p999, 3), errors: errorCount(r), stolenPercent: stolenBy.get(r) })),
  };
}

/** The full-featured gateway really counted, logged and rate-limited (allowing) every request. */
async function checkFullGateway(metricsPort: number, logFile: string | undefined): Promise<string[]> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const sum = (pattern: RegExp): number => text.split('\n').filter((l) => pattern.test(l)).reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  const requests = sum(/^switchyard_requests_total\{/);
  const allowed = sum(/^switchyard_ratelimit_decisions_total\{.*result="allowed"/);
  const limited = sum(/^switchyard_ratelimit_decisions_total\{.*result="limited"/);
  const checks = [`gateway-full: switchyard_requests_total ${requests}, rate limit allowed ${allowed}, limited ${limited}`];
  if (logFile) {
    const { statSync } = await import('node:fs');
    checks.push(`gateway-full: access log ${(statSync(logFile).size / 1024 / 1024).toFixed(0)} MiB`);
  }
  if (requests === 0 || allowed === 0 || limited > 0) throw new Error(`the full-featured gateway did not count as expected: ${checks.join('; ')}`);
  return checks;
}
