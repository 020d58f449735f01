import pino from 'pino';

/** The logger interface every part takes (pino-compatible), so tests can pass their own. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  child(bindings: Record<string, unknown>): Logger;
}

/** Keys whose values never reach a log line, wherever they appear. */
export const REDACTED_PATHS = [
  'ApiKey',
  'apiKey',
  'Password',
  'password',
  'NewPassword',
  'authorization',
  'Authorization',
  '*.ApiKey',
  '*.apiKey',
  '*.Password',
  '*.password',
  '*.NewPassword',
  '*.authorization',
  '*.Authorization',
  '*.*.ApiKey',
  '*.*.Password',
  '*.*.authorization',
];

export function createLogger(options: { destination?: string | number; level?: string }): Logger {
  const dest =
    typeof options.destination === 'string'
      ? pino.destination({ dest: options.destination, mkdir: true, sync: false, mode: 0o600 })
      : pino.destination({ fd: options.destination ?? 1, sync: false });
  return pino(
    { level: options.level ?? 'info', redact: { paths: REDACTED_PATHS, censor: '[redacted]' } },
    dest,
  ) as unknown as Logger;
}

export const SILENT_LOGGER: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => SILENT_LOGGER,
};
