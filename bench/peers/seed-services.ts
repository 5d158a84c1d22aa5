/**
 * One example service of `npm start` (examples/services.ts) for the seed
 * scenario, on a free port of 127.0.0.1: the auth service, or an echo service.
 * Each runs in a process of its own, as the seed's services do, so the auth
 * service's password hashing never stalls the others. Prints the port once
 * it listens. Usage: seed-services.ts auth <jwt secret> | seed-services.ts echo <name>
 */
import { startAuthService, startEchoService } from '../../examples/services.ts';

const [kind, arg] = process.argv.slice(2);
if (arg === undefined || (kind !== 'auth' && kind !== 'echo')) throw new Error('usage: seed-services.ts auth <jwt secret> | echo <name>');
const service = kind === 'auth' ? await startAuthService({ port: 0, secret: arg }) : await startEchoService(arg, 0);
process.stdout.write(`${JSON.stringify({ port: service.port })}\n`);
process.on('SIGTERM', () => void service.close().then(() => process.exit(0)));
