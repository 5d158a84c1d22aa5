/**
 * Logs with pino: JSON lines, or one readable line per record
 * (`observability.logging.format: pretty`). Secrets never reach a log line:
 * the redact list covers the places they live, and the readable form is made
 * from the redacted JSON.
 */
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Paths redacted wherever they appear in a logged object. */
const REDACT = [
  'authorization',
  'headers.authorization',
  'headers.cookie',
  'req.headers.authorization',
  'req.headers.cookie',
  'token',
  'secret',
  '*.secret',
  '*.secrets',
  '*.token',
  'auth.jwt.secret',
  'auth.jwt.secrets',
];

/** Options for the process logger. */
export interface LoggerOptions {
  level: string;
  destination?: 'Stdout' | 'Stderr';
  /** `json` (the default): one JSON object per line; `pretty`: one readable line per record. */
  format?: 'json' | 'pretty';
}

/** How long a line may wait for others before it is written: short enough that a line is there when one looks. */
export const LOG_BATCH_DELAY_MS = 10;
/** Characters gathered before they are written without waiting for the timer. */
const LOG_BATCH_CHARS = 32 * 1024;

/** A destination with pino's `flush(cb)` and a synchronous flush for exit. */
type FlushableStream = DestinationStream & { flush(cb: (err?: Error) => void): void; flushSync(): void };

/**
 * Gathers lines and hands them to `sink` as one write, at most
 * `delayMs` after the first of them or once `maxChars` have gathered. Under
 * load that is one write call for many lines instead of one per line; at low
 * traffic a line waits at most `delayMs`. `flush` and `flushSync` write what
 * is gathered first, and so does the process's `exit`, so nothing is lost.
 */
export class BatchingStream implements FlushableStream {
  private lines: string[] = [];
  private chars = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly onTimer = (): void => {
    this.timer = undefined;
    this.writeGathered();
  };
  private readonly onExit = (): void => this.flushSync();

  private readonly sink: FlushableStream;
  private readonly delayMs: number;
  private readonly maxChars: number;

  constructor(sink: FlushableStream, delayMs = LOG_BATCH_DELAY_MS, maxChars = LOG_BATCH_CHARS) {
    this.sink = sink;
    this.delayMs = delayMs;
    this.maxChars = maxChars;
    process.once('exit', this.onExit);
  }

  write(line: string): boolean {
    this.lines.push(line);
    this.chars += line.length;
    if (this.chars >= this.maxChars) this.writeGathered();
    else if (this.timer === undefined) this.timer = setTimeout(this.onTimer, this.delayMs);
    return true;
  }

  flush(cb: (err?: Error) => void): void {
    this.writeGathered();
    this.sink.flush(cb);
  }

  flushSync(): void {
    this.writeGathered();
    try {
      this.sink.flushSync();
    } catch {
      // Nothing more can be done at exit: the sink was closed or its descriptor is gone.
    }
  }

  /** Lines gathered and not yet handed to the sink. */
  get pending(): number {
    return this.lines.length;
  }

  private writeGathered(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.lines.length === 0) return;
    const text = this.lines.length === 1 ? (this.lines[0] as string) : this.lines.join('');
    this.lines = [];
    this.chars = 0;
    this.sink.write(text);
  }
}

/** Loggers made by createLogger, with the stream their lines go to and the fields every line carries. */
const FAST_LINES = new WeakMap<Logger, { stream: DestinationStream; bindings: string }>();

/** Builds the process logger; writes are asynchronous and batched so a slow stdout does not block requests. */
export function createLogger(options: LoggerOptions): Logger {
  const fd = options.destination === 'Stderr' ? 2 : 1;
  const sink = pino.destination({ fd, sync: false }) as unknown as FlushableStream;
  // Batched after the readable form is made: that form is made one JSON line at a time.
  const batched = new BatchingStream(sink);
  const stream: DestinationStream = options.format === 'pretty' ? prettyStream(batched) : batched;
  const base = { service: 'switchyard-dataplane' };
  const log = pino(
    {
      level: options.level,
      base,
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
  FAST_LINES.set(log, { stream, bindings: `,"service":${JSON.stringify(base.service)}` });
  return log;
}

/** The fields of one access-log line, in the order they are written. */
export interface AccessRecord {
  requestId: string;
  method: string;
  path: string | undefined;
  host: string;
  client: string;
  route: string | null;
  upstream: string | null;
  endpoint: string | null;
  attempts: number;
  status: number;
  completed: boolean;
  durationMs: number;
  bytesOut: number;
  error: string | null;
  traceId: string | undefined;
}

/** `"value"` as JSON, or null. */
function jsonText(value: string | null | undefined): string {
  return value === null || value === undefined ? 'null' : JSON.stringify(value);
}

/**
 * A writer of access-log lines (`event: access`, message `request`) for
 * `log`, or undefined when `log` drops info lines. For a logger made by
 * createLogger it writes the JSON line itself, the same line pino writes
 * (same fields, same order) without pino's generic serialization and
 * redaction pass: every field is a string, number or boolean the gateway
 * chose, and none holds a secret. Any other logger gets the record through
 * `log.info`.
 */
export function accessLogWriter(log: Logger): ((record: AccessRecord) => void) | undefined {
  if (!log.isLevelEnabled('info')) return undefined;
  const fast = FAST_LINES.get(log);
  if (fast === undefined) return (record) => log.info({ event: 'access', ...record }, 'request');
  const { stream, bindings } = fast;
  const head = `{"level":"info","time":"`;
  const afterTime = `"${bindings},"event":"access","requestId":`;
  let lastMs = 0;
  let lastTime = '';
  return (r) => {
    const now = Date.now();
    if (now !== lastMs) {
      lastMs = now;
      lastTime = new Date(now).toISOString();
    }
    const line =
      head +
      lastTime +
      afterTime +
      JSON.stringify(r.requestId) +
      ',"method":' +
      JSON.stringify(r.method) +
      (r.path === undefined ? '' : ',"path":' + JSON.stringify(r.path)) +
      ',"host":' +
      JSON.stringify(r.host) +
      ',"client":' +
      JSON.stringify(r.client) +
      ',"route":' +
      jsonText(r.route) +
      ',"upstream":' +
      jsonText(r.upstream) +
      ',"endpoint":' +
      jsonText(r.endpoint) +
      ',"attempts":' +
      r.attempts +
      ',"status":' +
      r.status +
      ',"completed":' +
      r.completed +
      ',"durationMs":' +
      r.durationMs +
      ',"bytesOut":' +
      r.bytesOut +
      ',"error":' +
      jsonText(r.error) +
      (r.traceId === undefined ? '' : ',"traceId":' + JSON.stringify(r.traceId)) +
      ',"msg":"request"}\n';
    stream.write(line);
  };
}

/** Fields every readable line starts with, or that add nothing to it (one process, one service). */
const PRETTY_OMITTED = new Set(['time', 'level', 'msg', 'service']);
/** A value written bare after `key=`; any other is written as JSON, so that no value breaks the line or the `key=value` form. */
const BARE_VALUE = /^[\w.:/@+-]+$/;
/** Control characters in a message are escaped, as JSON would, so that a record stays on one line. */
const CONTROL = /[\u0000-\u001f\u007f]/g;

/**
 * One JSON log line as a readable one: time, level, message, then the other
 * fields as `key=value`, in the order they were logged, for example
 * `2026-01-02T03:04:05.678Z INFO  request event=access method=GET status=200`.
 */
export function prettyLine(json: string): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : `${json}\n`;
  }
  const level = String(record.level ?? '').toUpperCase().padEnd(5);
  const msg = typeof record.msg === 'string' ? record.msg.replace(CONTROL, (c) => JSON.stringify(c).slice(1, -1)) : '';
  let line = `${String(record.time ?? '')} ${level} ${msg}`;
  for (const [key, value] of Object.entries(record)) {
    if (PRETTY_OMITTED.has(key) || value === undefined) continue;
    line += ` ${key}=${typeof value === 'string' && BARE_VALUE.test(value) ? value : JSON.stringify(value)}`;
  }
  return `${line.trimEnd()}\n`;
}

/** Writes each record as a readable line to `sink`; flushing reaches the sink, so nothing is lost at exit. */
function prettyStream(sink: FlushableStream): FlushableStream {
  return {
    write: (json: string) => sink.write(prettyLine(json)),
    flush: (cb) => sink.flush(cb),
    flushSync: () => sink.flushSync(),
  };
}

/** A logger that drops everything, for tests of pure parts. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
