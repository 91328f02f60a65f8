import { createServer } from 'node:net';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createDispatcher } from '../src/dispatch/dispatcher.js';
import { silentLogger } from '../src/log.js';
import { createRenderer } from '../src/mail/render.js';
import { createSmtpMailer } from '../src/mail/smtp.js';
import { loadTemplates } from '../src/mail/templates-fs.js';
import type { SeededSubscriber } from './support/sendout.js';
import {
  addresses,
  answer,
  deliveriesOf,
  lettersPerAddress,
  progress,
  seedSubscribers,
  subscriberStatus,
} from './support/sendout.js';
import type { TestService } from './support/service.js';
import { createTestService } from './support/service.js';
import type { SmtpReply } from './support/smtp.js';

const MAX_ATTEMPTS = 4;

describe('a send-out through an SMTP server that refuses, defers or hangs up', () => {
  let s: TestService;
  let readers: SeededSubscriber[];
  let round = 0;

  beforeAll(async () => {
    // Retries are due at once (RETRY_BASE_SECONDS=0): the tests drive time, not the clock.
    s = await createTestService({ RETRY_BASE_SECONDS: '0', MAX_ATTEMPTS: String(MAX_ATTEMPTS) });
  });
  afterAll(() => s?.close());

  // Each test gets its own readers: the ones of earlier tests leave, so counts stay per test.
  beforeEach(async () => {
    s.smtp.onRecipient = undefined;
    s.smtp.onMessage = undefined;
    round++;
    await s.database.db.execute(
      sql`update subscribers set status = 'unsubscribed', unsubscribed_at = now() where status = 'confirmed'`,
    );
    readers = await seedSubscribers(s.database.db, 'confirmed', addresses(`r${round}`, 6));
  });

  const essay = (slug: string) => ({ slug, title: `Essay ${slug}`, url: `https://example.org/${slug}` });

  async function publishAndDrain(slug: string) {
    const published = essay(slug);
    const res = await s.publish(published);
    expect(res.status).toBe(202);
    await s.drain();
    return {
      letters: lettersPerAddress(s.smtp.received, published.title),
      ledger: await deliveriesOf(s.database.db, slug),
      sendout: (await answer(await progress(s, slug))).sendout,
    };
  }

  /** Answers `reply` to the first `times` attempts for each address (all of them, or only `only`). */
  function refuseAtFirst(times: number, reply: SmtpReply, only?: string) {
    const seen = new Map<string, number>();
    return (recipient: string) => {
      if (only && recipient !== only) return undefined;
      const n = (seen.get(recipient) ?? 0) + 1;
      seen.set(recipient, n);
      return n <= times ? reply : undefined;
    };
  }

  it.each([
    { hook: 'onRecipient', code: 421 },
    { hook: 'onRecipient', code: 451 },
    { hook: 'onMessage', code: 421 },
    { hook: 'onMessage', code: 451 },
  ] as const)(
    'retries a $code answer ($hook) and then sends each letter exactly once',
    async ({ hook, code }) => {
      s.smtp[hook] = refuseAtFirst(2, { code, message: `${code} 4.3.0 Try again later` });
      const { letters, ledger, sendout } = await publishAndDrain(`deferred-${hook}-${code}`);

      for (const reader of readers) expect(letters.get(reader.email), reader.email).toBe(1);
      expect(letters.size).toBe(readers.length);
      expect(ledger.map((d) => [d.status, d.attempts])).toEqual(readers.map(() => ['sent', 3]));
      expect(sendout).toEqual({
        status: 'done',
        total: 6,
        pending: 0,
        sent: 6,
        failed: 0,
        skipped: 0,
        unknown: 0,
      });
    },
  );

  it('fails a delivery at once when the server refuses the address (550), and marks it bounced', async () => {
    const refused = readers[2] as SeededSubscriber;
    let asked = 0;
    s.smtp.onRecipient = (recipient) => {
      if (recipient !== refused.email) return undefined;
      asked++;
      return { code: 550, message: '550 5.1.1 No such user here' };
    };
    const { letters, ledger, sendout } = await publishAndDrain('refused-address');

    expect(letters.get(refused.email)).toBeUndefined();
    for (const reader of readers) {
      if (reader !== refused) expect(letters.get(reader.email), reader.email).toBe(1);
    }
    expect(asked).toBe(1);
    const row = ledger.find((d) => d.email === refused.email);
    expect(row).toMatchObject({ status: 'failed', attempts: 1 });
    expect(row?.lastError).toContain('550');
    expect(sendout).toMatchObject({ status: 'done', total: 6, sent: 5, failed: 1, pending: 0 });
    expect(await subscriberStatus(s.database.db, refused.email)).toBe('bounced');
    expect(await subscriberStatus(s.database.db, (readers[3] as SeededSubscriber).email)).toBe('confirmed');

    // The next essay leaves the bounced address out altogether.
    const next = await publishAndDrain('after-bounce');
    expect(next.sendout).toMatchObject({ status: 'done', total: 5, sent: 5 });
    expect(next.letters.get(refused.email)).toBeUndefined();
    expect(next.ledger.some((d) => d.email === refused.email)).toBe(false);
    expect(asked).toBe(1);
  });

  it('fails a delivery whose message is refused for good (554 after DATA), without blaming the address', async () => {
    const refused = readers[1] as SeededSubscriber;
    s.smtp.onMessage = (recipient) =>
      recipient === refused.email ? { code: 554, message: '554 5.7.1 Message rejected' } : undefined;
    const { letters, ledger, sendout } = await publishAndDrain('refused-message');

    expect(letters.get(refused.email)).toBeUndefined();
    expect(letters.size).toBe(5);
    expect(ledger.find((d) => d.email === refused.email)).toMatchObject({ status: 'failed', attempts: 1 });
    expect(sendout).toMatchObject({ status: 'done', sent: 5, failed: 1 });
    expect(await subscriberStatus(s.database.db, refused.email)).toBe('confirmed');
  });

  it('gives up after MAX_ATTEMPTS when the server defers an address forever', async () => {
    const deferred = readers[4] as SeededSubscriber;
    let asked = 0;
    s.smtp.onRecipient = (recipient) => {
      if (recipient !== deferred.email) return undefined;
      asked++;
      return { code: 451, message: '451 4.7.1 Greylisted, try again' };
    };
    const { letters, ledger, sendout } = await publishAndDrain('deferred-forever');

    expect(asked).toBe(MAX_ATTEMPTS);
    expect(letters.get(deferred.email)).toBeUndefined();
    expect(letters.size).toBe(5);
    const row = ledger.find((d) => d.email === deferred.email);
    expect(row).toMatchObject({ status: 'failed', attempts: MAX_ATTEMPTS });
    expect(row?.lastError).toContain(`after ${MAX_ATTEMPTS} attempts`);
    expect(sendout).toMatchObject({ status: 'done', sent: 5, failed: 1, pending: 0 });
    // A mailbox that is only slow is not a bounce.
    expect(await subscriberStatus(s.database.db, deferred.email)).toBe('confirmed');

    await s.drain();
    expect(asked).toBe(MAX_ATTEMPTS);
  });

  it('counts a letter as unknown, and never resends it, when the connection drops after the whole message', async () => {
    const dropped = readers[3] as SeededSubscriber;
    let asked = 0;
    s.smtp.onMessage = (recipient) => {
      if (recipient !== dropped.email) return undefined;
      asked++;
      return 'drop';
    };
    const { letters, ledger, sendout } = await publishAndDrain('dropped');

    // The server kept the message before hanging up: the reader has it, once.
    expect(letters.get(dropped.email)).toBe(1);
    for (const reader of readers) expect(letters.get(reader.email), reader.email).toBe(1);
    expect(asked).toBe(1);
    expect(ledger.find((d) => d.email === dropped.email)).toMatchObject({ status: 'unknown', attempts: 1 });
    expect(sendout).toEqual({
      status: 'done',
      total: 6,
      pending: 0,
      sent: 5,
      failed: 0,
      skipped: 0,
      unknown: 1,
    });

    await s.drain();
    expect(asked).toBe(1);
    expect(lettersPerAddress(s.smtp.received, essay('dropped').title).get(dropped.email)).toBe(1);
    // Not a bounce: the next essay goes to them as to everyone.
    s.smtp.onMessage = undefined;
    const next = await publishAndDrain('after-drop');
    expect(next.letters.get(dropped.email)).toBe(1);
  });

  it('retries, and sends once, when the connection drops before the message was handed over', async () => {
    const dropped = readers[0] as SeededSubscriber;
    s.smtp.onRecipient = refuseAtFirst(1, 'drop', dropped.email);
    const { letters, ledger, sendout } = await publishAndDrain('dropped-early');

    for (const reader of readers) expect(letters.get(reader.email), reader.email).toBe(1);
    const row = ledger.find((d) => d.email === dropped.email);
    expect(row?.status).toBe('sent');
    // On a reused pooled connection nodemailer itself sends an untouched message again over a new one
    // (attempt 1); on a fresh connection the dispatcher retries it (attempt 2). Either way, one letter.
    expect([1, 2]).toContain(row?.attempts);
    expect(sendout).toMatchObject({ status: 'done', sent: 6, unknown: 0 });
  });

  it('takes no letter while the SMTP server cannot be reached, and sends each once when it can', async () => {
    const closedPort = await freePort();
    const unreachable = createSmtpMailer({ url: `smtp://127.0.0.1:${closedPort}`, connections: 2 });
    const waiting = createDispatcher({
      db: s.database.db,
      mailer: unreachable,
      renderer: createRenderer(loadTemplates()),
      config: s.config,
      log: silentLogger,
    });
    const published = essay('unreachable');
    expect((await s.publish(published)).status).toBe(202);
    try {
      // The round fails (the dispatcher logs it once and tries again later) and hands no letter over: a
      // letter is handed over only to a sender with a connection open, so none burns an attempt meanwhile.
      await expect(waiting.runOnce()).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      await waiting.stop();
      await unreachable.close();
    }
    const untouched = await deliveriesOf(s.database.db, published.slug);
    expect(untouched.map((d) => [d.status, d.attempts])).toEqual(readers.map(() => ['pending', 0]));
    expect((await answer(await progress(s, published.slug))).sendout).toMatchObject({
      status: 'sending',
      pending: 6,
      sent: 0,
      failed: 0,
    });

    await s.drain();
    const letters = lettersPerAddress(s.smtp.received, published.title);
    for (const reader of readers) expect(letters.get(reader.email), reader.email).toBe(1);
    const ledger = await deliveriesOf(s.database.db, published.slug);
    expect(ledger.map((d) => [d.status, d.attempts])).toEqual(readers.map(() => ['sent', 1]));
    expect((await answer(await progress(s, published.slug))).sendout).toMatchObject({
      status: 'done',
      sent: 6,
    });
  });
});

/** A port nothing listens on: taken from the system, then let go. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (!address || typeof address === 'string') throw new Error('no port');
  return address.port;
}
