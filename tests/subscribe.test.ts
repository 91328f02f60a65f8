import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
import {
  errorIn,
  headersWithoutDate,
  postForm,
  postJson,
  readerTables,
  subscribersFor,
  tableCounts,
} from './support/reader.js';
import type { TestService } from './support/service.js';
import { confirmTokenIn, createTestService, PUBLIC_URL, unsubscribeTokenIn } from './support/service.js';

const SITE = 'https://site.example';

/** Subscribes, mails the confirmation and returns the token in its link. */
async function subscribeAndGetToken(s: TestService, email: string, name?: string): Promise<string> {
  const before = s.smtp.to(email).length;
  expect((await s.subscribeJson(email, name)).status).toBe(202);
  await s.drain();
  const mails = s.smtp.to(email);
  expect(mails).toHaveLength(before + 1);
  return confirmTokenIn(mails.at(-1)?.parsed.text);
}

async function confirmed(s: TestService, email: string, name?: string): Promise<void> {
  const token = await subscribeAndGetToken(s, email, name);
  expect((await s.app.request(`/confirm/${token}`, { method: 'POST' })).status).toBe(200);
}

describe('subscribing from a site form or a script', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService({ ALLOWED_ORIGINS: SITE });
  });
  afterAll(() => s?.close());

  it('a JSON subscription is answered 202 {"status":"pending"} and mails a confirmation', async () => {
    const res = await postJson(s, '/subscribe', { email: 'json@example.org' });
    expect(res.status).toBe(202);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await res.json()).toEqual({ status: 'pending' });
    expect(await subscribersFor(s.database.db, 'json@example.org')).toMatchObject([{ status: 'pending' }]);

    await s.drain();
    const [mail] = s.smtp.to('json@example.org');
    expect(mail?.parsed.subject).toContain('Confirm');
    expect(confirmTokenIn(mail?.parsed.text)).toHaveLength(43);
  });

  it('a plain form post is sent 303 to the built-in check-your-inbox page, which is an HTML page', async () => {
    const res = await postForm(s, '/subscribe', { email: 'form@example.org' });
    expect(res.status).toBe(303);
    const location = res.headers.get('location');
    expect(location).toBe(`${PUBLIC_URL}/check-inbox`);

    const page = await s.app.request(new URL(location ?? '').pathname);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await page.text()).toContain('Check your inbox');
    expect(await subscribersFor(s.database.db, 'form@example.org')).toHaveLength(1);
  });

  it('a multipart form post is accepted like a urlencoded one', async () => {
    const body = new FormData();
    body.set('email', 'multipart@example.org');
    body.set('name', 'Multi');
    const res = await s.app.request('/subscribe', { method: 'POST', body });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(`${PUBLIC_URL}/check-inbox`);
    expect(await subscribersFor(s.database.db, 'multipart@example.org')).toHaveLength(1);
  });

  it('a form post goes back to `redirect` when its origin is allowed', async () => {
    const res = await postForm(s, '/subscribe', {
      email: 'redirected@example.org',
      redirect: `${SITE}/thanks?from=footer`,
    });
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(`${SITE}/thanks?from=footer`);
    expect(await subscribersFor(s.database.db, 'redirected@example.org')).toHaveLength(1);
  });

  it('a redirect to another origin is refused with 422 invalid_redirect and nothing is written', async () => {
    const before = await tableCounts(s.database.db);
    for (const redirect of [
      'https://evil.example/phish',
      'https://site.example.evil.example/',
      'http://site.example/thanks',
      '//evil.example/',
      'javascript:alert(1)',
    ]) {
      const res = await postForm(
        s,
        '/subscribe',
        { email: 'victim@example.org', redirect },
        { accept: 'application/json' },
      );
      expect(res.status, redirect).toBe(422);
      expect((await errorIn(res)).code).toBe('invalid_redirect');
      const page = await postForm(s, '/subscribe', { email: 'victim@example.org', redirect });
      expect(page.status).toBe(422);
      expect(page.headers.get('location')).toBeNull();
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    }
    expect(await tableCounts(s.database.db)).toEqual(before);
  });

  it('a form post that asks for JSON (Accept: application/json) gets the JSON answer', async () => {
    const res = await postForm(
      s,
      '/subscribe',
      { email: 'accept@example.org' },
      { accept: 'application/json' },
    );
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ status: 'pending' });
  });

  it('a page on an allowed origin can fetch /subscribe: the answer carries CORS headers', async () => {
    const res = await postJson(s, '/subscribe', { email: 'cors@example.org' }, { origin: SITE });
    expect(res.status).toBe(202);
    expect(res.headers.get('access-control-allow-origin')).toBe(SITE);
    expect(res.headers.get('vary')).toBe('Origin');
    // Refusals too: an invalid address and a redirect to another origin.
    const invalid = await postJson(s, '/subscribe', { email: 'nope' }, { origin: SITE });
    const redirect = await postJson(
      s,
      '/subscribe',
      { email: 'cors@example.org', redirect: 'https://evil.example/' },
      { origin: SITE },
    );
    for (const [what, answer, status] of [
      ['invalid', invalid, 422],
      ['redirect', redirect, 422],
    ] as const) {
      expect(answer.status, what).toBe(status);
      expect(answer.headers.get('access-control-allow-origin'), what).toBe(SITE);
      expect(answer.headers.get('vary'), what).toBe('Origin');
    }
  });

  it('an address is trimmed, compared case-insensitively and stored once', async () => {
    expect((await s.subscribeJson('A@X.org')).status).toBe(202);
    expect((await s.subscribeJson(' a@x.ORG ')).status).toBe(202);
    expect((await postForm(s, '/subscribe', { email: '\tA@x.Org\n' })).status).toBe(303);
    const found = await subscribersFor(s.database.db, 'a@x.org');
    expect(found).toHaveLength(1);
    expect(found[0]?.email).toBe('A@X.org');
  });
});

describe('many subscriptions at the same time', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService();
  });
  afterAll(() => s?.close());

  it('each is written: one subscriber per address, a request for each time, one email per address', async () => {
    const emails = Array.from({ length: 20 }, (_, i) => `burst${i}@example.org`);
    const answers = await Promise.all([
      ...emails.map((email) => s.subscribeJson(email, 'First')),
      ...emails.map((email) => s.subscribeJson(` ${email.toUpperCase()}`)),
    ]);
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 202));
    const written = await rows<{ email: string; requests: number; events: number; names: string }>(
      s.database.db,
      sql`select s.email,
                 (select count(*)::int from confirmations c where c.subscriber_id = s.id) as requests,
                 (select count(*)::int from subscriber_events e
                  where e.subscriber_id = s.id and e.kind = 'subscribed') as events,
                 (select string_agg(coalesce(c.name, '-'), ',' order by c.id) from confirmations c
                  where c.subscriber_id = s.id) as names
          from subscribers s where s.email like 'burst%' order by s.email`,
    );
    expect(written.map((w) => w.email).sort()).toEqual([...emails].sort());
    for (const w of written) expect(w).toMatchObject({ requests: 2, events: 2, names: 'First,-' });
    await s.drain();
    for (const email of emails) expect(s.smtp.to(email), email).toHaveLength(1);
  });

  it('a name cut off in the middle of an emoji (half a surrogate pair) is taken, the half as U+FFFD', async () => {
    const cut = 'Ann 😀'.slice(0, -1);
    expect((await s.subscribeJson('cut@example.org', cut)).status).toBe(202);
    const [request] = await rows<{ name: string }>(
      s.database.db,
      sql`select c.name from confirmations c join subscribers s on s.id = c.subscriber_id
          where s.email = 'cut@example.org'`,
    );
    expect(request?.name).toBe('Ann \ufffd');
  });

  it('those that arrive while one is being written are written together (one transaction, one time)', async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => s.subscribeJson(`together${i}@example.org`)));
    // now() is the transaction's start: one statement for many subscribers gives them one created_at.
    const [times] = await rows<{ distinct: number }>(
      s.database.db,
      sql`select count(distinct created_at)::int as distinct from subscribers where email like 'together%'`,
    );
    expect(Number(times?.distinct)).toBeLessThan(20);
  });
});

describe('the public answer reveals nothing about an address', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService({ CONFIRM_RESEND_MINUTES: '0' });
  });
  afterAll(() => s?.close());

  it('the public answer is the same whether the address is new, pending, confirmed or unsubscribed', async () => {
    await s.subscribeJson('pending@example.org');
    await s.drain();
    await confirmed(s, 'confirmed@example.org');
    await confirmed(s, 'gone@example.org');
    const [gone] = await subscribersFor(s.database.db, 'gone@example.org');
    expect((await s.app.request(`/unsubscribe/${gone?.unsubscribe_token}`, { method: 'POST' })).status).toBe(
      200,
    );

    const addresses = ['new@example.org', 'pending@example.org', 'confirmed@example.org', 'gone@example.org'];
    const statuses = await Promise.all(
      addresses.map(async (a) => (await subscribersFor(s.database.db, a))[0]?.status),
    );
    expect(statuses).toEqual([undefined, 'pending', 'confirmed', 'unsubscribed']);

    const answers = [];
    for (const email of addresses) {
      for (const res of [
        await s.subscribeJson(email),
        await postForm(s, '/subscribe', { email }),
        await postForm(s, '/subscribe', { email }, { accept: 'application/json' }),
      ]) {
        answers.push({ status: res.status, body: await res.text(), headers: headersWithoutDate(res) });
      }
    }
    const [json, form, formJson] = answers;
    for (let i = 0; i < answers.length; i += 3) {
      expect(answers[i]).toEqual(json);
      expect(answers[i + 1]).toEqual(form);
      expect(answers[i + 2]).toEqual(formJson);
    }
  });
});

describe('who gets a confirmation email', () => {
  let s: TestService;
  let eager: TestService;
  beforeAll(async () => {
    [s, eager] = await Promise.all([createTestService(), createTestService({ CONFIRM_RESEND_MINUTES: '0' })]);
  });
  afterAll(async () => {
    await s?.close();
    await eager?.close();
  });

  it('a confirmed address gets no email when it is subscribed again', async () => {
    await confirmed(s, 'reader@example.org');
    await rows(s.database.db, sql`update confirmations set sent_at = now() - interval '1 day'`);
    expect((await s.subscribeJson('Reader@example.org')).status).toBe(202);
    await s.drain();
    expect(s.smtp.to('reader@example.org')).toHaveLength(1);
    expect(await subscribersFor(s.database.db, 'reader@example.org')).toMatchObject([
      { status: 'confirmed' },
    ]);
  });

  it('a pending address gets its confirmation again, but not twice within CONFIRM_RESEND_MINUTES', async () => {
    await subscribeAndGetToken(s, 'twice@example.org');
    expect((await s.subscribeJson('twice@example.org')).status).toBe(202);
    await s.drain();
    expect(s.smtp.to('twice@example.org')).toHaveLength(1);

    // Once the window has passed, a new request mails the confirmation again.
    await rows(
      s.database.db,
      sql`update confirmations set sent_at = sent_at - interval '6 minutes'
          where subscriber_id in (select id from subscribers where email = 'twice@example.org')`,
    );
    expect((await s.subscribeJson('twice@example.org')).status).toBe(202);
    await s.drain();
    expect(s.smtp.to('twice@example.org')).toHaveLength(2);
    expect(await subscribersFor(s.database.db, 'twice@example.org')).toMatchObject([{ status: 'pending' }]);
  });

  it('with CONFIRM_RESEND_MINUTES=0 every request for a pending address mails the confirmation', async () => {
    await subscribeAndGetToken(eager, 'eager@example.org');
    await subscribeAndGetToken(eager, 'eager@example.org');
    await subscribeAndGetToken(eager, 'eager@example.org');
    expect(eager.smtp.to('eager@example.org')).toHaveLength(3);
  });

  it('an unsubscribed reader who subscribes again gets a new confirmation and is confirmed only after confirming', async () => {
    await confirmed(s, 'back@example.org');
    const publish = await s.publish({ slug: 'one', title: 'One', url: 'https://example.org/one' });
    expect(publish.status).toBe(202);
    await s.drain();
    const letter = s.smtp.to('back@example.org').at(-1);
    expect(letter?.parsed.subject).toBe('One');
    const unsubscribe = unsubscribeTokenIn(letter?.raw);
    expect((await s.app.request(`/unsubscribe/${unsubscribe}`, { method: 'POST' })).status).toBe(200);
    expect(await subscribersFor(s.database.db, 'back@example.org')).toMatchObject([
      { status: 'unsubscribed' },
    ]);

    const token = await subscribeAndGetToken(s, 'back@example.org');
    expect(await subscribersFor(s.database.db, 'back@example.org')).toMatchObject([
      { status: 'unsubscribed' },
    ]);
    await s.publish({ slug: 'two', title: 'Two', url: 'https://example.org/two' });
    await s.drain();
    expect(s.smtp.to('back@example.org').map((m) => m.parsed.subject)).not.toContain('Two');

    expect((await s.app.request(`/confirm/${token}`, { method: 'POST' })).status).toBe(200);
    expect(await subscribersFor(s.database.db, 'back@example.org')).toMatchObject([{ status: 'confirmed' }]);
    await s.publish({ slug: 'three', title: 'Three', url: 'https://example.org/three' });
    await s.drain();
    expect(s.smtp.to('back@example.org').map((m) => m.parsed.subject)).toContain('Three');
  });
});

describe('confirming a subscription', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService({ CONFIRM_RESEND_MINUTES: '0' });
  });
  afterAll(() => s?.close());

  it('the confirmation link opens a page with one button that POSTs, and the GET changes nothing', async () => {
    const token = await subscribeAndGetToken(s, 'scanner@example.org');
    const before = await readerTables(s.database.db);

    for (let i = 0; i < 3; i++) {
      const page = await s.app.request(`/confirm/${token}`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toMatch(/^text\/html/);
      expect(page.headers.get('cache-control')).toBe('no-store');
      const html = await page.text();
      expect(html.match(/<form\b/g)).toHaveLength(1);
      expect(html.match(/<button\b/g)).toHaveLength(1);
      expect(html).toContain(`<form method="post" action="${PUBLIC_URL}/confirm/${token}">`);
    }
    const head = await s.app.request(`/confirm/${token}`, { method: 'HEAD' });
    expect(head.status).toBe(200);

    expect(await readerTables(s.database.db)).toEqual(before);
    expect(await subscribersFor(s.database.db, 'scanner@example.org')).toMatchObject([{ status: 'pending' }]);
  });

  it('POSTing the confirmation confirms the subscriber, and a second POST is fine', async () => {
    const token = await subscribeAndGetToken(s, 'confirm@example.org');
    const res = await s.app.request(`/confirm/${token}`, { method: 'POST' });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('subscribed');
    expect(await subscribersFor(s.database.db, 'confirm@example.org')).toMatchObject([
      { status: 'confirmed' },
    ]);

    const again = await s.app.request(`/confirm/${token}`, { method: 'POST' });
    expect(again.status).toBe(200);
    const json = await s.app.request(`/confirm/${token}`, {
      method: 'POST',
      headers: { accept: 'application/json' },
    });
    expect(json.status).toBe(200);
    expect(await json.json()).toEqual({ status: 'confirmed' });
    expect(await subscribersFor(s.database.db, 'confirm@example.org')).toMatchObject([
      { status: 'confirmed' },
    ]);
  });

  it('the name is stored when the address is confirmed, not before', async () => {
    const token = await subscribeAndGetToken(s, 'named@example.org', '  Ann Reader ');
    expect(await subscribersFor(s.database.db, 'named@example.org')).toMatchObject([{ name: null }]);
    expect((await s.app.request(`/confirm/${token}`, { method: 'POST' })).status).toBe(200);
    expect(await subscribersFor(s.database.db, 'named@example.org')).toMatchObject([
      { name: 'Ann Reader', status: 'confirmed' },
    ]);
  });

  it('a urlencoded form is read as browsers encode it, over a real HTTP server too', async () => {
    // `+` is a space and `%2B` a plus; UTF-8 is percent-encoded; the first of a repeated field counts.
    const body = 'email=zoe%2Bnews%40example.org&name=Zo%C3%AB+van+Dijk&email=other%40example.org';
    const server = serve({ fetch: s.app.fetch, port: 0, hostname: '127.0.0.1' });
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    try {
      const { port } = server.address() as AddressInfo;
      const res = await fetch(`http://127.0.0.1:${port}/subscribe`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' },
        body,
        redirect: 'manual',
      });
      expect(res.status).toBe(303);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    expect(await subscribersFor(s.database.db, 'other@example.org')).toHaveLength(0);
    await s.drain();
    const token = confirmTokenIn(s.smtp.to('zoe+news@example.org').at(-1)?.parsed.text);
    expect((await s.app.request(`/confirm/${token}`, { method: 'POST' })).status).toBe(200);
    expect(await subscribersFor(s.database.db, 'zoe+news@example.org')).toMatchObject([
      { name: 'Zoë van Dijk', status: 'confirmed' },
    ]);
  });

  it('a name typed by someone else never reaches a confirmed subscriber', async () => {
    await confirmed(s, 'kept@example.org', 'Kept');
    expect((await s.subscribeJson('kept@example.org', 'Mallory was here')).status).toBe(202);
    await s.drain();
    expect(await subscribersFor(s.database.db, 'kept@example.org')).toMatchObject([{ name: 'Kept' }]);
  });

  it('with an older and a newer confirmation email, either link confirms', async () => {
    const first = await subscribeAndGetToken(s, 'two-links@example.org');
    const second = await subscribeAndGetToken(s, 'two-links@example.org');
    expect(first).not.toBe(second);
    expect((await s.app.request(`/confirm/${first}`, { method: 'POST' })).status).toBe(200);
    expect((await s.app.request(`/confirm/${second}`, { method: 'POST' })).status).toBe(200);
    expect(await subscribersFor(s.database.db, 'two-links@example.org')).toMatchObject([
      { status: 'confirmed' },
    ]);
  });
});

describe('unsubscribing', () => {
  let s: TestService;
  let token: string;
  beforeAll(async () => {
    s = await createTestService();
    await confirmed(s, 'leaving@example.org');
    await s.publish({ slug: 'first', title: 'First', url: 'https://example.org/first' });
    await s.drain();
    const letter = s.smtp.to('leaving@example.org').at(-1);
    token = unsubscribeTokenIn(letter?.raw);
    const headers = letter?.raw.split(/\r?\n\r?\n/)[0]?.replace(/\r?\n[ \t]+/g, ' ');
    expect(headers).toMatch(/^List-Unsubscribe-Post: List-Unsubscribe=One-Click\r?$/m);
    expect(headers).toContain(`List-Unsubscribe: <${PUBLIC_URL}/unsubscribe/${token}>`);
  });
  afterAll(() => s?.close());

  it('the unsubscribe link opens a page with one button that POSTs, and the GET changes nothing', async () => {
    const before = await readerTables(s.database.db);
    const page = await s.app.request(`/unsubscribe/${token}`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html.match(/<form\b/g)).toHaveLength(1);
    expect(html.match(/<button\b/g)).toHaveLength(1);
    expect(html).toContain(`<form method="post" action="${PUBLIC_URL}/unsubscribe/${token}">`);
    expect(await readerTables(s.database.db)).toEqual(before);
    expect(await subscribersFor(s.database.db, 'leaving@example.org')).toMatchObject([
      { status: 'confirmed' },
    ]);
  });

  it('a one-click POST (RFC 8058) unsubscribes at once and answers 200 itself, not a redirect', async () => {
    const res = await postForm(s, `/unsubscribe/${token}`, 'List-Unsubscribe=One-Click');
    expect(res.status).toBe(200);
    expect(res.headers.get('location')).toBeNull();
    const html = await res.text();
    expect(html).toContain('unsubscribed');
    expect(html).toContain(`action="${PUBLIC_URL}/subscribe"`);
    expect(await subscribersFor(s.database.db, 'leaving@example.org')).toMatchObject([
      { status: 'unsubscribed' },
    ]);

    await s.publish({ slug: 'second', title: 'Second', url: 'https://example.org/second' });
    await s.drain();
    expect(s.smtp.to('leaving@example.org').map((m) => m.parsed.subject)).not.toContain('Second');
  });

  it('unsubscribing twice, with any body or none, is fine', async () => {
    const bare = await s.app.request(`/unsubscribe/${token}`, { method: 'POST' });
    expect(bare.status).toBe(200);
    const again = await postForm(s, `/unsubscribe/${token}`, 'List-Unsubscribe=One-Click');
    expect(again.status).toBe(200);
    const json = await s.app.request(`/unsubscribe/${token}`, {
      method: 'POST',
      headers: { accept: 'application/json' },
    });
    expect(json.status).toBe(200);
    expect(await json.json()).toEqual({ status: 'unsubscribed' });
    expect(await subscribersFor(s.database.db, 'leaving@example.org')).toMatchObject([
      { status: 'unsubscribed' },
    ]);
  });

  it('a one-click POST also works for a reader who never confirmed', async () => {
    await s.subscribeJson('never@example.org');
    const [row] = await subscribersFor(s.database.db, 'never@example.org');
    const res = await postForm(s, `/unsubscribe/${row?.unsubscribe_token}`, 'List-Unsubscribe=One-Click');
    expect(res.status).toBe(200);
    expect(await subscribersFor(s.database.db, 'never@example.org')).toMatchObject([
      { status: 'unsubscribed' },
    ]);
  });
});

describe('health', () => {
  let s: TestService;
  beforeAll(async () => {
    s = await createTestService();
  });
  afterAll(() => s?.close());

  it('/healthz answers 200 while the process is up', async () => {
    const res = await s.app.request('/healthz');
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('/readyz answers 200 when the database answers', async () => {
    const res = await s.app.request('/readyz');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ready' });
  });

  it('the stylesheet the pages link to is served', async () => {
    const res = await s.app.request('/assets/style.css');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/css/);
  });
});
