import { describe, expect, it } from 'vitest';
import type { Reader } from './support/chaos.js';
import { expectNone, ledgerOf, scaled, startSite, twiceMailed, useChaos } from './support/chaos.js';
import { testDbKind } from './support/db.js';
import type { ServiceProcess } from './support/process.js';
import { publishEssay, seedSubscribers, waitUntilDone } from './support/process.js';

const READERS = scaled(3000, 20_000);
/** Every STRIDE-th reader's RCPT TO at the sink sets off unsubscribes of the readers just after them. */
const STRIDE = scaled(100, 250);
/** How far ahead of the send point each unsubscribe aims; those at ERASED_AT are publisher erasures. */
const AHEAD = [2, 4, 7, 11, 16, 22, 30, 40, 55, 75];
const ERASED_AT = new Set([11, 40]);

/**
 * Whether the reader at this place in the send-out sets unsubscribes off at its RCPT TO. The last stretch
 * sets none off, so that every answer comes while letters still go out.
 */
function isTrigger(at: number): boolean {
  return at % STRIDE === STRIDE / 2 && at + STRIDE < READERS;
}

interface Unsubscribe {
  reader: Reader;
  kind: 'one-click' | 'erasure';
  firedAt: number;
  /** Date.now() when the answer arrived, in this process: the clock the sink's times are on too. */
  answeredAt?: number;
  status?: number;
}

/** A one-click POST (RFC 8058), or the publisher's erasure: either way, the reader's answer is final. */
async function unsubscribe(web: ServiceProcess, target: Unsubscribe): Promise<void> {
  const res =
    target.kind === 'erasure'
      ? await web.request(`/api/subscribers/${encodeURIComponent(target.reader.email)}`, { method: 'DELETE' })
      : await web.request(`/unsubscribe/${target.reader.unsubscribeToken}`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: 'List-Unsubscribe=One-Click',
        });
  target.answeredAt = Date.now();
  target.status = res.status;
  await res.arrayBuffer();
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

describe.skipIf(testDbKind !== 'postgres')(
  'readers unsubscribing during a send-out, timed at the send point (issue 21)',
  { timeout: scaled(120_000, 600_000) },
  () => {
    const chaos = useChaos();

    it('starts no letter for an address once its unsubscribe or erasure has been answered', async () => {
      const { smtp, database, ledger } = chaos;
      await seedSubscribers(database, READERS);
      const readers = await ledger.readers();
      const position = new Map(readers.map((r, i) => [r.email, i]));
      smtp.delayMs = 20;
      const site = await startSite({ ...database.env, SMTP_URL: smtp.url, SEND_CONCURRENCY: '10' }, 2);

      // A send-out goes in subscriber id order: at the RCPT TO of a trigger, the readers a few places after
      // it are about to be sent. They unsubscribe (or are erased) right then.
      const targets: Unsubscribe[] = [];
      const answers: Promise<void>[] = [];
      const fired = new Set<number>();
      smtp.onRecipient = (address) => {
        const at = position.get(address);
        if (at === undefined || !isTrigger(at) || fired.has(at)) return undefined;
        fired.add(at);
        for (const ahead of AHEAD) {
          const reader = readers[at + ahead];
          if (!reader) continue;
          const target: Unsubscribe = {
            reader,
            kind: ERASED_AT.has(ahead) ? 'erasure' : 'one-click',
            firedAt: Date.now(),
          };
          targets.push(target);
          answers.push(unsubscribe(site.web, target));
        }
        return undefined;
      };

      const slug = 'unsubscribed-on-the-way';
      const publishedAt = Date.now();
      expect((await publishEssay(site.web, slug)).total).toBe(READERS);
      const sendout = await waitUntilDone(site.web, slug, scaled(60_000, 300_000));
      const sendoutMs = Date.now() - publishedAt;
      await Promise.all(answers);

      const startedFor = new Map<string, number[]>();
      for (const transaction of smtp.transactions) {
        for (const { address } of transaction.recipients)
          startedFor.set(address, [...(startedFor.get(address) ?? []), transaction.startedAt]);
      }
      const late = targets.flatMap((t) =>
        (startedFor.get(t.reader.email) ?? [])
          .filter((startedAt) => startedAt > (t.answeredAt as number))
          .map((startedAt) => ({ ...t, lateMs: startedAt - (t.answeredAt as number) })),
      );
      const notMailed = targets.filter((t) => !startedFor.has(t.reader.email));
      const rows = new Map((await ledgerOf(database, slug)).map((d) => [d.email, d]));
      const lastStart = Math.max(...smtp.transactions.map((t) => t.startedAt));
      console.log(
        `[postgres] ${targets.length} readers left during a send-out to ${READERS} ` +
          `(${targets.filter((t) => t.kind === 'erasure').length} erased): ` +
          `${late.length} letters began after the answer (up to ${Math.max(0, ...late.map((l) => l.lateMs))} ms ` +
          `later; ${late.filter((l) => l.kind === 'erasure').length} to erased addresses), ` +
          `${notMailed.length} never mailed; answers took ${median(targets.map((t) => (t.answeredAt ?? 0) - t.firedAt))} ms ` +
          `(median), the send-out ${sendoutMs} ms`,
      );

      // Every unsubscribe and erasure was answered as such.
      for (const target of targets) expect(target.status, target.reader.email).toBe(200);
      // No letter's SMTP transaction began after the answer: not by one-click, not after an erasure.
      expectNone(
        late.map((l) => `${l.reader.email} (${l.kind}) +${l.lateMs} ms`),
        'letters begun after the answer',
      );
      // The ledger says skipped for each one-click reader not mailed; erased readers leave no row.
      for (const target of notMailed) {
        const expected = target.kind === 'erasure' ? undefined : 'skipped';
        expect(rows.get(target.reader.email)?.status, target.reader.email).toBe(expected);
      }
      expectNone(twiceMailed(smtp, slug), 'mailed twice');
      expect(sendout).toMatchObject({ status: 'done', pending: 0 });

      // Not vacuous: every trigger fired, the answers came while letters were still going out, and a good
      // share of them landed ahead of the send point (those readers were never mailed).
      expect(fired.size).toBe(readers.filter((_, at) => isTrigger(at)).length);
      for (const target of targets) expect(target.answeredAt).toBeLessThan(lastStart);
      expect(notMailed.length).toBeGreaterThanOrEqual(targets.length / 3);
    });
  },
);
