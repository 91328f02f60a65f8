import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
import { createDispatcher } from '../src/dispatch/dispatcher.js';
import type { SendoutView } from '../src/essays/service.js';
import { silentLogger } from '../src/log.js';
import { createRenderer } from '../src/mail/render.js';
import { loadTemplates } from '../src/mail/templates-fs.js';
import { signIn } from './support/admin.js';
import type { SeededSubscriber } from './support/sendout.js';
import { addresses, answer, drainWith, progress, seedSubscribers } from './support/sendout.js';
import type { TestService } from './support/service.js';
import { createTestService, PUBLISHER_TOKEN } from './support/service.js';
import type { SmtpReply } from './support/smtp.js';

/**
 * A send-out's figures are read from running counts, not counted from the ledger per request: they must
 * agree with the ledger after anything that changes it, whichever code (or no code: plain SQL) changed it.
 */

const essay = (slug: string) => ({
  slug,
  title: `Title of ${slug}`,
  url: `https://example.org/essays/${slug}`,
});
const api = { authorization: `Bearer ${PUBLISHER_TOKEN}` };

type Counts = Record<string, number>;

/** The ledger counted row by row, per essay and status: what the running counts must say. */
async function ledgerCounts(s: TestService): Promise<Counts> {
  const found = await rows<{ key: string; n: number }>(
    s.database.db,
    sql`select essay_id || ' ' || status as key, count(*)::int as n from deliveries group by essay_id, status`,
  );
  return Object.fromEntries(found.map((r) => [r.key, Number(r.n)]));
}

/** The running counts, summed over their shards (zeros left out, as a count of rows has none). */
async function runningCounts(s: TestService): Promise<Counts> {
  const found = await rows<{ key: string; n: number }>(
    s.database.db,
    sql`select essay_id || ' ' || status as key, sum(count)::int as n from delivery_counts where second = -1
        group by essay_id, status having sum(count) <> 0`,
  );
  return Object.fromEntries(found.map((r) => [r.key, Number(r.n)]));
}

/** The finished deliveries per essay, status and second of their last change, counted from the ledger and kept. */
async function finishesBothWays(s: TestService): Promise<{ ledger: Counts; kept: Counts }> {
  const counted = await rows<{ key: string; n: number }>(
    s.database.db,
    sql`select essay_id || ' ' || status || ' ' || coalesce(ceil(extract(epoch from updated_at))::bigint, 0) as key,
               count(*)::int as n
        from deliveries where status in ('sent', 'skipped', 'failed', 'unknown') group by 1`,
  );
  const kept = await rows<{ key: string; n: number }>(
    s.database.db,
    sql`select essay_id || ' ' || status || ' ' || second as key, sum(count)::int as n from delivery_counts
        where second >= 0 group by 1 having sum(count) <> 0`,
  );
  const by = (found: { key: string; n: number }[]) =>
    Object.fromEntries(found.map((r) => [r.key, Number(r.n)]));
  return { ledger: by(counted), kept: by(kept) };
}

/** The send-out as the ledger has it (with the anonymous counts of erased subscribers), as the API shapes it. */
async function sendoutFromLedger(s: TestService, slug: string): Promise<SendoutView> {
  const found = await rows<{ status: string; n: number }>(
    s.database.db,
    sql`select status::text as status, sum(n)::int as n from (
          select d.status, count(*) as n from deliveries d join essays e on e.id = d.essay_id
          where e.slug = ${slug} group by d.status
          union all
          select x.status, x.count from erased_deliveries x join essays e on e.id = x.essay_id
          where e.slug = ${slug}
        ) c group by status`,
  );
  const by: Counts = Object.fromEntries(found.map((r) => [r.status, Number(r.n)]));
  const n = (status: string) => by[status] ?? 0;
  const pending = n('pending') + n('claimed') + n('sending');
  const view = { sent: n('sent'), failed: n('failed'), skipped: n('skipped'), unknown: n('unknown') };
  const total = pending + view.sent + view.failed + view.skipped + view.unknown;
  return { status: pending > 0 ? 'sending' : 'done', total, pending, ...view };
}

/** The list's running counts (by status, and by day of each time a row holds) and the list counted row by row. */
async function listCountsBothWays(s: TestService): Promise<{ list: Counts; kept: Counts }> {
  const counted = await rows<{ key: string; n: number }>(
    s.database.db,
    sql`select status::text as key, count(*)::int as n from subscribers group by 1
        union all
        select k.kind || ' ' || (k.at at time zone 'UTC')::date, count(*)::int from subscribers x,
          lateral (values ('subscribed', x.created_at), ('confirmed', x.confirmed_at),
                          ('unsubscribed', x.unsubscribed_at), ('bounced', x.bounced_at)) k(kind, at)
        where k.at is not null group by 1`,
  );
  const kept = await rows<{ key: string; n: number }>(
    s.database.db,
    sql`select status::text as key, sum(count)::int as n from subscriber_counts group by 1 having sum(count) <> 0
        union all
        select kind || ' ' || day, sum(count)::int from subscriber_days group by 1 having sum(count) <> 0`,
  );
  const by = (found: { key: string; n: number }[]) =>
    Object.fromEntries(found.map((r) => [r.key, Number(r.n)]));
  return { list: by(counted), kept: by(kept) };
}

/**
 * The API's progress and the dashboard's live endpoint both answer the ledger's figures; the running counts
 * are the ledger's and the list's.
 */
async function expectProgressToBeTheLedgers(s: TestService, slug: string): Promise<void> {
  const expected = await sendoutFromLedger(s, slug);
  expect((await answer(await progress(s, slug))).sendout).toEqual(expected);
  const admin = await signIn(s);
  const live = (await (await admin.get(`/admin/sendouts/${slug}/progress`)).json()) as SendoutView;
  expect(live).toMatchObject(expected);
  expect(await runningCounts(s)).toEqual(await ledgerCounts(s));
  const { list, kept } = await listCountsBothWays(s);
  expect(kept).toEqual(list);
}

describe('a send-out’s running counts agree with its ledger', () => {
  let s: TestService;
  let readers: SeededSubscriber[];
  const first = 'on-counting';
  const second = 'on-counting-again';
  const email = (i: number) => readers[i]?.email as string;

  beforeAll(async () => {
    // Small batches, so that a send-out is still under way between two rounds; retries due at once.
    s = await createTestService({ DISPATCH_BATCH_SIZE: '5', RETRY_BASE_SECONDS: '0', MAX_ATTEMPTS: '3' });
    readers = await seedSubscribers(s.database.db, 'confirmed', addresses('counted', 40));
  });
  afterAll(() => s?.close());

  it('through a send-out with refusals, deferrals, an unsubscribe and an erasure midway, and a resend', async () => {
    const deferred = new Set([email(4), email(5)]);
    s.smtp.onRecipient = (recipient): SmtpReply | undefined => {
      if (recipient === email(3)) return { code: 550, message: '550 5.1.1 No such user' };
      if (recipient === email(7)) return { code: 451, message: '451 4.3.0 Try again later' };
      if (deferred.delete(recipient)) return { code: 451, message: '451 4.3.0 Try again later' };
      return undefined;
    };
    expect((await s.subscribeJson('newcomer@example.org', 'New Comer')).status).toBe(202);
    expect((await s.publish(essay(first))).status).toBe(202);
    await expectProgressToBeTheLedgers(s, first);

    await s.dispatcher.runOnce();
    await expectProgressToBeTheLedgers(s, first);

    // A reader leaves while the send-out runs (their letter not sent yet: skipped), another is erased.
    const unsubscribed = await s.app.request(`/unsubscribe/${readers[30]?.unsubscribeToken}`, {
      method: 'POST',
      headers: { accept: 'application/json' },
    });
    expect(unsubscribed.status).toBe(200);
    const erased = await s.app.request(`/api/subscribers/${encodeURIComponent(email(31))}`, {
      method: 'DELETE',
      headers: api,
    });
    expect(erased.status).toBe(200);
    await expectProgressToBeTheLedgers(s, first);

    await s.drain();
    const done = (await answer(await progress(s, first))).sendout;
    expect(done).toMatchObject({ status: 'done', total: 40, failed: 2, skipped: 2 });
    await expectProgressToBeTheLedgers(s, first);

    // A crash's leftovers, written as the reaper writes them, then resent on the publisher's word.
    await s.database.db.execute(sql`
      update deliveries d set status = 'unknown', updated_at = now()
      from subscribers x where x.id = d.subscriber_id
        and x.email in (${email(10)}, ${email(11)}, ${email(12)})`);
    await expectProgressToBeTheLedgers(s, first);
    const resent = await s.app.request(`/api/essays/${first}/resend-unknown`, {
      method: 'POST',
      headers: api,
    });
    expect(((await resent.json()) as { resent: number }).resent).toBe(3);
    await expectProgressToBeTheLedgers(s, first);
    await s.drain();
    await expectProgressToBeTheLedgers(s, first);
    expect((await answer(await progress(s, first))).sendout).toMatchObject({ sent: 36, unknown: 0 });
  });

  it('with two dispatchers sending the same send-out at once', async () => {
    s.smtp.onRecipient = undefined;
    const other = createDispatcher({
      db: s.database.db,
      mailer: s.mailer,
      renderer: createRenderer(loadTemplates()),
      config: s.config,
      log: silentLogger,
    });
    try {
      expect((await s.publish(essay(second))).status).toBe(202);
      await Promise.all([s.drain(), drainWith(other)]);
    } finally {
      await other.stop();
    }
    expect((await answer(await progress(s, second))).sendout).toMatchObject({ status: 'done', sent: 37 });
    await expectProgressToBeTheLedgers(s, second);
    await expectProgressToBeTheLedgers(s, first);
  });

  it('after the ledger is changed in plain SQL, bypassing the service’s code', async () => {
    await s.database.db.execute(sql`
      update deliveries d set status = 'failed', updated_at = now() - interval '1 hour'
      from essays e where e.id = d.essay_id and e.slug = ${second} and d.subscriber_id % 3 = 0`);
    await s.database.db.execute(sql`
      delete from deliveries d using essays e where e.id = d.essay_id and e.slug = ${second}
        and d.subscriber_id % 5 = 0`);
    await s.database.db.execute(sql`
      insert into deliveries (essay_id, subscriber_id, status)
      select e.id, x.id, 'pending' from essays e, subscribers x
      where e.slug = ${second} and x.id % 5 = 0 and x.status = 'confirmed'`);
    await expectProgressToBeTheLedgers(s, second);
  });

  it('keeps each finished delivery at the second it finished, for the timeline', async () => {
    const { ledger, kept } = await finishesBothWays(s);
    expect(Object.keys(ledger).length).toBeGreaterThan(0);
    expect(kept).toEqual(ledger);
  });

  it('starts again from nothing when the ledger and the list are emptied', async () => {
    await s.database.db.execute(sql`truncate deliveries`);
    expect(await runningCounts(s)).toEqual({});
    expect((await finishesBothWays(s)).kept).toEqual({});
    await s.database.db.execute(sql`truncate subscribers cascade`);
    expect((await listCountsBothWays(s)).kept).toEqual({});
  });
});
