/**
 * The OpenTelemetry side of tracing (see tracing.ts): the SDK, the OTLP
 * exporter and the spans. Loaded only when tracing is enabled.
 */
import { ProxyTracerProvider, ROOT_CONTEXT, SpanKind, SpanStatusCode, context, defaultTextMapGetter, defaultTextMapSetter, propagation, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { ExportResultCode, W3CTraceContextPropagator, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { ParentBasedSampler, TraceIdRatioBasedSampler, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace';
import type { IncomingMessage } from 'node:http';
import type { AttemptTrace, RequestContext, RequestTrace } from '../pipeline/context.ts';
import type { EndpointRuntime } from '../upstream/upstream.ts';
import type { Logger } from './logger.ts';
import { otlpTracesUrl, type Tracing, type TracingSettings } from './tracing.ts';

/** Passes spans to the OTLP exporter and logs failed exports, at most once a minute. */
class ReportingExporter implements SpanExporter {
  private readonly inner: SpanExporter;
  private readonly log: Logger;
  private readonly url: string;
  private lastReport = -Infinity;
  failures = 0;

  constructor(inner: SpanExporter, log: Logger, url: string) {
    this.inner = inner;
    this.log = log;
    this.url = url;
  }

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      if (result.code !== ExportResultCode.SUCCESS) {
        this.failures++;
        const now = performance.now();
        if (now - this.lastReport > 60_000) {
          this.lastReport = now;
          this.log.warn({ event: 'tracing_export_failed', url: this.url, spans: spans.length, error: result.error?.message ?? 'unknown' }, 'spans could not be exported; they are dropped');
        }
      }
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/** The OpenTelemetry API's globals (tracer provider, propagator, context) belong to one Tracing at a time. */
let active: OtelTracing | undefined;

/** Tracing for one gateway, on the OpenTelemetry SDK. */
export class OtelTracing implements Tracing {
  readonly url: string;
  readonly tracer: Tracer;
  readonly propagator = new W3CTraceContextPropagator();
  private readonly sdk: NodeSDK;
  private stopped: Promise<void> | undefined;

  private constructor(settings: TracingSettings, log: Logger) {
    const { url, mappedFrom } = otlpTracesUrl(settings.backend);
    this.url = url;
    this.sdk = new NodeSDK({
      serviceName: settings.service_name,
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.sampling_rate) }),
      // Batched; the batch settings come from the standard OTEL_BSP_* variables.
      traceExporter: new ReportingExporter(new OTLPTraceExporter({ url }), log, url),
      textMapPropagator: this.propagator,
      // Traces only: no metric readers, log processors or instrumentations (the gateway makes its own spans).
      metricReaders: [],
      logRecordProcessors: [],
      instrumentations: [],
    });
    this.sdk.start();
    this.tracer = trace.getTracer('switchyard-dataplane');
    log.info(
      { event: 'tracing_started', url, ...(mappedFrom ? { configured: mappedFrom } : {}), samplingRate: settings.sampling_rate, serviceName: settings.service_name },
      mappedFrom ? `tracing: spans go to ${url} (OTLP/HTTP), Jaeger's OTLP receiver for ${mappedFrom}` : `tracing: spans go to ${url} (OTLP/HTTP)`,
    );
  }

  /** Starts tracing; undefined when another gateway of this process already traces. */
  static start(settings: TracingSettings, log: Logger): OtelTracing | undefined {
    if (active) {
      log.warn({ event: 'tracing_unavailable' }, 'another gateway in this process already traces; this one runs without tracing');
      return undefined;
    }
    active = new OtelTracing(settings, log);
    return active;
  }

  /** Starts the server span of a request, as a child of the client's `traceparent` when it sent one. */
  startRequest(req: IncomingMessage, method: string, tls: boolean, clientIp: string): RequestTrace {
    const parent = this.propagator.extract(ROOT_CONTEXT, req.headers, defaultTextMapGetter);
    const attributes: Attributes = {
      'http.request.method': method,
      'url.scheme': tls ? 'https' : 'http',
      'client.address': clientIp,
      'network.protocol.version': req.httpVersion,
    };
    const ua = req.headers['user-agent'];
    if (ua !== undefined) attributes['user_agent.original'] = ua;
    const span = this.tracer.startSpan(method, { kind: SpanKind.SERVER, attributes }, parent);
    return new OtelRequestTrace(this, span);
  }

  /** Exports the spans ended so far. */
  flush(): Promise<void> {
    const provider = trace.getTracerProvider();
    const sdkProvider = (provider instanceof ProxyTracerProvider ? provider.getDelegate() : provider) as { forceFlush?: () => Promise<void> };
    return sdkProvider.forceFlush?.() ?? Promise.resolve();
  }

  /** Exports what is left and releases the OpenTelemetry globals. */
  shutdown(): Promise<void> {
    this.stopped ??= this.sdk.shutdown().finally(() => {
      if (active !== this) return;
      trace.disable();
      propagation.disable();
      context.disable();
      active = undefined;
    });
    return this.stopped;
  }
}

/** The spans of one request. */
class OtelRequestTrace implements RequestTrace {
  readonly traceId: string;
  private readonly tracing: OtelTracing;
  private readonly span: Span;
  private readonly parent: Context;

  constructor(tracing: OtelTracing, span: Span) {
    this.tracing = tracing;
    this.span = span;
    this.traceId = span.spanContext().traceId;
    this.parent = trace.setSpan(ROOT_CONTEXT, span);
  }

  /** Starts the client span of one upstream attempt; its headers carry the span's context to the upstream. */
  startAttempt(method: string, endpoint: EndpointRuntime, path: string, attempt: number): AttemptTrace {
    const url = new URL(endpoint.origin);
    const attributes: Attributes = {
      'http.request.method': method,
      'server.address': url.hostname,
      'server.port': Number(url.port) || (url.protocol === 'https:' ? 443 : 80),
      // Without the query string, which may carry credentials.
      'url.full': endpoint.origin + path.split('?', 1)[0],
      'switchyard.endpoint': endpoint.origin,
    };
    if (attempt > 0) attributes['http.request.resend_count'] = attempt;
    const span = this.tracing.tracer.startSpan(method, { kind: SpanKind.CLIENT, attributes }, this.parent);
    const carrier: Record<string, string> = {};
    this.tracing.propagator.inject(trace.setSpan(ROOT_CONTEXT, span), carrier, defaultTextMapSetter);
    const headers: string[] = [];
    for (const k of Object.keys(carrier)) headers.push(k, carrier[k] as string);
    return new OtelAttemptTrace(span, headers);
  }

  /** Ends the server span with what is known once the response closed. */
  end(ctx: RequestContext, status: number, completed: boolean): void {
    const span = this.span;
    const route = ctx.route as RequestContext['route'] | undefined;
    span.setAttribute('http.response.status_code', status);
    if (ctx.path) span.setAttribute('url.path', ctx.path);
    if (ctx.host) span.setAttribute('server.address', ctx.host.replace(/:\d+$/, ''));
    span.setAttribute('switchyard.request_id', ctx.requestId);
    if (route) {
      span.setAttribute('http.route', route.path.value);
      span.setAttribute('switchyard.route', route.id);
      span.updateName(`${ctx.method} ${route.path.value}`);
    }
    if (ctx.upstream) span.setAttribute('switchyard.upstream', ctx.upstream);
    if (ctx.attempts > 0) span.setAttribute('switchyard.attempts', ctx.attempts);
    if (ctx.errorCode) span.setAttribute('switchyard.error_code', ctx.errorCode);
    if (status >= 500 || !completed) {
      span.setAttribute('error.type', ctx.errorCode ?? (completed ? String(status) : 'response_incomplete'));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
    span.end();
  }
}

/** The client span of one upstream attempt. */
class OtelAttemptTrace implements AttemptTrace {
  /** `traceparent` (and `tracestate`) as a raw header list to add to the upstream request. */
  readonly headers: readonly string[];
  private readonly span: Span;

  constructor(span: Span, headers: readonly string[]) {
    this.span = span;
    this.headers = headers;
  }

  /** Ends the span: with the upstream's status, or with the reason no usable answer came. */
  end(status: number | undefined, failure: string | undefined): void {
    if (status !== undefined) this.span.setAttribute('http.response.status_code', status);
    if (failure !== undefined || (status !== undefined && status >= 500)) {
      this.span.setAttribute('error.type', failure ?? String(status));
      this.span.setStatus({ code: SpanStatusCode.ERROR });
    }
    this.span.end();
  }
}
