/** JSON logs with pino. Secrets never reach a log line: the redact list covers the places they live. */
import pino, { type Logger } from 'pino';

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
}

/** Builds the process logger; writes are asynchronous so a slow stdout does not block requests. */
export function createLogger(options: LoggerOptions): Logger {
  const fd = options.destination === 'Stderr' ? 2 : 1;
  return pino(
    {
      level: options.level,
      base: { service: 'switchyard-dataplane' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACT, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ fd, sync: false }),
  );
}

/** A logger that drops everything, for tests of pure parts. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
