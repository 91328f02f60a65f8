import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ImportReport, SubscriberDetail } from '../src/list/schemas.js';
import type { TestService } from './support/service.js';
import { createTestService, PUBLISHER_TOKEN } from './support/service.js';

/**
 * A publisher moving from another service imports the file that service gave them, as it is: each sample in
 * tests/fixtures/imports/ has the columns of that service's export (see src/list/import-formats.ts for the sources).
 */

const auth = { authorization: `Bearer ${PUBLISHER_TOKEN}` };
let s: TestService;

beforeAll(async () => {
  s = await createTestService();
});
afterAll(async () => {
  await s?.close();
});

async function importFixture(file: string): Promise<ImportReport> {
  const res = await s.app.request('/api/subscribers/import', {
    method: 'POST',
    headers: { ...auth, 'content-type': 'text/csv' },
    body: await readFile(new URL(`fixtures/imports/${file}`, import.meta.url), 'utf8'),
  });
  expect(res.status).toBe(200);
  return (await res.json()) as ImportReport;
}

async function subscriber(email: string): Promise<SubscriberDetail['subscriber']> {
  const res = await s.app.request(`/api/subscribers/${encodeURIComponent(email)}`, { headers: auth });
  expect(res.status).toBe(200);
  return ((await res.json()) as SubscriberDetail).subscriber;
}

/** Every row read lands in exactly one bucket, and the summary says so. */
function expectAddsUp(r: ImportReport): void {
  expect(r.created).toBe(r.confirmed + r.queued + r.unsubscribed + r.bounced);
  expect(r.created + r.updated + r.unchanged + r.invalid).toBe(r.rows);
  expect(r.summary).toContain(`= ${r.rows} rows read`);
}

/** The addresses the service mailed (confirmation requests) since `before`. */
async function mailedSince(before: number): Promise<string[]> {
  await s.drain();
  return s.smtp.received
    .slice(before)
    .map((m) => m.to)
    .sort();
}

describe('importing another service’s export', () => {
  it('Mailchimp: First Name and Last Name make the name; the unsubscribed and cleaned files are never mailed', async () => {
    const before = s.smtp.received.length;
    const subscribed = await importFixture('mailchimp-subscribed.csv');
    expect(await subscriber('ada@mailchimp.example.org')).toMatchObject({
      name: 'Ada Lovelace',
      status: 'confirmed',
      confirmedAt: '2023-04-01T10:00:00.000Z',
    });
    expect((await subscriber('grace@mailchimp.example.org')).name).toBe('Grace');
    expect((await subscriber('edsger@mailchimp.example.org')).name).toBeNull();
    expect(subscribed).toMatchObject({ rows: 3, created: 3, confirmed: 3, queued: 0, invalid: 0 });
    expectAddsUp(subscribed);
    expect(subscribed.ignoredColumns).toEqual([
      'Address',
      'Phone Number',
      'MEMBER_RATING',
      'OPTIN_IP',
      'CONFIRM_IP',
      'LATITUDE',
      'LONGITUDE',
      'GMTOFF',
      'DSTOFF',
      'TIMEZONE',
      'CC',
      'REGION',
      'LAST_CHANGED',
      'LEID',
      'EUID',
      'NOTES',
      'TAGS',
    ]);
    expect(subscribed.summary).toContain('Ignored columns: Address, Phone Number, MEMBER_RATING');

    // The unsubscribed file has a CONFIRM_TIME too: its UNSUB_TIME is what counts.
    const unsubscribed = await importFixture('mailchimp-unsubscribed.csv');
    expect(unsubscribed).toMatchObject({ rows: 1, created: 1, unsubscribed: 1, confirmed: 0, queued: 0 });
    expectAddsUp(unsubscribed);
    expect(unsubscribed.ignoredColumns).toContain('UNSUB_REASON');
    expect(await subscriber('alan@mailchimp.example.org')).toMatchObject({
      name: 'Alan Turing',
      status: 'unsubscribed',
    });

    const cleaned = await importFixture('mailchimp-cleaned.csv');
    expect(cleaned).toMatchObject({ rows: 1, created: 1, bounced: 1, confirmed: 0, queued: 0 });
    expectAddsUp(cleaned);
    expect(await subscriber('barbara@mailchimp.example.org')).toMatchObject({ status: 'bounced' });

    expect(await mailedSince(before)).toEqual([]);

    // The same files again: everything is already on the list.
    const again = await importFixture('mailchimp-subscribed.csv');
    expect(again).toMatchObject({ rows: 3, created: 0, unchanged: 3 });
    expectAddsUp(again);
  });

  it('Substack: email_disabled readers are kept unsubscribed, deletion requests are refused by line', async () => {
    const before = s.smtp.received.length;
    const r = await importFixture('substack-email-list.csv');
    expect(r).toMatchObject({ rows: 4, created: 3, confirmed: 2, unsubscribed: 1, queued: 0, invalid: 1 });
    expectAddsUp(r);
    expect(r.errors).toEqual([{ line: 5, message: expect.stringMatching(/deletion request/) }]);
    expect(r.ignoredColumns).toEqual(['active_subscription', 'expiry', 'plan', 'first_payment_at']);
    expect(await subscriber('paid.reader@substack.example.org')).toMatchObject({
      status: 'confirmed',
      createdAt: '2022-05-01T12:00:00.000Z',
    });
    expect((await subscriber('quiet.reader@substack.example.org')).status).toBe('unsubscribed');
    expect(await mailedSince(before)).toEqual([]);
  });

  it('Ghost: members subscribed to emails are confirmed, the others unsubscribed', async () => {
    const before = s.smtp.received.length;
    const r = await importFixture('ghost-members.csv');
    expect(r).toMatchObject({ rows: 3, created: 3, confirmed: 2, unsubscribed: 1, queued: 0, invalid: 0 });
    expectAddsUp(r);
    expect(r.ignoredColumns).toEqual([
      'id',
      'note',
      'complimentary_plan',
      'stripe_customer_id',
      'deleted_at',
      'labels',
      'tiers',
    ]);
    expect(await subscriber('ghost.member@ghost.example.org')).toMatchObject({
      name: 'Katherine Johnson',
      status: 'confirmed',
      createdAt: '2023-07-01T08:00:00.000Z',
    });
    expect(await subscriber('ghost.off@ghost.example.org')).toMatchObject({
      name: 'Mary Jackson',
      status: 'unsubscribed',
    });
    expect(await mailedSince(before)).toEqual([]);
  });

  it('Buttondown: subscriber types map to ours; only an unactivated one is asked to confirm', async () => {
    const before = s.smtp.received.length;
    const r = await importFixture('buttondown-subscribers.csv');
    expect(r).toMatchObject({ rows: 4, created: 4, confirmed: 2, queued: 1, unsubscribed: 1, invalid: 0 });
    expectAddsUp(r);
    expect(r.ignoredColumns).toEqual(['notes', 'metadata', 'tags', 'referrer_url', 'secondary_id']);
    expect(await subscriber('premium@buttondown.example.org')).toMatchObject({
      status: 'confirmed',
      createdAt: '2022-08-09T10:11:12.000Z',
    });
    expect((await subscriber('unactivated@buttondown.example.org')).status).toBe('pending');
    expect((await subscriber('gone@buttondown.example.org')).status).toBe('unsubscribed');
    expect(await mailedSince(before)).toEqual(['unactivated@buttondown.example.org']);
  });

  it('listmonk: enabled is confirmed, blocklisted is never mailed, and Go-formatted times are read', async () => {
    const before = s.smtp.received.length;
    const r = await importFixture('listmonk-subscribers.csv');
    expect(r).toMatchObject({ rows: 2, created: 2, confirmed: 1, unsubscribed: 1, queued: 0, invalid: 0 });
    expectAddsUp(r);
    expect(r.ignoredColumns).toEqual(['uuid', 'attributes', 'updated_at']);
    expect(await subscriber('enabled@listmonk.example.org')).toMatchObject({
      name: 'Hedy Lamarr',
      status: 'confirmed',
      createdAt: '2023-05-06T07:08:09.123Z',
    });
    expect((await subscriber('blocked@listmonk.example.org')).status).toBe('unsubscribed');
    expect(await mailedSince(before)).toEqual([]);
  });

  it('matches header names whatever their case, spaces and underscores', async () => {
    const res = await s.app.request('/api/subscribers/import', {
      method: 'POST',
      headers: { ...auth, 'content-type': 'text/csv' },
      body: 'E-MAIL ADDRESS,first_name,LASTNAME,Status,Favourite Colour\nheaders@example.org,Ida,Rhodes,Subscribed,blue\n',
    });
    const r = (await res.json()) as ImportReport;
    expect(r).toMatchObject({ rows: 1, created: 1, confirmed: 1, ignoredColumns: ['Favourite Colour'] });
    expect(await subscriber('headers@example.org')).toMatchObject({
      name: 'Ida Rhodes',
      status: 'confirmed',
    });
  });
});
