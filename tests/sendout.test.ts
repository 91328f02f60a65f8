import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
import type { Dispatcher } from '../src/dispatch/dispatcher.js';
import { createDispatcher } from '../src/dispatch/dispatcher.js';
import { silentLogger } from '../src/log.js';
import type { Mailer } from '../src/mail/mailer.js';
import { essayEmail, essayMessageKey } from '../src/mail/messages.js';
import { createRenderer } from '../src/mail/render.js';
import { createSmtpMailer } from '../src/mail/smtp.js';
import { loadTemplates } from '../src/mail/templates-fs.js';
import type { ErrorAnswer, SeededSubscriber } from './support/sendout.js';
import {
  addresses,
  answer,
  deliveriesOf,
  drainWith,
  headerOf,
  lettersPerAddress,
  progress,
  seedSubscribers,
} from './support/sendout.js';
import type { TestService } from './support/service.js';
import { createTestService, PUBLIC_URL, unsubscribeTokenIn } from './support/service.js';

const essay = (slug: string, title = `Title of ${slug}`) => ({
  slug,
  title,
  url: `https://example.org/essays/${slug}`,
  summary: `What ${slug} is about.`,
});

/** A second dispatcher over the same database, with its own mailer, as another process would have. */
function secondDispatcher(s: TestService, mailer: Mailer): Dispatcher {
  return createDispatcher({
    db: s.database.db,
    mailer,
    renderer: createRenderer(loadTemplates()),
    config: s.config,
    log: silentLogger,
  });
}

describe('publishing an essay sends one letter to each confirmed subscriber, never more', () => {
  let s: TestService;
  let confirmed: SeededSubscriber[];
  let others: SeededSubscriber[];
  const first = essay('on-walking', 'On Walking');

  beforeAll(async () => {
    s = await createTestService();
    const db = s.database.db;
    confirmed = await seedSubscribers(db, 'confirmed', addresses('reader', 50));
    others = [
      ...(await seedSubscribers(db, 'pending', addresses('pending', 5))),
      ...(await seedSubscribers(db, 'unsubscribed', addresses('gone', 5))),
      ...(await seedSubscribers(db, 'bounced', addresses('bounced', 5))),
    ];
  });
  afterAll(() => s?.close());

  it('answers 202 with the send-out, then mails each confirmed subscriber exactly once', async () => {
    const res = await s.publish(first);
    expect(res.status).toBe(202);
    const body = await answer(res);
    expect(body.essay).toMatchObject({ slug: first.slug, title: first.title, url: first.url });
    expect(body.essay.summary).toBe(first.summary);
    expect(body.essay).not.toHaveProperty('id');
    expect(body.sendout).toEqual({
      status: 'sending',
      total: 50,
      pending: 50,
      sent: 0,
      failed: 0,
      skipped: 0,
      unknown: 0,
    });

    await s.drain();
    const letters = lettersPerAddress(s.smtp.received, first.title);
    for (const subscriber of confirmed) expect(letters.get(subscriber.email), subscriber.email).toBe(1);
    for (const subscriber of others) expect(letters.get(subscriber.email), subscriber.email).toBeUndefined();
    expect(letters.size).toBe(50);

    const ledger = await deliveriesOf(s.database.db, first.slug);
    expect(ledger).toHaveLength(50);
    expect(ledger.every((d) => d.status === 'sent' && d.attempts === 1)).toBe(true);

    const after = await progress(s, first.slug);
    expect(after.status).toBe(200);
    const state = await answer(after);
    expect(state.essay.slug).toBe(first.slug);
    expect(state.sendout).toEqual({
      status: 'done',
      total: 50,
      pending: 0,
      sent: 50,
      failed: 0,
      skipped: 0,
      unknown: 0,
    });
  });

  it('answers the same slug again with 200 and the same send-out, and sends not one more letter', async () => {
    const before = s.smtp.received.length;
    const state = await answer(await progress(s, first.slug));

    const again = await s.publish(first);
    expect(again.status).toBe(200);
    expect(await answer(again)).toEqual(state);

    // Even with another title: the slug names the essay, the first publish wins.
    const changed = await s.publish({ ...first, title: 'On Walking, revised' });
    expect(changed.status).toBe(200);
    expect((await answer(changed)).essay.title).toBe(first.title);

    await s.drain();
    expect(s.smtp.received.length).toBe(before);
    expect(await deliveriesOf(s.database.db, first.slug)).toHaveLength(50);
  });

  it('takes the slug without regard to case, so a tool that changes its case sends nothing more', async () => {
    const before = s.smtp.received.length;
    const upper = await s.publish({ ...first, slug: first.slug.toUpperCase(), summary: null });
    expect(upper.status).toBe(200);
    expect((await answer(upper)).essay.slug).toBe(first.slug);
    expect((await progress(s, first.slug.toUpperCase())).status).toBe(200);
    await s.drain();
    expect(s.smtp.received.length).toBe(before);
  });

  it('puts the title, summary, essay link and unsubscribe link in both parts of the letter', async () => {
    const reader = confirmed[7] as SeededSubscriber;
    const [mail] = s.smtp.to(reader.email);
    const unsubscribeUrl = `${PUBLIC_URL}/unsubscribe/${reader.unsubscribeToken}`;
    for (const part of [mail?.parsed.text, mail?.parsed.html || undefined]) {
      expect(part).toBeDefined();
      expect(part).toContain(first.title);
      expect(part).toContain(first.summary);
      expect(part).toContain(first.url);
      expect(part).toContain(unsubscribeUrl);
    }
    expect(mail?.parsed.subject).toBe(first.title);
    // No one else's token: each letter leads to its own subscriber's unsubscribe link.
    expect(unsubscribeTokenIn(mail?.raw)).toBe(reader.unsubscribeToken);
  });

  it('carries one-click unsubscribe headers, a List-Id, the sender, and a Message-ID of essay and subscriber', async () => {
    const messageIds = new Set<string>();
    for (const reader of confirmed) {
      const [mail] = s.smtp.to(reader.email);
      const raw = mail?.raw ?? '';
      expect(headerOf(raw, 'List-Unsubscribe')).toBe(
        `<${PUBLIC_URL}/unsubscribe/${reader.unsubscribeToken}>`,
      );
      expect(headerOf(raw, 'List-Unsubscribe-Post')).toBe('List-Unsubscribe=One-Click');
      expect(headerOf(raw, 'List-Id')).toBe('Test Essays <newsletter.example.test>');
      expect(mail?.parsed.from?.value).toEqual([{ name: 'Essays', address: 'essays@example.test' }]);
      expect(mail?.parsed.to && !Array.isArray(mail.parsed.to) && mail.parsed.to.value[0]?.address).toBe(
        reader.email,
      );
      // Stable: the same essay to the same subscriber is the same message, whoever sends it and when.
      const messageId = mail?.parsed.messageId;
      expect(messageId).toBe(`<${essayMessageKey(first.slug, reader.id)}@example.test>`);
      messageIds.add(messageId as string);
    }
    expect(messageIds.size).toBe(confirmed.length);
  });

  it('keeps the List-Id readable whatever the site is called', async () => {
    const config = { ...s.config, siteName: 'Ann\'s "Quoted" Essays: café =?utf-8?' };
    const to = { id: 0, email: 'list-id@example.org', name: null, unsubscribeToken: 'x'.repeat(43) };
    const letter = await essayEmail(config, createRenderer(loadTemplates()), { id: 1, ...first }, to);
    expect(await s.mailer.send(letter)).toEqual({ status: 'sent' });
    // A quote or `=?` in the phrase would turn the whole header into one RFC 2047 encoded-word.
    const [mail] = s.smtp.to(to.email);
    expect(headerOf(mail?.raw ?? '', 'List-Id')).toMatch(
      /^Ann's Quoted Essays [\w -]*<newsletter\.example\.test>$/,
    );
  });

  it('escapes the essay in the HTML part and keeps it as written in the text part', async () => {
    const risky = essay('risky', 'Tom & Jerry <b>bold</b>');
    expect((await s.publish(risky)).status).toBe(202);
    await s.drain();
    const [mail] = s.smtp
      .to((confirmed[0] as SeededSubscriber).email)
      .filter((m) => m.parsed.subject === risky.title);
    expect(mail?.parsed.text).toContain(risky.title);
    expect(mail?.parsed.html).toContain('Tom &amp; Jerry &lt;b&gt;bold&lt;/b&gt;');
    expect(mail?.parsed.html).not.toContain('<b>bold</b>');
  });

  it('does not send an essay to someone who confirmed after it was published, but sends them the next', async () => {
    const late = 'late-reader@example.org';
    const res = await s.subscribeJson(late);
    expect(res.status).toBe(202);
    await s.drain();
    // The confirmation email is there; the address confirms only after the essay is published.
    expect(s.smtp.to(late)).toHaveLength(1);

    const before = essay('before-late');
    expect((await s.publish(before)).status).toBe(202);
    const confirmLink = /\/confirm\/([A-Za-z0-9_-]{43})/.exec(s.smtp.to(late)[0]?.parsed.text ?? '')?.[1];
    expect((await s.app.request(`/confirm/${confirmLink}`, { method: 'POST' })).status).toBe(200);
    await s.drain();
    expect(lettersPerAddress(s.smtp.received, before.title).get(late)).toBeUndefined();
    expect(lettersPerAddress(s.smtp.received, before.title).size).toBe(50);

    const next = essay('after-late');
    expect((await answer(await s.publish(next))).sendout.total).toBe(51);
    await s.drain();
    expect(lettersPerAddress(s.smtp.received, next.title).get(late)).toBe(1);
  });

  it('unsubscribes at once with the one-click POST to the List-Unsubscribe address of a letter', async () => {
    const reader = confirmed[11] as SeededSubscriber;
    const [mail] = s.smtp.to(reader.email);
    const target = new URL(/^<(.+)>$/.exec(headerOf(mail?.raw ?? '', 'List-Unsubscribe') ?? '')?.[1] ?? '');
    expect(target.origin).toBe(PUBLIC_URL);

    // What a mail client sends (RFC 8058): a 2xx answer, never a redirect.
    const res = await s.app.request(target.pathname, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    expect(res.status).toBe(200);

    const next = essay('after-one-click');
    expect((await answer(await s.publish(next))).sendout.total).toBe(50);
    await s.drain();
    expect(lettersPerAddress(s.smtp.received, next.title).get(reader.email)).toBeUndefined();
    expect(lettersPerAddress(s.smtp.received, next.title).size).toBe(50);
  });

  it('answers 404 for a slug it does not know', async () => {
    const res = await progress(s, 'never-published');
    expect(res.status).toBe(404);
    expect(((await res.json()) as ErrorAnswer).error.code).toBe('not_found');
  });
});

describe('two publishes of one slug at the same moment', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService();
    await seedSubscribers(s.database.db, 'confirmed', addresses('twin', 40));
  });
  afterAll(() => s?.close());

  it('make one essay, one delivery per subscriber and one letter each', async () => {
    const racing = essay('at-once', 'At Once');
    const answers = await Promise.all([
      s.publish(racing),
      s.publish({ ...racing, title: 'At Once (second publisher)' }),
    ] as const);
    expect(answers.map((r) => r.status).sort()).toEqual([200, 202]);
    const [a, b] = await Promise.all([answer(answers[0]), answer(answers[1])]);
    expect(a.essay).toEqual(b.essay);
    expect(a.sendout.total).toBe(40);
    expect(b.sendout.total).toBe(40);

    const [essays] = await rows<{ n: number }>(
      s.database.db,
      sql`select count(*)::int as n from essays where slug = ${racing.slug}`,
    );
    expect(Number(essays?.n)).toBe(1);
    expect(await deliveriesOf(s.database.db, racing.slug)).toHaveLength(40);

    await s.drain();
    const letters = lettersPerAddress(s.smtp.received, a.essay.title);
    expect(letters.size).toBe(40);
    expect([...letters.values()].every((n) => n === 1)).toBe(true);
    expect(s.smtp.received).toHaveLength(40);
  });
});

describe('two dispatchers draining one send-out at once', () => {
  let s: TestService;
  let other: Mailer;
  beforeAll(async () => {
    s = await createTestService({ DISPATCH_BATCH_SIZE: '40', SEND_CONCURRENCY: '4' });
    other = createSmtpMailer({ url: s.smtp.url, connections: 4 });
  });
  afterAll(async () => {
    await other?.close();
    await s?.close();
  });

  it('mail every address exactly once', async () => {
    const emails = addresses('crowd', 1000);
    await seedSubscribers(s.database.db, 'confirmed', emails);
    const big = essay('crowded', 'Crowded');
    expect((await answer(await s.publish(big))).sendout.total).toBe(1000);

    const second = secondDispatcher(s, other);
    await Promise.all([s.drain(), drainWith(second)]);
    // Whichever stopped first, the other may still have finished a batch: drain both once more.
    await Promise.all([s.drain(), drainWith(second)]);

    const letters = lettersPerAddress(s.smtp.received, big.title);
    expect(letters.size).toBe(1000);
    for (const email of emails) expect(letters.get(email), email).toBe(1);
    expect(s.smtp.received).toHaveLength(1000);

    const ledger = await deliveriesOf(s.database.db, big.slug);
    expect(ledger.every((d) => d.status === 'sent' && d.attempts === 1)).toBe(true);
    // Both took part: otherwise this test would prove nothing about two dispatchers.
    const senders = new Set(ledger.map((d) => d.claimedBy));
    expect(senders).toEqual(new Set([s.dispatcher.id, second.id]));
    expect((await answer(await progress(s, big.slug))).sendout).toMatchObject({
      status: 'done',
      sent: 1000,
    });
  });
});

describe('unsubscribing while a send-out is under way', () => {
  let s: TestService;
  afterEach(() => s?.close());

  const oneClick = (token: string) =>
    s.app.request(`/unsubscribe/${token}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });

  it('skips a subscriber who unsubscribed after the publish, before the dispatcher reached them', async () => {
    s = await createTestService();
    const readers = await seedSubscribers(s.database.db, 'confirmed', addresses('reader', 10));
    const leaving = readers[6] as SeededSubscriber;
    const news = essay('news');
    expect((await s.publish(news)).status).toBe(202);

    expect((await oneClick(leaving.unsubscribeToken)).status).toBe(200);
    await s.drain();

    expect(s.smtp.to(leaving.email)).toHaveLength(0);
    expect(s.smtp.received).toHaveLength(9);
    const state = await answer(await progress(s, news.slug));
    expect(state.sendout).toEqual({
      status: 'done',
      total: 10,
      pending: 0,
      sent: 9,
      failed: 0,
      skipped: 1,
      unknown: 0,
    });
    const row = (await deliveriesOf(s.database.db, news.slug)).find((d) => d.email === leaving.email);
    expect(row).toMatchObject({ status: 'skipped', attempts: 0 });
  });

  it('skips them even when the dispatcher is already working through the send-out', async () => {
    // One connection, so the dispatcher works through the send-out one letter at a time. A delivery is
    // claimed only with the small group about to go out, in the statement that checks the subscriber.
    s = await createTestService({ SEND_CONCURRENCY: '1' });
    const readers = await seedSubscribers(s.database.db, 'confirmed', addresses('reader', 30));
    const leaving = readers[29] as SeededSubscriber;
    const news = essay('news');
    expect((await s.publish(news)).status).toBe(202);

    let claimedWhenLeaving: string | undefined;
    const inner = createSmtpMailer({ url: s.smtp.url, connections: 1 });
    const mailer: Mailer = {
      description: 'unsubscribes the last reader while the first letter is in flight',
      concurrency: 1,
      async send(email) {
        if (claimedWhenLeaving === undefined) {
          const ledger = await deliveriesOf(s.database.db, news.slug);
          claimedWhenLeaving = ledger.find((d) => d.email === leaving.email)?.status;
          expect((await oneClick(leaving.unsubscribeToken)).status).toBe(200);
        }
        return inner.send(email);
      },
      close: () => inner.close(),
    };
    try {
      await drainWith(secondDispatcher(s, mailer));
    } finally {
      await mailer.close();
    }

    expect(claimedWhenLeaving).toBe('pending');
    expect(s.smtp.to(leaving.email)).toHaveLength(0);
    expect(s.smtp.received).toHaveLength(29);
    const state = await answer(await progress(s, news.slug));
    expect(state.sendout).toMatchObject({ status: 'done', sent: 29, skipped: 1, pending: 0 });
  });
  it('answers an unsubscribe only once the letter already on its way to them is done, and sends them no other', async () => {
    // One connection: the letter to the reader who leaves is the one in SMTP's hands when they click.
    s = await createTestService({ SEND_CONCURRENCY: '1' });
    const readers = await seedSubscribers(s.database.db, 'confirmed', addresses('reader', 4));
    const leaving = readers[1] as SeededSubscriber;
    const [first, second] = [essay('first'), essay('second')];
    expect((await s.publish(first)).status).toBe(202);
    expect((await s.publish(second)).status).toBe(202);
    s.smtp.delayMs = 200;

    let answered: Promise<number> | undefined;
    const inner = createSmtpMailer({ url: s.smtp.url, connections: 1 });
    const mailer: Mailer = {
      description: 'unsubscribes a reader as their first letter starts',
      concurrency: 1,
      ready: () => inner.ready?.() ?? Promise.resolve(),
      send(email) {
        const to = 'raw' in email ? email.envelope.to : email.to;
        if (!answered && to === leaving.email)
          answered = Promise.resolve(oneClick(leaving.unsubscribeToken)).then((res) => {
            expect(res.status).toBe(200);
            return Date.now();
          });
        return inner.send(email);
      },
      close: () => inner.close(),
    };
    try {
      await drainWith(secondDispatcher(s, mailer));
    } finally {
      await mailer.close();
    }

    const answeredAt = await (answered as Promise<number>);
    const [letter, ...more] = s.smtp.to(leaving.email);
    // The letter that had begun went out whole, and the answer waited for it; nothing began after.
    expect(more).toHaveLength(0);
    expect(letter?.receivedAt).toBeLessThanOrEqual(answeredAt);
    const begun = s.smtp.transactions.filter((t) => t.recipients.some((r) => r.address === leaving.email));
    for (const t of begun) expect(t.startedAt).toBeLessThan(answeredAt);
    const rows = [
      ...(await deliveriesOf(s.database.db, first.slug)),
      ...(await deliveriesOf(s.database.db, second.slug)),
    ].filter((d) => d.email === leaving.email);
    expect(rows.map((d) => d.status).sort()).toEqual(['sent', 'skipped']);
    expect(s.smtp.received).toHaveLength(7);
  });
});

describe('a claim whose dispatcher stopped renewing its lease', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService();
  });
  afterAll(() => s?.close());

  it('goes back to pending and is sent when claimed; becomes unknown and is not sent when sending', async () => {
    const readers = await seedSubscribers(s.database.db, 'confirmed', addresses('reader', 6));
    const lost = essay('lost-lease');
    expect((await s.publish(lost)).status).toBe(202);
    const [claimed, sending] = [readers.slice(0, 2), readers.slice(2, 4)];

    // A dispatcher that vanished: its claims carry its id and a lease that ran out.
    const vanished = randomUUID();
    const mark = (status: 'claimed' | 'sending', ids: SeededSubscriber[]) =>
      s.database.db.execute(sql`
        update deliveries set status = ${status}::delivery_status, claimed_by = ${vanished}::uuid,
               lease_until = now() - interval '1 minute', attempts = ${status === 'sending' ? 1 : 0}
        where subscriber_id in (select value::int from json_array_elements_text(${JSON.stringify(
          ids.map((r) => r.id),
        )}::json))`);
    await mark('claimed', claimed);
    await mark('sending', sending);

    const during = await answer(await progress(s, lost.slug));
    expect(during.sendout).toMatchObject({ status: 'sending', pending: 6 });

    await s.drain();
    for (const r of [...claimed, ...readers.slice(4)]) expect(s.smtp.to(r.email), r.email).toHaveLength(1);
    for (const r of sending) expect(s.smtp.to(r.email), r.email).toHaveLength(0);

    const ledger = await deliveriesOf(s.database.db, lost.slug);
    for (const r of sending) expect(ledger.find((d) => d.email === r.email)?.status).toBe('unknown');
    for (const r of claimed) expect(ledger.find((d) => d.email === r.email)?.status).toBe('sent');
    const state = await answer(await progress(s, lost.slug));
    expect(state.sendout).toEqual({
      status: 'done',
      total: 6,
      pending: 0,
      sent: 4,
      failed: 0,
      skipped: 0,
      unknown: 2,
    });

    // Unknown stays unknown: draining again resends nothing.
    await s.drain();
    expect(s.smtp.received).toHaveLength(4);
  });

  it('is left alone while its lease runs', async () => {
    const readers = await seedSubscribers(s.database.db, 'confirmed', addresses('held', 3));
    const held = essay('held-lease');
    expect((await s.publish(held)).status).toBe(202);
    const holder = readers[0] as SeededSubscriber;
    await s.database.db.execute(sql`
      update deliveries set status = 'claimed', claimed_by = ${randomUUID()}::uuid,
             lease_until = now() + interval '10 minutes'
      where subscriber_id = ${holder.id}`);

    // A fresh dispatcher reaps at once; the live claim is not its to take.
    const fresh = createSmtpMailer({ url: s.smtp.url, connections: 2 });
    try {
      await drainWith(secondDispatcher(s, fresh));
    } finally {
      await fresh.close();
    }
    expect(s.smtp.to(holder.email)).toHaveLength(0);
    expect(s.smtp.to((readers[1] as SeededSubscriber).email)).toHaveLength(1);
    expect((await answer(await progress(s, held.slug))).sendout).toMatchObject({
      status: 'sending',
      pending: 1,
      sent: 8,
    });
  });

  it('goes back to pending when its own dispatcher stops, if it never reached SMTP, and is sent once', async () => {
    const readers = await seedSubscribers(s.database.db, 'confirmed', addresses('unanswered', 3));
    const unanswered = essay('unanswered-claim');
    expect((await s.publish(unanswered)).status).toBe(202);
    const mailer = createSmtpMailer({ url: s.smtp.url, connections: 1 });
    const dispatcher = secondDispatcher(s, mailer);
    // A claim that committed as the database went away: its rows are `sending` under this dispatcher's id,
    // and no worker holds them. Stopping must not leave them so (renewed while it lives, unknown after).
    const [stray] = readers;
    await s.database.db.execute(sql`
      update deliveries set status = 'sending', claimed_by = ${dispatcher.id}::uuid, attempts = 1,
             lease_until = now() + interval '10 minutes'
      where subscriber_id = ${(stray as SeededSubscriber).id}
        and essay_id = (select id from essays where slug = ${unanswered.slug})`);
    try {
      await dispatcher.stop();
    } finally {
      await mailer.close();
    }
    const ledger = await deliveriesOf(s.database.db, unanswered.slug);
    expect(ledger.find((d) => d.email === stray?.email)?.status).toBe('pending');

    await s.drain();
    for (const r of readers) expect(s.smtp.to(r.email), r.email).toHaveLength(1);
  });
});
