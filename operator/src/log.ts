/** The operator's JSON logs (pino), in the same shape as the data plane's. Tokens never reach a log line. */
import pino, { type Logger } from 'pino';

export type { Logger };

/** Builds the process logger. */
export function createLogger(options: { level: string }): Logger {
  return pino(
    {
      level: options.level,
      base: { service: 'switchyard-operator' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['token', '*.token', 'authorization', 'headers.authorization'], censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ fd: 1, sync: false }),
  );
}
