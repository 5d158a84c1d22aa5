/**
 * A "pod" for end-to-end tests: one of the example services, listening on an
 * address inside a network namespace the test created.
 *   node pod-server.ts <kind: auth|echo> <name> <host> <port> [jwt-secret]
 */
import { startAuthService, startEchoService } from '../../examples/services.ts';

const [kind, name, host, port, secret] = process.argv.slice(2);
const service =
  kind === 'auth'
    ? await startAuthService({ port: Number(port), host, secret: secret ?? '' })
    : await startEchoService(name ?? 'pod', Number(port), host);
process.stdout.write(`listening ${host}:${service.port}\n`);
process.on('SIGTERM', () => void service.close().then(() => process.exit(0)));
