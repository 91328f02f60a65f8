import SwaggerParser from '@apidevtools/swagger-parser';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
import { markBounced } from '../src/dispatch/queries.js';
import { addressKey } from '../src/http/rate-limit.js';
import type { ImportReport, StatsView, SubscriberDetail } from '../src/list/schemas.js';
import { addresses, seedSubscribers } from './support/sendout.js';
import type { TestService } from './support/service.js';
import { confirmTokenIn, createTestService, PUBLISHER_TOKEN, unsubscribeTokenIn } from './support/service.js';

const auth = { authorization: `Bearer ${PUBLISHER_TOKEN}` };

const essay = (slug: string) => ({ slug, title: `Title of ${slug}`, url: `https://example.org/${slug}` });

interface Page {
  subscribers: { id: number; email: string; status: string; createdAt: string }[];
  nextCursor: string | null;
}

let s: TestService;
const get = (path: string) => s.app.request(path, { headers: auth });
const page = async (path: string) => {
  const res = await get(path);
  expect(res.status).toBe(200);
  return (await res.json()) as Page;
};
const importCsv = (csv: string) =>
  s.app.request('/api/subscribers/import', {
    method: 'POST',
    headers: { ...auth, 'content-type': 'text/csv' },
    body: csv,
  });
const report = async (res: Response) => {
  expect(res.status).toBe(200);
  return (await res.json()) as ImportReport;
};

/** Subscribes through the form's JSON API and clicks the link in the email: the way a reader does. */
async function subscribeAndConfirm(email: string, name?: string): Promise<void> {
  expect((await s.subscribeJson(email, name)).status).toBe(202);
  await s.drain();
  const mail = s.smtp.to(email).at(-1);
  const res = await s.app.request(`/confirm/${confirmTokenIn(mail?.parsed.text)}`, {
    method: 'POST',
    headers: { accept: 'application/json' },
  });
  expect(res.status).toBe(200);
}

beforeAll(async () => {
  // Rate limits on, high: erasure must also clear the address's counter.
  s = await createTestService({ SUBSCRIBE_LIMIT_PER_ADDRESS: '1000', SUBSCRIBE_LIMIT_PER_IP: '100000' });
});
afterAll(async () => {
  await s?.close();
});

describe('the subscriber list', () => {
  beforeAll(async () => {
    await seedSubscribers(s.database.db, 'confirmed', addresses('list-confirmed', 120));
    await seedSubscribers(s.database.db, 'pending', addresses('list-pending', 30));
    await seedSubscribers(s.database.db, 'unsubscribed', ['someone+news@list-other.example']);
  });

  it('pages through every subscriber newest first, each exactly once, by cursor', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const p = await page(`/api/subscribers?limit=40&q=list-${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...p.subscribers.map((x) => x.email));
      cursor = p.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(4);
    expect(seen).toHaveLength(151);
    expect(new Set(seen).size).toBe(151);
    expect(seen[0]).toBe('someone+news@list-other.example');
  });

  it('filters by status, by address contains (case-insensitive, wildcards literal) and by creation date', async () => {
    const pending = await page('/api/subscribers?status=pending&limit=500');
    expect(pending.subscribers).toHaveLength(30);
    expect(pending.subscribers.every((x) => x.status === 'pending')).toBe(true);

    const contains = await page('/api/subscribers?q=CONFIRMED-011');
    expect(contains.subscribers.map((x) => x.email).sort()).toEqual(
      addresses('list-confirmed', 120).filter((e) => e.includes('confirmed-011')),
    );
    expect((await page('/api/subscribers?q=%2Bnews')).subscribers).toHaveLength(1);
    expect((await page('/api/subscribers?q=list_confirmed')).subscribers).toHaveLength(0);
    expect((await page('/api/subscribers?q=%25')).subscribers).toHaveLength(0);

    const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
    expect((await page(`/api/subscribers?since=${tomorrow}`)).subscribers).toHaveLength(0);
    expect((await page('/api/subscribers?since=2000-01-01&status=unsubscribed')).subscribers).toHaveLength(1);
  });

  it('refuses a bad cursor, a bad filter and a missing token with the usual error format', async () => {
    for (const cursor of [
      'nope',
      'bm9wZXxub3Bl',
      Buffer.from("2026-01-01T00:00:00.000000Z|1' or 1=1").toString('base64url'),
    ]) {
      const res = await get(`/api/subscribers?cursor=${cursor}`);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_cursor');
    }
    for (const query of ['status=gone', 'limit=0', 'limit=501', 'since=yesterday', 'since=2026-02-30']) {
      const res = await get(`/api/subscribers?${query}`);
      expect(res.status, query).toBe(422);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_input');
    }
    for (const [method, path] of [
      ['GET', '/api/subscribers'],
      ['GET', '/api/subscribers/export'],
      ['POST', '/api/subscribers/import'],
      ['GET', '/api/subscribers/1'],
      ['DELETE', '/api/subscribers/1'],
      ['GET', '/api/stats'],
    ] as const) {
      const res = await s.app.request(path, {
        method,
        headers: { authorization: 'Bearer wrong-token-0123456789' },
      });
      expect(res.status, `${method} ${path}`).toBe(401);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('unauthorized');
    }
  });
});

describe('one subscriber', () => {
  it('shows their history and which essays they received, from the delivery ledger', async () => {
    await subscribeAndConfirm('history@example.org', 'Hist');
    expect((await s.publish(essay('history-one'))).status).toBe(202);
    await s.drain();
    const letter = s.smtp.to('history@example.org').at(-1);
    const unsubscribed = await s.app.request(`/unsubscribe/${unsubscribeTokenIn(letter?.parsed.text)}`, {
      method: 'POST',
    });
    expect(unsubscribed.status).toBe(200);
    expect((await s.publish(essay('history-two'))).status).toBe(202);
    await s.drain();

    const res = await get('/api/subscribers/History@Example.org');
    expect(res.status).toBe(200);
    const d = (await res.json()) as SubscriberDetail;
    expect(d.subscriber).toMatchObject({
      email: 'history@example.org',
      name: 'Hist',
      status: 'unsubscribed',
    });
    expect(d.history.map((h) => h.kind)).toEqual(['subscribed', 'confirmed', 'unsubscribed']);
    expect(d.essays.map((e) => [e.slug, e.delivery])).toEqual([['history-one', 'sent']]);

    const byId = (await (await get(`/api/subscribers/${d.subscriber.id}`)).json()) as SubscriberDetail;
    expect(byId.subscriber.email).toBe('history@example.org');
  });

  it('shows a bounce with its time', async () => {
    const [bouncer] = await seedSubscribers(s.database.db, 'confirmed', ['bouncer@example.org']);
    await markBounced(s.database.db, [bouncer?.id as number]);
    const d = (await (await get('/api/subscribers/bouncer@example.org')).json()) as SubscriberDetail;
    expect(d.subscriber.status).toBe('bounced');
    expect(d.history.map((h) => h.kind)).toEqual(['subscribed', 'confirmed', 'bounced']);
    expect(d.history.at(-1)?.at).toBe(d.subscriber.bouncedAt);
  });

  it('keeps a bounce in the history after the address subscribes and confirms again', async () => {
    await subscribeAndConfirm('bounced-back@example.org');
    const id = Number(
      (
        await rows<{ id: number }>(
          s.database.db,
          sql`select id from subscribers where email = 'bounced-back@example.org'`,
        )
      )[0]?.id,
    );
    await markBounced(s.database.db, [id]);
    await subscribeAndConfirm('bounced-back@example.org');
    const d = (await (await get('/api/subscribers/bounced-back@example.org')).json()) as SubscriberDetail;
    expect(d.subscriber.status).toBe('confirmed');
    expect(d.subscriber.bouncedAt).toBeNull();
    expect(d.history.map((h) => h.kind)).toEqual([
      'subscribed',
      'confirmed',
      'bounced',
      'subscribed',
      'confirmed',
    ]);
  });

  it('answers 404 for an unknown subscriber', async () => {
    for (const ref of ['nobody@example.org', '999999999', '99999999999', 'x'.repeat(254)]) {
      const res = await get(`/api/subscribers/${ref}`);
      expect(res.status, ref).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('not_found');
      expect(
        (await s.app.request(`/api/subscribers/${ref}`, { method: 'DELETE', headers: auth })).status,
      ).toBe(404);
    }
  });
});

describe('import and export', () => {
  it('imports good rows, reports bad ones by line, and asks for consent unless the file gives it', async () => {
    const before = s.smtp.received.length;
    const csv = [
      'Email Address,Name,Status,Confirmed_At',
      'imp-confirmed@example.org,Ann,confirmed,2024-05-01T10:00:00Z',
      'imp-dated@example.org,,,2024-06-01',
      'imp-pending@example.org,Pat,,',
      'not-an-address,,,',
      'imp-bad-status@example.org,,subscribed-maybe,',
      'imp-unsub@example.org,,unsubscribed,',
      '"imp-quoted@example.org","Smith, ""Q""",pending,',
      'imp-bad-date@example.org,,confirmed,last tuesday',
      '',
      'IMP-PENDING@example.org,Dup,,',
    ].join('\r\n');
    const r = await report(await importCsv(csv));
    expect(r).toMatchObject({
      rows: 9,
      created: 5,
      confirmed: 2,
      queued: 2,
      unsubscribed: 1,
      bounced: 0,
      invalid: 3,
      unchanged: 1,
      updated: 0,
    });
    // Every row is counted once: 5 new (2 + 2 + 1 + 0), 1 repeated, 3 refused.
    expect(r.summary).toBe(
      'Imported 9 rows: 5 new (2 confirmed, 2 sent a confirmation email, 1 unsubscribed, 0 bounced), ' +
        '0 confirmed now, 1 unchanged, 3 refused; 5 + 0 + 1 + 3 = 9 rows read.',
    );
    expect(r.ignoredColumns).toEqual([]);
    expect(r.errors.map((e) => e.line)).toEqual([5, 6, 9]);
    expect(r.errors[0]?.message).toMatch(/^email:/);
    expect(r.errors[1]?.message).toMatch(/^status "subscribed-maybe"/);
    expect(r.errors[2]?.message).toMatch(/^confirmed_at/);

    await s.drain();
    const mailed = s.smtp.received
      .slice(before)
      .map((m) => m.to)
      .sort();
    expect(mailed).toEqual(['imp-pending@example.org', 'imp-quoted@example.org']);
    const confirmed = (await (
      await get('/api/subscribers/imp-confirmed@example.org')
    ).json()) as SubscriberDetail;
    expect(confirmed.subscriber).toMatchObject({
      status: 'confirmed',
      name: 'Ann',
      confirmedAt: '2024-05-01T10:00:00.000Z',
    });
    const quoted = (await (await get('/api/subscribers/imp-quoted@example.org')).json()) as SubscriberDetail;
    expect(quoted.subscriber).toMatchObject({ status: 'pending', name: 'Smith, "Q"' });
    expect(
      (await (await get('/api/subscribers/imp-unsub@example.org')).json()) as SubscriberDetail,
    ).toMatchObject({
      subscriber: { status: 'unsubscribed' },
    });

    // The same file again: nothing changes, nobody is mailed again.
    const again = await report(await importCsv(csv));
    expect(again).toMatchObject({ created: 0, queued: 0, updated: 0, unchanged: 6, invalid: 3 });
    await s.drain();
    expect(s.smtp.received.length - before).toBe(2);
  });

  it('confirms a pending address when a file says it confirmed elsewhere, and never undoes an unsubscribe', async () => {
    await report(await importCsv('email\nupgrade@example.org\n'));
    await report(await importCsv('email,status\nimp-unsub@example.org,confirmed\n'));
    const r = await report(
      await importCsv('email,status\nupgrade@example.org,confirmed\nimp-unsub@example.org,confirmed\n'),
    );
    expect(r).toMatchObject({ created: 0, updated: 1, unchanged: 1 });
    const up = (await (await get('/api/subscribers/upgrade@example.org')).json()) as SubscriberDetail;
    expect(up.subscriber.status).toBe('confirmed');
    expect(up.history.map((h) => h.kind)).toEqual(['subscribed', 'imported', 'confirmed']);
    expect(
      (await (await get('/api/subscribers/imp-unsub@example.org')).json()) as SubscriberDetail,
    ).toMatchObject({
      subscriber: { status: 'unsubscribed' },
    });
  });

  it('refuses a file with no email column, an empty body, or the wrong content type', async () => {
    let res = await importCsv('name,status\nAnn,confirmed\n');
    expect(res.status).toBe(422);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('invalid_csv');
    res = await importCsv('');
    expect(res.status).toBe(422);
    res = await s.app.request('/api/subscribers/import', {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: '{"email":"x@example.org"}',
    });
    expect(res.status).toBe(415);
  });

  it('reports a row the CSV grammar cannot read and goes on with the rest', async () => {
    const r = await report(
      await importCsv(
        'email,name\ngrammar-ok@example.org,A\ngrammar-bad@example.org,"un"closed\ngrammar-ok2@example.org,B\n',
      ),
    );
    expect(r.created).toBe(2);
    expect(r.invalid).toBe(1);
    expect(r.errors[0]?.line).toBe(3);
    expect(r.errors[0]?.message).toMatch(/not valid CSV/);
  });

  it('round-trips: an export imported into a fresh service gives the same list', async () => {
    const res = await get('/api/subscribers/export');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/csv/);
    const csv = await res.text();
    const lines = csv.trimEnd().split('\r\n');
    expect(lines[0]).toBe(
      'email,name,status,created_at,confirmed_at,unsubscribed_at,bounced_at,consent_requested_at,consent_page,' +
        'consent_user_agent,consent_ip,consent_text_version,consent_confirm_page,consent_confirm_user_agent,' +
        'consent_confirm_ip,consent_confirm_text_version',
    );
    const total = ((await (await get('/api/stats')).json()) as StatsView).subscribers.total;
    expect(lines).toHaveLength(total + 1);

    const other = await createTestService();
    try {
      const imported = await other.app.request('/api/subscribers/import', {
        method: 'POST',
        headers: { ...auth, 'content-type': 'text/csv' },
        body: csv,
      });
      const r = (await imported.json()) as ImportReport;
      expect(r).toMatchObject({ rows: total, created: total, invalid: 0 });
      const back = await (await other.app.request('/api/subscribers/export', { headers: auth })).text();
      const key = (text: string) =>
        text
          .trimEnd()
          .split('\r\n')
          .slice(1)
          .map((l) => l.split(',').slice(0, 5).join(','))
          .sort();
      // Same addresses, names, statuses, creation and confirmation times (unsubscribe times are the import's).
      expect(key(back)).toEqual(key(csv));
    } finally {
      await other.close();
    }
  });

  it('exports with the list filters', async () => {
    const csv = await (await get('/api/subscribers/export?status=pending&q=list-pending')).text();
    expect(csv.trimEnd().split('\r\n')).toHaveLength(31);
  });
});

describe('erasure', () => {
  it('removes the address and name from every table and keeps send-out figures as anonymous counts', async () => {
    const email = 'Forget.Me@Example.org';
    await subscribeAndConfirm(email, 'Forgettable Name');
    await s.publish(essay('erase-sent'));
    await s.drain();
    // A send-out under way: the erased subscriber's delivery is still pending.
    await s.publish(essay('erase-pending'));
    const statsBefore = ((await (await get('/api/stats')).json()) as StatsView).sendouts;
    const detail = (await (
      await get(`/api/subscribers/${encodeURIComponent(email)}`)
    ).json()) as SubscriberDetail;

    const res = await s.app.request(`/api/subscribers/${encodeURIComponent(email)}`, {
      method: 'DELETE',
      headers: auth,
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ erased: true, deliveries: 2 });

    // Every text column of every table, searched for the address, its local part and the name.
    const columns = await rows<{ table_name: string; column_name: string }>(
      s.database.db,
      sql`select table_name, column_name from information_schema.columns
          where table_schema = 'public' and data_type in ('text', 'character varying', 'json', 'jsonb')`,
    );
    expect(columns.length).toBeGreaterThan(5);
    for (const { table_name, column_name } of columns) {
      for (const needle of ['forget.me', 'forgettable name', addressKey(email)]) {
        const [found] = await rows<{ n: number }>(
          s.database.db,
          sql`select count(*)::int as n from ${sql.identifier(table_name)}
              where lower(${sql.identifier(column_name)}::text) like ${`%${needle.toLowerCase()}%`}`,
        );
        expect(Number(found?.n), `${table_name}.${column_name} holds ${needle}`).toBe(0);
      }
    }
    for (const table of ['subscribers', 'confirmations', 'subscriber_events']) {
      const idColumn = table === 'subscribers' ? 'id' : 'subscriber_id';
      const [left] = await rows<{ n: number }>(
        s.database.db,
        sql`select count(*)::int as n from ${sql.identifier(table)} where ${sql.identifier(idColumn)} = ${detail.subscriber.id}`,
      );
      expect(Number(left?.n), table).toBe(0);
    }
    const [ledger] = await rows<{ n: number }>(
      s.database.db,
      sql`select count(*)::int as n from deliveries where subscriber_id = ${detail.subscriber.id}`,
    );
    expect(Number(ledger?.n)).toBe(0);

    // The send-out under way finishes; the figures count the erased delivery (skipped), and nothing else moved.
    await s.drain();
    const statsAfter = ((await (await get('/api/stats')).json()) as StatsView).sendouts;
    const sent = (list: StatsView['sendouts'], slug: string) => list.find((x) => x.slug === slug)?.sendout;
    expect(sent(statsAfter, 'erase-sent')).toEqual(sent(statsBefore, 'erase-sent'));
    const pending = sent(statsAfter, 'erase-pending');
    expect(pending?.status).toBe('done');
    expect(pending?.total).toBe(sent(statsBefore, 'erase-pending')?.total);
    expect(pending?.skipped).toBe(1);
    expect(
      s.smtp.to(email.toLowerCase()).filter((m) => m.parsed.subject === 'Title of erase-pending'),
    ).toHaveLength(0);
    expect((await get(`/api/subscribers/${detail.subscriber.id}`)).status).toBe(404);

    // They may come back: as someone new.
    expect((await s.subscribeJson(email)).status).toBe(202);
  });
});

describe('stats', () => {
  it('counts subscribers by status, growth per day, and each send-out', async () => {
    const res = await get('/api/stats?days=3&sendouts=2');
    expect(res.status).toBe(200);
    const st = (await res.json()) as StatsView;
    const [byStatus] = await rows<{ total: number; confirmed: number }>(
      s.database.db,
      sql`select count(*)::int as total, (count(*) filter (where status = 'confirmed'))::int as confirmed from subscribers`,
    );
    expect(st.subscribers.total).toBe(Number(byStatus?.total));
    expect(st.subscribers.confirmed).toBe(Number(byStatus?.confirmed));
    expect(
      st.subscribers.pending +
        st.subscribers.confirmed +
        st.subscribers.unsubscribed +
        st.subscribers.bounced,
    ).toBe(st.subscribers.total);
    expect(st.growth).toHaveLength(3);
    const today = new Date().toISOString().slice(0, 10);
    expect(st.growth.at(-1)?.day).toBe(today);
    expect(st.growth.at(-1)?.subscribed).toBeGreaterThan(150);
    expect(st.sendouts.map((x) => x.slug)).toEqual(['erase-pending', 'erase-sent']);
    expect((await get('/api/stats?days=0')).status).toBe(422);
  });
});

describe('the OpenAPI document', () => {
  it('is valid OpenAPI and lists every /api route and every public JSON endpoint', async () => {
    const res = await s.app.request('/openapi.json');
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(doc.openapi).toBe('3.1.0');
    await SwaggerParser.validate(structuredClone(doc) as never);

    const documented = new Set(
      Object.entries(doc.paths).flatMap(([path, ops]) =>
        Object.keys(ops).map((m) => `${m.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ':$1')}`),
      ),
    );
    const apiRoutes = s.app.routes
      .filter((r) => r.path.startsWith('/api/') && !r.path.includes('*') && r.method !== 'ALL')
      .map((r) => `${r.method} ${r.path}`);
    expect(apiRoutes.length).toBeGreaterThanOrEqual(8);
    for (const route of apiRoutes) expect(documented, route).toContain(route);
    for (const route of [
      'POST /subscribe',
      'POST /confirm/:token',
      'POST /unsubscribe/:token',
      'GET /healthz',
      'GET /readyz',
    ]) {
      expect(documented, route).toContain(route);
    }
  });

  it('has a reference page at /docs that loads nothing from another origin', async () => {
    const res = await s.app.request('/docs');
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).not.toMatch(/https?:\/\//);
    expect(res.headers.get('content-security-policy')).toMatch(/script-src 'self'(;|$)/);
    const script = await s.app.request('/docs/swagger-ui-bundle.js');
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toMatch(/javascript/);
    const style = await s.app.request('/docs/swagger-ui.css');
    expect(style.status).toBe(200);
    expect(style.headers.get('content-type')).toMatch(/^text\/css/);
    // Other pages still run no scripts.
    expect((await s.app.request('/form')).headers.get('content-security-policy')).not.toMatch(/script-src/);
  });
});
