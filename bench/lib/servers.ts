/**
 * The servers the benchmarks start: nginx as the upstream and as a proxy,
 * HAProxy, the Node.js peers and the gateway. Each runs as the current user
 * from a temporary directory of its own (config, pid, logs, temp files), on
 * 127.0.0.1 only.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { freePort, launch, waitForPort, waitForStatus, type Child } from './processes.ts';

/** A server the benchmark can send traffic to. */
export interface Server {
  name: string;
  /** `http://127.0.0.1:port` */
  origin: string;
  port: number;
  child: Child;
  stop(): Promise<void>;
}

/** The upstream's small answer, the same for every subject. */
export const SMALL_BODY = '{"ok":true}\n';
/** The large-body case: one streamed response of this size. */
export const LARGE_BYTES = 1024 * 1024;

function nginxBin(): string {
  return process.env.NGINX ?? '/usr/sbin/nginx';
}

function haproxyBin(): string {
  return process.env.HAPROXY ?? '/usr/sbin/haproxy';
}

/**
 * The parts of nginx.conf every instance shares: one worker, everything under
 * `dir`. Started as root, nginx would hand its worker to `nobody`, which cannot
 * read a 0700 temporary directory, so the worker keeps the current user.
 */
function nginxPrelude(dir: string): string {
  const user = process.getuid?.() === 0 ? `user ${os.userInfo().username};\n` : '';
  return `${user}worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/logs/error.log warn;
worker_rlimit_nofile 16384;
events { worker_connections 8192; }
`;
}

function nginxHttpPrelude(dir: string): string {
  return `  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  sendfile on;
  tcp_nopush on;
`;
}

async function startNginx(name: string, dir: string, conf: string, port: number, cpu: string | undefined): Promise<Server> {
  mkdirSync(path.join(dir, 'logs'), { recursive: true });
  mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  const file = path.join(dir, 'nginx.conf');
  writeFileSync(file, conf);
  // -e: the error log nginx opens before it has read the config (otherwise /var/log/nginx).
  const child = launch(name, nginxBin(), ['-p', dir, '-c', file, '-e', path.join(dir, 'logs/error.log'), '-g', 'daemon off;'], { cpu });
  await waitForPort(port, child);
  return { name, origin: `http://127.0.0.1:${port}`, port, child, stop: () => child.stop() };
}

/** nginx answering `return 200` with a small body on every path, and a 1 MiB file on /large. */
export async function startUpstream(dir: string, cpu: string | undefined): Promise<Server> {
  const port = await freePort();
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'large.bin'), Buffer.alloc(LARGE_BYTES, 'x'));
  const conf = `${nginxPrelude(dir)}http {
${nginxHttpPrelude(dir)}  default_type application/json;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location = /large { default_type application/octet-stream; alias ${dir}/large.bin; }
    location / { return 200 '${SMALL_BODY.trimEnd()}\\n'; }
  }
}
`;
  return startNginx('upstream (nginx)', dir, conf, port, cpu);
}

/** nginx as a reverse proxy: one worker, a keep-alive pool of 128 idle connections to the upstream. */
export async function startNginxProxy(dir: string, upstream: Server, cpu: string | undefined): Promise<Server> {
  const port = await freePort();
  const conf = `${nginxPrelude(dir)}http {
${nginxHttpPrelude(dir)}  upstream backend {
    server 127.0.0.1:${upstream.port};
    keepalive 128;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # Buffer in memory only: no temporary files for the 1 MiB case.
      proxy_max_temp_file_size 0;
    }
  }
}
`;
  return startNginx('nginx', dir, conf, port, cpu);
}

/** HAProxy: one thread, http-reuse always, no logging. */
export async function startHaproxy(dir: string, upstream: Server, cpu: string | undefined): Promise<Server> {
  const port = await freePort();
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'haproxy.cfg');
  writeFileSync(
    file,
    `global
  nbthread 1
  maxconn 4096
  pidfile ${dir}/haproxy.pid

defaults
  mode http
  option http-keep-alive
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s

frontend bench
  bind 127.0.0.1:${port}
  default_backend upstream

backend upstream
  http-reuse always
  server u1 127.0.0.1:${upstream.port}
`,
  );
  // -db: foreground, so the pid we hold is HAProxy's own.
  const child = launch('haproxy', haproxyBin(), ['-db', '-f', file], { cpu });
  await waitForPort(port, child);
  return { name: 'haproxy', origin: `http://127.0.0.1:${port}`, port, child, stop: () => child.stop() };
}

/** A Node.js proxy from bench/peers/. */
export async function startNodePeer(name: string, script: string, upstream: Server, cpu: string | undefined): Promise<Server> {
  const port = await freePort();
  const child = launch(name, process.execPath, [script, String(port), upstream.origin], { cpu });
  await waitForPort(port, child);
  return { name, origin: `http://127.0.0.1:${port}`, port, child, stop: () => child.stop() };
}

/** A running gateway process, with its admin port. */
export interface GatewayServer extends Server {
  adminPort: number;
  metricsPort: number;
  configFile: string;
}

/** Options for a gateway process. */
export interface GatewayOptions {
  name: string;
  dir: string;
  /** The gateway.yaml content, except `server`, which this function fills in. */
  config: Record<string, unknown>;
  cpu: string | undefined;
  /** Where stdout (the JSON log, access lines included) goes; default /dev/null. */
  logFile?: string;
  nodeArgs?: string[];
  /** Extra CLI flags, e.g. --no-watch. */
  args?: string[];
  /** The path that must answer 200 before the gateway counts as started; default /ready. */
  readyPath?: string;
  /** The checkout whose data plane runs (bench/ab.ts runs an earlier one beside this one); default this one. */
  root?: string;
}

/** Starts `switchyard-dataplane --config <file>` with its own ports. */
export async function startGateway(options: GatewayOptions): Promise<GatewayServer> {
  const [port, adminPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  mkdirSync(options.dir, { recursive: true });
  const configFile = path.join(options.dir, 'gateway.yaml');
  const server = { http_port: port, admin_port: adminPort, metrics_port: metricsPort, bind_address: '127.0.0.1', admin_bind_address: '127.0.0.1' };
  writeFileSync(configFile, stringify({ server, ...options.config }));
  const child = launch(options.name, process.execPath, [...(options.nodeArgs ?? []), 'dataplane/bin/switchyard-dataplane.ts', '--config', configFile, ...(options.args ?? [])], {
    cpu: options.cpu,
    stdout: { file: options.logFile ?? '/dev/null' },
    ...(options.root === undefined ? {} : { cwd: options.root }),
  });
  await waitForStatus(`http://127.0.0.1:${port}${options.readyPath ?? '/ready'}`, 200, child);
  return { name: options.name, origin: `http://127.0.0.1:${port}`, port, adminPort, metricsPort, configFile, child, stop: () => child.stop() };
}

/** The file text for `config` with the server section the gateway was started with (to write for a reload). */
export function gatewayConfigText(gw: GatewayServer, config: Record<string, unknown>): string {
  const server = { http_port: gw.port, admin_port: gw.adminPort, metrics_port: gw.metricsPort, bind_address: '127.0.0.1', admin_bind_address: '127.0.0.1' };
  return stringify({ server, ...config });
}
