/**
 * Helpers shared by the benchmarks: child processes, their memory, free ports, timings, Postfix's smtp-sink,
 * and a recording SMTP sink that tells who reached RCPT TO.
 */
import type { ChildProcess } from 'node:child_process';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createReadStream, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { SMTPServer } from 'smtp-server';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** A port nobody listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Quantiles of repeated timings, in ms. */
export interface Timing {
  medianMs: number;
  p95Ms: number;
  p99Ms: number;
}

export function timing(samples: number[]): Timing {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) =>
    Math.round((s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? 0) * 100) / 100;
  return { medianMs: at(0.5), p95Ms: at(0.95), p99Ms: at(0.99) };
}

/** Runs `work` a few times to warm up, then `runs` times timed, one after another. */
export async function repeat(runs: number, work: () => Promise<unknown>): Promise<Timing> {
  for (let i = 0; i < Math.min(5, runs); i++) await work();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await work();
    samples.push(performance.now() - t);
  }
  return timing(samples);
}

/** Resident and peak resident memory of a process, in MiB, from /proc (Linux). */
export async function memoryOf(pid: number): Promise<{ rssMiB: number; peakMiB: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rssMiB: kib('VmRSS') / 1024, peakMiB: kib('VmHWM') / 1024 };
}

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU time (user + system) a process has used so far, in seconds, from /proc (Linux); 0 once it is gone. */
export async function cpuSecondsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // The fields after the command name (in parentheses, which may hold spaces): utime and stime are 12th and 13th.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11] ?? 0) + Number(fields[12] ?? 0)) / CLOCK_TICKS;
}

/** CPU time of every PostgreSQL server process on this machine (backends, WAL writer, checkpointer…). */
export async function postgresCpuSeconds(): Promise<number> {
  let total = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const comm = await readFile(`/proc/${entry}/comm`, 'utf8').catch(() => '');
    if (comm.trim() === 'postgres') total += await cpuSecondsOf(Number(entry));
  }
  return total;
}

/** The machine's busy and total CPU time so far, in seconds summed over its cores (/proc/stat). */
export async function machineCpuSeconds(): Promise<{ busy: number; total: number }> {
  const [line] = (await readFile('/proc/stat', 'utf8')).split('\n');
  const ticks = (line ?? '').split(/\s+/).slice(1).map(Number);
  const total = ticks.reduce((a, b) => a + (b || 0), 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return { busy: (total - idle) / CLOCK_TICKS, total: total / CLOCK_TICKS };
}

export interface Child {
  process: ChildProcess;
  pid: number;
  /** Resolves once the process has exited, with how. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first output line that matches. */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then SIGKILL if it lingers; resolves once it exited. */
  stop(): Promise<void>;
  output(): string;
}

/**
 * Compiles the service as `npm run build` does: dist/ is what `npm start` and `npm run worker` run. `root`
 * is another checkout of the project (bench/versions.ts), this one by default.
 */
export async function buildService(root = ROOT): Promise<void> {
  await promisify(execFile)(process.execPath, [join(root, 'scripts', 'build.mjs')], { cwd: root });
}

/**
 * The service exactly as `npm start` or `npm run worker` runs it (the command is read from package.json,
 * node options included), built by buildService() first; without npm in between, so the process whose
 * memory is read is the service itself.
 */
export function startService(script: 'start' | 'worker', env: Record<string, string>, root = ROOT): Child {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  const [command, ...args] = (pkg.scripts[script] ?? '').split(/\s+/);
  if (command !== 'node')
    throw new Error(`npm run ${script} no longer starts with node: ${pkg.scripts[script]}`);
  return startProcess(
    process.execPath,
    [...profiling(), ...args],
    { ...process.env, NODE_ENV: '', ...env },
    root,
  );
}

/** BENCH_PROFILE_DIR=/some/dir: a process started here writes a V8 CPU profile there when it exits. */
function profiling(): string[] {
  const dir = process.env.BENCH_PROFILE_DIR;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}

/**
 * Starts a TypeScript entry of this project as one node process (`node --import tsx`, not the `tsx`
 * launcher, which would put a second process between us and the one whose memory we read).
 */
export function startTs(script: string, args: string[], env: Record<string, string>): Child {
  return startProcess(process.execPath, [...profiling(), '--import', 'tsx', join(ROOT, script), ...args], {
    ...process.env,
    NODE_ENV: '',
    ...env,
  });
}

export function startProcess(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  cwd = ROOT,
): Child {
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const tail: string[] = [];
  const watchers: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      tail.push(line);
      if (tail.length > 50) tail.shift();
      for (const w of [...watchers]) {
        if (!w.pattern.test(line)) continue;
        watchers.splice(watchers.indexOf(w), 1);
        w.resolve(line);
      }
    });
  }
  return {
    process: child,
    pid: child.pid as number,
    exited,
    output: () => tail.join('\n'),
    waitForLine(pattern, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(
            new Error(
              `${command} ${args.join(' ')}: no line like ${pattern} in ${timeoutMs} ms:\n${tail.join('\n')}`,
            ),
          );
        }, timeoutMs);
        const done = (line: string) => {
          clearTimeout(timer);
          resolve(line);
        };
        watchers.push({ pattern, resolve: done });
        void exited.then(() => {
          clearTimeout(timer);
          reject(new Error(`${command} exited before printing ${pattern}:\n${tail.join('\n')}`));
        });
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** Waits until a TCP port accepts connections. */
export async function waitForPort(port: number, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > until) throw new Error(`nothing listens on port ${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** Postfix's test tools (Debian package `postfix`; its daemon is never started). */
export const SMTP_SINK = '/usr/sbin/smtp-sink';
export const SMTP_SOURCE = '/usr/sbin/smtp-source';

export interface Sink {
  port: number;
  pid: number;
  url: string;
  /** Counts the transactions in the dump and the distinct recipients among them. */
  count(): Promise<{ messages: number; recipients: number }>;
  close(): Promise<void>;
}

/**
 * Postfix's smtp-sink on a free port, dumping every transaction to a file in memory (/dev/shm), so the
 * benchmark can check afterwards that each recipient got exactly one letter.
 */
export async function startSink(): Promise<Sink> {
  const port = await freePort();
  const dir = await mkdtemp(join('/dev/shm', 'oneletter-sink-'));
  await chmod(dir, 0o777);
  const dump = join(dir, 'dump');
  const asRoot = process.getuid?.() === 0;
  const child = startProcess(SMTP_SINK, [
    ...(asRoot ? ['-u', 'nobody'] : []),
    '-D',
    dump,
    '-m',
    '1000',
    `127.0.0.1:${port}`,
    '1024',
  ]);
  await waitForPort(port);
  return {
    port,
    pid: child.pid,
    url: `smtp://127.0.0.1:${port}`,
    async count() {
      let messages = 0;
      const recipients = new Set<string>();
      try {
        const lines = createInterface({ input: createReadStream(dump), crlfDelay: Number.POSITIVE_INFINITY });
        for await (const line of lines) {
          if (line.charCodeAt(0) !== 88 /* X */) continue;
          if (line.startsWith('X-Mail-Args: ')) messages++;
          else if (line.startsWith('X-Rcpt-Args: ')) recipients.add(line.slice(13).toLowerCase());
        }
      } catch (error) {
        if ((error as { code?: string }).code !== 'ENOENT') throw error;
      }
      return { messages, recipients: recipients.size };
    },
    async close() {
      await child.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** An SMTP server that keeps no letter, only who reached it: each RCPT TO, and each letter received whole. */
export interface RecordingSink {
  port: number;
  url: string;
  /** How many times each address was given in RCPT TO (lower-cased). */
  reached: Map<string, number>;
  /** How many letters each recipient got whole (the data up to its final dot), whatever the client saw after. */
  letters: Map<string, number>;
  /** Letters received whole, all recipients together. */
  received(): number;
  /**
   * Connections that closed after a MAIL FROM and before its first RCPT TO: transactions begun by a client
   * killed before it named the recipient (the sink can't say whose letter each was).
   */
  cutBeforeRecipient(): number;
  close(): Promise<void>;
}

/**
 * smtp-server in this process, recording per address. Postfix's smtp-sink only counts, and the test suite's
 * sink (tests/support/smtp.ts) parses and keeps every letter: too much at benchmark sizes.
 */
export async function startRecordingSink(): Promise<RecordingSink> {
  const reached = new Map<string, number>();
  const letters = new Map<string, number>();
  let received = 0;
  let cutBeforeRecipient = 0;
  /** Sessions between MAIL FROM and their first RCPT TO. */
  const begun = new Set<string>();
  const add = (map: Map<string, number>, address: string) => map.set(address, (map.get(address) ?? 0) + 1);
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    logger: false,
    size: 10 * 1024 * 1024,
    onMailFrom(_address, session, callback) {
      begun.add(session.id);
      callback();
    },
    onRcptTo(address, session, callback) {
      begun.delete(session.id);
      add(reached, address.address.toLowerCase());
      callback();
    },
    onClose(session) {
      if (begun.delete(session.id)) cutBeforeRecipient++;
    },
    onData(stream, session, callback) {
      stream.resume();
      // 'end' comes only with the final dot: a client killed mid-letter leaves no letter behind.
      stream.once('end', () => {
        received++;
        for (const recipient of session.envelope.rcptTo) add(letters, recipient.address.toLowerCase());
        callback();
      });
    },
  });
  // A dispatcher killed mid-transaction is reported as an 'error' event, which would end this process.
  server.on('error', () => {});
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
  return {
    port,
    url: `smtp://127.0.0.1:${port}`,
    reached,
    letters,
    received: () => received,
    cutBeforeRecipient: () => cutBeforeRecipient,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
