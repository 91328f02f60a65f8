import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../src/config.js';
import { rows } from '../src/db/client.js';
import { createDispatcher } from '../src/dispatch/dispatcher.js';
import { addressKey } from '../src/http/rate-limit.js';
import { pruneStaleSignups } from '../src/list/erasure.js';
import { createRenderer } from '../src/mail/render.js';
import { loadTemplates } from '../src/mail/templates-fs.js';
import { subscribersFor } from './support/reader.js';
import type { TestService } from './support/service.js';
import { confirmTokenIn, createTestService, PUBLISHER_TOKEN } from './support/service.js';

/**
 * Issue 26: signups never confirmed are erased by the dispatcher once their link has expired and they are
 * older than PENDING_EXPIRY_DAYS; younger ones, those with a link still valid and confirmed ones stay.
 */
let s: TestService;

beforeAll(async () => {
  // Rate limits on, so that the erasure of the address's counter shows.
  s = await createTestService({ SUBSCRIBE_LIMIT_PER_ADDRESS: '5' });
});
afterAll(() => s.close());

const db = () => s.database.db;

/** Subscribes through the API and has the dispatcher mail the confirmation. */
async function signUp(email: string): Promise<void> {
  expect((await s.subscribeJson(email)).status).toBe(202);
  await s.drain();
}

/** Moves an address's signup (its row, requests and links) `days` into the past. */
async function age(email: string, days: number): Promise<void> {
  const shift = sql`make_interval(days => ${days}::int)`;
  await db().execute(sql`
    update confirmations c set requested_at = c.requested_at - ${shift}, sent_at = c.sent_at - ${shift},
                               expires_at = c.expires_at - ${shift}
    from subscribers s where s.id = c.subscriber_id and lower(s.email) = lower(${email})`);
  await db().execute(sql`
    update subscribers set created_at = created_at - ${shift}, updated_at = updated_at - ${shift}
    where lower(email) = lower(${email})`);
}

async function leftFor(email: string) {
  const [left] = await rows<{ subscribers: number; confirmations: number; events: number; limits: number }>(
    db(),
    sql`select (select count(*)::int from subscribers where lower(email) = lower(${email})) as subscribers,
               (select count(*)::int from confirmations c join subscribers s on s.id = c.subscriber_id
                 where lower(s.email) = lower(${email})) as confirmations,
               (select count(*)::int from subscriber_events e join subscribers s on s.id = e.subscriber_id
                 where lower(s.email) = lower(${email})) as events,
               (select count(*)::int from rate_limits where key = ${`subscribe-address:${addressKey(email)}`}) as limits`,
  );
  return left;
}

describe('stale signups', () => {
  it('erases a signup left unconfirmed past the limit, with its requests, events and counter', async () => {
    await signUp('stale@example.org');
    await age('stale@example.org', 31);
    expect((await leftFor('stale@example.org'))?.limits).toBe(1);

    expect(await pruneStaleSignups(db(), 30)).toBe(1);
    expect(await leftFor('stale@example.org')).toEqual({
      subscribers: 0,
      confirmations: 0,
      events: 0,
      limits: 0,
    });
  });

  it('keeps younger signups, confirmed ones, and one asked for again within the limit', async () => {
    await signUp('young@example.org');
    await age('young@example.org', 29);

    await signUp('confirmed@example.org');
    const token = confirmTokenIn(s.smtp.to('confirmed@example.org').at(-1)?.parsed.text);
    expect((await s.app.request(`/confirm/${token}`, { method: 'POST' })).status).toBe(200);
    await age('confirmed@example.org', 90);

    // Signed up long ago, asked again yesterday: their latest request is what counts.
    await signUp('again@example.org');
    await age('again@example.org', 60);
    await signUp('again@example.org');

    expect(await pruneStaleSignups(db(), 30)).toBe(0);
    for (const email of ['young@example.org', 'confirmed@example.org', 'again@example.org']) {
      expect(await subscribersFor(db(), email)).toHaveLength(1);
    }
  });

  it('keeps a signup whose link is still valid, however old the row', async () => {
    await signUp('long-link@example.org');
    await age('long-link@example.org', 40);
    await db().execute(sql`
      update confirmations set expires_at = now() + interval '1 hour'
      where subscriber_id = (select id from subscribers where email = 'long-link@example.org')`);
    expect(await pruneStaleSignups(db(), 30)).toBe(0);
    expect(await subscribersFor(db(), 'long-link@example.org')).toHaveLength(1);
  });

  it('works through more signups than one batch', async () => {
    const emails = Array.from({ length: 7 }, (_, i) => `batch-${i}@example.org`);
    for (const email of emails) await signUp(email);
    for (const email of emails) await age(email, 45);
    expect(await pruneStaleSignups(db(), 30, 3)).toBe(7);
    for (const email of emails) expect(await subscribersFor(db(), email)).toHaveLength(0);
  });

  it('the dispatcher prunes and logs one line with the count; PENDING_EXPIRY_DAYS=0 keeps them', async () => {
    await signUp('kept@example.org');
    await age('kept@example.org', 400);
    const lines: Record<string, unknown>[] = [];
    const log = { info: (f: Record<string, unknown>) => lines.push(f), warn() {}, error() {} };
    const dispatcherWith = (days: string) =>
      createDispatcher({
        db: db(),
        mailer: s.mailer,
        renderer: createRenderer(loadTemplates()),
        config: {
          ...s.config,
          pendingExpiryDays: parseConfig({ PENDING_EXPIRY_DAYS: days, PUBLISHER_TOKEN }).pendingExpiryDays,
        },
        log,
      });

    const keeping = dispatcherWith('0');
    await keeping.runOnce();
    await keeping.stop();
    expect(await subscribersFor(db(), 'kept@example.org')).toHaveLength(1);
    expect(lines.filter((l) => l.msg === 'stale signups erased')).toEqual([]);

    const pruning = dispatcherWith('30');
    await pruning.runOnce();
    await pruning.runOnce(); // within the hour: no second run
    await pruning.stop();
    expect(await subscribersFor(db(), 'kept@example.org')).toHaveLength(0);
    expect(lines.filter((l) => l.msg === 'stale signups erased')).toEqual([
      { msg: 'stale signups erased', erased: 1, olderThanDays: 30 },
    ]);
  });

  it('the setting defaults to 30 days and refuses what is not a whole number of days', () => {
    expect(parseConfig({ PUBLISHER_TOKEN }).pendingExpiryDays).toBe(30);
    expect(() => parseConfig({ PUBLISHER_TOKEN, PENDING_EXPIRY_DAYS: 'soon' })).toThrow(
      /PENDING_EXPIRY_DAYS/,
    );
  });
});
