/**
 * The seed's load test (its k6 script), repeatable: virtual users that each
 * log in through the gateway and then call an authenticated API, in a loop
 * with no pause, while the number of users ramps through the seed's stages.
 *
 *     k6 stage        here (full)      here (--quick)
 *     2 min → 100     2 s → 100        1 s → 100
 *     5 min   100     5 s   100        2.5 s 100
 *     2 min → 200     2 s → 200        1 s → 200
 *     5 min   200     5 s   200        2.5 s 200
 *     2 min → 0       2 s → 0          1 s → 0
 *
 * Minutes become seconds (half-seconds with --quick); the user counts are the
 * seed's. Behind the gateway run the example services of `npm start`, with
 * examples/gateway.yaml: the seed's routes, JWT settings and CORS. Two changes,
 * both because all virtual users share one client address: the per-client rate
 * limits are raised (the seed allows 10 logins a minute per client, which
 * would refuse nearly every login here), and the login is sent as JSON, which
 * the example auth service reads (k6's `http.post` with an object sends a
 * form). Each stage reports iterations, errors and latency per request kind.
 *
 * Run alone: `node bench/seed-scenario.ts [--quick]`; `npm run bench` runs it too.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Agent, request } from 'undici';
import { parse } from 'yaml';
import { cpuPlan, launch, pinSelf, ROOT, sleep, tempDir, type Child } from './lib/processes.ts';
import { startGateway, type Server } from './lib/servers.ts';
import { int, ms, percentile, round } from './lib/stats.ts';

/** One stage of the ramp, as k6 defines it: reach `target` users linearly over `seconds`. */
export interface Stage {
  seconds: number;
  target: number;
}

/** Latency and errors of one request kind in one stage. */
export interface KindStats {
  count: number;
  errors: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  /** Error statuses (or exception codes) and how often each happened. */
  errorKinds: Record<string, number>;
}

/** What happened in one stage; stage `grace` holds what finished after the schedule, while the last users completed their iteration. */
export interface StageResult {
  stage: number | 'grace';
  seconds: number;
  fromUsers: number;
  toUsers: number;
  iterations: number;
  iterationsPerSecond: number;
  login: KindStats;
  api: KindStats;
}

/** The scenario's result. */
export interface SeedScenarioResult {
  timeScale: string;
  stages: StageResult[];
  /** `interrupted`: requests still running when the grace period ended, aborted and not counted as errors (k6 says "interrupted iterations"). */
  totals: { iterations: number; errors: number; interrupted: number; seconds: number };
}

const MINUTE_SCALE_FULL = 1;
const MINUTE_SCALE_QUICK = 0.5;
const SEED_STAGES_MINUTES: Stage[] = [
  { seconds: 2, target: 100 },
  { seconds: 5, target: 100 },
  { seconds: 2, target: 200 },
  { seconds: 5, target: 200 },
  { seconds: 2, target: 0 },
];
/** How long users still finishing an iteration get after the last stage (k6's gracefulRampDown is 30 s). */
const GRACE_MS = { full: 10_000, quick: 3_000 };

type Sample = { stage: number; kind: 'login' | 'api'; ms: number; error: string | undefined };

/** The stage schedule: the seed's, with each minute taking `secondsPerMinute`. */
export function stagesFor(quick: boolean): Stage[] {
  const scale = quick ? MINUTE_SCALE_QUICK : MINUTE_SCALE_FULL;
  return SEED_STAGES_MINUTES.map((s) => ({ seconds: s.seconds * scale, target: s.target }));
}

/** Users wanted at `t` seconds into the schedule (linear within a stage), and the stage index. */
function usersAt(stages: Stage[], t: number): { users: number; stage: number } {
  let start = 0;
  let from = 0;
  for (let i = 0; i < stages.length; i++) {
    const s = stages[i] as Stage;
    if (t < start + s.seconds) return { users: Math.round(from + ((s.target - from) * (t - start)) / s.seconds), stage: i };
    start += s.seconds;
    from = s.target;
  }
  return { users: 0, stage: stages.length };
}

function statsOf(samples: Sample[]): KindStats {
  const latencies = samples.map((s) => s.ms);
  const errorKinds: Record<string, number> = {};
  for (const s of samples) if (s.error !== undefined) errorKinds[s.error] = (errorKinds[s.error] ?? 0) + 1;
  return {
    count: samples.length,
    errors: samples.filter((s) => s.error !== undefined).length,
    p50Ms: round(percentile(latencies, 50), 2),
    p95Ms: round(percentile(latencies, 95), 2),
    p99Ms: round(percentile(latencies, 99), 2),
    errorKinds,
  };
}

async function startService(args: string[], cpu: string | undefined): Promise<{ child: Child; port: number }> {
  const child = launch(`example ${args[1] ?? args[0]}`, process.execPath, [path.join(ROOT, 'bench/peers/seed-services.ts'), ...args], { cpu });
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    const line = child.output().split('\n').find((l) => l.startsWith('{'));
    if (line) return { child, port: (JSON.parse(line) as { port: number }).port };
    if (child.proc.exitCode !== null) break;
    await sleep(50);
  }
  await child.stop();
  throw new Error(`the example service ${args.join(' ')} did not start:\n${child.output().slice(-2000)}`);
}

/** examples/gateway.yaml with the services' ports and secret filled in and the per-client limits raised. */
function seedGatewayConfig(ports: { auth: number; users: number; metrics: number }, secret: string): Record<string, unknown> {
  const values: Record<string, string> = { AUTH_SERVICE_PORT: String(ports.auth), USER_SERVICE_PORT: String(ports.users), METRICS_SERVICE_PORT: String(ports.metrics), JWT_SECRET: secret };
  const text = readFileSync(path.join(ROOT, 'examples/gateway.yaml'), 'utf8').replace(/\$\{([A-Z_]+)(?::-[^}]*)?\}/g, (m, name: string) => values[name] ?? m);
  const config = parse(text) as Record<string, unknown> & { middleware: { rate_limiting: Record<string, unknown> }; observability: { logging: Record<string, unknown> } };
  delete config.server;
  config.middleware.rate_limiting = { default_limit: 1_000_000, window: '1m', storage: { type: 'Memory' } };
  config.observability.logging = { ...config.observability.logging, level: 'warn' };
  return config;
}

/** Options of the scenario. */
export interface SeedScenarioOptions {
  quick: boolean;
  log: (line: string) => void;
}

/** Runs the scenario: services and gateway as processes, the virtual users in this process. */
export async function runSeedScenario(options: SeedScenarioOptions): Promise<SeedScenarioResult> {
  const { quick, log } = options;
  const cpu = cpuPlan();
  const secret = randomBytes(32).toString('base64url');
  const stages = stagesFor(quick);
  const tmp = tempDir('seed');
  const stoppers: (Child | Server)[] = [];
  const agent = new Agent({ keepAliveTimeout: 30_000 });
  const abort = new AbortController();
  try {
    const auth = await startService(['auth', secret], cpu.load);
    stoppers.push(auth.child);
    const users = await startService(['echo', 'user-service'], cpu.load);
    stoppers.push(users.child);
    const metrics = await startService(['echo', 'metrics-service'], cpu.load);
    stoppers.push(metrics.child);
    const ports = { auth: auth.port, users: users.port, metrics: metrics.port };
    const gw = await startGateway({ name: 'gateway (seed)', dir: path.join(tmp.dir, 'gateway'), config: seedGatewayConfig(ports, secret), cpu: cpu.subject, args: ['--no-watch'] });
    stoppers.push(gw);
    const base = gw.origin;
    const credentials = JSON.stringify({ username: 'testuser', password: 'password123' });
    const register = await request(`${base}/auth/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'testuser', password: 'password123', email: 'test@example.com' }), dispatcher: agent });
    await register.body.dump();
    if (register.statusCode !== 201) throw new Error(`registering the test user answered ${register.statusCode}`);

    const samples: Sample[] = [];
    // One more slot: iterations finishing after the schedule.
    const iterations: number[] = [...stages.map(() => 0), 0];
    const started = performance.now();
    const elapsed = (): number => (performance.now() - started) / 1000;
    const total = stages.reduce((n, s) => n + s.seconds, 0);
    const wanted = { users: 0 };
    // Requests and iterations count in the stage in which they finished, as a time series of k6 results would show them.
    const stageNow = (): number => usersAt(stages, elapsed()).stage;
    let interrupted = 0;
    const timed = async (kind: Sample['kind'], send: () => Promise<{ status: number; body: string }>): Promise<string | undefined> => {
      const t = performance.now();
      let error: string | undefined;
      let body: string | undefined;
      try {
        const r = await send();
        if (r.status !== 200) error = String(r.status);
        else body = r.body;
      } catch (err) {
        if (abort.signal.aborted) {
          interrupted++;
          return undefined;
        }
        error = (err as { code?: string }).code ?? (err as Error).name;
      }
      samples.push({ stage: stageNow(), kind, ms: performance.now() - t, error });
      return body;
    };
    const user = async (id: number): Promise<void> => {
      // A user runs whole iterations while it is wanted, as k6's ramping VUs do.
      while (id < wanted.users && elapsed() < total && !abort.signal.aborted) {
        const login = await timed('login', async () => {
          const r = await request(`${base}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: credentials, dispatcher: agent, signal: abort.signal });
          return { status: r.statusCode, body: await r.body.text() };
        });
        const token = login ? (JSON.parse(login) as { token?: string }).token : undefined;
        if (token) {
          await timed('api', async () => {
            const r = await request(`${base}/api/v1/users`, { headers: { authorization: `Bearer ${token}` }, dispatcher: agent, signal: abort.signal });
            return { status: r.statusCode, body: await r.body.text() };
          });
        }
        if (!abort.signal.aborted) {
          const stage = stageNow();
          iterations[stage] = (iterations[stage] ?? 0) + 1;
        }
      }
    };
    const running = new Map<number, Promise<void>>();
    log(`seed scenario: ${stages.map((s) => `${s.seconds}s→${s.target}`).join(', ')}`);
    // The controller: every 50 ms, start the users the schedule wants; surplus users stop after their iteration.
    while (elapsed() < total) {
      wanted.users = usersAt(stages, elapsed()).users;
      for (let id = 0; id < wanted.users; id++) {
        if (!running.has(id)) running.set(id, user(id).finally(() => running.delete(id)));
      }
      await sleep(50);
    }
    wanted.users = 0;
    const graceStart = elapsed();
    await Promise.race([Promise.all(running.values()), sleep(quick ? GRACE_MS.quick : GRACE_MS.full)]);
    const graceSeconds = round(elapsed() - graceStart, 1);
    abort.abort();
    await Promise.all(running.values());

    const results: StageResult[] = [...stages, { seconds: graceSeconds, target: 0 }].map((s, i) => {
      const mine = samples.filter((x) => x.stage === i);
      const count = iterations[i] ?? 0;
      return {
        stage: i < stages.length ? i + 1 : 'grace',
        seconds: s.seconds,
        fromUsers: i === 0 ? 0 : (stages[Math.min(i, stages.length) - 1] as Stage).target,
        toUsers: s.target,
        iterations: count,
        iterationsPerSecond: s.seconds > 0 ? round(count / s.seconds, 1) : 0,
        login: statsOf(mine.filter((x) => x.kind === 'login')),
        api: statsOf(mine.filter((x) => x.kind === 'api')),
      };
    });
    for (const r of results) {
      log(`seed scenario: stage ${r.stage} (${r.fromUsers}→${r.toUsers} users, ${r.seconds}s): ${r.iterations} iterations, login p50 ${ms(r.login.p50Ms)} ms / ${r.login.errors} errors, API p50 ${ms(r.api.p50Ms)} ms p99 ${ms(r.api.p99Ms)} ms / ${r.api.errors} errors`);
    }
    return {
      timeScale: `1 min of the seed's k6 stages = ${quick ? MINUTE_SCALE_QUICK : MINUTE_SCALE_FULL} s here`,
      stages: results,
      totals: { iterations: results.reduce((n, r) => n + r.iterations, 0), errors: samples.filter((s) => s.error !== undefined).length, interrupted, seconds: round(elapsed(), 1) },
    };
  } finally {
    abort.abort();
    await agent.destroy();
    for (const s of stoppers.reverse()) await s.stop();
    tmp.remove();
  }
}

/** The scenario's table, as markdown. */
export function seedTable(r: SeedScenarioResult): string {
  const lines = [
    '| stage | users | seconds | iterations/s | login p50 / p95 / p99 ms | login errors | API p50 / p95 / p99 ms | API errors |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const s of r.stages) {
    lines.push(
      `| ${s.stage} | ${s.fromUsers} → ${s.toUsers} | ${s.seconds} | ${s.iterationsPerSecond} | ${ms(s.login.p50Ms)} / ${ms(s.login.p95Ms)} / ${ms(s.login.p99Ms)} | ${int(s.login.errors)} of ${int(s.login.count)} | ${ms(s.api.p50Ms)} / ${ms(s.api.p95Ms)} / ${ms(s.api.p99Ms)} | ${int(s.api.errors)} of ${int(s.api.count)} |`,
    );
  }
  return lines.join('\n');
}

if (import.meta.main) {
  const quick = process.argv.includes('--quick');
  pinSelf(cpuPlan().load);
  const result = await runSeedScenario({ quick, log: (l) => process.stderr.write(`${l}\n`) });
  process.stdout.write(`${seedTable(result)}\n\n${result.timeScale}; ${result.totals.iterations} iterations, ${result.totals.errors} errors, ${result.totals.interrupted} requests interrupted at the end, in ${result.totals.seconds} s\n`);
  for (const s of result.stages) if (s.login.errors + s.api.errors > 0) process.stdout.write(`stage ${s.stage} errors: login ${JSON.stringify(s.login.errorKinds)}, API ${JSON.stringify(s.api.errorKinds)}\n`);
  if (result.totals.errors > 0) process.exitCode = 1;
}
