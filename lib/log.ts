// Logger construction. Loggers are created once per process by its entry point and injected
// (as pino child loggers) into every component; nothing imports a logger singleton.
import pino, { type Logger, type DestinationStream } from 'pino';

export type { Logger };

export interface LoggerOptions {
  /** Component name, e.g. "operator", "agent", "cni". */
  name: string;
  level?: string;
  /** Where JSON lines go. The CNI plugin must log to stderr: stdout is the CNI protocol. */
  destination?: DestinationStream | 'stdout' | 'stderr';
}

/** Keys that must never reach a log line, wherever they appear in a logged object. */
export const REDACTED_PATHS = [
  'cookie',
  'peerCookie',
  '*.cookie',
  '*.peerCookie',
  '*.*.cookie',
  '*.*.peerCookie',
  'session.cookie',
  'session.peerCookie',
];

export function createLogger(opts: LoggerOptions): Logger {
  const dest =
    opts.destination === undefined || opts.destination === 'stdout'
      ? pino.destination(1)
      : opts.destination === 'stderr'
        ? pino.destination(2)
        : opts.destination;
  return pino(
    {
      name: opts.name,
      level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    dest,
  );
}

/** A logger that drops everything: for unit tests of pure logic. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
