import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
import type { ImportReport, SubscriberDetail } from '../src/list/schemas.js';
import type { TestService } from './support/service.js';
import { createTestService, PUBLISHER_TOKEN } from './support/service.js';

/** The publisher tools at 100,000 subscribers: figures printed (not asserted), plans checked. */

const auth = { authorization: `Bearer ${PUBLISHER_TOKEN}` };
const N = 100_000;
let s: TestService;

const timed = async <T>(label: string, work: () => T | Promise<T>): Promise<T> => {
  const started = performance.now();
  const result = await work();
  console.log(
    `[publisher-tools] ${label} on ${s.database.kind}: ${Math.round(performance.now() - started)} ms`,
  );
  return result;
};

beforeAll(async () => {
  s = await createTestService();
});
afterAll(async () => {
  await s?.close();
});

describe(`the publisher tools at ${N.toLocaleString('en')} subscribers`, () => {
  it('imports 100,000 rows in one request, set-based, and importing them again changes nothing', async () => {
    const lines = ['email,name,status'];
    for (let i = 0; i < N; i++) lines.push(`bulk-${i}@bulk.example.org,Reader ${i},confirmed`);
    const csv = lines.join('\n');
    const post = () =>
      s.app.request('/api/subscribers/import', {
        method: 'POST',
        headers: { ...auth, 'content-type': 'text/csv' },
        body: csv,
      });
    const first = (await (await timed('import of 100,000 new rows', post)).json()) as ImportReport;
    expect(first).toMatchObject({ rows: N, created: N, confirmed: N, invalid: 0 });
    const again = (await (await timed('re-import of the same 100,000 rows', post)).json()) as ImportReport;
    expect(again).toMatchObject({ rows: N, created: 0, updated: 0, unchanged: N });
  }, 300_000);

  it('exports them all, streamed', async () => {
    const csv = await timed('export of 100,000 rows', async () =>
      (await s.app.request('/api/subscribers/export', { headers: auth })).text(),
    );
    expect(csv.trimEnd().split('\r\n')).toHaveLength(N + 1);
  }, 120_000);

  it('serves a list page deep in the list as fast as the first', async () => {
    let cursor: string | null = null;
    for (let i = 0; i < 3; i++) {
      const res: Response = await timed(`list page ${i + 1} (500 rows)`, () =>
        s.app.request(`/api/subscribers?limit=500${cursor ? `&cursor=${cursor}` : ''}`, { headers: auth }),
      );
      cursor = ((await res.json()) as { nextCursor: string | null }).nextCursor;
    }
    const found = await timed('address-contains search', async () =>
      (await s.app.request('/api/subscribers?q=bulk-99999%40', { headers: auth })).json(),
    );
    expect((found as { subscribers: { email: string }[] }).subscribers.map((x) => x.email)).toEqual([
      'bulk-99999@bulk.example.org',
    ]);
  });

  it('finds a subscriber’s essays in the ledger by its primary key, with no index on subscriber_id', async () => {
    await s.publish({ slug: 'bulk-essay', title: 'Bulk', url: 'https://example.org/bulk' });
    await s.database.db.execute(sql`analyze`);
    const detail = (await timed('one subscriber with history and essays', async () =>
      (await s.app.request('/api/subscribers/bulk-50000@bulk.example.org', { headers: auth })).json(),
    )) as SubscriberDetail;
    expect(detail.essays.map((e) => [e.slug, e.delivery])).toEqual([['bulk-essay', 'pending']]);
    const plan = await rows<Record<string, string>>(
      s.database.db,
      sql`explain select d.status from essays e cross join lateral (
            select status from deliveries where essay_id = e.id and subscriber_id = ${detail.subscriber.id} limit 1) d`,
    );
    expect(plan.map((r) => Object.values(r)[0]).join('\n')).not.toMatch(/Seq Scan on deliveries/);
    const erased = await timed('erase of one subscriber', async () =>
      (
        await s.app.request(`/api/subscribers/${detail.subscriber.id}`, { method: 'DELETE', headers: auth })
      ).json(),
    );
    expect(erased).toEqual({ erased: true, deliveries: 1 });
  }, 120_000);
});
