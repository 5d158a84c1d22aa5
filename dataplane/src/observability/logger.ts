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

/** Builds the process logger; writes are asynchronous so a slow stdout does not block requests. */
export function createLogger(options: LoggerOptions): Logger {
  const fd = options.destination === 'Stderr' ? 2 : 1;
  const sink = pino.destination({ fd, sync: false });
  return pino(
    {
      level: options.level,
      base: { service: 'switchyard-dataplane' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    options.format === 'pretty' ? prettyStream(sink) : sink,
  );
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
function prettyStream(sink: DestinationStream & { flush(cb: (err?: Error) => void): void }): DestinationStream & { flush(cb: (err?: Error) => void): void } {
  return {
    write: (json: string) => sink.write(prettyLine(json)),
    flush: (cb) => sink.flush(cb),
  };
}

/** A logger that drops everything, for tests of pure parts. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
