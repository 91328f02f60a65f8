import { describe, expect, it } from 'vitest';
import type { Site } from './support/chaos.js';
import {
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

const READERS = scaled(1500, 20_000);
const KILLS = scaled(6, 22);
const DISPATCHERS = 3;
const SEND_CONCURRENCY = 5;

describe.skipIf(testDbKind !== 'postgres')(
  'a SIGKILL storm on several dispatchers (issue 21)',
  { timeout: scaled(120_000, 600_000) },
  () => {
    const chaos = useChaos();

    it('sends one letter per reader, never more, and leaves unknown at most the letters in senders’ hands at each kill', async () => {
      const { smtp, database, ledger } = chaos;
      const addresses = await seedSubscribers(database, READERS);
      smtp.delayMs = 5;
      const site: Site = await startSite(
        {
          ...database.env,
          SMTP_URL: smtp.url,
          LEASE_SECONDS: '2',
          SEND_CONCURRENCY: String(SEND_CONCURRENCY),
        },
        DISPATCHERS,
      );
      const slug = 'under-a-kill-storm';
      expect((await publishEssay(site.web, slug)).total).toBe(READERS);
      await smtp.waitFor(Math.min(200, READERS / 10), 30_000);

      // Every 300–700 ms a random dispatcher is killed (-9) and a new one started in its place. The victim is
      // one whose dispatcher has started (a replacement is, once it says so).
      const kills: { pending: number; inFlight: number }[] = [];
      const replacements: Promise<void>[] = [];
      while (kills.length < KILLS) {
        await sleep(300 + Math.random() * 400);
        if (site.workers.length === 0) continue;
        const [victim] = site.workers.splice(Math.floor(Math.random() * site.workers.length), 1);
        if (!victim) continue;
        const counts = await ledger.counts();
        victim.child.kill('SIGKILL');
        expect((await victim.exited).signal).toBe('SIGKILL');
        kills.push({
          pending: counts.pending ?? 0,
          inFlight: (counts.claimed ?? 0) + (counts.sending ?? 0),
        });
        replacements.push(site.startWorker().then((worker) => void site.workers.push(worker)));
      }
      await Promise.all(replacements);

      const sendout = await waitUntilDone(site.web, slug, scaled(60_000, 300_000));
      const rows = await ledgerOf(database, slug);
      const unknown = rows.filter((d) => d.status === 'unknown');
      const neverHandedOver = unknownNeverHandedOver(rows, smtp);
      const delivered = new Set(smtp.received.map((m) => m.to));
      console.log(
        `[postgres] ${KILLS} kills (-9) of ${DISPATCHERS} dispatchers, ${READERS} readers: ` +
          `sent ${sendout.sent}, unknown ${sendout.unknown} (${(sendout.unknown / KILLS).toFixed(1)} per kill), ` +
          `${neverHandedOver.length} of them never reached the SMTP server (no RCPT TO); ` +
          `in flight at each kill: ${kills.map((k) => k.inFlight).join(' ')}`,
      );

      // Not vacuous: the kills happened mid send-out, with deliveries in hand.
      for (const kill of kills) expect(kill.pending, JSON.stringify(kills)).toBeGreaterThan(0);
      expect(kills.reduce((n, k) => n + k.inFlight, 0)).toBeGreaterThan(0);

      // One letter, never more.
      expectNone(twiceMailed(smtp, slug), 'mailed twice');
      // Nothing is left behind: every delivery ended sent or unknown, none pending, claimed or sending.
      expect(sendout).toMatchObject({ status: 'done', total: READERS, pending: 0, failed: 0, skipped: 0 });
      expectNone(neitherSentNorUnknown(rows), 'deliveries left neither sent nor unknown');
      expect(sendout.sent + sendout.unknown).toBe(READERS);
      // Everyone recorded sent got the letter; whoever got none is among the unknown.
      const sentWithoutLetter = rows.filter((d) => d.status === 'sent' && !delivered.has(d.email));
      expectNone(
        sentWithoutLetter.map((d) => d.email),
        'recorded sent, no letter at the sink',
      );
      const unknownSet = new Set(unknown.map((d) => d.email));
      expectNone(
        addresses.filter((a) => !delivered.has(a) && !unknownSet.has(a)),
        'no letter and not unknown',
      );
      // At most the letters in the killed process's senders' hands: SEND_CONCURRENCY. A letter is handed to a
      // sender only when it can start its SMTP transaction at once, so nearly all of those reached the server;
      // those that did not were handed over in the instant before the kill (the claim committed, the sender
      // not yet writing). Claimed ahead (the code before issue 21), a kill left 13–17 unknown, most of them
      // never offered to the server.
      // Each sender holds one letter, or one result not yet recorded (it goes with the next hand-over).
      expect(sendout.unknown).toBeLessThanOrEqual(KILLS * SEND_CONCURRENCY);
    });
  },
);
