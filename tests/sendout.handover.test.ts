import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
import type { SeededSubscriber } from './support/sendout.js';
import { addresses, deliveriesOf, lettersPerAddress, seedSubscribers } from './support/sendout.js';
import type { TestService } from './support/service.js';
import { createTestService } from './support/service.js';

/**
 * SMTP never takes a letter that the ledger doesn't durably say is `sending`: that is what lets a crash leave
 * `unknown` only letters SMTP may have, and nothing sent twice. These tests stretch or break the hand-over's
 * commit with a trigger that runs at commit time (deferred), and check the SMTP server's side.
 */
describe('the hand-over of letters and its commit', () => {
  let s: TestService;
  let readers: SeededSubscriber[];
  let round = 0;

  beforeAll(async () => {
    s = await createTestService({ SEND_CONCURRENCY: '4' });
    // Each row a claim marks `sending` runs this when its transaction commits: a slow commit (sleep) that
    // notes when it was about to end, or, when the sequence says so, a commit that fails.
    for (const statement of [
      'create table handover_commits (essay_id int, subscriber_id int, at timestamptz)',
      'create sequence handover_failures',
      'create table handover_settings (sleep_s float8 not null, failures int not null)',
      'insert into handover_settings values (0, 0)',
      `create function handover_at_commit() returns trigger language plpgsql as $$
       declare settings handover_settings;
       begin
         select * into settings from handover_settings;
         if nextval('handover_failures') <= settings.failures then
           raise exception 'a claim that fails as it commits';
         end if;
         perform pg_sleep(settings.sleep_s);
         insert into handover_commits values (new.essay_id, new.subscriber_id, clock_timestamp());
         return null;
       end $$`,
      `create constraint trigger handover_at_commit after update on deliveries
         deferrable initially deferred for each row
         when (new.status = 'sending' and old.status is distinct from 'sending')
         execute function handover_at_commit()`,
    ])
      await s.database.db.execute(sql.raw(statement));
  });
  afterAll(() => s?.close());

  beforeEach(async () => {
    round++;
    await s.database.db.execute(
      sql`update subscribers set status = 'unsubscribed', unsubscribed_at = now() where status = 'confirmed'`,
    );
    readers = await seedSubscribers(s.database.db, 'confirmed', addresses(`h${round}`, 8));
  });

  async function settings(sleepSeconds: number, failures: number) {
    await s.database.db.execute(
      sql`update handover_settings set sleep_s = ${sleepSeconds}, failures = ${failures}`,
    );
    await s.database.db.execute(sql`select setval('handover_failures', 1, false)`);
  }

  async function publish(slug: string) {
    const res = await s.publish({ slug, title: `Essay ${slug}`, url: `https://example.org/${slug}` });
    expect(res.status).toBe(202);
    return `Essay ${slug}`;
  }

  it('lets the server take a letter only after its hand-over committed, however slow the commit', async () => {
    await settings(0.15, 0);
    const title = await publish('slow-commit');
    await s.drain();

    const letters = lettersPerAddress(s.smtp.received, title);
    for (const reader of readers) expect(letters.get(reader.email), reader.email).toBe(1);
    const committing = await rows<{ email: string; at: Date }>(
      s.database.db,
      sql`select s.email, c.at from handover_commits c join subscribers s on s.id = c.subscriber_id`,
    );
    const committedAt = new Map(committing.map((c) => [c.email, new Date(c.at).getTime()]));
    for (const reader of readers) {
      const [letter] = s.smtp.to(reader.email);
      const at = committedAt.get(reader.email);
      expect(at, reader.email).toBeDefined();
      // The server took the message (its data ended) after the commit's last step had begun.
      expect(letter?.receivedAt, reader.email).toBeGreaterThanOrEqual(at as number);
    }
  });

  it('sends nothing of a claim whose commit fails, and its letters once later', async () => {
    await settings(0.05, 1);
    const title = await publish('failed-commit');

    // The round whose claim failed to commit fails; the next ones send everything.
    await expect(s.dispatcher.runOnce()).rejects.toThrow();
    await s.drain();

    const letters = lettersPerAddress(s.smtp.received, title);
    for (const reader of readers) expect(letters.get(reader.email), reader.email).toBe(1);
    expect(letters.size).toBe(readers.length);
    const ledger = await deliveriesOf(s.database.db, 'failed-commit');
    expect(ledger.map((d) => d.status)).toEqual(readers.map(() => 'sent'));
  });
});
