import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../src/db/client.js';
import { MIGRATIONS_FOLDER } from '../src/db/open.js';
import { openPostgres } from '../src/db/postgres.js';
import { Cookies, csrfIn } from './support/admin.js';
import { createServerDatabase, dropServerDatabase, testDbKind } from './support/db.js';
import type { FeedServer, Item } from './support/feeds.js';
import { rss, startFeedServer } from './support/feeds.js';
import { confirmTokenIn, PUBLISHER_TOKEN, unsubscribeTokenIn } from './support/service.js';
import type { SmtpSink } from './support/smtp.js';
import { startSmtpSink } from './support/smtp.js';
import type { WranglerDev } from './support/wrangler.js';
import { startWrangler } from './support/wrangler.js';

// A real workerd (`wrangler dev`) running src/entry/worker.ts against PostgreSQL and a real SMTP sink.
// The Worker needs PostgreSQL, so this runs in the postgres project only.
describe.skipIf(testDbKind !== 'postgres')('the service as a Cloudflare Worker (wrangler dev)', () => {
  let databaseUrl: string;
  let smtp: SmtpSink;
  let wrangler: WranglerDev | undefined;
  let base: string;
  let feeds: FeedServer;
  const firstEntry: Item = {
    id: 'https://example.org/essays/old',
    title: 'An old essay',
    link: 'https://example.org/essays/old',
    date: new Date('2026-01-01T00:00:00Z'),
  };

  beforeAll(async () => {
    databaseUrl = await createServerDatabase();
    // Workers have no filesystem for migrations: they are applied from Node first, as an operator does.
    await (await openPostgres(databaseUrl, { migrationsFolder: MIGRATIONS_FOLDER })).close();
    smtp = await startSmtpSink();
    feeds = await startFeedServer();
    feeds.routes.set('/feed.xml', { body: rss([firstEntry]), contentType: 'application/rss+xml' });
    wrangler = await startWrangler({
      args: ['--test-scheduled'],
      vars: (address) => ({
        DATABASE_URL: databaseUrl,
        // workerd does not resolve localhost: the SMTP server is named by its IP address.
        SMTP_URL: smtp.url,
        PUBLISHER_TOKEN,
        PUBLIC_URL: address,
        MAIL_FROM: 'Essays <essays@example.test>',
        SITE_NAME: 'Worker Essays',
        CONFIRM_RESEND_MINUTES: '0',
        SUBSCRIBE_LIMIT_PER_IP: '0',
        FEED_URL: feeds.url('/feed.xml'),
        FEED_POLL_SECONDS: '60',
      }),
      ready: async (address) => (await fetch(`${address}/healthz`)).ok,
    });
    base = wrangler.base;
  }, 120_000);

  afterAll(async () => {
    await wrangler?.stop();
    await smtp?.close();
    await feeds?.close();
    if (databaseUrl) await dropServerDatabase(databaseUrl);
  });

  const cron = () => fetch(`${base}/__scheduled?cron=*+*+*+*+*`);
  const api = (path: string, body?: unknown) =>
    fetch(`${base}${path}`, {
      method: body ? 'POST' : 'GET',
      headers: { authorization: `Bearer ${PUBLISHER_TOKEN}`, 'content-type': 'application/json' },
      body: body ? JSON.stringify(body) : undefined,
    });

  it('serves the reader lifecycle: subscribe, confirmation email, confirm', async () => {
    const res = await fetch(`${base}/subscribe`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'worker-reader@example.org', name: 'Wendy' }),
    });
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ status: 'pending' });

    // The request kicks a short dispatch slice in waitUntil; the cron would also send it.
    const [mail] = await smtp.waitFor(1, 30_000);
    expect(mail?.to).toBe('worker-reader@example.org');
    const token = confirmTokenIn(mail?.parsed.text);
    expect(mail?.parsed.text).toContain(`${base}/confirm/${token}`);

    const page = await fetch(`${base}/confirm/${token}`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('Worker Essays');
    const confirmed = await fetch(`${base}/confirm/${token}`, { method: 'POST' });
    expect(confirmed.status).toBe(200);

    const style = await fetch(`${base}/assets/style.css`);
    expect(style.headers.get('content-type')).toContain('text/css');
    // The icon is bundled too (wrangler.toml's Text rule covers templates/**/*.svg).
    const icon = await fetch(`${base}/favicon.svg`);
    expect(icon.headers.get('content-type')).toContain('image/svg+xml');
    expect(await icon.text()).toContain('<svg');
  });

  it('sends a small send-out from the cron, and a repeat sends nothing', async () => {
    const db = await openPostgres(databaseUrl);
    try {
      await db.db.execute(sql`
        insert into subscribers (email, status, unsubscribe_token)
        select 'worker' || i || '@example.org', 'confirmed', md5(i::text) || 'abcdefghijk'
        from generate_series(1, 20) as i`);
    } finally {
      await db.close();
    }
    const before = smtp.received.length;
    const published = await api('/api/essays', {
      slug: 'from-the-edge',
      title: 'From the edge',
      url: 'https://example.org/edge',
      summary: 'Sent by a Worker.',
    });
    expect(published.status).toBe(202);
    expect(((await published.json()) as { sendout: { total: number } }).sendout.total).toBe(21);

    expect((await cron()).status).toBe(200);
    const received = await smtp.waitFor(before + 21, 30_000);
    const letters = received.slice(before);
    expect(new Set(letters.map((m) => m.to)).size).toBe(21);
    expect(letters[0]?.raw).toMatch(/^List-Unsubscribe-Post: List-Unsubscribe=One-Click/m);

    const progress = await api('/api/essays/from-the-edge');
    const { sendout } = (await progress.json()) as { sendout: { status: string; sent: number } };
    expect(sendout).toMatchObject({ status: 'done', sent: 21 });

    // Again: the cron finds nothing, and the same slug publishes nothing.
    expect((await cron()).status).toBe(200);
    expect(
      (await api('/api/essays', { slug: 'from-the-edge', title: 'x', url: 'https://example.org/x' })).status,
    ).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(smtp.received.length).toBe(before + 21);

    // The one-click unsubscribe from a letter works through the Worker too.
    const reader = letters.find((m) => m.to === 'worker-reader@example.org');
    const unsubscribe = await fetch(`${base}/unsubscribe/${unsubscribeTokenIn(reader?.raw)}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'List-Unsubscribe=One-Click',
    });
    expect(unsubscribe.status).toBe(200);
    const db2 = await openPostgres(databaseUrl);
    try {
      const [row] = await rows<{ status: string }>(
        db2.db,
        sql`select status::text from subscribers where email = 'worker-reader@example.org'`,
      );
      expect(row?.status).toBe('unsubscribed');
    } finally {
      await db2.close();
    }
  });
  it('reads the feed from the cron: the first read sends nothing, a new entry goes out once', async () => {
    const before = smtp.received.length;
    expect((await cron()).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(smtp.received.length).toBe(before);

    const fresh: Item = {
      id: 'https://example.org/essays/new',
      title: 'A new essay from the feed',
      link: 'https://example.org/essays/new',
      date: new Date(),
    };
    feeds.routes.set('/feed.xml', { body: rss([fresh, firstEntry]), contentType: 'application/rss+xml' });
    expect((await cron()).status).toBe(200);
    // 20 confirmed (the reader above unsubscribed): one letter each, from this cron run.
    const received = await smtp.waitFor(before + 20, 30_000);
    const letters = received.slice(before);
    expect(letters.every((m) => m.parsed.subject === 'A new essay from the feed')).toBe(true);
    expect(new Set(letters.map((m) => m.to)).size).toBe(20);

    expect((await cron()).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(smtp.received.length).toBe(before + 20);
  });
  it('serves the dashboard: sign in with the publisher token, then the overview and a send-out', async () => {
    const form = await fetch(`${base}/admin/sign-in`);
    expect(form.status).toBe(200);
    const cookies = new Cookies().take(form);
    const signedIn = await fetch(`${base}/admin/sign-in`, {
      method: 'POST',
      redirect: 'manual',
      headers: {
        cookie: cookies.header(),
        'content-type': 'application/x-www-form-urlencoded',
        origin: new URL(base).origin,
      },
      body: new URLSearchParams({ csrf: csrfIn(await form.text()), token: PUBLISHER_TOKEN }).toString(),
    });
    expect(signedIn.status).toBe(303);
    cookies.take(signedIn);
    const overview = await fetch(`${base}/admin`, {
      headers: { cookie: cookies.header() },
      redirect: 'manual',
    });
    expect(overview.status).toBe(200);
    const html = await overview.text();
    expect(html).toContain('<h1>Overview</h1>');
    expect(html).toContain('<svg class="chart"');
    const script = await fetch(`${base}/admin/assets/admin.js`);
    expect(script.headers.get('content-type')).toContain('text/javascript');
    expect(await script.text()).toContain('data-progress-url');
    const refused = await fetch(`${base}/admin`, { redirect: 'manual' });
    expect(refused.status).toBe(303);
  });
});
