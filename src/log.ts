/** Structured logging: one JSON object per line. Never give it full email addresses or tokens. */
export interface Logger {
  info(fields: Record<string, unknown>): void;
  warn(fields: Record<string, unknown>): void;
  error(fields: Record<string, unknown>): void;
}

/** Writes JSON lines to a stream (stdout by default). */
export function createLogger(write: (line: string) => void = (line) => process.stdout.write(line)): Logger {
  const emit = (level: string, fields: Record<string, unknown>) =>
    write(`${JSON.stringify({ time: new Date().toISOString(), level, ...fields })}\n`);
  return {
    info: (f) => emit('info', f),
    warn: (f) => emit('warn', f),
    error: (f) => emit('error', f),
  };
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
