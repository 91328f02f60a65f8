import postgres from 'postgres';
import { afterEach, beforeEach, expect } from 'vitest';
import type { ProcessDatabase, ServiceProcess } from './process.js';
import { startServiceProcess, useProcessSite } from './process.js';
import type { DeliveryRow } from './sendout.js';
import { deliveriesOf, lettersPerAddress } from './sendout.js';
import type { SmtpSink } from './smtp.js';

/**
 * Helpers for the chaos tests (tests/chaos.*.test.ts): real processes against one PostgreSQL, a real SMTP
 * sink, faults injected from outside. `npm test` runs them small; `npm run test:chaos` (CHAOS_SCALE=large)
 * runs the same checks at the scale issue 21 measured them.
 */

export const largeScale = process.env.CHAOS_SCALE === 'large';

/** `small` in `npm test`, `large` under `npm run test:chaos`. */
export function scaled<T>(small: T, large: T): T {
  return largeScale ? large : small;
}

/** What each chaos test gets fresh: an SMTP sink, a database on the server, and a watch on its ledger. */
export interface Chaos {
  smtp: SmtpSink;
  database: ProcessDatabase;
  ledger: LedgerWatch;
}

/**
 * Registers the hooks of a chaos test file: before each test a fresh sink, database and ledger watch (read
 * them inside the test), after it every child process killed (its log printed if the test failed) and all
 * of it closed.
 */
export function useChaos(): Chaos {
  const site = useProcessSite();
  const chaos = {} as Chaos;
  beforeEach(() => {
    chaos.smtp = site.smtp;
    chaos.database = site.database;
    chaos.ledger = watchLedger(site.database);
  });
  afterEach(async () => {
    await chaos.ledger?.close();
  });
  return chaos;
}

/** A subscriber as the ledger orders them: by id, which is the order a send-out goes in. */
export interface Reader {
  id: number;
  email: string;
  unsubscribeToken: string;
}

/** The web process (no dispatcher) and the dispatcher processes (`npm run worker`) of one site. */
export interface Site {
  web: ServiceProcess;
  workers: ServiceProcess[];
  /** Starts one more dispatcher process and waits until its dispatcher runs. */
  startWorker(): Promise<ServiceProcess>;
}

/** Starts a web process with DISPATCHER=false and `workers` dispatcher processes, all on `env`. */
export async function startSite(env: Record<string, string>, workers: number): Promise<Site> {
  const startWorker = async () => {
    const worker = await startServiceProcess(env, ['--worker']);
    await worker.waitForOutput('"dispatcher started"');
    return worker;
  };
  const web = await startServiceProcess({ ...env, DISPATCHER: 'false' });
  const started = await Promise.all([web.ready(), ...Array.from({ length: workers }, startWorker)]);
  return { web, workers: started.slice(1) as ServiceProcess[], startWorker };
}

/** A process still running (not exited, not killed). */
export function alive(service: ServiceProcess): boolean {
  return service.child.exitCode === null && service.child.signalCode === null;
}

/**
 * One connection of the test's own to the database, to watch the ledger while the processes work and to cut
 * their connections. It is never cut itself: `terminateOthers` spares the backend it runs on.
 */
export interface LedgerWatch {
  /** Deliveries by status, right now (statuses with none are 0). */
  counts(): Promise<Record<string, number>>;
  readers(): Promise<Reader[]>;
  /** pg_terminate_backend on every other backend of the database; returns how many it ended. */
  terminateOthers(): Promise<number>;
  close(): Promise<void>;
}

export function watchLedger(database: ProcessDatabase): LedgerWatch {
  if (!database.url) throw new Error('watching the ledger needs a PostgreSQL server');
  const client = postgres(database.url, { max: 1, onnotice: () => {} });
  const name = new URL(database.url).pathname.slice(1);
  return {
    async counts() {
      const found = await client<{ status: string; n: number }[]>`
        select status::text as status, count(*)::int as n from deliveries group by status`;
      const counts: Record<string, number> = {};
      for (const status of ['pending', 'claimed', 'sending', 'sent', 'failed', 'skipped', 'unknown'])
        counts[status] = 0;
      for (const row of found) counts[row.status] = row.n;
      return counts;
    },
    async readers() {
      const found = await client<Reader[]>`
        select id::int as id, email, unsubscribe_token as "unsubscribeToken" from subscribers order by id`;
      return [...found];
    },
    async terminateOthers() {
      const ended = await client<{ ended: boolean }[]>`
        select pg_terminate_backend(pid) as ended from pg_stat_activity
        where datname = ${name} and pid <> pg_backend_pid()`;
      return ended.filter((row) => row.ended).length;
    },
    close: () => client.end({ timeout: 5 }),
  };
}

/** The essay's rows in the delivery ledger, by address (opens the database, reads, closes). */
export async function ledgerOf(database: ProcessDatabase, slug: string): Promise<DeliveryRow[]> {
  const opened = await database.open();
  try {
    return await deliveriesOf(opened.db, slug);
  } finally {
    await opened.close();
  }
}

/** Addresses that got the essay (titled as publishEssay titles it) more than once at the sink. */
export function twiceMailed(smtp: SmtpSink, slug: string): string[] {
  const letters = lettersPerAddress(smtp.received, `Essay ${slug}`);
  return [...letters].filter(([, n]) => n > 1).map(([address]) => address);
}

/**
 * Addresses the ledger says `unknown` that never reached the SMTP server (no RCPT TO at the sink): letters
 * never handed over, which must be sent instead.
 */
export function unknownNeverHandedOver(rows: DeliveryRow[], smtp: SmtpSink): string[] {
  const reached = new Set<string>();
  for (const transaction of smtp.transactions)
    for (const recipient of transaction.recipients) reached.add(recipient.address);
  return rows.filter((d) => d.status === 'unknown' && !reached.has(d.email)).map((d) => d.email);
}

/** Deliveries that ended neither `sent` nor `unknown` (left pending, claimed, sending; failed; skipped). */
export function neitherSentNorUnknown(rows: DeliveryRow[]): string[] {
  return rows
    .filter((d) => d.status !== 'sent' && d.status !== 'unknown')
    .map((d) => `${d.email} ${d.status}`);
}

/** Expects `found` empty; a failure says how many there are and shows the first few. */
export function expectNone(found: string[], what: string): void {
  const shown = found.slice(0, 5).join('; ') + (found.length > 5 ? '; …' : '');
  expect(found.length, `${what}: ${shown}`).toBe(0);
}
