/**
 * Send-out at N confirmed subscribers, on a fresh PostgreSQL database, into Postfix's smtp-sink:
 * fan-out against the bare INSERT … SELECT, end to end through a dispatcher process (`npm run worker`),
 * and the two ceilings measured in the same run: smtp-source (SMTP) and the service's SMTP pool alone, with no
 * ledger (transport).
 * The service is one version of it (bench/versions.ts): this working tree, or a git ref to compare with.
 */
import { spawn } from 'node:child_process';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import MailComposer from 'nodemailer/lib/mail-composer';
import type { Db } from '../src/db/client.js';
import { rows } from '../src/db/client.js';
import { essayEmail } from '../src/mail/messages.js';
import { createRenderer } from '../src/mail/render.js';
import { createSmtpMailer } from '../src/mail/smtp.js';
import { loadTemplates } from '../src/mail/templates-fs.js';
import type { Sink } from './support.js';
import {
  cpuSecondsOf,
  machineCpuSeconds,
  memoryOf,
  postgresCpuSeconds,
  SMTP_SOURCE,
  sleep,
  startService,
  startSink,
} from './support.js';
import type { ServiceVersion } from './versions.js';

export const MAIL_FROM = 'Essays <essays@example.org>';
export const PUBLIC_URL = 'https://news.example.org';

export interface SendoutResult {
  n: number;
  /** The version of the service measured (bench/versions.ts), and in which round of alternating runs. */
  service: string;
  round: number;
  /** Dispatcher processes that sent it. */
  dispatchers: number;
  /** SEND_CONCURRENCY of each dispatcher: its SMTP connections, and the sessions of both ceilings. */
  connections: number;
  fanoutSeconds: number;
  rawInsertSelectSeconds: number;
  endToEndSeconds: number;
  endToEndPerSecond: number;
  /** smtp-source -d -s <connections> into the same kind of sink, same message. */
  smtpCeilingPerSecond: number;
  smtpCeilingMessages: number;
  /** The service's SMTP pool alone (no ledger) sending the pre-built message, <connections> connections. */
  transportCeilingPerSecond: number;
  transportCeilingMessages: number;
  dispatcherRestMiB: number;
  dispatcherPeakMiB: number;
  /**
   * CPU time per message while the letters went out (publish done → send-out done), in microseconds, by
   * process, and how busy the whole machine was then (1 = every core busy).
   */
  cpuPerMessageUs: { dispatcher: number; sink: number; postgres: number };
  machineBusy: number;
  /** PostgreSQL's write-ahead log written per message while the letters went out: its work, without the noise of CPU time. */
  walBytesPerMessage: number;
  sinkMessages: number;
  sinkRecipients: number;
  ledger: Record<string, number>;
  correct: boolean;
}

export interface SendoutOptions {
  /** Messages for each ceiling (the rate is what counts, not the total). */
  ceilingMessages: number;
  /** Dispatcher processes (`npm run worker` each) sharing the send-out, as SPEC's several dispatchers. */
  dispatchers: number;
  /** SEND_CONCURRENCY for each dispatcher; the ceilings open as many SMTP sessions. */
  connections: number;
  service: ServiceVersion;
  round: number;
  log: (line: string) => void;
}

/** The current letter, composed once by nodemailer: what the ceilings send. */
async function sampleLetter(): Promise<Buffer> {
  const config = {
    mailFrom: MAIL_FROM,
    publicUrl: PUBLIC_URL,
    siteName: 'Essays',
    siteUrl: 'https://example.org',
    confirmTokenTtlMs: 0,
  };
  const email = await essayEmail(config, createRenderer(loadTemplates()), essayRow(0), {
    id: 1,
    email: 'reader1@example.org',
    name: null,
    unsubscribeToken: 'x'.repeat(43),
  });
  const composer = new MailComposer({ ...email, messageId: `<${email.messageId}>` });
  return composer.compile().build();
}

export function essayRow(id: number) {
  return {
    id,
    slug: 'on-benchmarks',
    title: 'On Benchmarks, and why a number needs its baseline',
    url: 'https://example.org/essays/on-benchmarks',
    summary:
      'Absolute numbers on a shared machine move from run to run; ratios to a baseline measured in the same run move much less.',
  };
}

/** N confirmed subscribers, reader1@example.org … readerN@example.org, in one statement. */
export async function seed(db: Db, n: number): Promise<void> {
  await db.execute(sql`
    insert into subscribers (email, status, unsubscribe_token, confirmed_at)
    select 'reader' || i || '@example.org', 'confirmed', md5(i::text) || substr(md5(random()::text), 1, 11), now()
    from generate_series(1, ${n}) as i`);
  await db.execute(sql`vacuum analyze subscribers`);
}

/** The bare statement the fan-out makes, into the same empty table; then the table is emptied again. */
async function rawInsertSelect(db: Db): Promise<number> {
  const [essay] = await rows<{ id: number }>(
    db,
    sql`insert into essays (slug, title, url) values ('raw', 'Raw', 'https://example.org/raw') returning id`,
  );
  const t = performance.now();
  await db.execute(sql`
    insert into deliveries (essay_id, subscriber_id)
    select ${essay?.id}, id from subscribers where status = 'confirmed'`);
  const seconds = (performance.now() - t) / 1000;
  await db.execute(sql`truncate deliveries`);
  await db.execute(sql`delete from essays`);
  await db.execute(sql`checkpoint`);
  return seconds;
}

async function smtpSourceCeiling(letter: Buffer, messages: number, sessions: number): Promise<number> {
  const sink = await startSink();
  const file = join('/dev/shm', `oneletter-letter-${process.pid}.eml`);
  await writeFile(file, letter.toString('utf8').replace(/\r\n/g, '\n'));
  try {
    const t = performance.now();
    await new Promise<void>((resolve, reject) => {
      const child = spawn(
        SMTP_SOURCE,
        [
          '-d',
          '-s',
          String(sessions),
          '-m',
          String(messages),
          '-F',
          file,
          '-f',
          'essays@example.org',
          '-t',
          'reader@example.org',
          `127.0.0.1:${sink.port}`,
        ],
        { stdio: 'ignore' },
      );
      child.once('error', reject);
      child.once('exit', (code) =>
        code === 0 ? resolve() : reject(new Error(`smtp-source exited ${code}`)),
      );
    });
    const seconds = (performance.now() - t) / 1000;
    await checkCount(sink, messages, 'smtp-source');
    return messages / seconds;
  } finally {
    await sink.close();
    await rm(file, { force: true });
  }
}

/**
 * The transport alone: the service's own SMTP pool (src/mail/smtp.ts, nodemailer's SMTPConnection) sending
 * the pre-built letter over as many connections, one sender each as in the dispatcher, with no ledger. What
 * a send-out would reach if handing letters over cost nothing.
 */
async function transportCeiling(letter: Buffer, messages: number, connections: number): Promise<number> {
  const sink = await startSink();
  const mailer = createSmtpMailer({ url: sink.url, connections });
  try {
    let next = 0;
    const t = performance.now();
    const sender = async () => {
      while (next < messages) {
        const i = next++;
        const outcome = await mailer.send({
          raw: letter,
          envelope: { from: 'essays@example.org', to: `reader${i}@example.org` },
          subject: 'On Benchmarks',
        });
        if (outcome.status !== 'sent') throw new Error(`the SMTP pool: ${JSON.stringify(outcome)}`);
      }
    };
    await Promise.all(Array.from({ length: connections }, sender));
    const seconds = (performance.now() - t) / 1000;
    await checkCount(sink, messages, 'the SMTP pool');
    return messages / seconds;
  } finally {
    await mailer.close();
    await sink.close();
  }
}

async function checkCount(sink: Sink, expected: number, what: string): Promise<void> {
  const { messages } = await sink.count();
  if (messages !== expected)
    throw new Error(`${what}: the sink got ${messages} messages, expected ${expected}`);
}

/** Whether any delivery of the essay is still open: pending, claimed or sending. */
export async function sendoutOpen(db: Db, essayId: number): Promise<boolean> {
  const [open] = await rows<{ open: boolean }>(
    db,
    sql`select exists (select 1 from deliveries where essay_id = ${essayId}
                         and status in ('pending', 'claimed', 'sending')) as open`,
  );
  return Boolean(open?.open);
}

/**
 * Resolves once no delivery of the essay is open (true), or false after `timeoutMs`. `t0` is when the send-out
 * began: each look walks the rows already sent (a 1M send-out's end: tens of ms of PostgreSQL's CPU), so they
 * come further apart as the send-out goes on: 1 % of the time so far, which bounds the timing error.
 */
export async function sendoutEnded(
  db: Db,
  essayId: number,
  t0: number,
  timeoutMs = Number.POSITIVE_INFINITY,
): Promise<boolean> {
  while (await sendoutOpen(db, essayId)) {
    if (performance.now() - t0 > timeoutMs) return false;
    await sleep(Math.max(100, (performance.now() - t0) / 100));
  }
  return true;
}

/** Where PostgreSQL's write-ahead log is now, in bytes. */
async function walPosition(db: Db): Promise<number> {
  const [row] = await rows<{ at: string }>(
    db,
    sql`select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::text as at`,
  );
  return Number(row?.at ?? 0);
}

export async function measureSendout(n: number, options: SendoutOptions): Promise<SendoutResult> {
  const { service } = options;
  const log = (line: string) =>
    options.log(`${service.label}, n=${n}, ${options.connections} connections: ${line}`);
  const database = await service.freshDatabase();
  const { db, url } = database;
  const sink = await startSink();
  let workers: ReturnType<typeof startService>[] = [];
  const signal = (name: NodeJS.Signals) => {
    for (const w of workers) w.process.kill(name);
  };
  try {
    log('seeding');
    await seed(db, n);

    workers = Array.from({ length: options.dispatchers }, () =>
      startService(
        'worker',
        {
          DATABASE_URL: url,
          SMTP_URL: sink.url,
          MAIL_FROM,
          PUBLIC_URL,
          SEND_CONCURRENCY: String(options.connections),
        },
        service.root,
      ),
    );
    await Promise.all(workers.map((w) => w.waitForLine(/dispatcher started/)));
    await sleep(500);
    // Memory is each process's own: with several, the largest.
    const largest = async () => {
      const each = await Promise.all(workers.map((w) => memoryOf(w.pid)));
      return {
        rssMiB: Math.max(...each.map((m) => m.rssMiB)),
        peakMiB: Math.max(...each.map((m) => m.peakMiB)),
      };
    };
    const rest = await largest();
    // The dispatchers hold still while the two fan-outs are timed, so both run alone on the database.
    signal('SIGSTOP');
    const rawInsertSelectSeconds = await rawInsertSelect(db);

    log('publishing and sending');
    const t0 = performance.now();
    const { essay } = await service.publish(db, {
      slug: 'on-benchmarks',
      title: essayRow(0).title,
      url: essayRow(0).url,
      summary: essayRow(0).summary,
    });
    const fanoutSeconds = (performance.now() - t0) / 1000;
    const cpuAt = () =>
      Promise.all([
        Promise.all(workers.map((w) => cpuSecondsOf(w.pid))).then((each) => each.reduce((a, b) => a + b, 0)),
        cpuSecondsOf(sink.pid),
        postgresCpuSeconds(),
        machineCpuSeconds(),
        walPosition(db),
      ]);
    const cpuBefore = await cpuAt();
    signal('SIGCONT');
    // A dispatcher that exits mid-run would leave the send-out open for ever: the run fails instead.
    const exited = workers.map((w) =>
      w.exited.then(({ code, signal: how }) => {
        throw new Error(`a dispatcher exited during the send-out (${how ?? `code ${code}`}):\n${w.output()}`);
      }),
    );
    // The dispatchers are stopped once it has ended: their exits then are no failure.
    for (const e of exited) e.catch(() => {});
    await Promise.race([sendoutEnded(db, essay.id, t0), ...exited]);
    const endToEndSeconds = (performance.now() - t0) / 1000;
    const cpuAfter = await cpuAt();
    const perMessageUs = (i: 0 | 1 | 2) => ((cpuAfter[i] - cpuBefore[i]) / n) * 1e6;
    const cpuPerMessageUs = { dispatcher: perMessageUs(0), sink: perMessageUs(1), postgres: perMessageUs(2) };
    const machineBusy =
      (cpuAfter[3].busy - cpuBefore[3].busy) / Math.max(1e-9, cpuAfter[3].total - cpuBefore[3].total);
    const walBytesPerMessage = (cpuAfter[4] - cpuBefore[4]) / n;
    const peak = await largest();
    await Promise.all(workers.map((w) => w.stop()));
    workers = [];

    const counts = await rows<{ status: string; n: number }>(
      db,
      sql`select status::text as status, count(*)::int as n from deliveries group by status`,
    );
    const ledger = Object.fromEntries(counts.map((r) => [r.status, Number(r.n)]));
    const received = await sink.count();

    log('ceilings');
    const letter = await sampleLetter();
    const ceilingMessages = Math.min(n, options.ceilingMessages);
    const smtpCeilingPerSecond = await smtpSourceCeiling(letter, ceilingMessages, options.connections);
    const transportMessages = Math.min(n, Math.ceil(options.ceilingMessages / 4));
    const transportCeilingPerSecond = await transportCeiling(letter, transportMessages, options.connections);

    return {
      n,
      service: service.label,
      round: options.round,
      dispatchers: options.dispatchers,
      connections: options.connections,
      fanoutSeconds,
      rawInsertSelectSeconds,
      endToEndSeconds,
      endToEndPerSecond: n / endToEndSeconds,
      smtpCeilingPerSecond,
      smtpCeilingMessages: ceilingMessages,
      transportCeilingPerSecond,
      transportCeilingMessages: transportMessages,
      dispatcherRestMiB: rest.rssMiB,
      dispatcherPeakMiB: peak.peakMiB,
      cpuPerMessageUs,
      machineBusy,
      walBytesPerMessage,
      sinkMessages: received.messages,
      sinkRecipients: received.recipients,
      ledger,
      correct: received.messages === n && received.recipients === n && ledger.sent === n,
    };
  } finally {
    await Promise.all(workers.map((w) => w.stop()));
    await sink.close();
    await database.destroy();
  }
}
