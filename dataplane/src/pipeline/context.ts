/** The state of one request as it moves through the pipeline. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { GatewayError } from '../proxy/errors.ts';
import type { RouteRuntime } from '../table/runtime.ts';
import type { EndpointRuntime } from '../upstream/upstream.ts';
import type { RequestTrace } from '../observability/tracing.ts';

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
  readonly clientIp: string;
  readonly tls: boolean;
  route: RouteRuntime;
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

/** A stage either lets the request continue (undefined) or answers it with an error. */
export type StageResult = GatewayError | undefined;

/** One concern of the request path: authentication, CORS, rate limiting and so on. */
export type Stage = (ctx: RequestContext) => StageResult | Promise<StageResult>;
