/**
 * Structured logging: one line per event on stderr, `key=value` pairs after
 * the message, so an operator can grep it and a machine can parse it.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, string | number | boolean | bigint | undefined>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger whose lines carry `component=name` (and the parent's fields). */
  child(component: string): Logger;
}

/** Renders `fields` as ` k=v k2="v 2"`; values with spaces or quotes are JSON-quoted. */
export function formatFields(fields: LogFields): string {
  let out = '';
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    const s = String(v);
    out += ` ${k}=${/[\s"=]/.test(s) || s === '' ? JSON.stringify(s) : s}`;
  }
  return out;
}

export interface LoggerOptions {
  /** Lowest level written; default from NEA_LOG_LEVEL, else `info`. */
  level?: LogLevel;
  /** Where lines go; default process.stderr. */
  sink?: (line: string) => void;
  /** Clock for timestamps; default Date.now. */
  now?: () => number;
}

export function createLogger(opts: LoggerOptions = {}, base: LogFields = {}): Logger {
  const envLevel = process.env.NEA_LOG_LEVEL as LogLevel | undefined;
  const level = opts.level ?? (envLevel && envLevel in ORDER ? envLevel : 'info');
  const sink = opts.sink ?? ((line: string) => { process.stderr.write(line + '\n'); });
  const now = opts.now ?? Date.now;
  const write = (lvl: LogLevel, msg: string, fields?: LogFields): void => {
    if (ORDER[lvl] < ORDER[level]) return;
    sink(`${new Date(now()).toISOString()} ${lvl.toUpperCase().padEnd(5)} ${msg}${formatFields({ ...base, ...fields })}`);
  };
  return {
    debug: (m, f) => { write('debug', m, f); },
    info: (m, f) => { write('info', m, f); },
    warn: (m, f) => { write('warn', m, f); },
    error: (m, f) => { write('error', m, f); },
    child: (component) => createLogger(opts, { ...base, component }),
  };
}
