import type { ChildProcess } from 'node:child_process';
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo, Server, Socket } from 'node:net';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { sql } from 'drizzle-orm';
import { afterEach, beforeEach } from 'vitest';
import type { Database } from '../../src/db/client.js';
import { rows } from '../../src/db/client.js';
import { MIGRATIONS_FOLDER } from '../../src/db/open.js';
import { openPglite } from '../../src/db/pglite.js';
import { openPostgres } from '../../src/db/postgres.js';
import type { SendoutView } from '../../src/essays/service.js';
import type { TestDbKind } from './db.js';
import { createServerDatabase, dropServerDatabase, testDbKind } from './db.js';
import { PUBLIC_URL, PUBLISHER_TOKEN } from './service.js';
import type { SmtpSink } from './smtp.js';
import { startSmtpSink } from './smtp.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `npm run cli -- …` as a child process with exactly `env`, and returns its exit code and output. */
export function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<CliResult> {
  return promisify(execFile)(process.execPath, ['--import', 'tsx', 'src/entry/cli.ts', ...args], {
    cwd: ROOT,
    env,
    timeout: 60_000,
  }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: CliResult) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

/** A free TCP port on 127.0.0.1 (listen on port 0, note the port, close). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The service running as a real child process: `node --import tsx src/entry/node.ts [args]`. */
export interface ServiceProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** http://127.0.0.1:port (only meaningful when the process serves HTTP). */
  readonly url: string;
  /** Everything the process wrote so far. */
  readonly output: { stdout: string; stderr: string };
  /** Resolves when the process has exited. */
  readonly exited: Promise<Exit>;
  /** Polls GET /readyz until it answers 200. */
  ready(timeoutMs?: number): Promise<void>;
  /** Polls the log until a line contains `text` (e.g. a worker's `dispatcher started`). */
  waitForOutput(text: string, timeoutMs?: number): Promise<void>;
  /** fetch() against the process, with the publisher token on /api/ paths. */
  request(path: string, init?: RequestInit): Promise<Response>;
  /** Sends a signal and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<Exit>;
}

const running = new Set<ServiceProcess>();
/** Every child of the current test, running or not, for the log on failure. */
const started: ServiceProcess[] = [];

/** Starts the service as a child process. Every child started here is killed by killServiceProcesses(). */
export async function startServiceProcess(
  env: Record<string, string>,
  args: string[] = [],
): Promise<ServiceProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/entry/node.ts', ...args], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      PORT: String(port),
      PUBLIC_URL,
      PUBLISHER_TOKEN,
      MAIL_FROM: 'Essays <essays@example.test>',
      SITE_NAME: 'Test Essays',
      LEASE_SECONDS: '3',
      DISPATCH_POLL_MS: '50',
      SEND_CONCURRENCY: '5',
      RETRY_BASE_SECONDS: '0',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = { stdout: '', stderr: '' };
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    output.stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    output.stderr += chunk;
  });
  const exited = new Promise<Exit>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal }));
  });
  const url = `http://127.0.0.1:${port}`;
  const service: ServiceProcess = {
    child,
    pid: child.pid ?? 0,
    url,
    output,
    exited,
    async ready(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      let gone = false;
      void exited.then(() => {
        gone = true;
      });
      while (Date.now() < deadline) {
        if (gone)
          throw new Error(`the service exited before it was ready:\n${output.stderr}${output.stdout}`);
        try {
          if ((await fetch(`${url}/readyz`)).status === 200) return;
        } catch {}
        await sleep(100);
      }
      throw new Error(`the service was not ready after ${timeoutMs} ms:\n${output.stderr}${output.stdout}`);
    },
    async waitForOutput(text, timeoutMs = 30_000) {
      await until(
        () => output.stdout.includes(text) || output.stderr.includes(text),
        timeoutMs,
        () => {
          return `"${text}" never appeared in the output:\n${output.stderr}${output.stdout}`;
        },
      );
    },
    request(path, init = {}) {
      const headers = new Headers(init.headers);
      if (path.startsWith('/api/')) headers.set('authorization', `Bearer ${PUBLISHER_TOKEN}`);
      return fetch(`${url}${path}`, { ...init, headers });
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
  running.add(service);
  started.push(service);
  void exited.then(() => running.delete(service));
  return service;
}

/**
 * Kills (SIGKILL) every child still running and waits for them: for afterEach, so a failed test leaves none.
 * Given a failed test's context, prints what each child wrote first.
 */
export async function killServiceProcesses(context?: {
  task: { result?: { state?: string } };
}): Promise<void> {
  if (context?.task.result?.state === 'fail') {
    for (const service of started) {
      const { stdout, stderr } = service.output;
      process.stderr.write(`--- child ${service.pid} (${service.child.spawnargs.slice(3).join(' ')}):\n`);
      const log = stdout.split('\n').filter((line) => !line.includes('"msg":"request"'));
      process.stderr.write(`${stderr}${log.slice(-40).join('\n')}\n`);
    }
  }
  started.length = 0;
  await Promise.all([...running].map((service) => service.stop('SIGKILL')));
}

/**
 * A database a child process can open: a fresh database on the PostgreSQL test server, or a PGlite data
 * folder. PGlite serves one process at a time, so open() it here only while no child has it.
 */
export interface ProcessDatabase {
  kind: TestDbKind;
  /** DATABASE_URL or DATA_DIR for the child. */
  env: Record<string, string>;
  /** The database's URL on the server (postgres only). */
  url?: string;
  /** Opens it in this process, migrated. */
  open(): Promise<Database>;
  /** Opens, runs one query, closes. */
  query<T>(query: ReturnType<typeof sql>): Promise<T[]>;
  /** Drops the database or removes the folder. */
  destroy(): Promise<void>;
}

export async function createProcessDatabase(kind: TestDbKind = testDbKind): Promise<ProcessDatabase> {
  let open: () => Promise<Database>;
  let destroy: () => Promise<void>;
  let env: Record<string, string>;
  let url: string | undefined;
  if (kind === 'postgres') {
    const databaseUrl = await createServerDatabase();
    url = databaseUrl;
    env = { DATABASE_URL: databaseUrl };
    open = () => openPostgres(databaseUrl, { poolSize: 2, migrationsFolder: MIGRATIONS_FOLDER });
    destroy = () => dropServerDatabase(databaseUrl);
  } else {
    const dir = await mkdtemp(join(tmpdir(), 'oneletter-process-'));
    env = { DATA_DIR: dir };
    open = () => openPglite({ dir, migrationsFolder: MIGRATIONS_FOLDER });
    destroy = () => rm(dir, { recursive: true, force: true });
  }
  return {
    kind,
    env,
    url,
    open,
    async query<T>(query: ReturnType<typeof sql>) {
      const database = await open();
      try {
        return await rows<T>(database.db, query);
      } finally {
        await database.close();
      }
    },
    destroy,
  };
}

/** Adds `count` confirmed subscribers (reader-1@… to reader-N@…) in one statement; returns their addresses. */
export async function seedSubscribers(database: ProcessDatabase, count: number): Promise<string[]> {
  const readers = Array.from({ length: count }, (_, i) => ({
    email: `reader-${i + 1}@example.test`,
    token: randomBytes(32).toString('base64url'),
  }));
  await database.query(sql`
    insert into subscribers (email, status, unsubscribe_token, confirmed_at)
    select r.email, 'confirmed', r.token, now()
    from json_to_recordset(${JSON.stringify(readers)}::json) as r(email text, token text)`);
  return readers.map((r) => r.email);
}

export type SendoutCounts = SendoutView;

/** Publishes an essay through the HTTP API; returns the send-out as the API first reports it. */
export async function publishEssay(service: ServiceProcess, slug: string): Promise<SendoutCounts> {
  const res = await service.request('/api/essays', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ slug, title: `Essay ${slug}`, url: `https://example.test/${slug}` }),
  });
  if (res.status !== 202) throw new Error(`publishing answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { sendout: SendoutCounts }).sendout;
}

/** The send-out's progress as GET /api/essays/:slug reports it. */
export async function sendoutOf(service: ServiceProcess, slug: string): Promise<SendoutCounts> {
  const res = await service.request(`/api/essays/${slug}`);
  if (res.status !== 200)
    throw new Error(`GET /api/essays/${slug} answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { sendout: SendoutCounts }).sendout;
}

/** Polls the API until the send-out is done; returns its final counts. */
export async function waitUntilDone(
  service: ServiceProcess,
  slug: string,
  timeoutMs = 60_000,
): Promise<SendoutCounts> {
  let last: SendoutCounts | undefined;
  await until(
    async () => {
      last = await sendoutOf(service, slug).catch(() => last);
      return last?.status === 'done';
    },
    timeoutMs,
    () => `the send-out was not done after ${timeoutMs} ms: ${JSON.stringify(last)}`,
  );
  return last as SendoutCounts;
}

/** Polls `check` every 100 ms until it returns true. */
export async function until(
  check: () => boolean | Promise<boolean>,
  timeoutMs: number,
  message: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(message());
    await sleep(100);
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A TCP proxy in front of the PostgreSQL server: cut() drops every connection and refuses new ones (the
 * database "goes down"), restore() listens again on the same port.
 */
export interface TcpProxy {
  port: number;
  /** `target` URL rewritten to go through the proxy. */
  url: string;
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const to = new URL(target);
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  const listen = async (port: number) => {
    server = createServer((client) => {
      const upstream = connect(Number(to.port) || 5432, to.hostname);
      for (const s of [client, upstream]) {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
        s.on('error', () => {});
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => server?.listen(port, '127.0.0.1', () => resolve()));
    return (server.address() as AddressInfo).port;
  };
  const cut = async () => {
    const closing = new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    for (const s of sockets) s.destroy();
    await closing;
    server = undefined;
  };
  const port = await listen(0);
  const url = new URL(target);
  url.hostname = '127.0.0.1';
  url.port = String(port);
  return {
    port,
    url: url.href,
    cut,
    async restore() {
      await listen(port);
    },
    close: cut,
  };
}

/** What a process test works with: an SMTP sink and a database, fresh for each test. */
export interface ProcessSite {
  smtp: SmtpSink;
  database: ProcessDatabase;
}

/**
 * Registers the hooks of a process test file: before each test a fresh SMTP sink and database (read them
 * inside the test), after it every child process killed (its log printed if the test failed) and both closed.
 */
export function useProcessSite(): ProcessSite {
  const site = {} as ProcessSite;
  beforeEach(async () => {
    site.smtp = await startSmtpSink();
    site.database = await createProcessDatabase();
  });
  afterEach(async (context) => {
    await killServiceProcesses(context);
    await site.smtp?.close();
    await site.database?.destroy();
  });
  return site;
}
