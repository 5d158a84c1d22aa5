/**
 * Distributed tracing with OpenTelemetry (`observability.tracing`).
 *
 * Each request gets a server span, and each upstream attempt a client span
 * whose context goes to the upstream as a W3C `traceparent`. A client's
 * `traceparent` is honoured: the server span becomes its child, and sampling
 * follows the parent's decision (parent-based, `sampling_rate` for new traces).
 * Spans are exported as OTLP/HTTP JSON in batches.
 *
 * When tracing is off, none of this is built: the OpenTelemetry SDK is not even
 * loaded (the gateway imports tracing-otel.ts only when tracing is enabled, and
 * this module holds only what both sides share), and the request path checks
 * one undefined field and creates no span, context or header.
 */
import type { IncomingMessage } from 'node:http';
import type { GatewayConfig } from '../config/schema.ts';
import type { RequestTrace } from '../pipeline/context.ts';

/** The `observability.tracing` section. */
export type TracingSettings = GatewayConfig['observability']['tracing'];

/** Tracing for one gateway. */
export interface Tracing {
  /** Where spans are sent. */
  readonly url: string;
  /** Starts the server span of a request, as a child of the client's `traceparent` when it sent one. */
  startRequest(req: IncomingMessage, method: string, tls: boolean, clientIp: string): RequestTrace;
  /** Exports the spans ended so far. */
  flush(): Promise<void>;
  /** Exports what is left and releases the OpenTelemetry globals. */
  shutdown(): Promise<void>;
}

/** The OTLP/HTTP port, where Jaeger (1.35 and later) and the OpenTelemetry Collector receive OTLP. */
const OTLP_HTTP_PORT = '4318';
/** Jaeger's legacy Thrift-over-HTTP collector port, which the seed names. */
const JAEGER_THRIFT_HTTP_PORT = '14268';

/**
 * Where spans are sent. OTLP endpoints are the receiver's base URL, and spans
 * go to `<endpoint>/v1/traces` (a URL that already ends so is used as is).
 * A Jaeger endpoint in the seed's form, `http://jaeger:14268/api/traces`, is
 * Jaeger's Thrift collector, which this exporter does not speak; the same host
 * receives OTLP on port 4318, so port 14268 becomes 4318 and `/api/traces`
 * becomes `/v1/traces`. Without a backend: the OpenTelemetry default,
 * `http://localhost:4318/v1/traces` (a collector next to the gateway).
 */
export function otlpTracesUrl(backend: TracingSettings['backend']): { url: string; mappedFrom?: string } {
  if (!backend) return { url: `http://localhost:${OTLP_HTTP_PORT}/v1/traces` };
  const u = new URL(backend.endpoint);
  let mapped = false;
  if (backend.type === 'Jaeger') {
    if (u.port === JAEGER_THRIFT_HTTP_PORT) {
      u.port = OTLP_HTTP_PORT;
      mapped = true;
    }
    if (u.pathname === '/api/traces') {
      u.pathname = '/';
      mapped = true;
    }
  }
  if (!u.pathname.endsWith('/v1/traces')) u.pathname = `${u.pathname.replace(/\/+$/, '')}/v1/traces`;
  return mapped ? { url: u.toString(), mappedFrom: backend.endpoint } : { url: u.toString() };
}
