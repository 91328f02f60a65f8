import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
import { csrfIn, signIn } from './support/admin.js';
import { addresses, seedSubscribers } from './support/sendout.js';
import type { TestService } from './support/service.js';
import { createTestService } from './support/service.js';

/** The numbers of a <dl class="figures"> as {label: number}. */
function figures(html: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of html.matchAll(/<dt>([^<]+)<\/dt><dd>(\d+)<\/dd>/g)) out[m[1] as string] = Number(m[2]);
  return out;
}

describe('the publisher dashboard', () => {
  let s: TestService;

  beforeAll(async () => {
    s = await createTestService({ WRONG_TOKEN_LIMIT_PER_IP: '0' });
    const db = s.database.db;
    await seedSubscribers(db, 'confirmed', addresses('reader', 5));
    await seedSubscribers(db, 'pending', addresses('waiting', 2));
    await seedSubscribers(db, 'unsubscribed', addresses('gone', 1));
    await seedSubscribers(db, 'bounced', addresses('bounced', 1));
    await db.execute(sql`update subscribers set unsubscribed_at = now() where status = 'unsubscribed'`);
    await db.execute(sql`update subscribers set bounced_at = now() where status = 'bounced'`);
  });

  afterAll(async () => {
    await s?.close();
  });

  it('signs in with the publisher token and shows the overview', async () => {
    const admin = await signIn(s);
    const res = await admin.get('/admin');
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('<h1>Overview</h1>');
    expect(html).toContain('<svg class="chart"');
    expect(html).toContain('Growth as a table');
  });

  it("the overview's subscriber counts and growth match the database", async () => {
    const admin = await signIn(s);
    const html = await (await admin.get('/admin')).text();
    const counted = await rows<{ status: string; n: number }>(
      s.database.db,
      sql`select status::text as status, count(*)::int as n from subscribers group by status`,
    );
    const by = Object.fromEntries(counted.map((r) => [r.status, Number(r.n)]));
    expect(figures(html)).toMatchObject({
      Confirmed: by.confirmed,
      Pending: by.pending,
      Unsubscribed: by.unsubscribed,
      Bounced: by.bounced,
      Total: 9,
    });
    const today = new Date().toISOString().slice(0, 10);
    expect(html).toContain(`<tr><th scope="row">${today}</th><td>5</td><td>1</td><td>1</td><td>0</td></tr>`);
    expect(html).toContain('0 of them reported an essay as spam');
    expect(html).toMatch(/5 new confirmed subscribers \(bars above the line\), 1 unsubscribed and 1 bounced/);
  });

  it('previews the letter as it will be sent, and sends nothing before the confirmation', async () => {
    const admin = await signIn(s);
    const form = await admin.get('/admin/publish');
    expect(form.status).toBe(200);
    const essay = {
      slug: 'on-maps',
      title: 'On maps & <territories>',
      url: 'https://essays.example.test/maps',
      summary: 'Why the map is not the territory.',
    };
    const preview = await admin.post('/admin/publish/preview', essay);
    expect(preview.status).toBe(200);
    const html = await preview.text();
    expect(html).toContain('Send to 5 confirmed subscribers');
    expect(html).toContain('On maps &amp; &lt;territories&gt;');
    expect(html).toContain('<iframe class="letter" src="/admin/publish/preview-frame?');
    expect(html).toContain('Read it here: https://essays.example.test/maps');
    const frameUrl = /<iframe class="letter" src="([^"]+)"/.exec(html)?.[1]?.replace(/&amp;/g, '&') ?? '';
    const frame = await admin.get(frameUrl);
    expect(frame.status).toBe(200);
    expect(frame.headers.get('content-security-policy')).toContain('sandbox');
    expect(await frame.text()).toContain('href="https://essays.example.test/maps"');

    const [{ n }] = (await rows<{ n: number }>(
      s.database.db,
      sql`select count(*)::int as n from essays`,
    )) as [{ n: number }];
    expect(Number(n)).toBe(0);
    await s.drain();
    expect(s.smtp.received.filter((m) => m.parsed.subject?.includes('On maps'))).toEqual([]);
  });

  it('the preview shows the same text and HTML parts the subscriber receives', async () => {
    const admin = await signIn(s);
    const essay = {
      slug: 'on-rivers',
      title: 'On rivers',
      url: 'https://essays.example.test/rivers',
      summary: '',
    };
    const html = await (await admin.post('/admin/publish/preview', essay)).text();
    const shownText = /<pre tabindex="0" aria-label="The letter's text part">([\s\S]*?)<\/pre>/.exec(
      html,
    )?.[1];
    expect(shownText).toBeTruthy();
    const frameUrl = /<iframe class="letter" src="([^"]+)"/.exec(html)?.[1]?.replace(/&amp;/g, '&') ?? '';
    const shownHtml = await (await admin.get(frameUrl)).text();
    const sent = await admin.post('/admin/publish', essay);
    expect(sent.status).toBe(303);
    await s.drain();
    const letter = s.smtp.to('reader-0000@example.org').find((m) => m.parsed.subject?.includes('On rivers'));
    const decodeEntities = (t: string) =>
      t
        .replace(/&#(\d+);/g, (_, c) => String.fromCharCode(Number(c)))
        .replace(/&amp;/g, '&')
        .replace(/&lt;/g, '<')
        .replace(/&gt;/g, '>')
        .replace(/&quot;/g, '"');
    const expected = decodeEntities(shownText ?? '').replace(
      /\/unsubscribe\/preview[-a-z]+/,
      '/unsubscribe/TOKEN',
    );
    const got = (letter?.parsed.text ?? '').replace(/\/unsubscribe\/[A-Za-z0-9_-]{43}/, '/unsubscribe/TOKEN');
    expect(got.trim()).toBe(expected.trim());
    const token = /\/unsubscribe\/[A-Za-z0-9_-]{43}/g;
    const placeholder = /\/unsubscribe\/preview[-a-z]+/g;
    expect(String(letter?.parsed.html).replace(token, '/unsubscribe/TOKEN').trim()).toBe(
      shownHtml.replace(placeholder, '/unsubscribe/TOKEN').trim(),
    );
  });

  it('publishing after the confirmation sends exactly one letter per confirmed subscriber', async () => {
    const admin = await signIn(s);
    const essay = {
      slug: 'on-bridges',
      title: 'On bridges',
      url: 'https://essays.example.test/bridges',
      summary: 'Spans.',
    };
    const res = await admin.post('/admin/publish', essay);
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe('/admin/sendouts/on-bridges');
    // A second press (a double click, a reload) sends nothing more.
    const again = await admin.post('/admin/publish', essay);
    expect(again.headers.get('location')).toBe('/admin/sendouts/on-bridges?existing=1');
    await s.drain();
    const letters = s.smtp.received.filter((m) => m.parsed.subject?.includes('On bridges'));
    expect(letters.map((m) => m.to).sort()).toEqual(addresses('reader', 5));

    const page = await admin.get('/admin/sendouts/on-bridges');
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('<h1>On bridges</h1>');
    expect(figures(html)).toMatchObject({ Sent: 5, Pending: 0, Failed: 0 });
    expect(html).toContain('<progress id="progress-on-bridges" max="5" value="5"');
    expect(html).toContain('Deliveries by state since publishing');

    const progress = await admin.get('/admin/sendouts/on-bridges/progress', { accept: 'application/json' });
    expect(await progress.json()).toMatchObject({ status: 'done', total: 5, sent: 5, done: 5, percent: 100 });
  });

  it('a send-out page lists the failed deliveries with their reason', async () => {
    const admin = await signIn(s);
    s.smtp.onRecipient = (to) =>
      to === 'reader-0003@example.org' ? { code: 550, message: 'No such mailbox here' } : undefined;
    try {
      await admin.post('/admin/publish', {
        slug: 'on-walls',
        title: 'On walls',
        url: 'https://essays.example.test/walls',
      });
      await s.drain();
    } finally {
      s.smtp.onRecipient = undefined;
    }
    const html = await (await admin.get('/admin/sendouts/on-walls')).text();
    expect(figures(html)).toMatchObject({ Sent: 4, Failed: 1 });
    expect(html).toContain('reader-0003@example.org');
    expect(html).toContain('No such mailbox here');
  });

  it('refuses an invalid essay with what to fix, and keeps what was typed', async () => {
    const admin = await signIn(s);
    const res = await admin.post('/admin/publish/preview', {
      slug: 'bad slug',
      title: 'Kept title',
      url: 'ftp://x',
    });
    expect(res.status).toBe(422);
    const html = await res.text();
    expect(html).toContain('role="alert"');
    expect(html).toContain('slug may hold letters');
    expect(html).toContain('value="Kept title"');
  });

  it('finds a subscriber by part of their address and shows their history', async () => {
    const admin = await signIn(s);
    const res = await admin.get('/admin/subscribers?q=reader-0002');
    expect(res.status).toBe(200);
    const html = await res.text();
    const link = /<a href="(\/admin\/subscribers\/\d+)">reader-0002@example.org<\/a>/.exec(html)?.[1];
    expect(link).toBeTruthy();
    expect(html).not.toContain('reader-0001@example.org');
    const detail = await (await admin.get(link as string)).text();
    expect(detail).toContain('<h1>reader-0002@example.org</h1>');
    expect(detail).toMatch(/<span>confirmed<\/span>/);
    expect(detail).toContain('On bridges');
    expect(detail).toMatch(/On bridges<\/a><\/th><td role="cell" data-label="Delivery">sent<\/td>/);
  });

  it('a search that matches nobody says so', async () => {
    const admin = await signIn(s);
    const html = await (await admin.get('/admin/subscribers?q=nobody-here')).text();
    expect(html).toContain('No subscriber matches an address containing “nobody-here”.');
  });

  it("an unknown page, send-out or subscriber is a 404 page in the dashboard's layout", async () => {
    const admin = await signIn(s);
    for (const path of [
      '/admin/no-such-page',
      '/admin/sendouts/no-such-essay',
      '/admin/subscribers/999999',
    ]) {
      const res = await admin.get(path);
      expect(res.status, path).toBe(404);
      const html = await res.text();
      expect(html, path).toContain('<title>Page not found · Test Essays dashboard</title>');
      expect(html, path).toContain('<nav aria-label="Dashboard">');
      expect(html, path).toContain('<a href="/admin">Back to the overview</a>');
      // Not the readers' page: no footer promise, no link back to the site.
      expect(html, path).not.toContain('Unsubscribe anytime');
    }
  });

  it("an error before signing in is in the dashboard's layout too, without its navigation", async () => {
    const res = await s.app.request('/admin/sign-in', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://localhost' },
      body: 'csrf=forged&token=x',
    });
    expect(res.status).toBe(403);
    const html = await res.text();
    expect(html).toContain('<title>Sign-in form expired · Test Essays dashboard</title>');
    expect(html).not.toContain('<nav');
    expect(html).toContain('<a href="/admin/sign-in">Sign in to the dashboard</a>');
  });

  it('signing out ends the session in the browser', async () => {
    const admin = await signIn(s);
    const out = await admin.post('/admin/sign-out', {});
    expect(out.status).toBe(303);
    expect(out.headers.get('location')).toBe('/admin/sign-in');
    expect(out.headers.getSetCookie().join('\n')).toMatch(/oneletter_admin=;.*Max-Age=0/);
    expect(csrfIn(await (await s.app.request('/admin/sign-in')).text())).toBeTruthy();
  });
});

describe('the dashboard over plain http', () => {
  it('the sign-in page says the token crosses the network unencrypted, but not on this machine', async () => {
    const s = await createTestService({ PUBLIC_URL: 'http://localhost:8787' });
    try {
      const said = async (url: string) =>
        (await (await s.app.request(url)).text()).includes('cross the network unencrypted');
      expect(await said('http://192.168.1.20:8787/admin/sign-in')).toBe(true);
      expect(await said('http://news.example.test/admin/sign-in')).toBe(true);
      expect(await said('http://127.0.0.1:8787/admin/sign-in')).toBe(false);
      expect(await said('http://localhost:8787/admin/sign-in')).toBe(false);
      expect(await said('https://news.example.test/admin/sign-in')).toBe(false);
    } finally {
      await s.close();
    }
  });
});
