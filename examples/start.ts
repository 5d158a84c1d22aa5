/**
 * `npm start`: the example services and the gateway in front of them, on this
 * machine, with the seed's routes (examples/gateway.yaml). Ports are the seed's
 * and can be overridden: AUTH_SERVICE_PORT, USER_SERVICE_PORT,
 * METRICS_SERVICE_PORT, ORDERS_V1_PORT, ORDERS_V2_PORT (the canary's two
 * versions), GATEWAY_SERVER_HTTP_PORT, GATEWAY_SERVER_ADMIN_PORT,
 * GATEWAY_SERVER_METRICS_PORT.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startAuthService, startEchoService } from './services.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const env = { ...process.env };
// A demo needs a secret shared by the auth service and the gateway; a real deployment sets its own.
env.JWT_SECRET ??= randomBytes(32).toString('base64url');
const port = (name: string, fallback: number): number => Number(env[name] ?? fallback);

const services = await Promise.all([
  startAuthService({ port: port('AUTH_SERVICE_PORT', 3001), secret: env.JWT_SECRET }),
  startEchoService('user-service', port('USER_SERVICE_PORT', 3002)),
  startEchoService('metrics-service', port('METRICS_SERVICE_PORT', 3003)),
  startEchoService('orders-v1', port('ORDERS_V1_PORT', 3004)),
  startEchoService('orders-v2', port('ORDERS_V2_PORT', 3005)),
]);
for (const s of services) env[`${s.name.toUpperCase().replaceAll('-', '_')}_PORT`] = String(s.port);

const gatewayPort = port('GATEWAY_SERVER_HTTP_PORT', 8080);
const gateway = spawn(process.execPath, [path.join(root, 'dataplane/bin/switchyard-dataplane.ts'), '--config', path.join(root, 'examples/gateway.yaml')], {
  env,
  stdio: ['ignore', 'inherit', 'inherit'],
});

const base = `http://127.0.0.1:${gatewayPort}`;
process.stderr.write(`
Switchyard demo
  gateway   ${base}   (admin http://127.0.0.1:${port('GATEWAY_SERVER_ADMIN_PORT', 8081)}, metrics http://127.0.0.1:${port('GATEWAY_SERVER_METRICS_PORT', 9090)}/metrics)
  services  ${services.map((s) => `${s.name} :${s.port}`).join(', ')}

Try it:
  curl -s -XPOST ${base}/auth/register -H 'content-type: application/json' -d '{"username":"alice","password":"password123","email":"alice@example.com"}'
  TOKEN=$(curl -s -XPOST ${base}/auth/login -H 'content-type: application/json' -d '{"username":"alice","password":"password123"}' | sed -E 's/.*"token":"([^"]+)".*/\\1/')
  curl -s ${base}/api/v1/users/me -H "authorization: Bearer $TOKEN"
  curl -s ${base}/api/v1/orders -H "authorization: Bearer $TOKEN" -H 'canary: true'   # the canary: always orders-v2
Stop with Ctrl-C.

`);

const stop = (signal: NodeJS.Signals): void => {
  gateway.kill(signal);
};
process.once('SIGINT', () => stop('SIGINT'));
process.once('SIGTERM', () => stop('SIGTERM'));
gateway.once('exit', (code) => {
  void Promise.all(services.map((s) => s.close())).then(() => process.exit(code ?? 0));
});
