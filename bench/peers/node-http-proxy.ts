/**
 * A Node.js peer for `npm run bench`: http-proxy (node-http-proxy) on a plain
 * http server, with a keep-alive agent of 128 sockets to the upstream.
 * Usage: node-http-proxy.ts <port> <upstream origin>
 */
import http from 'node:http';
import httpProxy from 'http-proxy';

const [port, upstream] = process.argv.slice(2);
if (port === undefined || upstream === undefined) throw new Error('usage: node-http-proxy.ts <port> <upstream origin>');
const agent = new http.Agent({ keepAlive: true, maxSockets: 128, keepAliveMsecs: 60_000 });
const proxy = httpProxy.createProxyServer({ target: upstream, agent });
proxy.on('error', (_err, _req, res) => {
  if (res instanceof http.ServerResponse && !res.headersSent) res.writeHead(502).end();
  else res.destroy();
});
const server = http.createServer((req, res) => proxy.web(req, res));
server.keepAliveTimeout = 60_000;
server.listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
