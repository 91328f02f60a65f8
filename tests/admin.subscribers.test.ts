import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
import type { AdminClient } from './support/admin.js';
import { APP_ORIGIN, signIn } from './support/admin.js';
import { addresses, seedSubscribers } from './support/sendout.js';
import type { TestService } from './support/service.js';
import { createTestService } from './support/service.js';

/** The addresses a list page shows, in order. */
function listed(html: string): string[] {
  return [
    ...html.matchAll(
      /<th scope="row" role="rowheader"><a href="\/admin\/subscribers\/\d+">([^<]+)<\/a><\/th>/g,
    ),
  ].map((m) => m[1] as string);
}

/** The page's "Next page" link, as a path (entities undone). */
function nextLink(html: string): string | undefined {
  return /<a href="([^"]+)" rel="next">/.exec(html)?.[1]?.replace(/&amp;/g, '&');
}

async function count(s: TestService, query: ReturnType<typeof sql>): Promise<number> {
  const [row] = await rows<{ n: number }>(s.database.db, query);
  return Number(row?.n ?? 0);
}

describe('the dashboard’s subscriber list', () => {
  let s: TestService;
  let admin: AdminClient;

  beforeAll(async () => {
    s = await createTestService();
    const db = s.database.db;
    await seedSubscribers(db, 'confirmed', addresses('reader', 120));
    await seedSubscribers(db, 'pending', addresses('waiting', 7));
    await seedSubscribers(db, 'unsubscribed', addresses('gone', 3));
    admin = await signIn(s);
  });

  afterAll(async () => {
    await s?.close();
  });

  it('pages through every subscriber, 50 at a time, each once, newest first', async () => {
    const seen: string[] = [];
    let path: string | undefined = '/admin/subscribers';
    let pages = 0;
    while (path) {
      const res = await admin.get(path);
      expect(res.status).toBe(200);
      const html = await res.text();
      const shown = listed(html);
      expect(shown.length).toBeLessThanOrEqual(50);
      expect(html).toContain(`${seen.length + 1}–${seen.length + shown.length}.`);
      seen.push(...shown);
      path = nextLink(html);
      if (pages > 0) expect(html).toContain('First page');
      pages++;
    }
    expect(pages).toBe(3);
    expect(seen.length).toBe(130);
    expect(new Set(seen).size).toBe(130);
    const all = await rows<{ email: string }>(
      s.database.db,
      sql`select email from subscribers order by created_at desc, id desc`,
    );
    expect(seen).toEqual(all.map((r) => r.email));
  });

  it('filters by status, and pages within the filter', async () => {
    const pending = await (await admin.get('/admin/subscribers?status=pending')).text();
    expect(listed(pending).sort()).toEqual(addresses('waiting', 7));
    expect(pending).toContain('<option value="pending" selected>');
    expect(nextLink(pending)).toBeUndefined();

    const confirmed = await (await admin.get('/admin/subscribers?status=confirmed')).text();
    expect(listed(confirmed).length).toBe(50);
    const next = nextLink(confirmed);
    expect(next).toMatch(/status=confirmed/);
    const second = await (await admin.get(next as string)).text();
    expect(listed(second).every((e) => e.startsWith('reader-'))).toBe(true);
    expect(second).toContain('51–100.');

    const both = await (await admin.get('/admin/subscribers?status=unsubscribed&q=gone-0001')).text();
    expect(listed(both)).toEqual(['gone-0001@example.org']);
    const none = await (await admin.get('/admin/subscribers?status=pending&q=reader')).text();
    expect(listed(none)).toEqual([]);
    expect(none).toContain('No subscriber matches an address containing “reader” with the status pending.');
  });

  it('an unknown status is no filter, and a made-up cursor is a clear 400', async () => {
    const html = await (await admin.get('/admin/subscribers?status=vip')).text();
    expect(listed(html).length).toBe(50);
    const bad = await admin.get('/admin/subscribers?cursor=not-a-cursor');
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('cursor');
  });

  it('a subscriber without a name shows an empty name, not a dash', async () => {
    const html = await (await admin.get('/admin/subscribers?q=reader-0001@')).text();
    expect(html).toContain('<td role="cell" data-label="Name"></td>');
    expect(html).not.toContain('—');
  });

  it('erases a subscriber only after the confirmation page, with the session’s token', async () => {
    const [target] = await rows<{ id: number }>(
      s.database.db,
      sql`select id from subscribers where email = 'reader-0042@example.org'`,
    );
    const id = Number(target?.id);
    const detail = await (await admin.get(`/admin/subscribers/${id}`)).text();
    expect(detail).toContain(`<form method="get" action="/admin/subscribers/${id}/erase">`);

    // The confirmation page: a GET, which changes nothing.
    const confirm = await admin.get(`/admin/subscribers/${id}/erase`);
    expect(confirm.status).toBe(200);
    const page = await confirm.text();
    expect(page).toContain('<h1>Erase reader-0042@example.org?</h1>');
    expect(page).toContain('name="confirm" value="erase"');
    expect(await count(s, sql`select count(*)::int as n from subscribers where id = ${id}`)).toBe(1);

    // A post without the confirmation shows the question again.
    const unconfirmed = await admin.post(`/admin/subscribers/${id}/erase`, {});
    expect(unconfirmed.status).toBe(422);
    expect(await count(s, sql`select count(*)::int as n from subscribers where id = ${id}`)).toBe(1);

    // Another site's form, or one without the session's token, is refused.
    const forged = await s.app.request(`/admin/subscribers/${id}/erase`, {
      method: 'POST',
      headers: {
        cookie: admin.cookies.header(),
        'content-type': 'application/x-www-form-urlencoded',
        origin: APP_ORIGIN,
      },
      body: new URLSearchParams({ csrf: 'x'.repeat(22), confirm: 'erase' }).toString(),
    });
    expect(forged.status).toBe(403);
    const crossSite = await s.app.request(`/admin/subscribers/${id}/erase`, {
      method: 'POST',
      headers: {
        cookie: admin.cookies.header(),
        'content-type': 'application/x-www-form-urlencoded',
        origin: 'https://evil.example',
      },
      body: new URLSearchParams({ csrf: admin.csrf, confirm: 'erase' }).toString(),
    });
    expect(crossSite.status).toBe(403);
    expect(await count(s, sql`select count(*)::int as n from subscribers where id = ${id}`)).toBe(1);

    const erased = await admin.post(`/admin/subscribers/${id}/erase`, { confirm: 'erase' });
    expect(erased.status).toBe(303);
    expect(erased.headers.get('location')).toBe('/admin/subscribers?erased=1');
    expect(await count(s, sql`select count(*)::int as n from subscribers where id = ${id}`)).toBe(0);
    expect(
      await count(s, sql`select count(*)::int as n from subscriber_events where subscriber_id = ${id}`),
    ).toBe(0);
    expect((await admin.get(`/admin/subscribers/${id}`)).status).toBe(404);
    expect(await (await admin.get('/admin/subscribers?erased=1')).text()).toContain('Erased:');
  });

  it('imports a CSV file and shows the import’s report, then exports the list back', async () => {
    const csv =
      'email,name,status\r\n' +
      'new-one@example.org,New One,confirmed\r\n' +
      'new-two@example.org,,\r\n' +
      'not an address,Bad,\r\n' +
      'reader-0005@example.org,Already Here,confirmed\r\n';
    const form = new FormData();
    form.set('csrf', admin.csrf);
    form.set('file', new File([csv], 'list.csv', { type: 'text/csv' }));
    const res = await s.app.request('/admin/subscribers/import', {
      method: 'POST',
      headers: { cookie: admin.cookies.header(), origin: APP_ORIGIN },
      body: form,
    });
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('What the import did');
    expect(html).toMatch(/<dt>Rows<\/dt><dd>4<\/dd>/);
    expect(html).toMatch(/<dt>Created<\/dt><dd>2<\/dd>/);
    expect(html).toMatch(/<dt>Invalid<\/dt><dd>1<\/dd>/);
    expect(html).toMatch(/<th scope="row" role="rowheader">4<\/th><td role="cell" data-label="Why">email:/);
    expect(await count(s, sql`select count(*)::int as n from subscribers where email like 'new-%'`)).toBe(2);

    // Without the session's token, the file is refused and nothing is imported.
    const forgedForm = new FormData();
    forgedForm.set('csrf', 'x'.repeat(22));
    forgedForm.set('file', new File(['email\r\nforged@example.org\r\n'], 'list.csv', { type: 'text/csv' }));
    const forged = await s.app.request('/admin/subscribers/import', {
      method: 'POST',
      headers: { cookie: admin.cookies.header(), origin: APP_ORIGIN },
      body: forgedForm,
    });
    expect(forged.status).toBe(403);
    expect(
      await count(s, sql`select count(*)::int as n from subscribers where email = 'forged@example.org'`),
    ).toBe(0);

    const exported = await admin.get('/admin/subscribers/export');
    expect(exported.status).toBe(200);
    expect(exported.headers.get('content-type')).toContain('text/csv');
    expect(exported.headers.get('content-disposition')).toMatch(/^attachment; filename="subscribers-/);
    const text = await exported.text();
    const lines = text.trim().split('\r\n');
    // The export's columns, with the consent on record (issue 26) after the subscriber's own.
    expect(lines[0]).toMatch(
      /^email,name,status,created_at,confirmed_at,unsubscribed_at,bounced_at,consent_requested_at,/,
    );
    const total = await count(s, sql`select count(*)::int as n from subscribers`);
    expect(lines.length - 1).toBe(total);
    expect(text).toContain('new-one@example.org,New One,confirmed,');

    // The round trip: the export imported again changes nothing.
    const again = new FormData();
    again.set('csrf', admin.csrf);
    again.set('file', new File([text], 'export.csv', { type: 'text/csv' }));
    const reimport = await s.app.request('/admin/subscribers/import', {
      method: 'POST',
      headers: { cookie: admin.cookies.header(), origin: APP_ORIGIN },
      body: again,
    });
    const report = await reimport.text();
    expect(report).toMatch(new RegExp(`<dt>Rows</dt><dd>${total}</dd>`));
    expect(report).toMatch(/<dt>Created<\/dt><dd>0<\/dd>/);
    expect(report).toMatch(new RegExp(`<dt>Unchanged</dt><dd>${total}</dd>`));
    expect(await count(s, sql`select count(*)::int as n from subscribers`)).toBe(total);

    // A filtered export holds only what the list shows.
    const pending = await (await admin.get('/admin/subscribers/export?status=pending')).text();
    expect(
      pending
        .trim()
        .split('\r\n')
        .slice(1)
        .every((l) => l.split(',')[2] === 'pending'),
    ).toBe(true);
  });

  it('an import without a file asks for one', async () => {
    const form = new FormData();
    form.set('csrf', admin.csrf);
    const res = await s.app.request('/admin/subscribers/import', {
      method: 'POST',
      headers: { cookie: admin.cookies.header(), origin: APP_ORIGIN },
      body: form,
    });
    expect(res.status).toBe(422);
    expect(await res.text()).toContain('Choose a CSV file to import.');
  });
});
