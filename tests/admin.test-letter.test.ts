import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
import { signIn } from './support/admin.js';
import { addresses, seedSubscribers } from './support/sendout.js';
import type { TestService } from './support/service.js';
import { createTestService } from './support/service.js';

const essay = {
  slug: 'on-tests',
  title: 'On tests',
  url: 'https://essays.example.test/tests',
  summary: 'Measure twice.',
};

async function ledgerRows(s: TestService): Promise<{ essays: number; deliveries: number }> {
  const [row] = await rows<{ essays: number; deliveries: number }>(
    s.database.db,
    sql`select (select count(*) from essays)::int as essays, (select count(*) from deliveries)::int as deliveries`,
  );
  return { essays: Number(row?.essays), deliveries: Number(row?.deliveries) };
}

describe('a test of the letter, from the preview', () => {
  let s: TestService;

  beforeAll(async () => {
    s = await createTestService();
    await seedSubscribers(s.database.db, 'confirmed', addresses('reader', 3));
  });

  afterAll(async () => {
    await s?.close();
  });

  it('arrives at the address given, marked as a test, the same letter subscribers get, and the ledger knows nothing of it', async () => {
    const admin = await signIn(s);
    const preview = await (await admin.post('/admin/publish/preview', essay)).text();
    expect(preview).toContain('<form method="post" action="/admin/publish/test#test">');

    const res = await admin.post('/admin/publish/test', { ...essay, to: 'editor@example.net' });
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('Sent a test to editor@example.net: look for “[Test] On tests” there.');
    // The page is still the preview: the essay can be sent from there.
    expect(html).toContain('Send to 3 confirmed subscribers');

    const [test] = s.smtp.to('editor@example.net');
    expect(test?.parsed.subject).toBe('[Test] On tests');
    expect(test?.parsed.headers.get('x-oneletter-test')).toMatch(/a test of this letter/);
    expect(test?.parsed.messageId).toMatch(/^<test\.[0-9a-f]{24}@example\.test>$/);
    expect(test?.raw).toMatch(/^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r?$/m);
    expect(await ledgerRows(s)).toEqual({ essays: 0, deliveries: 0 });

    // Now the real send-out: its letter is the test's, but for the subject line and the test's own marks.
    expect((await admin.post('/admin/publish', essay)).status).toBe(303);
    await s.drain();
    const real = s.smtp.to('reader-0000@example.org').find((m) => m.parsed.subject === 'On tests');
    expect(real).toBeTruthy();
    expect(real?.parsed.headers.get('x-oneletter-test')).toBeUndefined();
    const token = /\/unsubscribe\/[A-Za-z0-9_-]+/g;
    expect(String(real?.parsed.text).replace(token, '/unsubscribe/T')).toBe(
      String(test?.parsed.text).replace(token, '/unsubscribe/T'),
    );
    expect(String(real?.parsed.html).replace(token, '/unsubscribe/T')).toBe(
      String(test?.parsed.html).replace(token, '/unsubscribe/T'),
    );
    // The ledger holds the send-out's three deliveries, none to the test's address.
    expect(await ledgerRows(s)).toEqual({ essays: 1, deliveries: 3 });
  });

  it('is refused with what to fix when the address is not one', async () => {
    const admin = await signIn(s);
    const before = s.smtp.received.length;
    const res = await admin.post('/admin/publish/test', { ...essay, slug: 'on-typos', to: 'not an address' });
    expect(res.status).toBe(422);
    expect(await res.text()).toContain('does not look like an email address');
    expect(s.smtp.received.length).toBe(before);
  });

  it('is limited to 10 an hour per session', async () => {
    const admin = await signIn(s);
    const draft = { ...essay, slug: 'on-limits', title: 'On limits' };
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) {
      statuses.push((await admin.post('/admin/publish/test', { ...draft, to: `t${i}@example.net` })).status);
    }
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(200));
    expect(statuses[10]).toBe(429);
    const refused = await admin.post('/admin/publish/test', { ...draft, to: 'later@example.net' });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await refused.text()).toContain('10 tests an hour at most');
    expect(s.smtp.received.filter((m) => m.parsed.subject === '[Test] On limits').length).toBe(10);
    expect(s.smtp.to('later@example.net')).toEqual([]);
  });

  it('is refused without the session’s token', async () => {
    const admin = await signIn(s);
    admin.csrf = 'x'.repeat(22);
    const res = await admin.post('/admin/publish/test', { ...essay, to: 'forged@example.net' });
    expect(res.status).toBe(403);
    expect(s.smtp.to('forged@example.net')).toEqual([]);
  });
});

describe('a test of the letter without a mailer', () => {
  it('is said to be unavailable, and sends nothing', async () => {
    const s = await createTestService({}, { mailer: undefined });
    try {
      const admin = await signIn(s);
      const preview = await (await admin.post('/admin/publish/preview', essay)).text();
      expect(preview).toContain('Test letters are not available here');
      expect(preview).not.toContain('action="/admin/publish/test');
      const res = await admin.post('/admin/publish/test', { ...essay, to: 'editor@example.net' });
      expect(res.status).toBe(422);
      expect(s.smtp.received).toEqual([]);
    } finally {
      await s.close();
    }
  });
});
