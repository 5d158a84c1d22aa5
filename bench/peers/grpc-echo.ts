/**
 * A gRPC server for the benchmarks: one unary method, /bench.Echo/Unary,
 * answering each JSON message with itself, over h2c on 127.0.0.1.
 * Usage: node bench/peers/grpc-echo.ts <port>
 */
import * as grpc from '@grpc/grpc-js';

const port = Number(process.argv[2]);
const json = { serialize: (v: unknown): Buffer => Buffer.from(JSON.stringify(v)), deserialize: (b: Buffer): unknown => JSON.parse(b.toString()) as unknown };
export const ECHO_SERVICE = {
  unary: { path: '/bench.Echo/Unary', requestStream: false, responseStream: false, requestSerialize: json.serialize, requestDeserialize: json.deserialize, responseSerialize: json.serialize, responseDeserialize: json.deserialize },
};

if (Number.isInteger(port) && port > 0) {
  const server = new grpc.Server();
  server.addService(ECHO_SERVICE, { unary: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => cb(null, call.request) });
  server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) throw err;
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => server.tryShutdown(() => process.exit(0)));
}
