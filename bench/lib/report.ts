/** The markdown tables `npm run bench` prints and writes next to its JSON. */
import type { ControlPlaneResult, SizeResult } from '../controlplane.ts';
import type { DataPlaneResult } from '../dataplane.ts';
import { redisFailoverTable, type RedisFailoverResult } from '../redis-failover.ts';
import { webSocketTable, type WebSocketResult } from '../websocket.ts';
import { http2Tables, type Http2Result } from '../http2.ts';
import type { ReloadResult } from '../reload.ts';
import type { RouteScaleResult } from '../route-scale.ts';
import { seedTable, type SeedScenarioResult } from '../seed-scenario.ts';
import type { MachineInfo } from './stats.ts';
import { int, mib, ms, ratio } from './stats.ts';

/** Everything one `npm run bench` produced. */
export interface BenchResults {
  mode: 'full' | 'quick';
  startedAt: string;
  seconds: number;
  machine: MachineInfo;
  dataplane?: DataPlaneResult;
  routeScale?: RouteScaleResult;
  reload?: ReloadResult;
  seed?: SeedScenarioResult;
  redis?: RedisFailoverResult;
  controlPlane?: ControlPlaneResult;
  websocket?: WebSocketResult;
  http2?: Http2Result;
  /** Sections that failed, with the reason. */
  failures: string[];
}

function dataPlaneTables(d: DataPlaneResult): string[] {
  const out: string[] = [];
  const pin = d.cpu.pinned ? `proxy pinned to CPU ${d.cpu.subject}, wrk and the upstream to CPU ${d.cpu.load}` : 'not pinned (one CPU or no taskset)';
  out.push(`wrk, one thread; upstream: nginx \`return 200\` (12-byte body) or a 1 MiB file; ${pin}. Medians over the rounds; ratios are requests/s of the gateway mode divided by the other's.`, '');
  for (const c of d.cases) {
    out.push(`### ${c.title} (\`${c.path}\`, ${c.rounds} × ${c.durationS} s)`, '');
    const large = c.id === 'large';
    out.push(`| subject | req/s |${large ? ' MiB/s |' : ''} p50 ms | p99 ms | p99.9 ms | errors | ÷ direct | ÷ nginx | ÷ fastest Node.js |`);
    out.push(`| --- | --- |${large ? ' --- |' : ''} --- | --- | --- | --- | --- | --- | --- |`);
    for (const s of c.subjects) {
      const r = s.ratios;
      out.push(
        `| ${s.label} | ${int(s.rps)} |${large ? ` ${s.mibPerSecond} |` : ''} ${ms(s.latencyMs.p50)} | ${ms(s.latencyMs.p99)} | ${ms(s.latencyMs.p999)} | ${int(s.errors)} | ${r ? ratio(r.direct) : ''} | ${r ? ratio(r.nginx) : ''} | ${r ? `${ratio(r.fastestNode)} (${r.fastestNodeId})` : ''} |`,
      );
    }
    out.push('');
  }
  if (d.checks.length > 0) out.push(...d.checks.map((c) => `- ${c}`), '');
  return out;
}

function routeScaleTables(r: RouteScaleResult): string[] {
  const out = ['| routes | match p50 ns (spread) | match p99 ns (spread) | match p50 ns (same 10 routes) | matcher compile ms |', '| --- | --- | --- | --- | --- |'];
  for (const m of r.match) out.push(`| ${int(m.routes)} | ${int(m.nsPerMatch.p50)} | ${int(m.nsPerMatch.p99)} | ${int(m.nsPerMatchSameRequests.p50)} | ${ms(m.matcherCompileMs)} |`);
  out.push('', '| routes | config load ms | config compile ms | data plane apply ms | operator parse ms | operator compile ms |', '| --- | --- | --- | --- | --- | --- |');
  for (const c of r.compile) out.push(`| ${int(c.routes)} | ${ms(c.configLoadMs)} | ${ms(c.configCompileMs)} | ${ms(c.dataplaneApplyMs)} | ${ms(c.operatorParseMs)} | ${ms(c.operatorCompileMs)} |`);
  out.push('', '| routes | data plane heapUsed Δ MiB | RSS Δ MiB |', '| --- | --- | --- |');
  for (const m of r.memory) out.push(`| ${int(m.routes)} | ${mib(m.heapUsedDeltaBytes)} | ${mib(m.rssDeltaBytes)} |`);
  out.push('');
  return out;
}

function reloadTable(r: ReloadResult): string[] {
  return [
    `${int(r.routes)} routes swapped every ${r.intervalMs} ms (admin POST /reload after rewriting the file), ${r.connections} connections, ${r.rounds} × ${r.durationS} s each way.`,
    '',
    '| | req/s | p50 ms | p99 ms | p99.9 ms | errors | requests |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    `| no reloads | ${int(r.quiet.rps)} | ${ms(r.quiet.p50Ms)} | ${ms(r.quiet.p99Ms)} | ${ms(r.quiet.p999Ms)} | ${int(r.quiet.errors)} | ${int(r.quiet.requests)} |`,
    `| reloading | ${int(r.reloading.rps)} | ${ms(r.reloading.p50Ms)} | ${ms(r.reloading.p99Ms)} | ${ms(r.reloading.p999Ms)} | ${int(r.reloading.errors)} | ${int(r.reloading.requests)} |`,
    '',
    `Reloads: ${r.reloads.applied} applied, ${r.reloads.failed} failed of ${r.reloads.requested}; POST /reload took p50 ${ms(r.reloads.p50Ms)} ms, p99 ${ms(r.reloads.p99Ms)} ms, max ${ms(r.reloads.maxMs)} ms.`,
    '',
  ];
}

function controlPlaneTable(c: ControlPlaneResult): string[] {
  const out = [
    `Kubernetes ${c.kubernetes}; one operator, one data plane; latencies polled every 5 ms.`,
    '',
    '| background routes | routes in table | create → served p50 / p90 / p99 ms | pod ready → endpoint p50 / p99 ms | operator compile p50 / max ms | operator RSS MiB | operator CPU ms per change | data plane RSS MiB | data plane CPU ms per change | ingest: created / in table s (operator CPU s) | burst: all Programmed s after the last create |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const s of c.sizes) {
    out.push(
      `| ${int(s.backgroundRoutes)} | ${int(s.tableRoutes)} | ${ms(s.routeToTraffic.p50Ms)} / ${ms(s.routeToTraffic.p90Ms)} / ${ms(s.routeToTraffic.p99Ms)} (${s.routeToTraffic.samples}) | ${ms(s.podReadyToEndpoint.p50Ms)} / ${ms(s.podReadyToEndpoint.p99Ms)} (${s.podReadyToEndpoint.samples}) | ${int(s.operatorCompileMs.p50)} / ${int(s.operatorCompileMs.max)} | ${s.operator.rssMiB} | ${s.operator.cpuMsPerChange} | ${s.dataplane.rssMiB} | ${s.dataplane.cpuMsPerChange} | ${s.ingest.createSeconds} / ${s.ingest.inTableSeconds} (${s.ingest.operatorCpuSeconds}) | ${s.ingest.programmedAfterLastCreateSeconds ?? 'n/a'} |`,
    );
  }
  out.push('', `switchyard_operator_compile_duration_seconds over the run: ${c.compileMetric.count} compiles, mean ${ms(c.compileMetric.meanMs)} ms.`, '');
  return out;
}

/** One row of the targets table: what, the measurement, the target, and whether it is met. */
export interface TargetRow {
  what: string;
  measured: string;
  target: string;
  /** Undefined when this run did not measure it. */
  met: boolean | undefined;
}

/**
 * The numbers docs/performance.md sets targets for, each beside its target,
 * from whichever sections ran. A row a run did not reach says so.
 */
export function targetRows(r: BenchResults): TargetRow[] {
  const rows: TargetRow[] = [];
  const subject = (caseId: string, id: string) => r.dataplane?.cases.find((c) => c.id === caseId)?.subjects.find((s) => s.id === id)?.ratios;
  const ratioRow = (what: string, caseId: string, id: string, of: 'fastestNode' | 'nginx', min: number): void => {
    const v = subject(caseId, id)?.[of];
    rows.push({ what, measured: v === undefined ? 'not measured' : `${ratio(v)}${of === 'fastestNode' ? ` (${subject(caseId, id)?.fastestNodeId})` : ''}`, target: `≥ ${min.toFixed(2).replace(/0$/, '')}×`, met: v === undefined ? undefined : v >= min });
  };
  ratioRow('full pipeline ÷ fastest Node.js peer, small responses', 'small', 'gateway-full', 'fastestNode', 1.0);
  ratioRow('routing only ÷ fastest Node.js peer, small responses', 'small', 'gateway-plain', 'fastestNode', 1.3);
  ratioRow('routing only ÷ nginx (1 worker), small responses', 'small', 'gateway-plain', 'nginx', 0.5);
  ratioRow('1,000 connections, full pipeline ÷ nginx', 'many', 'gateway-full', 'nginx', 0.35);
  const reload = r.reload;
  if (reload) {
    const lost = 1 - reload.reloading.rps / reload.quiet.rps;
    rows.push({ what: `throughput lost while the table is swapped every ${reload.intervalMs} ms (${int(reload.routes)} routes)`, measured: `${(lost * 100).toFixed(1)} %`, target: '≤ 5 %', met: lost <= 0.05 });
  } else rows.push({ what: 'throughput lost while the table is swapped every 100 ms (100 routes)', measured: 'not measured', target: '≤ 5 %', met: undefined });
  const sizes = r.controlPlane?.sizes ?? [];
  // The run's sizes are 10, 1,000 and 5,000 background routes (10 and 300 with --quick): the middle one stands for "1,000 routes".
  const mid = sizes.length > 1 ? sizes[1] : undefined;
  const big = sizes.length > 2 ? sizes[sizes.length - 1] : undefined;
  const at = (s: SizeResult | undefined): string => (s ? ` (${int(s.tableRoutes)} routes in the table)` : '');
  const cp = (what: string, s: SizeResult | undefined, value: (s: SizeResult) => number[], limits: number[], unit: string): void => {
    const v = s ? value(s) : undefined;
    rows.push({
      what: `${what}${at(s)}`,
      measured: v ? `${v.map((x) => (unit === 'ms' ? ms(x) : String(x))).join(' / ')} ${unit}` : 'not measured',
      target: `≤ ${limits.join(' / ')} ${unit}`,
      met: v ? v.every((x, i) => x <= (limits[i] as number)) : undefined,
    });
  };
  cp('route create → served, p50 / p99', mid, (s) => [s.routeToTraffic.p50Ms, s.routeToTraffic.p99Ms], [30, 100], 'ms');
  cp('route create → served, p99', big, (s) => [s.routeToTraffic.p99Ms], [250], 'ms');
  cp('pod ready → endpoint in the data plane, p99', big, (s) => [s.podReadyToEndpoint.p99Ms], [250], 'ms');
  const burst = mid?.ingest.programmedAfterLastCreateSeconds;
  rows.push({ what: `all routes Programmed after a burst of ${mid ? int(mid.ingest.created) : '1,000'} creates`, measured: burst === undefined ? 'not measured' : `${burst} s after the last create`, target: '≤ 2 s', met: burst === undefined ? undefined : burst <= 2 });
  cp('data plane RSS', mid, (s) => [s.dataplane.rssMiB], [100], 'MiB');
  cp('operator RSS', mid, (s) => [s.operator.rssMiB], [150], 'MiB');
  return rows;
}

function targetsTable(r: BenchResults): string[] {
  const out = ['| what | measured | target | met |', '| --- | --- | --- | --- |'];
  for (const t of targetRows(r)) out.push(`| ${t.what} | ${t.measured} | ${t.target} | ${t.met === undefined ? 'n/a' : t.met ? 'yes' : '**no**'} |`);
  out.push('');
  return out;
}

/** The whole report. */
export function renderReport(r: BenchResults): string {
  const m = r.machine;
  const out = [
    `# Switchyard benchmarks (${r.mode})`,
    '',
    `${r.startedAt}, ${Math.round(r.seconds)} s. ${m.cpus} CPUs (${m.cpuModel}), ${m.memoryGiB} GiB, Node.js ${m.node}, ${m.kernel}; wrk ${m.wrk}, nginx ${m.nginx}, HAProxy ${m.haproxy}. Load average (1 min) ${m.loadStart} at the start, ${m.loadEnd ?? 'n/a'} at the end.${m.stolenPercent === undefined ? '' : ` CPU time stolen by the hypervisor over the run: ${m.stolenPercent} %${m.stolenPercent >= 10 ? ' (the host was busy with other guests: rates are low by about that much or more)' : ''}.`}`,
    '',
  ];
  if (r.failures.length > 0) out.push('**Failed sections:**', '', ...r.failures.map((f) => `- ${f}`), '');
  out.push('## Targets', '', 'Each number docs/performance.md sets a target for, from this run. Ratios are medians taken side by side in this run; a section that did not run says "not measured".', '', ...targetsTable(r));
  if (r.dataplane) out.push('## Data plane side by side', '', ...dataPlaneTables(r.dataplane));
  if (r.routeScale) out.push('## Route table scale (in process)', '', ...routeScaleTables(r.routeScale));
  if (r.reload) out.push('## Reload under load', '', ...reloadTable(r.reload));
  if (r.seed) out.push(`## The seed's load scenario`, '', `${r.seed.timeScale}; ${int(r.seed.totals.iterations)} iterations, ${int(r.seed.totals.errors)} errors, ${int(r.seed.totals.interrupted)} requests interrupted at the end.`, '', seedTable(r.seed), '');
  if (r.redis) out.push('## Rate limits through a Redis failover', '', ...redisFailoverTable(r.redis));
  if (r.websocket) out.push('## WebSocket messages through the gateway', '', ...webSocketTable(r.websocket));
  if (r.http2) out.push('## HTTP/2 and gRPC through the gateway', '', ...http2Tables(r.http2));
  if (r.controlPlane) out.push('## Control plane', '', ...controlPlaneTable(r.controlPlane));
  return `${out.join('\n').trimEnd()}\n`;
}
