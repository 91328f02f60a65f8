/** Structured logging: one line per event (JSON, or words at a terminal). Never give it full email addresses or tokens. */
export interface Logger {
  info(fields: Record<string, unknown>): void;
  warn(fields: Record<string, unknown>): void;
  error(fields: Record<string, unknown>): void;
}

/**
 * Writes log lines to a stream (stdout by default): JSON lines, or with `format: 'text'` a line of words for
 * a person at a terminal (`12:04:05 warn  expired claims reaped released=3 unknown=0`).
 */
export function createLogger(
  write: (line: string) => void = (line) => process.stdout.write(line),
  format: 'json' | 'text' = 'json',
): Logger {
  if (format === 'text') return textLogger(write);
  let lastMs = 0;
  let lastTime = '';
  // Each line starts with its time and level, then the fields as given (a line per request under load:
  // made without copying the fields into a new object, and with the time text made once a millisecond).
  const emit = (level: string, fields: Record<string, unknown>) => {
    const ms = Date.now();
    if (ms !== lastMs) {
      lastMs = ms;
      lastTime = new Date(ms).toISOString();
    }
    const rest = JSON.stringify(fields);
    const head = `{"time":"${lastTime}","level":"${level}"`;
    write(`${head}${rest.length > 2 ? `,${rest.slice(1)}` : '}'}\n`);
  };
  return {
    info: (f) => emit('info', f),
    warn: (f) => emit('warn', f),
    error: (f) => emit('error', f),
  };
}

function textLogger(write: (line: string) => void): Logger {
  const emit = (level: string, { msg, ...fields }: Record<string, unknown>) => {
    const time = new Date().toISOString().slice(11, 19);
    const rest = Object.entries(fields)
      .filter(([, value]) => value !== undefined)
      .map(([key, value]) => `${key}=${textValue(value)}`)
      .join(' ');
    write(`${time} ${level.padEnd(5)} ${String(msg ?? '')}${rest ? ` ${rest}` : ''}\n`);
  };
  return {
    info: (f) => emit('info', f),
    warn: (f) => emit('warn', f),
    error: (f) => emit('error', f),
  };
}

/** A value as a word when it is one, quoted (JSON) when it has spaces or quotes, JSON for objects. */
function textValue(value: unknown): string {
  if (typeof value === 'string') return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  return typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value);
}

/** The format for a stream: LOG_FORMAT, or with `auto`, words on a terminal and JSON lines elsewhere. */
export function logFormatFor(setting: 'auto' | 'text' | 'json', isTty: boolean | undefined): 'json' | 'text' {
  if (setting !== 'auto') return setting;
  return isTty ? 'text' : 'json';
}

/**
 * Writes to stdout once per turn of the event loop rather than once per line: under load, one write (a
 * system call: stdout is synchronous for files and pipes) carries every request's line. Lines keep their
 * order, and whatever is still held is written before the process exits, however it exits.
 */
export function batchedStdout(): (line: string) => void {
  let held = '';
  const flush = () => {
    if (!held) return;
    const out = held;
    held = '';
    process.stdout.write(out);
  };
  process.on('exit', flush);
  return (line) => {
    if (!held) setImmediate(flush);
    held += line;
  };
}

/** A logger that drops everything (tests that don't look at logs). */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

/** The parts of an error that are safe to log: its name, code and message, without the stack. */
export function describeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { error: String(error) };
  // drizzle wraps driver errors as "Failed query: … params: …", and the params hold addresses and tokens.
  if (error.message.startsWith('Failed query:')) {
    if (error.cause instanceof Error) return describeError(error.cause);
    return { error: error.message.replace(/\nparams:[\s\S]*$/, ''), errorName: error.name };
  }
  const code = (error as { code?: unknown }).code;
  return { error: error.message, errorName: error.name, ...(code === undefined ? {} : { errorCode: code }) };
}
