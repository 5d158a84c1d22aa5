/**
 * A Node.js peer for `npm run bench`: @fastify/http-proxy in front of one
 * upstream, as its README sets it up, with the undici pool sized like the
 * gateway's (128 connections, no pipelining). Usage: fastify-proxy.ts <port> <upstream origin>
 */
import fastifyProxy from '@fastify/http-proxy';
import Fastify from 'fastify';

const [port, upstream] = process.argv.slice(2);
if (port === undefined || upstream === undefined) throw new Error('usage: fastify-proxy.ts <port> <upstream origin>');
const app = Fastify({ logger: false, keepAliveTimeout: 60_000 });
await app.register(fastifyProxy, { upstream, undici: { connections: 128, pipelining: 1, keepAliveTimeout: 60_000 } });
await app.listen({ port: Number(port), host: '127.0.0.1' });
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
