/**
 * The WebSocket upstream of `npm run bench`: `ws` echoing every message back
 * on the connection it came from, on 127.0.0.1.
 * Usage: ws-echo.ts <port>
 */
import http from 'node:http';
import { WebSocketServer } from 'ws';

const [port] = process.argv.slice(2);
if (port === undefined) throw new Error('usage: ws-echo.ts <port>');
const server = http.createServer((_req, res) => res.writeHead(426).end());
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws) => ws.on('message', (data, binary) => ws.send(data, { binary })));
server.listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => {
  for (const c of wss.clients) c.terminate();
  server.close(() => process.exit(0));
});
