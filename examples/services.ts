/**
 * The example services behind the demo gateway, as the seed describes them:
 * an auth service that registers users and issues HS256 tokens, and services
 * that echo what they receive (including the X-User-* identity headers).
 * They are examples, not products: users live in memory.
 */
import { createHash, randomUUID, scryptSync, timingSafeEqual, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { SignJWT } from 'jose';

/** A started example service. */
export interface ExampleService {
  name: string;
  port: number;
  close(): Promise<void>;
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: http.IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 64 * 1024) throw new Error('body too large');
    chunks.push(chunk as Buffer);
  }
  const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
  return parsed !== null && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : {};
}

function listen(server: http.Server, port: number, name: string, host = '127.0.0.1'): Promise<ExampleService> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      resolve({
        name,
        port: (server.address() as AddressInfo).port,
        close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
      });
    });
  });
}

/** Options of the example auth service. */
export interface AuthServiceOptions {
  port: number;
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  secret: string;
  issuer?: string;
  audience?: string;
  /** Token lifetime in seconds. */
  ttl?: number;
}

/**
 * POST /auth/register {username, password, email, roles?} -> 201
 * POST /auth/login {username, password} -> 200 {token}
 * POST /auth/refresh {token} is not implemented by the example (501).
 * Users named "admin*" get the admin role, for trying the admin routes.
 */
export function startAuthService(options: AuthServiceOptions): Promise<ExampleService> {
  const users = new Map<string, { id: string; salt: Buffer; hash: Buffer; roles: string[]; email: string }>();
  const key = new TextEncoder().encode(options.secret);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://auth');
    if (req.method === 'GET' && url.pathname === '/health') return send(res, 200, { status: 'ok' });
    if (req.method !== 'POST') return send(res, 404, { error: 'not found' });
    readJson(req).then(
      async (body) => {
        const username = typeof body.username === 'string' ? body.username : '';
        const password = typeof body.password === 'string' ? body.password : '';
        if (url.pathname === '/auth/register') {
          if (username === '' || password.length < 8) return send(res, 400, { error: 'username and a password of at least 8 characters are required' });
          if (users.has(username)) return send(res, 409, { error: 'username taken' });
          const salt = randomBytes(16);
          const roles = username.startsWith('admin') ? ['user', 'admin'] : ['user'];
          users.set(username, { id: randomUUID(), salt, hash: scryptSync(password, salt, 32), roles, email: String(body.email ?? '') });
          return send(res, 201, { username, roles });
        }
        if (url.pathname === '/auth/login') {
          const user = users.get(username);
          const ok = user !== undefined && timingSafeEqual(scryptSync(password, user.salt, 32), user.hash);
          if (!ok || !user) return send(res, 401, { error: 'invalid username or password' });
          const permissions = user.roles.includes('admin') ? ['users:read', 'users:write', 'admin:users'] : ['users:read'];
          const token = await new SignJWT({ roles: user.roles, permissions, username })
            .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
            .setSubject(user.id)
            .setIssuer(options.issuer ?? 'auth-service')
            .setAudience(options.audience ?? 'api-gateway')
            .setIssuedAt()
            .setExpirationTime(`${options.ttl ?? 3600}s`)
            .sign(key);
          return send(res, 200, { token, token_type: 'Bearer', expires_in: options.ttl ?? 3600 });
        }
        if (url.pathname === '/auth/refresh' || url.pathname === '/auth/forgot-password') return send(res, 501, { error: `${url.pathname} is not part of the example service` });
        return send(res, 404, { error: 'not found' });
      },
      () => send(res, 400, { error: 'expected a JSON body' }),
    );
  });
  return listen(server, options.port, 'auth-service', options.host);
}

/**
 * A service that answers every request with what it received, as JSON (GET /health answers ok).
 * `instance` is the host name, a pod's name in Kubernetes: it shows which replica answered.
 */
export function startEchoService(name: string, port: number, host?: string): Promise<ExampleService> {
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/health') return send(res, 200, { status: 'ok' });
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (c: Buffer) => {
      bytes += c.length;
      hash.update(c);
    });
    req.on('end', () => {
      res.setHeader('x-served-by', name);
      send(res, 200, {
        service: name,
        instance: hostname(),
        method: req.method,
        url: req.url,
        headers: req.headers,
        user: { id: req.headers['x-user-id'] ?? null, roles: req.headers['x-user-roles'] ?? null, permissions: req.headers['x-user-permissions'] ?? null },
        body: { bytes, sha256: hash.digest('hex') },
      });
    });
  });
  return listen(server, port, name, host);
}
