/**
 * A send-out under a storm of SIGKILLs (issue 21): N confirmed subscribers, several dispatcher processes
 * (`npm run worker` each) with short leases, one of them killed (-9) every 0.5–1 s and a fresh one started in
 * its place, then the send-out left to finish. A recording sink tells which addresses reached RCPT TO, so
 * the figures say how many deliveries a kill leaves `unknown`, how many of those never reached the SMTP
 * server (a letter never handed over should have been sent instead), and that nobody got two letters.
 */
import { sql } from 'drizzle-orm';
import type { Db } from '../src/db/client.js';
import { rows } from '../src/db/client.js';
import { essayRow, MAIL_FROM, PUBLIC_URL, seed, sendoutEnded, sendoutOpen } from './sendout.js';
import type { Child } from './support.js';
import { sleep, startRecordingSink, startService } from './support.js';
import type { ServiceVersion } from './versions.js';

/** Seconds a claim lasts before the reaper takes it back: short, so a killed dispatcher's letters move on. */
export const LEASE_SECONDS = 2;

export interface KillsResult {
  n: number;
  /** The version of the service measured (bench/versions.ts), and in which round of alternating runs. */
  service: string;
  round: number;
  /** Dispatcher processes running at once. */
  dispatchers: number;
  /** SIGKILLs made while the send-out was under way. */
  kills: number;
  /** Deliveries in `sending` (all dispatchers) just before each kill. */
  sendingAtKills: number[];
  /** Publish to the last delivery ended, kills and restarts included. */
  seconds: number;
  perSecond: number;
  ledger: Record<string, number>;
  unknown: number;
  /** Unknown deliveries whose address never reached RCPT TO at the sink: letters never handed over. */
  unknownNeverReached: number;
  /**
   * SMTP transactions cut between MAIL FROM and RCPT TO: of the unknown that never reached RCPT TO, how many
   * at most had their transaction under way (the rest were handed over and killed before their first write).
   */
  cutBeforeRecipient: number;
  /** Readers who got more than one letter at the sink. */
  duplicates: number;
  /** Readers with no letter at the sink whose delivery is not `unknown`: skipped, or recorded sent wrongly. */
  lost: number;
  /** No delivery left pending, claimed or sending when the benchmark stopped waiting. */
  ended: boolean;
  /** Dispatcher processes that exited without being killed, with the last lines each printed. */
  exitedOnTheirOwn: { code: number | null; signal: string | null; output: string }[];
  correct: boolean;
}

export interface KillsOptions {
  kills: number;
  dispatchers: number;
  service: ServiceVersion;
  round: number;
  log: (line: string) => void;
}

/** Deliveries in `sending` right now. */
async function sendingNow(db: Db, essayId: number): Promise<number> {
  const [row] = await rows<{ n: number }>(
    db,
    sql`select count(*)::int as n from deliveries where essay_id = ${essayId} and status = 'sending'`,
  );
  return Number(row?.n ?? 0);
}

export async function measureKills(n: number, options: KillsOptions): Promise<KillsResult> {
  const { service, dispatchers } = options;
  const log = (line: string) => options.log(`${service.label}, kills at n=${n}: ${line}`);
  const database = await service.freshDatabase();
  const { db, url } = database;
  const sink = await startRecordingSink();
  const env = {
    DATABASE_URL: url,
    SMTP_URL: sink.url,
    MAIL_FROM,
    PUBLIC_URL,
    LEASE_SECONDS: String(LEASE_SECONDS),
  };
  const started: Child[] = [];
  /** Dispatchers that said they started and are not killed yet: the next victim is one of them. */
  const running: Child[] = [];
  const killed = new Set<Child>();
  const startDispatcher = async () => {
    const worker = startService('worker', env, service.root);
    started.push(worker);
    await worker.waitForLine(/dispatcher started/);
    running.push(worker);
  };
  try {
    log('seeding');
    await seed(db, n);
    await Promise.all(Array.from({ length: dispatchers }, startDispatcher));

    log('publishing, then killing');
    const t0 = performance.now();
    const { title, url: essayUrl, summary } = essayRow(0);
    const { essay } = await service.publish(db, { slug: 'under-kills', title, url: essayUrl, summary });
    // The first kill once letters flow, so that every kill lands mid send-out.
    while (sink.received() < n / 20 && performance.now() - t0 < 60_000) await sleep(20);
    const sendingAtKills: number[] = [];
    const replacements: Promise<void>[] = [];
    while (sendingAtKills.length < options.kills) {
      await sleep(500 + Math.random() * 500);
      if (!(await sendoutOpen(db, essay.id))) break;
      const [victim] = running.splice(Math.floor(Math.random() * running.length), 1);
      if (!victim) continue;
      sendingAtKills.push(await sendingNow(db, essay.id));
      killed.add(victim);
      victim.process.kill('SIGKILL');
      await victim.exited;
      replacements.push(startDispatcher());
    }
    await Promise.all(replacements);
    log(`${sendingAtKills.length} kills; waiting for the send-out to end`);
    const ended = await sendoutEnded(db, essay.id, t0, Math.max(120_000, n * 10));
    const seconds = (performance.now() - t0) / 1000;
    const exitedOnTheirOwn = started
      .filter((w) => !killed.has(w) && (w.process.exitCode !== null || w.process.signalCode !== null))
      .map((w) => ({ code: w.process.exitCode, signal: w.process.signalCode, output: w.output() }));
    await Promise.all(started.map((w) => w.stop()));

    const deliveries = await rows<{ email: string; status: string }>(
      db,
      sql`select s.email, d.status::text as status from deliveries d
          join subscribers s on s.id = d.subscriber_id where d.essay_id = ${essay.id}`,
    );
    const ledger: Record<string, number> = {};
    for (const d of deliveries) ledger[d.status] = (ledger[d.status] ?? 0) + 1;
    const unknown = deliveries.filter((d) => d.status === 'unknown');
    const unknownNeverReached = unknown.filter((d) => !sink.reached.has(d.email.toLowerCase())).length;
    const duplicates = [...sink.letters.values()].filter((letters) => letters > 1).length;
    const lost = deliveries.filter(
      (d) => d.status !== 'unknown' && !sink.letters.has(d.email.toLowerCase()),
    ).length;
    return {
      n,
      service: service.label,
      round: options.round,
      dispatchers,
      kills: sendingAtKills.length,
      sendingAtKills,
      seconds,
      perSecond: n / seconds,
      ledger,
      unknown: unknown.length,
      unknownNeverReached,
      cutBeforeRecipient: sink.cutBeforeRecipient(),
      duplicates,
      lost,
      ended,
      exitedOnTheirOwn,
      correct: ended && duplicates === 0 && lost === 0 && deliveries.length === n,
    };
  } finally {
    await Promise.all(started.map((w) => w.stop()));
    await sink.close();
    await database.destroy();
  }
}
