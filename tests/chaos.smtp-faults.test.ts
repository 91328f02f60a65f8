import { describe, expect, it } from 'vitest';
import { expectNone, ledgerOf, scaled, startSite, twiceMailed, useChaos } from './support/chaos.js';
import { testDbKind } from './support/db.js';
import { publishEssay, seedSubscribers, waitUntilDone } from './support/process.js';
import { lettersPerAddress } from './support/sendout.js';
import type { SmtpReply } from './support/smtp.js';

const READERS = scaled(800, 10_000);

/**
 * What the SMTP server does to an address's first attempt. tests/sendout.smtp-errors.test.ts checks each
 * one alone with one dispatcher; here they come mixed, at random, to several dispatcher processes at once.
 */
const FAULTS = {
  /** 421 to RCPT TO (the server hangs up): retried, then sent. */
  'rcpt-421': { weight: 4, reply: { code: 421, message: 'Closing' }, at: 'rcpt', ends: 'sent' },
  /** 451 to RCPT TO (greylisting): retried, then sent. */
  'rcpt-451': { weight: 4, reply: { code: 451, message: 'Greylisted' }, at: 'rcpt', ends: 'sent' },
  /** 451 after the message data: retried, then sent. */
  'data-451': { weight: 4, reply: { code: 451, message: 'Try later' }, at: 'data', ends: 'sent' },
  /** The connection breaks at RCPT TO, before the message: retried, then sent. */
  'rcpt-drop': { weight: 3, reply: 'drop', at: 'rcpt', ends: 'sent' },
  /** 550 to RCPT TO, for good: failed, never retried. */
  'rcpt-550': { weight: 3, reply: { code: 550, message: 'No such user' }, at: 'rcpt', ends: 'failed' },
  /** The whole message arrived, then the connection broke before the answer: unknown, never resent. */
  'data-drop': { weight: 3, reply: 'drop', at: 'data', ends: 'unknown' },
} as const satisfies Record<
  string,
  { weight: number; reply: SmtpReply; at: 'rcpt' | 'data'; ends: 'sent' | 'failed' | 'unknown' }
>;
type Fault = keyof typeof FAULTS;
/** Out of this many, the rest of the weight is readers the server takes at once. */
const WEIGHTS = 100;

/** A small seeded generator (mulberry32): a failing mix can be run again with CHAOS_SEED. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function pickFault(next: () => number): Fault | undefined {
  let roll = next() * WEIGHTS;
  for (const [fault, { weight }] of Object.entries(FAULTS)) {
    roll -= weight;
    if (roll < 0) return fault as Fault;
  }
  return undefined;
}

describe.skipIf(testDbKind !== 'postgres')(
  'SMTP faults at random under several dispatchers (issue 21)',
  { timeout: scaled(120_000, 600_000) },
  () => {
    const chaos = useChaos();

    it('ends each delivery as the server answered it, one letter at most, never resending an unknown one', async () => {
      const { smtp, database } = chaos;
      const seed = Number(process.env.CHAOS_SEED ?? Date.now() % 2 ** 31);
      const next = random(seed);
      const addresses = await seedSubscribers(database, READERS);
      const faultOf = new Map(addresses.map((a) => [a, pickFault(next)]));
      /** Each address's attempts as the server saw them: RCPT TO, and message data. */
      const rcpts = new Map<string, number>();
      const datas = new Map<string, number>();
      const firstAttempt = (seen: Map<string, number>, address: string, at: 'rcpt' | 'data') => {
        const n = (seen.get(address) ?? 0) + 1;
        seen.set(address, n);
        const fault = faultOf.get(address);
        if (!fault || FAULTS[fault].at !== at) return undefined;
        // A refusal for good stays one; everything else happens to the first attempt only.
        return n === 1 || fault === 'rcpt-550' ? FAULTS[fault].reply : undefined;
      };
      smtp.onRecipient = (address) => firstAttempt(rcpts, address, 'rcpt');
      smtp.onMessage = (address) => firstAttempt(datas, address, 'data');
      smtp.delayMs = 2;
      const site = await startSite({ ...database.env, SMTP_URL: smtp.url, SEND_CONCURRENCY: '5' }, 2);

      const slug = 'through-smtp-faults';
      expect((await publishEssay(site.web, slug)).total).toBe(READERS);
      const sendout = await waitUntilDone(site.web, slug, scaled(60_000, 300_000));
      const rows = await ledgerOf(database, slug);
      const letters = lettersPerAddress(smtp.received, `Essay ${slug}`);
      const faulted = [...faultOf].filter(([, f]) => f);
      console.log(
        `[postgres] seed ${seed}: ${faulted.length} of ${READERS} readers met a fault ` +
          `(${Object.keys(FAULTS)
            .map((f) => `${f} ${faulted.filter(([, g]) => g === f).length}`)
            .join(', ')}): ${JSON.stringify(sendout)}`,
      );

      expectNone(twiceMailed(smtp, slug), 'mailed twice');
      const wrong = rows
        .map((d) => ({ ...d, fault: faultOf.get(d.email) }))
        .filter((d) => d.status !== (d.fault ? FAULTS[d.fault].ends : 'sent'))
        .map((d) => `${d.email} (${d.fault ?? 'no fault'}) ended ${d.status} after ${d.attempts} attempts`);
      expectNone(wrong, 'deliveries whose end is not what the server answered');
      for (const [address, fault] of faultOf) {
        const ends = fault ? FAULTS[fault].ends : 'sent';
        // Sent or unknown: the server kept the message, once. Failed: it never took it.
        expect(letters.get(address) ?? 0, `${address} (${fault})`).toBe(ends === 'failed' ? 0 : 1);
        // An unknown letter is never offered again; an address refused for good is asked once.
        if (fault === 'data-drop' || fault === 'rcpt-550') expect(rcpts.get(address), address).toBe(1);
      }
      expect(sendout).toMatchObject({ status: 'done', total: READERS, pending: 0, skipped: 0 });

      // Not vacuous: every kind of fault happened, to both dispatchers' letters.
      for (const fault of Object.keys(FAULTS))
        expect(
          faulted.some(([, f]) => f === fault),
          fault,
        ).toBe(true);
      const senders = new Set(rows.map((d) => d.claimedBy).filter(Boolean));
      expect(senders.size).toBe(2);
    });
  },
);
