/** The three example services on 127.0.0.1 (3001-3003), for hack/dev-cluster.sh. Runs until SIGTERM. */
import { startAuthService, startEchoService } from '../services.ts';

const secret = process.env.JWT_SECRET;
if (!secret) throw new Error('JWT_SECRET must be set: the auth service signs tokens with it');
const services = await Promise.all([
  startAuthService({ port: Number(process.env.AUTH_SERVICE_PORT ?? 3001), secret }),
  startEchoService('user-service', Number(process.env.USER_SERVICE_PORT ?? 3002)),
  startEchoService('metrics-service', Number(process.env.METRICS_SERVICE_PORT ?? 3003)),
]);
process.stdout.write(`example services: ${services.map((s) => `${s.name} :${s.port}`).join(', ')}\n`);
process.on('SIGTERM', () => void Promise.all(services.map((s) => s.close())).then(() => process.exit(0)));
