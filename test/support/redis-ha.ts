/**
 * Highly available Redis from real processes, on 127.0.0.1 and free ports:
 * a Sentinel group (a primary, replicas, sentinels) and a Redis Cluster
 * (primaries with one replica each). Both can lose a node to SIGKILL and tell
 * when the survivors have promoted a replica.
 *
 * Every process runs under `setpriv --pdeathsig KILL`, so it dies with the
 * test process even when that is killed without running its exit handlers;
 * `stop()` and an exit handler cover the ordinary paths. Nothing persists:
 * no RDB, no AOF, a temporary directory per group, removed on stop.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './processes.ts';

/** One redis-server or redis-sentinel started by a test. */
export interface RedisProcess {
  readonly port: number;
  /** `127.0.0.1:<port>`. */
  readonly address: string;
  readonly alive: boolean;
  /** SIGKILL: no goodbye to clients or replicas; resolves once the process is gone. */
  kill(): Promise<void>;
  /** SIGSTOP: its sockets stay open and accept connections, and nothing answers. */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** The last lines of its log, for failure messages. */
  log(): string;
}

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of running) c.kill('SIGKILL');
});

const PDEATHSIG = existsSync('/usr/bin/setpriv') ? ['/usr/bin/setpriv', '--pdeathsig', 'KILL'] : [];

function startProcess(bin: 'redis-server' | 'redis-sentinel', args: string[], port: number, dir: string): RedisProcess {
  const logFile = path.join(dir, `${bin}-${port}.log`);
  const fd = openSync(logFile, 'a');
  const argv = [...PDEATHSIG, bin, ...args];
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', fd, fd], cwd: dir });
  closeSync(fd);
  running.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.once('error', () => undefined);
  void exited.then(() => running.delete(child));
  return {
    port,
    address: `127.0.0.1:${port}`,
    get alive() {
      return child.exitCode === null && child.signalCode === null;
    },
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
    pause: () => void child.kill('SIGSTOP'),
    resume: () => void child.kill('SIGCONT'),
    log: () => (existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-30).join('\n') : ''),
  };
}

/** TLS files of test servers: one self-signed certificate for 127.0.0.1, also the CA and the client certificate. */
export interface TestTls {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/** How a test reaches its servers, and how the servers are set up: the same password (and ACL user) and TLS everywhere. */
export interface TestAuth {
  /** An ACL user with every permission; without it, `password` is the default user's (requirepass). */
  username?: string | undefined;
  password?: string | undefined;
  tls?: TestTls | undefined;
}

/** Makes a certificate for 127.0.0.1 in `dir` with openssl (the dataplane tier's tools include it). */
export function makeTestTls(dir: string): TestTls {
  const certFile = path.join(dir, 'redis.crt');
  const keyFile = path.join(dir, 'redis.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=redis-test', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-addext', 'basicConstraints=critical,CA:TRUE', '-keyout', keyFile, '-out', certFile], { stdio: 'ignore' });
  return { certFile, keyFile, caFile: certFile };
}

/** Sends one command to 127.0.0.1:port on a connection of its own; rejects within `timeoutMs`. */
export async function redisCall(port: number, args: (string | number)[], options: TestAuth & { timeoutMs?: number } = {}): Promise<unknown> {
  const { tls } = options;
  const client = new Redis({
    host: '127.0.0.1',
    port,
    username: options.username,
    password: options.password,
    ...(tls && { tls: { ca: readFileSync(tls.caFile), cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) } }),
    lazyConnect: true,
    enableReadyCheck: false,
    enableOfflineQueue: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: options.timeoutMs ?? 1_000,
    commandTimeout: options.timeoutMs ?? 1_000,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return await client.call(String(args[0]), ...args.slice(1).map(String));
  } finally {
    client.disconnect(false);
  }
}

async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs: number, logs: () => string = () => ''): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (last error: ${last})` : ''}\n${logs()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// No files, and a replica's first sync starts at once instead of after the five seconds Redis waits for more replicas.
const NO_PERSISTENCE = ['--save', '', '--appendonly', 'no', '--repl-diskless-sync-delay', '0'];

/** TLS server settings (the same for data nodes and sentinels); clients may present a certificate. */
function tlsArgs(tls: TestTls): string[] {
  return ['--tls-cert-file', tls.certFile, '--tls-key-file', tls.keyFile, '--tls-ca-cert-file', tls.caFile, '--tls-auth-clients', 'optional', '--tls-replication', 'yes'];
}

function serverArgs(port: number, auth: TestAuth): string[] {
  const { username, password, tls } = auth;
  const listen = tls ? ['--port', '0', '--tls-port', String(port), ...tlsArgs(tls)] : ['--port', String(port)];
  let access: string[] = [];
  if (password !== undefined && username !== undefined) access = ['--user', username, 'on', `>${password}`, '~*', '&*', '+@all', '--user', 'default', 'off', '--masteruser', username, '--masterauth', password];
  else if (password !== undefined) access = ['--requirepass', password, '--masterauth', password];
  return [...listen, '--bind', '127.0.0.1', ...NO_PERSISTENCE, ...access];
}

async function startServer(port: number, dir: string, args: string[], auth: TestAuth): Promise<RedisProcess> {
  const proc = startProcess('redis-server', args, port, dir);
  await until(`redis-server on ${port} answering PING`, async () => ((await redisCall(port, ['PING'], { ...auth, timeoutMs: 200 })) === 'PONG' ? true : undefined), 10_000, () => proc.log());
  return proc;
}

/** One redis-server, with a password (and ACL user) and TLS when asked; `stop()` kills it and removes its directory. */
export async function startRedisNode(auth: TestAuth = {}): Promise<RedisProcess & { stop(): Promise<void> }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'switchyard-redis-'));
  const port = await freePort();
  try {
    const node = await startServer(port, dir, serverArgs(port, auth), auth);
    return Object.assign(node, {
      stop: async () => {
        await node.kill();
        rmSync(dir, { recursive: true, force: true });
      },
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** [a, b, c, d] → [[a, b], [c, d]]. */
function chunk(list: string[]): [string, string][] {
  return Array.from({ length: list.length / 2 }, (_, i) => [list[2 * i] as string, list[2 * i + 1] as string]);
}

function infoField(info: string, field: string): string | undefined {
  return new RegExp(`^${field}:(.*)\\r?$`, 'm').exec(info)?.[1]?.trim();
}

/** A Sentinel group under test. */
export interface SentinelGroup {
  /** The group's name, as `sentinel monitor` knows it. */
  readonly name: string;
  /** `127.0.0.1:<port>` of each sentinel. */
  readonly sentinels: string[];
  /** The data nodes; the first started as the primary. */
  readonly nodes: RedisProcess[];
  /** The sentinels' processes, in the order of `sentinels`. */
  readonly sentinelNodes: RedisProcess[];
  /** The node every reachable sentinel names as the primary now. */
  primary(): Promise<RedisProcess>;
  /**
   * Waits until the sentinels name a live primary other than `old` and that
   * node says it is one; resolves with it.
   */
  waitForPrimaryOtherThan(old: RedisProcess, timeoutMs?: number): Promise<RedisProcess>;
  /** Kills every process and removes the directory. */
  stop(): Promise<void>;
}

/** Options of a Sentinel group: `auth` for the data nodes (sentinels and replicas use it too), TLS for everything. */
export interface SentinelGroupOptions extends TestAuth {
  replicas?: number;
  sentinels?: number;
  /** `requirepass` of the sentinels themselves (they use it with each other too). */
  sentinelPassword?: string;
  /** How long a primary may be silent before a sentinel suspects it. */
  downAfterMs?: number;
}

/**
 * A primary, `replicas` replicas (two by default) and `sentinels` sentinels
 * (three, quorum two), started and waited for until every sentinel knows the
 * other sentinels and every replica, so that a failover can happen at once.
 */
export async function startSentinelGroup(options: SentinelGroupOptions = {}): Promise<SentinelGroup> {
  const name = 'switchyard';
  const dir = mkdtempSync(path.join(tmpdir(), 'switchyard-sentinel-'));
  const procs: RedisProcess[] = [];
  const nodes: RedisProcess[] = [];
  const sentinels: RedisProcess[] = [];
  const { sentinelPassword } = options;
  const auth: TestAuth = { username: options.username, password: options.password, tls: options.tls };
  const sentinelAuth: TestAuth = { password: sentinelPassword, tls: options.tls };
  const replicaCount = options.replicas ?? 2;
  const sentinelCount = options.sentinels ?? 3;
  const stop = async (): Promise<void> => {
    await Promise.all(procs.map((p) => p.kill()));
    rmSync(dir, { recursive: true, force: true });
  };
  const logs = (): string => procs.map((p) => `--- ${p.address}\n${p.log()}`).join('\n');
  try {
    const primaryPort = await freePort();
    const primary = await startServer(primaryPort, dir, serverArgs(primaryPort, auth), auth);
    procs.push(primary);
    nodes.push(primary);
    for (let i = 0; i < replicaCount; i++) {
      const port = await freePort();
      const replica = await startServer(port, dir, [...serverArgs(port, auth), '--replicaof', '127.0.0.1', String(primaryPort)], auth);
      procs.push(replica);
      nodes.push(replica);
    }
    for (const replica of nodes.slice(1)) {
      await until(`replica ${replica.address} in sync`, async () => (infoField(String(await redisCall(replica.port, ['INFO', 'replication'], auth)), 'master_link_status') === 'up' ? true : undefined), 10_000, logs);
    }
    // Sentinels find each other through hello messages every two seconds; told up front, they can fail over at once.
    const peers: { port: number; id: string }[] = [];
    for (let i = 0; i < sentinelCount; i++) peers.push({ port: await freePort(), id: randomBytes(20).toString('hex') });
    for (const { port, id } of peers) {
      const conf = path.join(dir, `sentinel-${port}.conf`);
      const lines = [
        ...(options.tls ? ['port 0', `tls-port ${port}`, ...chunk(tlsArgs(options.tls)).map(([k, v]) => `${k.slice(2)} ${v}`)] : [`port ${port}`]),
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel myid ${id}`,
        `sentinel monitor ${name} 127.0.0.1 ${primaryPort} ${Math.floor(sentinelCount / 2) + 1}`,
        ...peers.filter((p) => p.port !== port).map((p) => `sentinel known-sentinel ${name} 127.0.0.1 ${p.port} ${p.id}`),
        ...nodes.slice(1).map((r) => `sentinel known-replica ${name} 127.0.0.1 ${r.port}`),
        `sentinel down-after-milliseconds ${name} ${options.downAfterMs ?? 1_000}`,
        // A failed election is retried after twice this: short, so a test never waits long for a second try.
        `sentinel failover-timeout ${name} 3000`,
        `sentinel parallel-syncs ${name} 1`,
      ];
      if (auth.username !== undefined) lines.push(`sentinel auth-user ${name} ${auth.username}`);
      if (auth.password !== undefined) lines.push(`sentinel auth-pass ${name} ${auth.password}`);
      if (sentinelPassword !== undefined) lines.push(`requirepass ${sentinelPassword}`, `sentinel sentinel-pass ${sentinelPassword}`);
      writeFileSync(conf, `${lines.join('\n')}\n`);
      const sentinel = startProcess('redis-sentinel', [conf], port, dir);
      procs.push(sentinel);
      sentinels.push(sentinel);
    }
    for (const s of sentinels) {
      await until(
        `sentinel ${s.address} knowing the group`,
        async () => {
          const reply = (await redisCall(s.port, ['SENTINEL', 'MASTER', name], { ...sentinelAuth, timeoutMs: 500 })) as string[];
          const fields = Object.fromEntries(Array.from({ length: reply.length / 2 }, (_, i) => [reply[2 * i], reply[2 * i + 1]]));
          return Number(fields['num-other-sentinels']) === sentinelCount - 1 && Number(fields['num-slaves']) === replicaCount ? true : undefined;
        },
        20_000,
        logs,
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }

  const named = async (): Promise<RedisProcess | undefined> => {
    const answers = await Promise.all(
      sentinels.filter((s) => s.alive).map(async (s) => {
        const reply = (await redisCall(s.port, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', name], { ...sentinelAuth, timeoutMs: 500 }).catch(() => undefined)) as string[] | undefined;
        return reply ? Number(reply[1]) : undefined;
      }),
    );
    const port = answers[0];
    if (port === undefined || answers.some((p) => p !== port)) return undefined;
    return nodes.find((n) => n.port === port);
  };
  return {
    name,
    sentinels: sentinels.map((s) => s.address),
    nodes,
    sentinelNodes: sentinels,
    primary: () => until('the sentinels agreeing on a primary', named, 10_000, logs),
    waitForPrimaryOtherThan: (old, timeoutMs = 30_000) =>
      until(
        `a primary other than ${old.address}`,
        async () => {
          const node = await named();
          if (!node || node === old || !node.alive) return undefined;
          const role = infoField(String(await redisCall(node.port, ['INFO', 'replication'], { ...auth, timeoutMs: 500 })), 'role');
          return role === 'master' ? node : undefined;
        },
        timeoutMs,
        logs,
      ),
    stop,
  };
}

/** A Redis Cluster under test. */
export interface TestRedisCluster {
  /** `127.0.0.1:<port>` of every node: what a client is given as seeds. */
  readonly seeds: string[];
  readonly nodes: RedisProcess[];
  /** The primaries now, with the slot ranges each serves. */
  primaries(): Promise<{ node: RedisProcess; slots: [number, number][] }[]>;
  /** Keys held by each live primary, by address. */
  keysPerPrimary(): Promise<Record<string, number>>;
  /** Waits until the slots `old` served are served by a live node again and every live node says the cluster is ok. */
  waitForFailover(old: RedisProcess, timeoutMs?: number): Promise<RedisProcess>;
  stop(): Promise<void>;
}

/** Options of a cluster, with the same auth and TLS on every node (and the cluster bus over TLS too). */
export interface ClusterOptions extends TestAuth {
  primaries?: number;
  /** `cluster-node-timeout`: how long a node may be silent before it is failed over. */
  nodeTimeoutMs?: number;
}

const SLOTS = 16_384;

/**
 * `primaries` primaries (three by default), each with one replica, slots split
 * evenly, built with CLUSTER MEET, ADDSLOTSRANGE and REPLICATE (what
 * `redis-cli --cluster create` does, without its one-second pauses), and waited
 * for until every node reports `cluster_state:ok` and every replica is in sync.
 */
export async function startRedisCluster(options: ClusterOptions = {}): Promise<TestRedisCluster> {
  const dir = mkdtempSync(path.join(tmpdir(), 'switchyard-cluster-'));
  const count = options.primaries ?? 3;
  const auth: TestAuth = { username: options.username, password: options.password, tls: options.tls };
  const nodes: RedisProcess[] = [];
  /** The first slot each original primary was given, to find who serves it after a failover. */
  const firstSlot = new Map<RedisProcess, number>();
  const stop = async (): Promise<void> => {
    await Promise.all(nodes.map((p) => p.kill()));
    rmSync(dir, { recursive: true, force: true });
  };
  const logs = (): string => nodes.map((p) => `--- ${p.address}\n${p.log()}`).join('\n');
  const call = (node: RedisProcess, args: (string | number)[]): Promise<unknown> => redisCall(node.port, args, { ...auth, timeoutMs: 1_000 });
  try {
    for (let i = 0; i < 2 * count; i++) {
      const port = await freePort();
      const args = [...serverArgs(port, auth), ...(auth.tls ? ['--tls-cluster', 'yes'] : []), '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--cluster-node-timeout', String(options.nodeTimeoutMs ?? 1_000)];
      nodes.push(await startServer(port, dir, args, auth));
    }
    const first = nodes[0] as RedisProcess;
    for (const n of nodes.slice(1)) await call(first, ['CLUSTER', 'MEET', '127.0.0.1', n.port]);
    const primaries = nodes.slice(0, count);
    for (const [i, p] of primaries.entries()) {
      const from = Math.floor((i * SLOTS) / count);
      const to = Math.floor(((i + 1) * SLOTS) / count) - 1;
      await call(p, ['CLUSTER', 'ADDSLOTSRANGE', from, to]);
    }
    primaries.forEach((p, i) => firstSlot.set(p, Math.floor((i * SLOTS) / count)));
    const ids = await Promise.all(primaries.map(async (p) => String(await call(p, ['CLUSTER', 'MYID']))));
    for (const [i, replica] of nodes.slice(count).entries()) {
      // A node can only replicate a primary it has heard of through the cluster bus.
      await until(`${replica.address} knowing every node`, async () => (String(await call(replica, ['CLUSTER', 'NODES'])).trim().split('\n').length === 2 * count ? true : undefined), 10_000, logs);
      await call(replica, ['CLUSTER', 'REPLICATE', ids[i] as string]);
    }
    for (const n of nodes) {
      await until(`${n.address} reporting cluster_state:ok`, async () => (infoField(String(await call(n, ['CLUSTER', 'INFO'])), 'cluster_state') === 'ok' ? true : undefined), 20_000, logs);
    }
    for (const replica of nodes.slice(count)) {
      await until(`replica ${replica.address} in sync`, async () => (infoField(String(await call(replica, ['INFO', 'replication'])), 'master_link_status') === 'up' ? true : undefined), 10_000, logs);
    }
  } catch (err) {
    await stop();
    throw err;
  }

  const primaries = async (): Promise<{ node: RedisProcess; slots: [number, number][] }[]> => {
    const live = nodes.find((n) => n.alive) as RedisProcess;
    const reply = (await call(live, ['CLUSTER', 'SLOTS'])) as [number, number, [string, number, ...unknown[]], ...unknown[]][];
    const byPort = new Map<number, [number, number][]>();
    for (const [from, to, [, port]] of reply) byPort.set(Number(port), [...(byPort.get(Number(port)) ?? []), [Number(from), Number(to)]]);
    return [...byPort].map(([port, slots]) => ({ node: nodes.find((n) => n.port === port) as RedisProcess, slots }));
  };
  return {
    seeds: nodes.map((n) => n.address),
    nodes,
    primaries,
    keysPerPrimary: async () => {
      const out: Record<string, number> = {};
      for (const { node } of await primaries()) if (node.alive) out[node.address] = Number(await call(node, ['DBSIZE']));
      return out;
    },
    waitForFailover: (old, timeoutMs = 30_000) =>
      until(
        `the slots of ${old.address} served again`,
        async () => {
          const live = nodes.filter((n) => n.alive);
          for (const n of live) if (infoField(String(await call(n, ['CLUSTER', 'INFO'])), 'cluster_state') !== 'ok') return undefined;
          const slot = firstSlot.get(old);
          if (slot === undefined) throw new Error(`${old.address} was not a primary`);
          const taker = (await primaries()).find((p) => p.slots.some(([from, to]) => from <= slot && slot <= to))?.node;
          return taker && taker !== old && taker.alive ? taker : undefined;
        },
        timeoutMs,
        logs,
      ),
    stop,
  };
}
