/** The state of one request as it moves through the pipeline. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServedRoute } from '../contract/policy.ts';
import type { GatewayError } from '../proxy/errors.ts';
import type { EndpointRuntime } from '../upstream/upstream.ts';

/** The caller, once a token has been verified. */
export interface Identity {
  subject: string;
  roles: readonly string[];
  permissions: readonly string[];
}

/** Everything stages share about a request. */
export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly requestId: string;
  /** process.hrtime.bigint() when the request arrived. */
  readonly start: bigint;
  readonly method: string;
  /** Normalized path (what was matched and what the upstream receives unless rewritten). */
  readonly path: string;
  /** Query string including the leading '?', or ''. */
  readonly query: string;
  readonly host: string;
  /** The client's address, from the peer and `server.trusted_proxies` (server/client-address.ts); the same everywhere. */
  readonly clientIp: string;
  /** From the client to the gateway's peer (`clientChain[0]` is `clientIp`): the X-Forwarded-For sent upstream. */
  readonly clientChain: readonly string[];
  readonly tls: boolean;
  /** The matched route as the table states it (its stages and backends are with the route's runtime, which the handler holds). */
  route: ServedRoute;
  params: Readonly<Record<string, string>>;
  matchedPrefix: string;
  identity: Identity | undefined;
  /** Extra response headers set by stages (CORS, rate limit), written with the upstream's. */
  responseHeaders: Record<string, string> | undefined;
  upstream: string | undefined;
  endpoint: EndpointRuntime | undefined;
  attempts: number;
  /** Response body bytes sent to the client. */
  bytesOut: number;
  errorCode: string | undefined;
  /** The request's spans; undefined when tracing is off (nothing on the request path then touches tracing). */
  trace: RequestTrace | undefined;
}

/**
 * The spans of one request, as the request path uses them. Declared here, with
 * the context it reads, so that the request path never depends on tracing;
 * observability/tracing-otel.ts implements it.
 */
export interface RequestTrace {
  readonly traceId: string;
  /** Starts the client span of one upstream attempt; its headers carry the span's context to the upstream. */
  startAttempt(method: string, endpoint: EndpointRuntime, path: string, attempt: number): AttemptTrace;
  /** Ends the server span with what is known once the response closed. */
  end(ctx: RequestContext, status: number, completed: boolean): void;
}

/** The client span of one upstream attempt. */
export interface AttemptTrace {
  /** `traceparent` (and `tracestate`) as a raw header list to add to the upstream request. */
  readonly headers: readonly string[];
  /** Ends the span: with the upstream's status, or with the reason no usable answer came. */
  end(status: number | undefined, failure: string | undefined): void;
}

/** A stage either lets the request continue (undefined) or answers it with an error. */
export type StageResult = GatewayError | undefined;

/** One concern of the request path: authentication, CORS, rate limiting and so on. */
export type Stage = (ctx: RequestContext) => StageResult | Promise<StageResult>;
