/**
 * One example service per process, for containers (the `examples` image target):
 *
 *   node examples/kubernetes/services/serve.ts auth-service|user-service|metrics-service|NAME
 *
 * auth-service registers users and signs tokens; any other name is an echo
 * service that answers with what it received. PORT (default: the integration
 * guide's 3001, 3002, 3003 for its three services; required for other names)
 * and, for the auth service, JWT_SECRET, JWT_ISSUER and JWT_AUDIENCE come from
 * the environment. Listens on HOST (default 0.0.0.0); SIGTERM closes it.
 */
import { startAuthService, startEchoService, type ExampleService } from '../../services.ts';

const DEFAULT_PORTS: Record<string, number> = { 'auth-service': 3001, 'user-service': 3002, 'metrics-service': 3003 };

/** Starts the named service; rejects without a name, a port or, for the auth service, a secret. */
export async function serve(name: string, env: NodeJS.ProcessEnv): Promise<ExampleService> {
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name)) throw new Error(`expected a service name such as ${Object.keys(DEFAULT_PORTS).join(', ')}, got "${name}"`);
  const port = Number(env.PORT ?? DEFAULT_PORTS[name]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`${name}: set PORT to the port to listen on`);
  const host = env.HOST ?? '0.0.0.0';
  if (name !== 'auth-service') return startEchoService(name, port, host);
  const secret = env.JWT_SECRET ?? '';
  if (secret === '') throw new Error('the auth service signs tokens with JWT_SECRET, which is not set');
  return startAuthService({ port, host, secret, issuer: env.JWT_ISSUER, audience: env.JWT_AUDIENCE });
}

if (import.meta.main) {
  const name = process.argv[2] ?? process.env.SERVICE ?? '';
  try {
    const service = await serve(name, process.env);
    process.stdout.write(`${JSON.stringify({ event: 'listening', service: service.name, port: service.port })}\n`);
    const stop = (): void => void service.close().then(() => process.exit(0));
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  } catch (err) {
    process.stderr.write(`serve: ${(err as Error).message}\n`);
    process.exitCode = 2;
  }
}
