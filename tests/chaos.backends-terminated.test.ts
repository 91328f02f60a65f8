import { describe, expect, it } from 'vitest';
import {
  alive,
  expectNone,
  ledgerOf,
  neitherSentNorUnknown,
  scaled,
  startSite,
  twiceMailed,
  unknownNeverHandedOver,
  useChaos,
} from './support/chaos.js';
import { testDbKind } from './support/db.js';
import { publishEssay, seedSubscribers, sleep, waitUntilDone } from './support/process.js';

const READERS = scaled(3000, 20_000);
const DOUBLE_CUTS = scaled(12, 28);
const DISPATCHERS = 2;
const SEND_CONCURRENCY = 5;

describe.skipIf(testDbKind !== 'postgres')(
  'backends terminated again and again under the dispatchers (issue 21)',
  { timeout: scaled(120_000, 600_000) },
  () => {
    const chaos = useChaos();

    it('keeps every process alive, and the send-out finishes by itself with one letter per reader', async () => {
      const { smtp, database, ledger } = chaos;
      await seedSubscribers(database, READERS);
      smtp.delayMs = 5;
      const site = await startSite(
        { ...database.env, SMTP_URL: smtp.url, SEND_CONCURRENCY: String(SEND_CONCURRENCY) },
        DISPATCHERS,
      );
      const processes = [site.web, ...site.workers];
      const slug = 'through-cut-connections';
      expect((await publishEssay(site.web, slug)).total).toBe(READERS);
      await smtp.waitFor(100, 30_000);

      // Double cuts: every backend of the database is terminated, then again 50 ms later (the reconnections),
      // every 300 ms, while the letters go out.
      const cuts: { ended: number; pending: number }[] = [];
      for (let i = 0; i < DOUBLE_CUTS; i++) {
        const { pending } = await ledger.counts();
        const ended = await ledger.terminateOthers();
        await sleep(50);
        cuts.push({ ended: ended + (await ledger.terminateOthers()), pending: pending ?? 0 });
        await sleep(300);
      }
      const exitedDuringCuts = processes.filter((p) => !alive(p));

      console.log(
        `[postgres] ${DOUBLE_CUTS} double cuts (${cuts.reduce((n, c) => n + c.ended, 0)} backends ended) under ` +
          `${DISPATCHERS} dispatchers and a web process: ${exitedDuringCuts.length} processes exited ` +
          `(${exitedDuringCuts.map((p) => `code ${p.child.exitCode}`).join(', ')}); ` +
          `ledger after the cuts ${JSON.stringify(await ledger.counts())}`,
      );
      // No process died of a cut connection.
      expectNone(
        exitedDuringCuts.map((p) => `${p.pid} exited ${p.child.exitCode}: ${p.output.stderr.slice(-300)}`),
        'processes ended by a cut connection',
      );

      const cutsEndedAt = Date.now();
      const sendout = await waitUntilDone(site.web, slug, scaled(60_000, 300_000));
      const restMs = Date.now() - cutsEndedAt;
      const rows = await ledgerOf(database, slug);
      const neverHandedOver = unknownNeverHandedOver(rows, smtp);
      console.log(
        `[postgres] the send-out was done ${restMs} ms after the last cut: sent ${sendout.sent}, ` +
          `unknown ${sendout.unknown}`,
      );

      // The send-out finished by itself: one letter per reader, nothing stuck, unknown only for letters the
      // SMTP server may have.
      expectNone(twiceMailed(smtp, slug), 'mailed twice');
      expect(sendout).toMatchObject({ status: 'done', total: READERS, pending: 0, failed: 0, skipped: 0 });
      expect(sendout.sent + sendout.unknown).toBe(READERS);
      expectNone(neitherSentNorUnknown(rows), 'deliveries left neither sent nor unknown');
      expectNone(neverHandedOver, 'unknown, yet never reached the SMTP server (no RCPT TO)');
      expect(sendout.unknown).toBeLessThanOrEqual(DISPATCHERS * SEND_CONCURRENCY);
      // Every process answers again once the database is back, and stops cleanly.
      await site.web.ready(10_000);
      for (const p of processes)
        expect(await p.stop('SIGTERM'), `${p.pid}`).toEqual({ code: 0, signal: null });

      // Not vacuous: the cuts ended the processes' connections mid send-out.
      for (const cut of cuts) expect(cut.pending, JSON.stringify(cuts)).toBeGreaterThan(0);
      expect(cuts.every((c) => c.ended > 0)).toBe(true);
    });
  },
);
